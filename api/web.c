/*
 * api/web.c - the files built into farm-api (api/embed.cmake): the OpenAPI
 * document at GET /v1/openapi.json (always, no auth), and the demo page of
 * web/ with the JavaScript client at / (only with FARM_DEMO=1).
 *
 * The demo page is served under a Content-Security-Policy that allows
 * scripts, styles and connections from this origin only and images from it
 * (plus blob: for local previews of an upload): no inline script, no
 * framing. The API routes do not get it; their answers are JSON.
 */
#include "api_int.h"

#include <assert.h>
#include <string.h>

#define OPENAPI_PATH "/v1/openapi.json"

#define DEMO_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const api_asset_t *asset_find(const char *url)
{
    for (const api_asset_t *a = api__assets; a->url; a++)
        if (strcmp(a->url, url) == 0)
            return a;
    return NULL;
}

static void on_openapi(gf_http_req_t *req, void *data)
{
    const api_asset_t *a = data;
    gf_http_set_header(req, "X-Content-Type-Options", "nosniff");
    gf_http_set_header(req, "Cache-Control", "no-cache");
    gf_http_respond(req, 200, a->type, (const char *)a->data, a->len);
}

static void on_demo_file(gf_http_req_t *req, void *data)
{
    const api_asset_t *a = data;
    gf_http_set_header(req, "Content-Security-Policy", DEMO_CSP);
    gf_http_set_header(req, "X-Content-Type-Options", "nosniff");
    gf_http_set_header(req, "Referrer-Policy", "no-referrer");
    gf_http_set_header(req, "X-Frame-Options", "DENY");
    gf_http_set_header(req, "Cache-Control", "no-cache");
    gf_http_respond(req, 200, a->type, (const char *)a->data, a->len);
}

void api__web_routes(api_t *api)
{
    const api_asset_t *doc = asset_find(OPENAPI_PATH);
    /* api/CMakeLists.txt always embeds it; its absence is a build bug. */
    assert(doc != NULL);
    gf_httpd_route(api->httpd, "GET", "/v1/openapi.json", 0, on_openapi, (void *)doc);
    if (!api->cfg->demo)
        return;
    for (const api_asset_t *a = api__assets; a->url; a++)
        if (a != doc)
            gf_httpd_route(api->httpd, "GET", a->url, 0, on_demo_file, (void *)a);
}
