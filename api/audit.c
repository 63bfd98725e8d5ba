/*
 * api/audit.c - the audit trail on the API's side: GET /v1/admin/audit
 * (a page of audit_log, newest first, admin only), and api__audit_set, the
 * one call a handler makes to have its store call write its audit row in
 * the same transaction (store_call_set_audit) with the caller's `sub` and
 * the request's id.
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

void api__audit_set(store_call_t *call, gf_http_req_t *req, const api_principal_t *who,
                    const char *action, const char *target, json_t *detail)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    store_call_set_audit(call, &(store_audit_t){.actor = who->sub,
                                                .action = action,
                                                .target = target,
                                                .request_id = gf_http_req_id(req),
                                                .detail_json = text});
    free(text);
    json_decref(detail);
}

static json_t *entry_json(const store_audit_entry_t *e)
{
    json_t *detail = json_loads(e->detail, 0, NULL);
    return json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:o, s:s}", "id", (json_int_t)e->id, "actor",
                     e->actor, "action", e->action, "target", e->target, "request_id",
                     e->request_id, "detail", detail ? detail : json_object(), "at", e->at);
}

static void on_audit_page(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_route_t *c = data;
    if (api__route_page_failed(c, err))
        return;
    json_t *items = json_array();
    for (size_t i = 0; i < call->res.audit.n; i++)
        json_array_append_new(items, entry_json(&call->res.audit.items[i]));
    api__json(c->req, 200,
              json_pack("{s:o, s:s?}", "items", items, "next_cursor", call->res.audit.next_cursor));
    api__route_free(c);
}

static void on_admin_audit(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    api_principal_t who;
    int limit;
    const char *cursor;
    if (api__auth_admin(api, req, &who) < 0 || api__id_page_query(req, &limit, &cursor) < 0)
        return;
    api_route_t *c = api__route_new(api, req, sizeof(*c), NULL);
    store_call_audit_page(&c->call, limit, cursor);
    api__route_run(c, on_audit_page);
}

void api__audit_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "GET", "/v1/admin/audit", 0, on_admin_audit, api);
}
