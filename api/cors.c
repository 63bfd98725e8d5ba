/*
 * api/cors.c - Cross-Origin Resource Sharing for the browsers of
 * FARM_CORS_ORIGINS: the headers on every answer (a response hook of the
 * HTTP server, so errors get them too) and the preflight OPTIONS routes.
 */
#include "api_int.h"

#include <string.h>

/* Whether `origin` is in the comma-separated list (or the list is "*"). */
static int origin_allowed(const char *list, const char *origin)
{
    if (list == NULL || origin == NULL || list[0] == '\0')
        return 0;
    if (strcmp(list, "*") == 0)
        return 1;
    size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && p[trimmed - 1] == ' ')
            trimmed--;
        if (trimmed == n && strncmp(p, origin, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

static void on_response(gf_http_req_t *req, int status, void *data)
{
    (void)status;
    api_t *api = data;
    const char *origin = gf_http_req_header(req, "origin");
    if (!origin_allowed(api->cfg->cors_origins, origin))
        return;
    gf_http_set_header(req, "Access-Control-Allow-Origin", origin);
    gf_http_set_header(req, "Vary", "Origin");
    gf_http_set_header(req, "Access-Control-Expose-Headers",
                       "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
                       "RateLimit-Reset, ETag");
}

static void on_preflight(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    if (origin_allowed(api->cfg->cors_origins, gf_http_req_header(req, "origin"))) {
        gf_http_set_header(req, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        gf_http_set_header(req, "Access-Control-Allow-Headers",
                           "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, "
                           "X-Request-Id");
        gf_http_set_header(req, "Access-Control-Max-Age", "600");
    }
    gf_http_respond(req, 204, NULL, "", 0);
}

void api__cors_routes(api_t *api)
{
    static const char *const patterns[] = {"/v1/generations",
                                           "/v1/generations/:id",
                                           "/v1/generations/:id/cancel",
                                           "/v1/generations/:id/events",
                                           "/v1/events",
                                           "/v1/credits",
                                           "/v1/credits/ledger",
                                           "/v1/uploads",
                                           "/v1/uploads/:id",
                                           "/v1/files/:a/:b/:c",
                                           "/v1/presets",
                                           "/v1/presets/poses/:file",
                                           "/v1/admin/credits",
                                           "/v1/admin/stats",
                                           "/v1/admin/audit",
                                           NULL};
    for (int i = 0; patterns[i]; i++)
        gf_httpd_route(api->httpd, "OPTIONS", patterns[i], 0, on_preflight, api);
    gf_httpd_set_response_hook(api->httpd, on_response, api);
}
