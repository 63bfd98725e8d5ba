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

typedef struct {
    gf_http_req_t *req;
    store_call_t call;
} audit_ctx_t;

static void audit_ctx_free(audit_ctx_t *c)
{
    store_call_dispose(&c->call);
    free(c);
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
    audit_ctx_t *c = data;
    if (err->code < 0) {
        api__fail_page(c->req, err);
        audit_ctx_free(c);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < call->res.audit.n; i++)
        json_array_append_new(items, entry_json(&call->res.audit.items[i]));
    api__json(c->req, 200,
              json_pack("{s:o, s:s?}", "items", items, "next_cursor", call->res.audit.next_cursor));
    audit_ctx_free(c);
}

static void on_admin_audit(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    api_principal_t who;
    if (api__auth(api, req, &who, 0) < 0)
        return;
    if (!who.admin) {
        api__error(req, 403, "forbidden", "this route needs the admin role", NULL);
        return;
    }
    int limit = api__parse_limit(api__query(req, "limit"));
    const char *cursor = api__query(req, "cursor");
    if (limit < 0 ||
        (cursor && (strlen(cursor) > 19 || strspn(cursor, "0123456789") != strlen(cursor)))) {
        api__error(req, 400, "invalid_request", "invalid query parameter",
                   limit < 0 ? "limit" : "cursor");
        return;
    }
    audit_ctx_t *c = gf_xcalloc(1, sizeof(*c));
    c->req = req;
    store_call_audit_page(&c->call, limit, cursor);
    if (store_exec(api->store, &c->call, on_audit_page, c) < 0) {
        api__fail(req, GF_EUNAVAIL, NULL);
        audit_ctx_free(c);
    }
}

void api__audit_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "GET", "/v1/admin/audit", 0, on_admin_audit, api);
}
