/*
 * api/credits.c - GET /v1/credits, GET /v1/credits/ledger, and the admin
 * routes: POST /v1/admin/credits and GET /v1/admin/stats.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    api_route_t r;
    char user[37];
    int created; /* answer 201 (admin grant) instead of 200 */
    /* admin grant: its id (the audit row's detail.op), what it grants, and whether its
     * lost answer is being found out (api__resolve_write) */
    char op[37];
    long long amount;
    char *reason;
    int resolving;
    /* ledger: the page size, whether a cursor was given, whether an empty
     * first page was read (then the user is provisioned and it is read again) */
    int limit, cursor, first_page_read;
} credit_ctx_t;

/* api__route_free's hook: what a grant's context holds besides the route. */
static void ctx_dispose(api_route_t *r)
{
    free(((credit_ctx_t *)r)->reason);
}

/*
 * The context of a request whose caller is authenticated (an admin when `admin`); NULL once
 * the request is refused.
 */
static credit_ctx_t *ctx_new(api_t *api, gf_http_req_t *req, int admin)
{
    credit_ctx_t *c = api__route_new(api, req, sizeof(credit_ctx_t), ctx_dispose);
    int rc = admin ? api__auth_admin(api, req, &c->r.who) : api__auth(api, req, &c->r.who, 0);
    if (rc < 0) {
        api__route_free(&c->r);
        return NULL;
    }
    return c;
}

static void on_balance(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    credit_ctx_t *c = data;
    if (api__route_failed(&c->r, err))
        return;
    const store_balance_result_t *b = &call->res.balance;
    json_t *body = json_pack("{s:I, s:I, s:I}", "balance", (json_int_t)b->balance, "held",
                             (json_int_t)b->held, "available", (json_int_t)(b->balance - b->held));
    if (c->created)
        json_object_set_new(body, "user_id", json_string(c->user));
    api__json(c->r.req, c->created ? 201 : 200, body);
    api__route_free(&c->r);
}

static void on_credits(gf_http_req_t *req, void *data)
{
    credit_ctx_t *c = ctx_new(data, req, 0);
    if (c == NULL)
        return;
    store_call_balance(&c->r.call, c->r.who.sub, c->r.api->cfg->welcome_credits);
    api__route_run(&c->r, on_balance);
}

static void on_ledger_page(store_t *st, const gf_err_t *err, store_call_t *call, void *data);

/* The user is provisioned now (the welcome grant): read the first page again. */
static void on_ledger_provisioned(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    credit_ctx_t *c = data;
    if (api__route_failed(&c->r, err))
        return;
    store_call_dispose(&c->r.call);
    store_call_ledger(&c->r.call, c->r.who.sub, c->limit, NULL);
    api__route_run(&c->r, on_ledger_page);
}

static void on_ledger_page(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    credit_ctx_t *c = data;
    if (api__route_page_failed(&c->r, err))
        return;
    /* A user seen first here is provisioned first, as by every other route:
     * the ledger then starts with the welcome grant. */
    if (call->res.ledger.n == 0 && !c->first_page_read && !c->cursor) {
        c->first_page_read = 1;
        store_call_dispose(&c->r.call);
        store_call_balance(&c->r.call, c->r.who.sub, c->r.api->cfg->welcome_credits);
        api__route_run(&c->r, on_ledger_provisioned);
        return;
    }
    /* API.md's kinds are grant, hold, capture and release: an operator's
     * adjustment is a grant, of a negative amount when it takes back. */
    json_t *page = api__ledger_page_json(&call->res.ledger), *item;
    size_t i;
    json_array_foreach(json_object_get(page, "items"), i, item)
    {
        const char *kind = json_string_value(json_object_get(item, "kind"));
        if (kind != NULL && strcmp(kind, "adjust") == 0)
            json_object_set_new(item, "kind", json_string("grant"));
    }
    api__json(c->r.req, 200, page);
    api__route_free(&c->r);
}

static void on_ledger(gf_http_req_t *req, void *data)
{
    credit_ctx_t *c = ctx_new(data, req, 0);
    if (c == NULL)
        return;
    int limit;
    const char *cursor;
    if (api__id_page_query(req, &limit, &cursor) < 0) {
        api__route_free(&c->r);
        return;
    }
    c->limit = limit;
    c->cursor = cursor != NULL;
    store_call_ledger(&c->r.call, c->r.who.sub, limit, cursor);
    api__route_run(&c->r, on_ledger_page);
}

/* The call that resolves a lost grant, audited as the grant (it may be the one that grants). */
static void build_resolve(store_call_t *call, const store_backend_t *backend, void *data)
{
    credit_ctx_t *c = data;
    store_call_credit_resolve(call, backend, c->op, c->user, c->amount, c->reason,
                              c->r.api->cfg->welcome_credits);
    api__audit_set(call, c->r.req, &c->r.who, "credits.grant", c->user,
                   json_pack("{s:I, s:s, s:s}", "amount", (json_int_t)c->amount, "reason",
                             c->reason, "op", c->op));
}

static void on_granted(store_t *st, const gf_err_t *err, store_call_t *call, void *data);

/*
 * The grant's answer carries the account after it (farm_credit_balance), so
 * nothing can fail between its commit and the 201. A grant whose answer
 * Postgres lost may have committed: a 503 would promise it did not, and the
 * admin's retry would grant twice, so the api finds out first
 * (farm_credit_resolve, by the id it gave the grant): the grant's own
 * answer, or, when it had not committed, the grant run then.
 */
static void on_granted(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    credit_ctx_t *c = data;
    if (err->code == GF_ECREDITS) {
        api__error(c->r.req, 402, "insufficient_credits",
                   "the adjustment would leave less than the credits held", "amount");
        api__route_free(&c->r);
        return;
    }
    if (err->code < 0 && call->outcome_unknown && !c->resolving) {
        store_backend_t backend = call->backend;
        store_call_dispose(call);
        c->resolving = 1;
        if (api__resolve_write(c->r.api, &backend, &c->r.call, build_resolve, on_granted, c) == 0)
            return;
    }
    if (err->code < 0 && c->resolving) {
        /* Still unknown (the api stops first): a 500, which promises nothing. */
        api__fail(c->r.req, GF_EIO, err);
        api__route_free(&c->r);
        return;
    }
    c->created = 1;
    on_balance(st, err, call, c);
}

static void on_admin_credits(gf_http_req_t *req, void *data)
{
    credit_ctx_t *c = ctx_new(data, req, 1);
    if (c == NULL)
        return;
    if (!api__body_is_json(req)) {
        api__route_free(&c->r);
        return;
    }
    size_t len;
    const char *body = gf_http_req_body(req, &len);
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *user = json_object_get(root, "user_id"), *amount = json_object_get(root, "amount");
    json_t *reason = json_object_get(root, "reason");
    /* A field we do not know is named, as for POST /v1/generations: a typo
     * must not pass as a grant without it. */
    const char *key, *unknown = NULL;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (unknown == NULL && strcmp(key, "user_id") != 0 && strcmp(key, "amount") != 0 &&
            strcmp(key, "reason") != 0)
            unknown = key;
    }
    if (unknown != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unknown field %.100s", unknown);
        api__error(req, 400, "invalid_request", msg, unknown);
        json_decref(root);
        api__route_free(&c->r);
        return;
    }
    const char *field = root == NULL || !json_is_object(root)                            ? NULL
                        : !json_is_string(user) || !api_is_uuid(json_string_value(user)) ? "user_id"
                        : !json_is_integer(amount) || json_integer_value(amount) == 0 ||
                                json_integer_value(amount) > 1000000000 ||
                                json_integer_value(amount) < -1000000000
                            ? "amount"
                        : !json_is_string(reason) || json_string_length(reason) < 1 ||
                                json_string_length(reason) > 500
                            ? "reason"
                            : "";
    if (field == NULL || field[0] != '\0') {
        api__error(req, 400, "invalid_request",
                   field == NULL ? "the body must be a JSON object"
                                 : "user_id (uuid), amount (non-zero integer) and reason are "
                                   "required",
                   field);
        json_decref(root);
        api__route_free(&c->r);
        return;
    }
    snprintf(c->user, sizeof(c->user), "%s", json_string_value(user));
    gf_uuid4(c->op);
    c->amount = json_integer_value(amount);
    c->reason = gf_xstrdup(json_string_value(reason));
    store_call_credit(&c->r.call, c->user, c->amount, c->reason, c->r.api->cfg->welcome_credits);
    api__audit_set(&c->r.call, req, &c->r.who, "credits.grant", c->user,
                   json_pack("{s:O, s:O, s:s}", "amount", amount, "reason", reason, "op", c->op));
    json_decref(root);
    api__route_run(&c->r, on_granted);
}

static void on_stats_ready(queue_t *q, const gf_err_t *err, const queue_stats_t *s, void *data)
{
    (void)q;
    credit_ctx_t *c = data;
    if (api__route_failed(&c->r, err))
        return;
    json_t *tiers = json_object();
    long long ready = 0;
    for (size_t i = 0; i < s->n_tiers; i++) {
        json_object_set_new(tiers, s->tiers[i].name, json_integer(s->tiers[i].depth));
        ready += s->tiers[i].depth;
    }
    json_t *workers = json_array();
    for (size_t i = 0; i < s->n_live; i++) {
        char seen[32];
        gf_clock_rfc3339(s->live[i].last_seen_ms, seen);
        json_array_append_new(workers,
                              json_pack("{s:s, s:I, s:s}", "id", s->live[i].id, "in_flight",
                                        (json_int_t)s->live[i].in_flight, "last_heartbeat", seen));
    }
    api__json(c->r.req, 200,
              json_pack("{s:I, s:o, s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I}}", "ready",
                        (json_int_t)ready, "queued_by_tier", tiers, "in_flight",
                        (json_int_t)s->in_flight, "delayed", (json_int_t)s->delayed,
                        "dead_lettered", (json_int_t)s->dead, "live_workers",
                        (json_int_t)s->workers, "workers", workers, "last_minute", "completed",
                        (json_int_t)s->done_last_min, "failed", (json_int_t)s->failed_last_min));
    api__route_free(&c->r);
}

static void on_admin_stats(gf_http_req_t *req, void *data)
{
    credit_ctx_t *c = ctx_new(data, req, 1);
    if (c == NULL)
        return;
    int rc = queue_stats(c->r.api->queue, on_stats_ready, c);
    if (rc < 0) {
        api__fail(req, rc, NULL);
        api__route_free(&c->r);
    }
}

void api__credits_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "GET", "/v1/credits", 0, on_credits, api);
    gf_httpd_route(api->httpd, "GET", "/v1/credits/ledger", 0, on_ledger, api);
    gf_httpd_route(api->httpd, "POST", "/v1/admin/credits", 0, on_admin_credits, api);
    gf_httpd_route(api->httpd, "GET", "/v1/admin/stats", 0, on_admin_stats, api);
}
