/*
 * store/call.c - the operations: their SQL (calls to the functions of
 * store/sql/) and the builders that copy their inputs. Their results are
 * read in result.c; they run on the pool (pg.c) or on a blocking
 * connection (conn.c).
 */
#include "store_int.h"

#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *sql;
    /* When audited: the condition on the statement's row (`act`) under which it writes
     * its audit row; NULL: always. */
    const char *audit_when;
} stmt_t;

/* Index = store_op_t. Types are cast in SQL so PREPARE can infer them. */
static const stmt_t stmts[STORE_OP_COUNT_] = {
    [STORE_OP_ACCEPT] =
        {.sql = "SELECT outcome, generation_id, available FROM farm_accept_generation("
                "$1::uuid, $2::uuid, $3::text, $4::bigint, $5::text, $6::int, $7::bigint, "
                "$8::jsonb, $9::jsonb, to_timestamp($10::double precision / 1000), "
                "$11::text, $12::text, $13::text, $14::text[])"},
    /* The status read with the statement's snapshot: what a 'terminal' outcome found. */
    [STORE_OP_START] = {.sql =
                            "SELECT outcome, attempts, (SELECT status FROM generations WHERE id = "
                            "$1::uuid) FROM farm_start($1::uuid, $2::bigint, $3::text, $4::text)"},
    [STORE_OP_PROVIDER_REQUEST] = {.sql =
                                       "SELECT farm_record_provider_request($1::uuid, $2::bigint, "
                                       "$3::int, $4::text)"},
    [STORE_OP_IMAGE] = {.sql =
                            "SELECT farm_image_settle($1::uuid, $2::bigint, $3::int, $4::boolean, "
                            "$5::jsonb)"},
    /* The kind: read by the statement's snapshot, before the finish; it never changes. */
    [STORE_OP_FINISH] = {.sql = "SELECT f.outcome, f.status, (SELECT g.kind FROM generations g "
                                "WHERE g.id = $1::uuid) FROM farm_finish($1::uuid, $2::bigint, "
                                "$3::text, $4::jsonb) f"},
    [STORE_OP_CANCEL] =
        {.sql = "SELECT outcome, generation::text FROM farm_cancel_json($1::uuid, $2::uuid)"},
    /* The kind when this call expired it: read by the statement's snapshot, before the
     * call, the generation was still queued (farm_expire answers expired for one expired
     * already too). */
    [STORE_OP_EXPIRE] = {.sql = "SELECT farm_expire($1::uuid), (SELECT g.kind FROM generations g "
                                "WHERE g.id = $1::uuid AND g.status = 'queued')"},
    [STORE_OP_CREDIT] =
        {.sql = "SELECT farm_credit, balance, held FROM farm_credit_balance($1::uuid, NULL, "
                "$2::bigint, $3::bigint, $4::text)"},
    [STORE_OP_BALANCE] = {.sql = "SELECT balance, held FROM farm_balance($1::uuid, $2::bigint)"},
    [STORE_OP_GENERATION] =
        {.sql = "SELECT farm_generation_json(g)::text FROM generations g "
                "WHERE g.id = $1::uuid AND g.user_id = $2::uuid AND g.deleted_at IS NULL"},
    [STORE_OP_SWEEP] = {.sql = "SELECT farm_sweep($1::int, $2::int)"},
    [STORE_OP_LIST] = {.sql = "SELECT farm_generations_page($1::uuid, $2::text, $3::text, $4::int, "
                              "$5::bigint, $6::uuid)"},
    [STORE_OP_LEDGER] = {.sql = "SELECT farm_ledger_page($1::uuid, $2::int, $3::bigint)"},
    [STORE_OP_RESUME] = {.sql = "SELECT farm_worker_resume($1::uuid)"},
    [STORE_OP_REFS] =
        {.sql = "SELECT farm_refs_check($1::uuid, $2::uuid, $3::uuid, $4::int, $5::uuid[])"},
    [STORE_OP_UPLOAD_ADD] = {.sql =
                                 "SELECT farm_upload_add($1::uuid, $2::uuid, $3::bigint, $4::text, "
                                 "$5::int, $6::int, $7::bigint, $8::text, $9::text, $10::bigint, "
                                 "$11::bigint)"},
    [STORE_OP_IMAGE_DONE] =
        {.sql = "SELECT farm_image_done($1::uuid, $2::bigint, $3::int, $4::jsonb)"},
    [STORE_OP_REFUSE] = {.sql = "SELECT farm_refuse($1::uuid, $2::uuid, $3::text)"},
    [STORE_OP_TOTALS] =
        {.sql = "SELECT coalesce(sum(balance), 0)::bigint, coalesce(sum(held), 0)::bigint, "
                "coalesce(sum(captured), 0)::bigint, coalesce(sum(released), 0)::bigint, "
                "(SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::bigint "
                "FROM generations WHERE status IN ('queued', 'running') AND status = 'queued') "
                "FROM credit_accounts"},
    [STORE_OP_WEBHOOK_CLAIM] =
        {.sql = "SELECT farm_webhook_claim($1::int, $2::int, $3::jsonb, $4::int, "
                "$5::jsonb)::text"},
    [STORE_OP_WEBHOOK_RESULT] = {.sql = "SELECT outcome, lag_s FROM farm_webhook_result($1::uuid, "
                                        "$2::bigint, $3::text, $4::int, $5::text, $6::bigint)"},
    [STORE_OP_WEBHOOK_RETRY] = {.sql = "SELECT farm_webhook_retry($1::uuid, $2)"},
    [STORE_OP_WEBHOOK_LIST] =
        {.sql = "SELECT farm_webhooks_list($1::boolean, $2::uuid, $3::int)::text"},
    [STORE_OP_GENERATION_DELETE] = {.sql = "SELECT farm_generation_delete($1::uuid, $2::uuid)"},
    [STORE_OP_UPLOAD_DELETE] = {.sql = "SELECT farm_upload_delete($1::uuid, $2::uuid)"},
    [STORE_OP_UPLOADS] = {.sql =
                              "SELECT farm_uploads_page($1::uuid, $2::int, $3::bigint, $4::uuid)"},
    [STORE_OP_LIFECYCLE] = {.sql = "SELECT farm_lifecycle($1::int, $2::int, $3::int)"},
    [STORE_OP_STORAGE_DELETED] = {.sql = "SELECT farm_storage_deleted($1::text[])"},
    [STORE_OP_UPLOAD_USAGE] = {.sql = "SELECT uploads, bytes FROM farm_upload_usage($1::uuid)"},
    [STORE_OP_AUDIT] = {.sql =
                            "SELECT farm_audit($1::text, $2::text, $3::text, $4::text, $5::jsonb)"},
    [STORE_OP_AUDIT_PAGE] = {.sql = "SELECT farm_audit_page($1::int, $2::bigint)"},
    [STORE_OP_RECONCILE_CHECK] = {.sql = "SELECT violations, checked_at FROM "
                                         "farm_reconcile_check($1::int)"},
    [STORE_OP_UNREFERENCED] = {.sql = "SELECT farm_storage_unreferenced($1::text[])"},
    [STORE_OP_ACCEPT_BATCH] = {.sql = "SELECT farm_accept_generations($1::jsonb)::text"},
    [STORE_OP_IMAGE_DONE_FINISH] = {.sql = "SELECT image, outcome, status, webhook::text FROM "
                                           "farm_image_done_finish($1::uuid, $2::bigint, $3::int, "
                                           "$4::jsonb, $5::int, $6::int)"},
    [STORE_OP_ACCEPT_RESOLVE] =
        {.sql = "SELECT farm_accept_resolve_at($1::int, $2::text, $3::uuid[])::text"},
    /* A delete found committed already wrote its audit row (or an earlier request's did):
     * the resolution writes one only when it runs the delete itself. */
    [STORE_OP_DELETE_RESOLVE] = {.sql = "SELECT farm_delete_resolve($1::uuid, $2::uuid, $3::text, "
                                        "$4::int, $5::text)",
                                 .audit_when =
                                     "act.farm_delete_resolve::jsonb->>'resolved' IS DISTINCT FROM "
                                     "'already'"},
    /* As a delete's: the grant found committed wrote its audit row already. */
    [STORE_OP_CREDIT_RESOLVE] = {.sql =
                                     "SELECT farm_credit, balance, held, resolved FROM "
                                     "farm_credit_resolve($1::text, $2::int, $3::text, $4::uuid, "
                                     "$5::bigint, $6::bigint, $7::text)",
                                 .audit_when = "act.resolved = 'ran'"},
};

/*
 * An operation run with its audit row (store_call_set_audit): the
 * operation's statement as a materialized CTE and the row's INSERT reading
 * it, in one statement, hence one transaction. The INSERT runs once the
 * action has answered (it reads the action's row), and a raised error
 * undoes both. Built once per operation; `first` is the audit's first
 * parameter number (the operation's own count + 1).
 */
static char *audited_stmts[STORE_OP_COUNT_];

const char *store__audited_sql(store_op_t op, int first)
{
    if (audited_stmts[op] == NULL) {
        gf_buf_t b = {0};
        gf_buf_printf(&b,
                      "WITH act AS MATERIALIZED (%s), "
                      "aud AS (INSERT INTO audit_log (actor, action, target, request_id, detail) "
                      "SELECT $%d::text, $%d::text, $%d::text, $%d::text, "
                      "coalesce($%d::jsonb, '{}') || jsonb_build_object('result', "
                      "CASE WHEN octet_length(to_jsonb(act)::text) <= 4096 THEN to_jsonb(act) END) "
                      "FROM act WHERE %s LIMIT 1) "
                      "SELECT * FROM act",
                      stmts[op].sql, first, first + 1, first + 2, first + 3, first + 4,
                      stmts[op].audit_when ? stmts[op].audit_when : "true");
        audited_stmts[op] = b.p;
    }
    return audited_stmts[op];
}

static char prepare_batch[16384];
static char stmt_names[STORE_OP_COUNT_][16];

static void names_init(void)
{
    if (stmt_names[0][0])
        return;
    gf_buf_t b = {0};
    for (int i = 0; i < STORE_OP_COUNT_; i++) {
        snprintf(stmt_names[i], sizeof(stmt_names[i]), "farm_s%d", i);
        gf_buf_printf(&b, "PREPARE %s AS %s;\n", stmt_names[i], stmts[i].sql);
    }
    snprintf(prepare_batch, sizeof(prepare_batch), "%s", b.p);
    gf_buf_dispose(&b);
}

const char *store__prepare_sql(void)
{
    names_init();
    return prepare_batch;
}

const char *store__stmt_name(store_op_t op)
{
    names_init();
    return stmt_names[op];
}

void store__pg_message(char *buf, size_t n, const char *msg)
{
    /* The first line that says something (libpq's next lines are hints and context). */
    const char *p = msg ? msg + strspn(msg, " \t\r\n") : "";
    snprintf(buf, n, "%s", *p ? p : "libpq gave no detail");
    buf[strcspn(buf, "\r\n")] = '\0';
}

PGconn *store__connect_start(const char *url, long long statement_timeout_ms, const char *app,
                             int async)
{
    char options[64];
    snprintf(options, sizeof(options), "-c statement_timeout=%lld", statement_timeout_ms);
    /* expand_dbname: the URL's own fields apply, then these options. */
    const char *keys[] = {"dbname", "options", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, options, "5", app, NULL};
    return async ? PQconnectStartParams(keys, vals, 1) : PQconnectdbParams(keys, vals, 1);
}

int store__send(PGconn *conn, const store_call_t *c)
{
    const char *const *params = (const char *const *)c->_params;
    if (c->_audited)
        return PQsendQueryParams(conn, store__audited_sql(c->_op, c->_nparams + 1),
                                 c->_nparams + STORE_AUDIT_PARAMS, NULL, params, NULL, NULL, 0);
    return PQsendQueryPrepared(conn, store__stmt_name(c->_op), c->_nparams, params, NULL, NULL, 0);
}

/* --- builders ------------------------------------------------------------------ */

static void call_init(store_call_t *c, store_op_t op, int nparams)
{
    memset(c, 0, sizeof(*c));
    c->_op = op;
    c->_nparams = nparams;
}

static void set_str(store_call_t *c, int i, const char *s)
{
    c->_params[i] = s ? gf_xstrdup(s) : NULL;
}

static void set_int(store_call_t *c, int i, long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", v);
    c->_params[i] = gf_xstrdup(buf);
}

/*
 * A call on one image of a running generation: $1 the generation, $2 the
 * worker's fencing token, $3 the image's index.
 */
static void call_init_image(store_call_t *c, store_op_t op, int nparams, const char *gen_id,
                            long long fence, int index)
{
    call_init(c, op, nparams);
    set_str(c, 0, gen_id);
    set_int(c, 1, fence);
    set_int(c, 2, index);
}

void store_call_accept(store_call_t *c, const store_accept_t *a)
{
    call_init(c, STORE_OP_ACCEPT, 14);
    set_str(c, 0, a->id);
    set_str(c, 1, a->user_id);
    set_str(c, 2, a->plan);
    set_int(c, 3, a->welcome_credits);
    set_str(c, 4, a->kind);
    set_int(c, 5, a->images);
    set_int(c, 6, a->unit_cost);
    set_str(c, 7, a->params_json ? a->params_json : "{}");
    set_str(c, 8, a->metadata_json);
    if (a->deadline_unix_ms > 0)
        set_int(c, 9, a->deadline_unix_ms);
    set_str(c, 10, a->idempotency_key);
    set_str(c, 11, a->idempotency_key ? a->request_hash : NULL);
    set_str(c, 12, a->webhook_url);
    set_str(c, 13, a->webhook_events);
}

/* Sets member `k` of `o` to the string `s`, or to null; fails on a string that is not UTF-8. */
static int put_str(json_t *o, const char *k, const char *s)
{
    json_t *v = s ? json_string(s) : json_null();
    return v ? json_object_set_new_nocheck(o, k, v) : -1;
}

static int put_int(json_t *o, const char *k, long long v)
{
    return json_object_set_new_nocheck(o, k, json_integer((json_int_t)v));
}

/* One request of the batch; NULL for a string that is not UTF-8. */
static json_t *accept_item_json(const store_accept_item_t *it)
{
    const store_accept_t *a = &it->accept;
    json_t *o = json_object();
    int rc =
        put_str(o, "id", a->id) | put_str(o, "user", a->user_id) | put_str(o, "plan", a->plan) |
        put_int(o, "welcome", a->welcome_credits) | put_str(o, "kind", a->kind) |
        put_int(o, "images", a->images) | put_int(o, "unit_cost", a->unit_cost) |
        put_str(o, "params", a->params_json ? a->params_json : "{}") |
        put_str(o, "metadata", a->metadata_json) |
        (a->deadline_unix_ms > 0 ? put_int(o, "deadline_ms", a->deadline_unix_ms)
                                 : json_object_set_new_nocheck(o, "deadline_ms", json_null())) |
        put_str(o, "idem_key", a->idempotency_key) |
        put_str(o, "idem_hash", a->idempotency_key ? a->request_hash : NULL) |
        put_str(o, "webhook_url", a->webhook_url) |
        put_str(o, "webhook_events", a->webhook_events) |
        put_str(o, "identity_upload", it->identity_upload) |
        put_str(o, "identity_gen", it->identity_generation) |
        (it->identity_generation ? put_int(o, "identity_index", it->identity_index)
                                 : json_object_set_new_nocheck(o, "identity_index", json_null()));
    json_t *poses = json_array();
    for (size_t k = 0; k < it->n_pose_uploads; k++) {
        json_t *v = json_string(it->pose_uploads[k]);
        rc |= v ? json_array_append_new(poses, v) : -1;
    }
    rc |= json_object_set_new_nocheck(o, "poses", poses);
    if (it->at_cap)
        rc |= json_object_set_new_nocheck(o, "at_cap", json_true());
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/*
 * The batch as farm_accept_generations reads it: one object per request,
 * the user's JSON (params, metadata) as strings Postgres parses, so nothing
 * here parses or rewrites it. Built member by member (json_pack would
 * parse its format string for every request of every batch).
 */
int store_call_accept_batch(store_call_t *c, const store_accept_item_t *items, size_t n)
{
    call_init(c, STORE_OP_ACCEPT_BATCH, 1);
    if (n < 1 || n > STORE_ACCEPT_BATCH_MAX)
        return GF_EINVAL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = accept_item_json(&items[i]);
        if (o == NULL) { /* a string that is not UTF-8 */
            json_decref(arr);
            return GF_EINVAL;
        }
        json_array_append_new(arr, o);
    }
    c->_params[0] = json_dumps(arr, JSON_COMPACT);
    c->_batch = n;
    json_decref(arr);
    return c->_params[0] ? 0 : GF_EINVAL;
}

int store_call_accept_resolve(store_call_t *c, const store_backend_t *backend,
                              const char *const ids[], size_t n)
{
    call_init(c, STORE_OP_ACCEPT_RESOLVE, 3);
    if (n == 0 || n > STORE_ACCEPT_BATCH_MAX)
        return GF_EINVAL;
    if (backend->pid > 0 && backend->app[0]) {
        set_int(c, 0, backend->pid);
        set_str(c, 1, backend->app);
    }
    gf_buf_t b = {0};
    for (size_t i = 0; i < n; i++) {
        if (strlen(ids[i]) != 36 || strspn(ids[i], "0123456789abcdefABCDEF-") != 36) {
            gf_buf_dispose(&b);
            return GF_EINVAL; /* not a UUID: an array literal's element needs no quoting */
        }
        gf_buf_printf(&b, "%s%s", i ? "," : "{", ids[i]);
    }
    gf_buf_printf(&b, "}");
    c->_params[2] = b.p;
    c->_batch = n;
    return 0;
}

void store_call_webhook_claim(store_call_t *c, int limit, int lease_s)
{
    store_webhook_claim_req_t q = {.limit = limit, .lease_s = lease_s};
    (void)store_call_webhook_claim_after(c, &q);
}

void store_call_webhook_result(store_call_t *c, const char *id, long long lease_token,
                               const char *outcome, int status_code, const char *error,
                               long long next_ms)
{
    call_init(c, STORE_OP_WEBHOOK_RESULT, 6);
    set_str(c, 0, id);
    set_int(c, 1, lease_token);
    set_str(c, 2, outcome);
    if (status_code > 0)
        set_int(c, 3, status_code);
    set_str(c, 4, error);
    set_int(c, 5, next_ms);
}

/*
 * Sets member `k` of `o` to the text `s` of a failed attempt (curl's message, cut to its
 * buffer), or to null: a multi-byte character cut at its end is dropped, and text that is
 * still not UTF-8 becomes null, so one message never keeps a batch of outcomes from being
 * recorded.
 */
static int put_text(json_t *o, const char *k, const char *s)
{
    if (s == NULL)
        return json_object_set_new_nocheck(o, k, json_null());
    size_t n = strlen(s);
    json_t *v = json_stringn(s, n);
    for (size_t cut = 1; v == NULL && cut < 4 && cut < n; cut++) /* a UTF-8 character: 2-4 */
        v = json_stringn(s, n - cut);
    return json_object_set_new_nocheck(o, k, v ? v : json_null());
}

/* The per-host bound's $4 and $5: {"host": held, ...}. */
static int set_busy(store_call_t *c, const store_webhook_claim_req_t *q)
{
    set_int(c, 3, q->per_host > 0 ? q->per_host : (q->limit > 0 ? q->limit : 1));
    if (q->nbusy == 0)
        return 0; /* $5 NULL: none held */
    json_t *o = json_object();
    for (size_t i = 0; i < q->nbusy; i++)
        if (json_object_set_new(o, q->busy[i].host, json_integer(q->busy[i].held)) != 0) {
            json_decref(o); /* a host that is not UTF-8 */
            return GF_EINVAL;
        }
    c->_params[4] = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return c->_params[4] ? 0 : GF_EINVAL;
}

int store_call_webhook_claim_after(store_call_t *c, const store_webhook_claim_req_t *q)
{
    call_init(c, STORE_OP_WEBHOOK_CLAIM, 5);
    set_int(c, 0, q->limit);
    set_int(c, 1, q->lease_s);
    if (q->nresults > STORE_WEBHOOK_RESULTS_MAX || set_busy(c, q) != 0)
        return GF_EINVAL;
    if (q->nresults == 0)
        return 0; /* $3 NULL: nothing to record */
    const store_webhook_outcome_t *o = q->results;
    json_t *arr = json_array();
    for (size_t i = 0; i < q->nresults; i++) {
        json_t *e = json_object();
        json_array_append_new(arr, e);
        if (put_str(e, "id", o[i].id) != 0 || put_int(e, "token", o[i].lease_token) != 0 ||
            put_str(e, "outcome", o[i].outcome) != 0 ||
            json_object_set_new_nocheck(e, "status_code",
                                        o[i].status_code > 0 ? json_integer(o[i].status_code)
                                                             : json_null()) != 0 ||
            put_text(e, "error", o[i].error) != 0 || put_int(e, "next_ms", o[i].next_ms) != 0) {
            json_decref(arr); /* an id or outcome that is not UTF-8 */
            return GF_EINVAL;
        }
    }
    c->_params[2] = json_dumps(arr, JSON_COMPACT);
    c->_batch = q->nresults;
    json_decref(arr);
    return c->_params[2] ? 0 : GF_EINVAL;
}

void store_call_webhook_retry(store_call_t *c, const char *id, const char *host)
{
    call_init(c, STORE_OP_WEBHOOK_RETRY, 2);
    set_str(c, 0, id);
    set_str(c, 1, host);
}

void store_call_webhook_list(store_call_t *c, int failed_only, const char *gen_id, int limit)
{
    call_init(c, STORE_OP_WEBHOOK_LIST, 3);
    set_str(c, 0, failed_only ? "true" : "false");
    set_str(c, 1, gen_id);
    set_int(c, 2, limit);
}

void store_call_set_audit(store_call_t *c, const store_audit_t *a)
{
    assert(!c->_audited && c->_nparams + STORE_AUDIT_PARAMS <= STORE_MAX_PARAMS);
    int i = c->_nparams;
    set_str(c, i, a->actor);
    set_str(c, i + 1, a->action);
    set_str(c, i + 2, a->target);
    set_str(c, i + 3, a->request_id);
    set_str(c, i + 4, a->detail_json);
    c->_audited = 1;
}

void store_call_audit(store_call_t *c, const store_audit_t *a)
{
    call_init(c, STORE_OP_AUDIT, STORE_AUDIT_PARAMS);
    set_str(c, 0, a->actor);
    set_str(c, 1, a->action);
    set_str(c, 2, a->target);
    set_str(c, 3, a->request_id);
    set_str(c, 4, a->detail_json);
}

void store_call_audit_page(store_call_t *c, int limit, const char *cursor)
{
    call_init(c, STORE_OP_AUDIT_PAGE, 2);
    set_int(c, 0, limit);
    set_str(c, 1, cursor);
}

void store_call_reconcile_check(store_call_t *c, int interval_s)
{
    call_init(c, STORE_OP_RECONCILE_CHECK, 1);
    set_int(c, 0, interval_s);
}

void store_call_start(store_call_t *c, const char *gen_id, long long fence, const char *provider,
                      const char *worker)
{
    call_init(c, STORE_OP_START, 4);
    set_str(c, 0, gen_id);
    set_int(c, 1, fence);
    set_str(c, 2, provider);
    set_str(c, 3, worker);
}

void store_call_provider_request(store_call_t *c, const char *gen_id, long long fence, int index,
                                 const char *request_id)
{
    call_init_image(c, STORE_OP_PROVIDER_REQUEST, 4, gen_id, fence, index);
    set_str(c, 3, request_id);
}

void store_call_image(store_call_t *c, const char *gen_id, long long fence, int index,
                      int succeeded, const char *error_json)
{
    call_init_image(c, STORE_OP_IMAGE, 5, gen_id, fence, index);
    set_str(c, 3, succeeded ? "true" : "false");
    set_str(c, 4, error_json);
}

void store_call_finish(store_call_t *c, const char *gen_id, long long fence, const char *status,
                       const char *error_json)
{
    call_init(c, STORE_OP_FINISH, 4);
    set_str(c, 0, gen_id);
    if (fence >= 0)
        set_int(c, 1, fence);
    set_str(c, 2, status);
    set_str(c, 3, error_json);
}

void store_call_refuse(store_call_t *c, const char *gen_id, const char *user_id,
                       const char *idem_key)
{
    call_init(c, STORE_OP_REFUSE, 3);
    set_str(c, 0, gen_id);
    set_str(c, 1, user_id);
    set_str(c, 2, idem_key);
}

void store_call_totals(store_call_t *c)
{
    call_init(c, STORE_OP_TOTALS, 0);
}

void store_call_cancel(store_call_t *c, const char *gen_id, const char *user_id)
{
    call_init(c, STORE_OP_CANCEL, 2);
    set_str(c, 0, gen_id);
    set_str(c, 1, user_id);
}

void store_call_expire(store_call_t *c, const char *gen_id)
{
    call_init(c, STORE_OP_EXPIRE, 1);
    set_str(c, 0, gen_id);
}

void store_call_credit(store_call_t *c, const char *user_id, long long amount, const char *reason,
                       long long welcome_credits)
{
    call_init(c, STORE_OP_CREDIT, 4);
    set_str(c, 0, user_id);
    set_int(c, 1, welcome_credits);
    set_int(c, 2, amount);
    set_str(c, 3, reason);
}

void store_call_credit_resolve(store_call_t *c, const store_backend_t *backend, const char *op,
                               const char *user_id, long long amount, const char *reason,
                               long long welcome_credits)
{
    call_init(c, STORE_OP_CREDIT_RESOLVE, 7);
    set_str(c, 0, op);
    if (backend->pid > 0 && backend->app[0]) {
        set_int(c, 1, backend->pid);
        set_str(c, 2, backend->app);
    }
    set_str(c, 3, user_id);
    set_int(c, 4, welcome_credits);
    set_int(c, 5, amount);
    set_str(c, 6, reason);
}

void store_call_balance(store_call_t *c, const char *user_id, long long welcome_credits)
{
    call_init(c, STORE_OP_BALANCE, 2);
    set_str(c, 0, user_id);
    set_int(c, 1, welcome_credits);
}

void store_call_generation(store_call_t *c, const char *gen_id, const char *user_id)
{
    call_init(c, STORE_OP_GENERATION, 2);
    set_str(c, 0, gen_id);
    set_str(c, 1, user_id);
}

void store_call_sweep(store_call_t *c, int stale_s, int limit)
{
    call_init(c, STORE_OP_SWEEP, 2);
    set_int(c, 0, stale_s);
    set_int(c, 1, limit);
}

/* A list cursor is "<microseconds>.<uuid>"; anything else leaves the params NULL. */
void store_call_list(store_call_t *c, const char *user_id, const char *status, const char *kind,
                     int limit, const char *cursor)
{
    call_init(c, STORE_OP_LIST, 6);
    set_str(c, 0, user_id);
    set_str(c, 1, status);
    set_str(c, 2, kind);
    set_int(c, 3, limit);
    const char *dot = cursor ? strchr(cursor, '.') : NULL;
    if (dot != NULL) {
        c->_params[4] = gf_xstrndup(cursor, (size_t)(dot - cursor));
        set_str(c, 5, dot + 1);
    }
}

void store_call_ledger(store_call_t *c, const char *user_id, int limit, const char *cursor)
{
    call_init(c, STORE_OP_LEDGER, 3);
    set_str(c, 0, user_id);
    set_int(c, 1, limit);
    set_str(c, 2, cursor);
}

void store_call_image_done(store_call_t *c, const char *gen_id, long long fence, int index,
                           const char *outputs_json)
{
    call_init_image(c, STORE_OP_IMAGE_DONE, 4, gen_id, fence, index);
    set_str(c, 3, outputs_json);
}

void store_call_image_done_finish(store_call_t *c, const char *gen_id, long long fence, int index,
                                  const char *outputs_json, int webhook_lease_s,
                                  int webhook_per_host)
{
    call_init_image(c, STORE_OP_IMAGE_DONE_FINISH, 6, gen_id, fence, index);
    set_str(c, 3, outputs_json);
    set_int(c, 4, webhook_lease_s);
    if (webhook_per_host > 0)
        set_int(c, 5, webhook_per_host);
    else
        set_str(c, 5, NULL);
}

void store_call_resume(store_call_t *c, const char *gen_id)
{
    call_init(c, STORE_OP_RESUME, 1);
    set_str(c, 0, gen_id);
}

void store_call_refs(store_call_t *c, const char *user_id, const char *identity_upload,
                     const char *identity_gen, int identity_index, const char *pose_uploads)
{
    call_init(c, STORE_OP_REFS, 5);
    set_str(c, 0, user_id);
    set_str(c, 1, identity_upload);
    set_str(c, 2, identity_gen);
    if (identity_gen)
        set_int(c, 3, identity_index);
    set_str(c, 4, pose_uploads);
}

void store_call_upload_add(store_call_t *c, const char *id, const char *user_id,
                           long long welcome_credits, const char *format, int width, int height,
                           long long bytes, const char *sha256, const char *key,
                           long long max_count, long long max_bytes)
{
    call_init(c, STORE_OP_UPLOAD_ADD, 11);
    set_str(c, 0, id);
    set_str(c, 1, user_id);
    set_int(c, 2, welcome_credits);
    set_str(c, 3, format);
    set_int(c, 4, width);
    set_int(c, 5, height);
    set_int(c, 6, bytes);
    set_str(c, 7, sha256);
    set_str(c, 8, key);
    set_int(c, 9, max_count);
    set_int(c, 10, max_bytes);
}

void store_call_upload_usage(store_call_t *c, const char *user_id)
{
    call_init(c, STORE_OP_UPLOAD_USAGE, 1);
    set_str(c, 0, user_id);
}

void store_call_generation_delete(store_call_t *c, const char *gen_id, const char *user_id)
{
    call_init(c, STORE_OP_GENERATION_DELETE, 2);
    set_str(c, 0, gen_id);
    set_str(c, 1, user_id);
}

void store_call_upload_delete(store_call_t *c, const char *upload_id, const char *user_id)
{
    call_init(c, STORE_OP_UPLOAD_DELETE, 2);
    set_str(c, 0, upload_id);
    set_str(c, 1, user_id);
}

void store_call_delete_resolve(store_call_t *c, const store_backend_t *backend, const char *what,
                               const char *id, const char *user_id)
{
    call_init(c, STORE_OP_DELETE_RESOLVE, 5);
    set_str(c, 0, id);
    set_str(c, 1, user_id);
    set_str(c, 2, what);
    if (backend->pid > 0 && backend->app[0]) {
        set_int(c, 3, backend->pid);
        set_str(c, 4, backend->app);
    }
}

/* The cursor as for store_call_list: "<microseconds>.<uuid>". */
void store_call_uploads(store_call_t *c, const char *user_id, int limit, const char *cursor)
{
    call_init(c, STORE_OP_UPLOADS, 4);
    set_str(c, 0, user_id);
    set_int(c, 1, limit);
    const char *dot = cursor ? strchr(cursor, '.') : NULL;
    if (dot != NULL) {
        c->_params[2] = gf_xstrndup(cursor, (size_t)(dot - cursor));
        set_str(c, 3, dot + 1);
    }
}

void store_call_lifecycle(store_call_t *c, int limit, int output_days, int upload_days)
{
    call_init(c, STORE_OP_LIFECYCLE, 3);
    set_int(c, 0, limit);
    set_int(c, 1, output_days);
    set_int(c, 2, upload_days);
}

/* The keys as a Postgres array literal, each quoted (keys never hold '"' nor '\\'). */
static char *keys_array(const char *const *keys, size_t n)
{
    gf_buf_t b = {0};
    gf_buf_puts(&b, "{");
    for (size_t i = 0; i < n; i++)
        gf_buf_printf(&b, "%s\"%s\"", i ? "," : "", keys[i]);
    gf_buf_puts(&b, "}");
    return b.p;
}

void store_call_unreferenced(store_call_t *c, const char *const *keys, size_t n)
{
    call_init(c, STORE_OP_UNREFERENCED, 1);
    c->_params[0] = keys_array(keys, n);
}

void store_call_storage_deleted(store_call_t *c, const char *const *keys, size_t n)
{
    call_init(c, STORE_OP_STORAGE_DELETED, 1);
    c->_params[0] = keys_array(keys, n);
}

void store_call_dispose(store_call_t *c)
{
    for (int i = 0; i < STORE_MAX_PARAMS; i++)
        GF_FREE(c->_params[i]);
    store__result_dispose(c);
}

/* --- results (read in result.c) ------------------------------------------------ */

void store__parse(store_call_t *c, PGresult *res)
{
    ExecStatusType es = PQresultStatus(res);
    if (es != PGRES_TUPLES_OK) {
        char msg[200];
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        store__pg_message(msg, sizeof(msg), PQresultErrorMessage(res));
        gf_err_setd(&c->err, store__sqlstate_code(state), "store",
                    state ? strtol(state, NULL, 36) : 0, "%s", msg);
        return;
    }
    if (PQntuples(res) == 0) {
        store__parse_row(c, NULL);
        return;
    }
    store_row_t row = {{NULL}};
    for (int i = 0; i < PQnfields(res) && i < STORE_ROW_MAX; i++)
        row.v[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
    store__parse_row(c, &row);
}
