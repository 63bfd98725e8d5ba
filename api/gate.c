/*
 * api/gate.c - what farm-api decides when a request's headers are complete,
 * before any byte of its body is read (httpd's check hook): authentication,
 * the Content-Type, the rate limit of the caller's plan for the route's
 * action (or of the client's address when it has no valid token), the
 * caller's upload quota (asked of Postgres) and the process's room for
 * upload bodies. A refusal is answered at once; a
 * request that announced a body then ends with a lingering close, so the
 * client still reads the answer and the body is never buffered (API.md,
 * errors).
 *
 * The principal found here travels to the handler with the request
 * (gf_http_req_set_user), so api__auth() does not verify the token twice.
 * Routes not in the table below pass untouched and do their own checks; a
 * new /v1 route gets its row here when it is registered (a public one too:
 * the query parameters, header and body it would not act on are refused).
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { GATE_PUBLIC, GATE_USER, GATE_USER_QUERY } gate_auth;
typedef enum { GATE_CT_NONE, GATE_CT_JSON, GATE_CT_IMAGE } gate_ctype;

typedef struct {
    const char *method, *pattern;
    gate_auth auth;
    int action; /* a gf_rl_action, or -1: not limited */
    gate_ctype ctype;
    const char *query; /* the query parameters the route reads, space-separated */
} gate_rule_t;

#define PAGE   "limit cursor"
#define EVENTS "access_token"
#define SIGNED "exp sig"

static const gate_rule_t gate_rules[] = {
    {"POST", "/v1/generations", GATE_USER, GF_RL_GENERATIONS, GATE_CT_JSON, NULL},
    {"GET", "/v1/generations", GATE_USER, GF_RL_READS, GATE_CT_NONE, "status kind " PAGE},
    {"GET", "/v1/generations/:id", GATE_USER, GF_RL_READS, GATE_CT_NONE, NULL},
    {"POST", "/v1/generations/:id/cancel", GATE_USER, GF_RL_READS, GATE_CT_NONE, NULL},
    {"GET", "/v1/generations/:id/events", GATE_USER_QUERY, GF_RL_READS, GATE_CT_NONE, EVENTS},
    {"GET", "/v1/events", GATE_USER_QUERY, GF_RL_READS, GATE_CT_NONE, EVENTS},
    {"GET", "/v1/credits", GATE_USER, GF_RL_READS, GATE_CT_NONE, NULL},
    {"GET", "/v1/credits/ledger", GATE_USER, GF_RL_READS, GATE_CT_NONE, PAGE},
    {"POST", "/v1/uploads", GATE_USER, GF_RL_UPLOADS, GATE_CT_IMAGE, NULL},
    /* lifecycle (api/lifecycle.c) */
    {"DELETE", "/v1/generations/:id", GATE_USER, GF_RL_GENERATIONS, GATE_CT_NONE, NULL},
    {"GET", "/v1/uploads", GATE_USER, GF_RL_READS, GATE_CT_NONE, PAGE},
    {"DELETE", "/v1/uploads/:id", GATE_USER, GF_RL_UPLOADS, GATE_CT_NONE, NULL},
    {"POST", "/v1/admin/credits", GATE_USER, -1, GATE_CT_JSON, NULL},
    {"GET", "/v1/admin/stats", GATE_USER, -1, GATE_CT_NONE, NULL},
    {"GET", "/v1/admin/audit", GATE_USER, -1, GATE_CT_NONE, PAGE},
    {"GET", "/v1/presets", GATE_USER, -1, GATE_CT_NONE, NULL},
    /* public (a signature or a token, checked by the handler; or nothing): no limit, and
     * what they would not act on is refused all the same */
    {"GET", "/v1/files/:a/:b/:c", GATE_PUBLIC, -1, GATE_CT_NONE, SIGNED},
    {"GET", "/v1/presets/poses/:file", GATE_PUBLIC, -1, GATE_CT_NONE, SIGNED},
    {"GET", "/v1/openapi.json", GATE_PUBLIC, -1, GATE_CT_NONE, NULL},
};

/* What the gate hands the handler: the caller, and the upload bytes it holds room for. */
typedef struct {
    api_t *api;
    api_principal_t who;
    size_t upload_reserved;
    int upload_counted;
    long long at_cap; /* POST /v1/generations: the tier's cap when the user was at it, else 0 */
} gate_user_t;

/* One check in flight (while Redis answers the rate limit). */
typedef struct {
    api_t *api;
    gf_http_req_t *req;
    const gate_rule_t *rule;
    gate_user_t *user; /* NULL: no valid token (the anonymous bucket was asked) */
    char why[256];     /* the 401's reason, for the log */
    store_call_t call; /* the upload quota's usage */
} gate_check_t;

static const gate_rule_t *rule_find(const gf_http_req_t *req)
{
    const char *method = gf_http_req_method(req), *route = gf_http_req_route(req);
    if (route == NULL)
        return NULL;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    for (size_t i = 0; i < sizeof(gate_rules) / sizeof(gate_rules[0]); i++)
        if (strcmp(gate_rules[i].method, method) == 0 && strcmp(gate_rules[i].pattern, route) == 0)
            return &gate_rules[i];
    return NULL;
}

static void user_free(void *p)
{
    gate_user_t *u = p;
    api_t *api = u->api;
    api->upload_inflight_bytes -= u->upload_reserved;
    api->upload_inflight -= u->upload_counted;
    free(u);
}

const api_principal_t *api__gate_principal(const gf_http_req_t *req)
{
    const gate_user_t *u = gf_http_req_user(req);
    return u ? &u->who : NULL;
}

int api__gate_at_cap(const gf_http_req_t *req)
{
    const gate_user_t *u = gf_http_req_user(req);
    return u && u->at_cap > 0;
}

/* The media type without its parameters, compared case-insensitively. */
static int ctype_is(const char *ctype, const char *want)
{
    size_t n = strcspn(ctype, "; \t");
    return n == strlen(want) && strncasecmp(ctype, want, n) == 0;
}

static int ctype_ok(const gf_http_req_t *req, gate_ctype want)
{
    const char *ct = gf_http_req_header(req, "content-type");
    switch (want) {
    case GATE_CT_NONE:
        return 1;
    case GATE_CT_JSON:
        return ct != NULL && ctype_is(ct, "application/json");
    case GATE_CT_IMAGE:
        return ct != NULL && (ctype_is(ct, "image/png") || ctype_is(ct, "image/jpeg") ||
                              ctype_is(ct, "image/webp"));
    }
    return 0;
}

/* Whether `name` is a word of the space-separated `words` (NULL: none). */
static int is_word(const char *words, const char *name)
{
    size_t n = strlen(name);
    for (const char *w = words; w != NULL && *w != '\0';) {
        size_t len = strcspn(w, " ");
        if (len == n && strncmp(w, name, n) == 0)
            return 1;
        w += len + (w[len] == ' ');
    }
    return 0;
}

/* The Content-Length a request announces; 0 when it has none or is chunked (an upload's
 * size cannot be told yet). */
static long long content_length(const gf_http_req_t *req)
{
    const char *cl = gf_http_req_header(req, "content-length");
    return cl ? strtoll(cl, NULL, 10) : 0;
}

/* What the request sends that its route would not act on (API.md: never
 * accepted and dropped), for a 400 naming it in `field` (NULL: a body): a
 * query parameter the route does not read, an Idempotency-Key where only
 * POST /v1/generations honours one, a body on a route that reads none.
 * Returns 0 when there is nothing of the kind. */
static int unread_input(const gf_http_req_t *req, const gate_rule_t *rule, char *msg, size_t len,
                        const char **field)
{
    const char *name;
    for (size_t i = 0; (name = gf_http_req_query_name(req, i)) != NULL; i++)
        if (!is_word(rule->query, name)) {
            snprintf(msg, len, "unknown query parameter %.64s%s%s", name,
                     rule->query ? "; this route reads " : "; this route reads none",
                     rule->query ? rule->query : "");
            *field = name;
            return 1;
        }
    if (gf_http_req_header(req, "idempotency-key") != NULL &&
        (strcmp(rule->method, "POST") != 0 || strcmp(rule->pattern, "/v1/generations") != 0)) {
        snprintf(msg, len, "Idempotency-Key is honoured on POST /v1/generations only");
        *field = "Idempotency-Key";
        return 1;
    }
    if (rule->ctype == GATE_CT_NONE &&
        (content_length(req) > 0 || gf_http_req_header(req, "transfer-encoding") != NULL)) {
        snprintf(msg, len, "%s %s takes no request body", rule->method, rule->pattern);
        *field = NULL;
        return 1;
    }
    return 0;
}

/* The body an upload announces: its Content-Length, or the limit when chunked. */
static size_t announced_bytes(const api_t *api, const gf_http_req_t *req)
{
    const char *cl = gf_http_req_header(req, "content-length");
    if (cl == NULL)
        return (size_t)api->cfg->upload_max_bytes;
    return (size_t)strtoull(cl, NULL, 10); /* the parser already checked it and the limit */
}

static void check_free(gate_check_t *g)
{
    if (g->user)
        free(g->user);
    store_call_dispose(&g->call);
    free(g);
}

/* Lets the request through, handing the caller to its handler. */
static void gate_pass(gate_check_t *g)
{
    gf_http_req_t *req = g->req;
    if (g->user != NULL) {
        gf_http_req_set_user(req, g->user, user_free);
        g->user = NULL;
    }
    check_free(g);
    gf_http_req_proceed(req);
}

static void gate_refuse(gate_check_t *g, int status, const char *code, const char *message)
{
    gf_http_req_t *req = g->req;
    check_free(g);
    gf_http_req_refuse(req, status, code, message, NULL);
}

/* Room for an upload's body and decode: refused with 503 when the process is full. */
static void gate_upload(gate_check_t *g)
{
    api_t *api = g->api;
    size_t need = announced_bytes(api, g->req);
    if (api->upload_inflight >= (size_t)api->cfg->upload_max_inflight ||
        api->upload_inflight_bytes + need > (size_t)api->cfg->upload_max_inflight_bytes) {
        gf_http_set_header(g->req, "Retry-After", "1");
        gate_refuse(g, 503, "unavailable",
                    "this server is receiving as many uploads as it can; retry shortly");
        return;
    }
    api->upload_inflight_bytes += need;
    api->upload_inflight++;
    g->user->api = api;
    g->user->upload_reserved = need;
    g->user->upload_counted = 1;
    gate_pass(g);
}

void api__quota_refuse(api_t *api, gf_http_req_t *req, const char *plan, const char *over,
                       int at_headers)
{
    long long count, bytes;
    gf_cfg_upload_quota(api->cfg, plan, &count, &bytes);
    char msg[200];
    if (strcmp(over, "count") == 0)
        snprintf(msg, sizeof(msg),
                 "the upload quota (count) is full: at most %lld uploads per user; delete one "
                 "to upload another",
                 count);
    else
        snprintf(msg, sizeof(msg),
                 "the upload quota (bytes) would be passed: at most %lld bytes of uploads per "
                 "user; delete some to upload this one",
                 bytes);
    gf_http_set_header(req, "Retry-After", API_QUOTA_RETRY_AFTER_S);
    if (at_headers)
        gf_http_req_refuse(req, 429, "rate_limited", msg, NULL);
    else
        api__error(req, 429, "rate_limited", msg, NULL);
}

static void on_usage(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    gate_check_t *g = data;
    if (err->code < 0) {
        /* The upload could not be recorded either: refused before its body. */
        gf_log_err(GF_LOG_WARN,
                   &(gf_log_ctx){.component = "api", .request_id = gf_http_req_id(g->req)}, err);
        gf_http_set_header(g->req, "Retry-After", "1");
        gate_refuse(g, 503, "unavailable", "the upload cannot be recorded now; retry shortly");
        return;
    }
    long long count, bytes;
    gf_cfg_upload_quota(g->api->cfg, g->user->who.plan, &count, &bytes);
    const store_upload_result_t *u = &g->call.res.upload;
    const char *over = NULL;
    if (count > 0 && u->uploads >= count)
        over = "count";
    else if (bytes > 0 && u->bytes + content_length(g->req) > bytes)
        over = "bytes";
    if (over != NULL) {
        gf_http_req_t *req = g->req;
        api_t *api = g->api;
        char plan[sizeof(g->user->who.plan)];
        memcpy(plan, g->user->who.plan, sizeof(plan));
        check_free(g);
        api__quota_refuse(api, req, plan, over, 1);
        return;
    }
    gate_upload(g);
}

/* The caller's upload quota, from the uploads it keeps: refused at once when full. */
static void gate_quota(gate_check_t *g)
{
    long long count, bytes;
    gf_cfg_upload_quota(g->api->cfg, g->user->who.plan, &count, &bytes);
    if (count == 0 && bytes == 0) {
        gate_upload(g);
        return;
    }
    store_call_upload_usage(&g->call, g->user->who.sub);
    if (api__store_exec(g->api, &g->call, on_usage, g) < 0) {
        gf_http_set_header(g->req, "Retry-After", "1");
        gate_refuse(g, 503, "unavailable", "the server is shutting down; retry");
    }
}

static void gate_decide(gate_check_t *g)
{
    const char *unread;
    char msg[200];
    if (g->user == NULL) {
        gf_log_ctx ctx = {.component = "api", .request_id = gf_http_req_id(g->req)};
        GF_LOG(GF_LOG_INFO, &ctx, "unauthorized: %s", g->why);
        gf_http_set_header(g->req, "WWW-Authenticate", "Bearer");
        gate_refuse(g, 401, "unauthorized", "a valid bearer token is required");
    } else if (!ctype_ok(g->req, g->rule->ctype)) {
        gate_refuse(g, 415, "unsupported_media_type",
                    g->rule->ctype == GATE_CT_JSON
                        ? "send application/json"
                        : "send the image as image/png, image/jpeg or image/webp");
    } else if (unread_input(g->req, g->rule, msg, sizeof(msg), &unread)) {
        gf_http_req_t *req = g->req;
        check_free(g);
        gf_http_req_refuse(req, 400, "invalid_request", msg, unread);
    } else if (g->rule->action == GF_RL_UPLOADS && g->rule->ctype == GATE_CT_IMAGE) {
        gate_quota(g); /* an upload's body (not DELETE /v1/uploads/:id): quota, then capacity */
    } else {
        gate_pass(g);
    }
}

static void on_limited(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    (void)q;
    gate_check_t *g = data;
    if (err->code == GF_OK) {
        if (g->user)
            g->user->at_cap = res->limit; /* the accept refuses what it would write */
        char v[32];
        long long per_min = 0, burst = 0;
        int action = g->user ? g->rule->action : GF_RL_ANONYMOUS;
        gf_cfg_rate_limit(g->api->cfg, g->user ? g->user->who.plan : NULL, action, &per_min,
                          &burst);
        snprintf(v, sizeof(v), "%lld", burst);
        gf_http_set_header(g->req, "RateLimit-Limit", v);
        snprintf(v, sizeof(v), "%lld", (long long)res->position);
        gf_http_set_header(g->req, "RateLimit-Remaining", v);
        /* Reset: seconds until the bucket is whole again (from the whole tokens left: at
         * most one token's interval late); Retry-After: until the next token. */
        long long missing = burst - (long long)res->position;
        long long full_s = per_min > 0 && missing > 0 ? (missing * 60 + per_min - 1) / per_min : 0;
        snprintf(v, sizeof(v), "%lld", full_s);
        gf_http_set_header(g->req, "RateLimit-Reset", v);
        if (!res->created) {
            snprintf(v, sizeof(v), "%lld", (long long)(res->retry_in_ms + 999) / 1000);
            gf_http_set_header(g->req, "Retry-After", v);
            char msg[160];
            snprintf(msg, sizeof(msg), "too many %s requests; retry after the Retry-After seconds",
                     g->user ? gf_rl_action_names[action] : "unauthenticated");
            gate_refuse(g, 429, "rate_limited", msg);
            return;
        }
    }
    gate_decide(g); /* Redis down: no bucket to ask, and the request goes on (docs/api.md) */
}

/* Asks the caller's bucket (or the client address's when there is no caller). */
static void gate_limit(gate_check_t *g)
{
    api_t *api = g->api;
    long long per_min, burst;
    char key[128];
    int action = g->user ? g->rule->action : GF_RL_ANONYMOUS;
    if (action < 0 || !gf_cfg_rate_limit(api->cfg, g->user ? g->user->who.plan : NULL, action,
                                         &per_min, &burst)) {
        gate_decide(g);
        return;
    }
    if (g->user)
        snprintf(key, sizeof(key), "%s:%s", g->user->who.sub, gf_rl_action_names[action]);
    else
        snprintf(key, sizeof(key), "ip:%s", gf_http_req_peer(g->req));
    /* POST /v1/generations also asks whether the user is at the active cap: then its
     * accept refuses, with 429, what it would otherwise write only for the enqueue to
     * refuse it (a replay, a conflict, a 402 or a 404 are answered as ever). Two at once
     * may both pass the check: the enqueue refuses the second, as before. */
    const char *cap_user = NULL, *cap_tier = NULL;
    if (g->user && g->rule->action == GF_RL_GENERATIONS && strcmp(g->rule->method, "POST") == 0 &&
        strcmp(g->rule->pattern, "/v1/generations") == 0) {
        cap_user = g->user->who.sub;
        cap_tier = queue_tier_of(api->cfg, g->user->who.plan);
    }
    if (queue_ratelimit(api->queue, key, (long)per_min, (long)burst, cap_user, cap_tier, on_limited,
                        g) < 0)
        gate_decide(g);
}

static void on_check(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    const gate_rule_t *rule = rule_find(req);
    const char *unread;
    char msg[200];
    if (rule != NULL && rule->auth == GATE_PUBLIC &&
        unread_input(req, rule, msg, sizeof(msg), &unread)) {
        gf_http_req_refuse(req, 400, "invalid_request", msg, unread);
        return;
    }
    if (rule == NULL || rule->auth == GATE_PUBLIC) {
        gf_http_req_proceed(req);
        return;
    }
    gate_check_t *g = gf_xcalloc(1, sizeof(*g));
    g->api = api;
    g->req = req;
    g->rule = rule;
    const char *token = NULL, *h = gf_http_req_header(req, "authorization");
    if (h != NULL && rule->auth == GATE_USER_QUERY && gf_http_req_query(req, "access_token")) {
        /* Two tokens: which one is meant? Refused, never one of them silently dropped. */
        free(g);
        gf_http_req_refuse(req, 400, "invalid_request",
                           "send the token once: the Authorization header or access_token",
                           "access_token");
        return;
    }
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
        token = h + 7;
    else if (h == NULL && rule->auth == GATE_USER_QUERY)
        token = gf_http_req_query(req, "access_token");
    gate_user_t *u = gf_xcalloc(1, sizeof(*u));
    u->api = api;
    gf_err_t err = {0};
    if (token == NULL || token[0] == '\0') {
        /* No token: 401 at once, for nothing (no signature to check), and not charged to
         * the address's anonymous bucket: a signed-out page told 429 instead would not
         * send its user to sign in. */
        snprintf(g->why, sizeof(g->why), "no bearer token");
        free(u);
        gate_decide(g);
        return;
    } else if (api__token_check(api, token, &u->who, &err) < 0) {
        snprintf(g->why, sizeof(g->why), "%s", err.msg);
        free(u);
        /* A token of ours that a claim refuses (expired, say) is 401 at once, not charged
         * to the address's anonymous bucket: behind a proxy every user shares that one, and
         * a client told 429 would never refresh its token. Forging one takes the secret. */
        if (err.detail == API_TOKEN_SIGNED) {
            gate_decide(g);
            return;
        }
    } else {
        g->user = u;
        gf_http_req_set_log_user(req, u->who.sub);
    }
    gate_limit(g);
}

void api__gate_install(api_t *api)
{
    gf_httpd_set_check(api->httpd, on_check, api);
}
