/*
 * api/route.c - what the routes that call the store share: a context that
 * begins with an api_route_t, its store call run or answered 503, a failed
 * completion answered, the admin check and the query of a page read by
 * numeric id (the ledger, the audit trail).
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

void *api__route_new(api_t *api, gf_http_req_t *req, size_t size, void (*dispose)(api_route_t *r))
{
    api_route_t *r = gf_xcalloc(1, size);
    r->api = api;
    r->req = req;
    r->dispose = dispose;
    return r;
}

void api__route_free(api_route_t *r)
{
    if (r->dispose)
        r->dispose(r);
    store_call_dispose(&r->call);
    free(r);
}

void api__route_run(api_route_t *r, store_call_cb cb)
{
    if (api__store_exec(r->api, &r->call, cb, r) < 0) {
        api__fail(r->req, GF_EUNAVAIL, NULL);
        api__route_free(r);
    }
}

int api__route_failed(api_route_t *r, const gf_err_t *err)
{
    if (err->code >= 0)
        return 0;
    api__fail(r->req, err->code, err);
    api__route_free(r);
    return 1;
}

int api__route_page_failed(api_route_t *r, const gf_err_t *err)
{
    if (err->code >= 0)
        return 0;
    api__fail_page(r->req, err);
    api__route_free(r);
    return 1;
}

int api__auth_admin(api_t *api, gf_http_req_t *req, api_principal_t *p)
{
    if (api__auth(api, req, p, 0) < 0)
        return -1;
    if (!p->admin) {
        api__error(req, 403, "forbidden", "this route needs the admin role", NULL);
        return -1;
    }
    return 0;
}

int api__id_page_query(gf_http_req_t *req, int *limit, const char **cursor)
{
    *limit = api__parse_limit(api__query(req, "limit"));
    *cursor = api__query(req, "cursor");
    const char *c = *cursor;
    if (*limit < 0 || (c && (strlen(c) > 19 || strspn(c, "0123456789") != strlen(c)))) {
        api__error(req, 400, "invalid_request", "invalid query parameter",
                   *limit < 0 ? "limit" : "cursor");
        return -1;
    }
    return 0;
}
