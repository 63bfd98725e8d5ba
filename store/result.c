/*
 * store/result.c - the results of the operations: the `outcome` words of
 * the SQL functions translated into gf_status, and their rows (and the JSON
 * that some functions return) read once into the typed results of store.h.
 *
 * Invariants:
 * - Pure: a row arrives as text (store_row_t); no connection, no libpq call.
 * - A result is either whole or empty: a shape that does not match fails
 *   the call with GF_EUNAVAIL ("malformed <function> result: <field>") and
 *   frees whatever was read, so callers never see half a result.
 * - jansson stays in store/ (here, and call.c's accept batch): callers get
 *   C structs, and the user's own JSON (params, metadata, an error) as
 *   compact JSON text.
 */
#include "store_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int fail(store_call_t *c, int code, const char *fmt, const char *arg)
{
    return gf_err_set(&c->err, code, "store", fmt, arg);
}

/* Maps the outcome words the worker-side functions share. */
static int worker_outcome(store_call_t *c, const char *o)
{
    if (strcmp(o, "stale") == 0)
        return fail(c, GF_ECONFLICT, "stale fencing token for generation %s", c->_params[0]);
    if (strcmp(o, "terminal") == 0)
        return fail(c, GF_ECANCELED, "generation %s is already finished", c->_params[0]);
    if (strcmp(o, "not_found") == 0)
        return fail(c, GF_ENOTFOUND, "no generation %s", c->_params[0]);
    if (strcmp(o, "released") == 0)
        return fail(c, GF_ECONFLICT, "the image of generation %s was released or it ended",
                    c->_params[0]);
    if (strcmp(o, "invalid") == 0)
        return fail(c, GF_EINVAL, "image index out of range for generation %s", c->_params[0]);
    return 0;
}

/* --- reading JSON into structs -------------------------------------------------- */

/*
 * A reader of one JSON result: the first field that does not match is
 * remembered (`bad`), and every later read is skipped, so a parser reads its
 * fields straight through and checks once at the end.
 */
typedef struct {
    const char *bad;
} rd_t;

static json_t *rd_get(rd_t *r, json_t *o, const char *k)
{
    if (r->bad)
        return NULL;
    json_t *v = json_object_get(o, k);
    if (v == NULL)
        r->bad = k;
    return v;
}

/* A string; NULL for JSON null when `nullable`. */
static char *rd_str(rd_t *r, json_t *o, const char *k, int nullable)
{
    json_t *v = rd_get(r, o, k);
    if (v == NULL || (nullable && json_is_null(v)))
        return NULL;
    if (!json_is_string(v)) {
        r->bad = k;
        return NULL;
    }
    return gf_xstrdup(json_string_value(v));
}

/* A string into a fixed buffer (ids and status words); too long is a bad shape. */
static void rd_word(rd_t *r, json_t *o, const char *k, char *out, size_t n)
{
    json_t *v = rd_get(r, o, k);
    if (v == NULL)
        return;
    if (!json_is_string(v) || json_string_length(v) >= n) {
        r->bad = k;
        return;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
}

/* An integer; `*is_null` (when not NULL) tells a JSON null, otherwise refused. */
static long long rd_int(rd_t *r, json_t *o, const char *k, int *is_null)
{
    json_t *v = rd_get(r, o, k);
    if (is_null)
        *is_null = v != NULL && json_is_null(v);
    if (v == NULL || (is_null && *is_null))
        return 0;
    if (!json_is_integer(v)) {
        r->bad = k;
        return 0;
    }
    return json_integer_value(v);
}

static int rd_bool(rd_t *r, json_t *o, const char *k)
{
    json_t *v = rd_get(r, o, k);
    if (v != NULL && !json_is_boolean(v))
        r->bad = k;
    return json_is_true(v);
}

/* Any JSON value as compact text (the user's own data); NULL for null when `nullable`. */
static char *rd_json(rd_t *r, json_t *o, const char *k, int nullable)
{
    json_t *v = rd_get(r, o, k);
    if (v == NULL || (nullable && json_is_null(v)))
        return NULL;
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* An array: its size, and a zeroed vector of `size` bytes per element (NULL when empty). */
static json_t *rd_array(rd_t *r, json_t *o, const char *k, size_t size, void **items, size_t *n)
{
    json_t *v = rd_get(r, o, k);
    *items = NULL;
    *n = 0;
    if (v == NULL)
        return NULL;
    if (!json_is_array(v)) {
        r->bad = k;
        return NULL;
    }
    *n = json_array_size(v);
    *items = *n ? gf_xcalloc(*n, size) : NULL;
    return v;
}

/* A JSON object whose keys are decimal indexes ("0", "12"); -1 when a key is not one. */
static int key_index(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 9 || strspn(key, "0123456789") != n)
        return -1;
    return atoi(key);
}

/* --- the shapes ------------------------------------------------------------------ */

static void output_dispose(store_output_t *o)
{
    free(o->variant);
    free(o->format);
    free(o->sha256);
    free(o->storage_key);
}

static void generation_dispose(store_generation_t *g)
{
    free(g->kind);
    free(g->status);
    free(g->stage);
    free(g->provider);
    free(g->params);
    free(g->metadata);
    free(g->error);
    free(g->failures);
    free(g->created_at);
    free(g->started_at);
    free(g->finished_at);
    free(g->webhook);
    for (size_t i = 0; i < g->n_outputs; i++)
        output_dispose(&g->outputs[i]);
    free(g->outputs);
    memset(g, 0, sizeof(*g));
}

static void read_output(rd_t *r, json_t *o, store_output_t *out)
{
    int null_seed;
    out->index = (int)rd_int(r, o, "index", NULL);
    out->pose = (int)rd_int(r, o, "pose", NULL);
    out->variant = rd_str(r, o, "variant", 0);
    out->format = rd_str(r, o, "format", 0);
    out->width = (int)rd_int(r, o, "width", NULL);
    out->height = (int)rd_int(r, o, "height", NULL);
    out->bytes = rd_int(r, o, "bytes", NULL);
    out->sha256 = rd_str(r, o, "sha256", 0);
    out->seed = rd_int(r, o, "seed", &null_seed);
    out->has_seed = !null_seed;
    /* Optional in the shape (since migrations/0019): a deleted output has no key. */
    json_t *deleted = json_object_get(o, "deleted");
    out->deleted = json_is_true(deleted);
    out->storage_key = rd_str(r, o, "storage_key", out->deleted);
}

/* farm_generation_json (migrations/0004). */
static void read_generation(rd_t *r, json_t *o, store_generation_t *g)
{
    if (!json_is_object(o)) {
        r->bad = r->bad ? r->bad : "generation";
        return;
    }
    rd_word(r, o, "id", g->id, sizeof(g->id));
    g->kind = rd_str(r, o, "kind", 0);
    g->status = rd_str(r, o, "status", 0);
    g->progress = (int)rd_int(r, o, "progress", NULL);
    g->stage = rd_str(r, o, "stage", 1);
    g->images = (int)rd_int(r, o, "images", NULL);
    g->images_done = (int)rd_int(r, o, "images_done", NULL);
    g->images_failed = (int)rd_int(r, o, "images_failed", NULL);
    g->params = rd_json(r, o, "params", 0);
    g->cost = rd_int(r, o, "cost", NULL);
    g->charged = rd_int(r, o, "charged", NULL);
    g->released = rd_int(r, o, "released", NULL);
    g->attempts = (int)rd_int(r, o, "attempts", NULL);
    g->provider = rd_str(r, o, "provider", 1);
    g->error = rd_json(r, o, "error", 1);
    g->failures = rd_json(r, o, "failures", 0);
    g->metadata = rd_json(r, o, "metadata", 1);
    g->created_at = rd_str(r, o, "created_at", 0);
    g->started_at = rd_str(r, o, "started_at", 1);
    g->finished_at = rd_str(r, o, "finished_at", 1);
    /* Optional in the shape (farm_generation_json has it since migrations/0018): absent is null. */
    json_t *wh = json_object_get(o, "webhook");
    g->webhook = wh && !json_is_null(wh) ? json_dumps(wh, JSON_COMPACT) : NULL;
    void *items;
    json_t *a = rd_array(r, o, "outputs", sizeof(store_output_t), &items, &g->n_outputs);
    g->outputs = items;
    for (size_t i = 0; a && i < g->n_outputs && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_object(e))
            r->bad = "outputs";
        else
            read_output(r, e, &g->outputs[i]);
    }
}

/* farm_generations_page (migrations/0004). */
static void read_list(rd_t *r, json_t *o, store_list_result_t *l)
{
    void *items;
    json_t *a = rd_array(r, o, "items", sizeof(store_generation_t), &items, &l->n);
    l->items = items;
    for (size_t i = 0; a && i < l->n && !r->bad; i++)
        read_generation(r, json_array_get(a, i), &l->items[i]);
    l->next_cursor = rd_str(r, o, "next_cursor", 1);
}

/* farm_ledger_page (migrations/0004). */
static void read_ledger(rd_t *r, json_t *o, store_ledger_result_t *l)
{
    void *items;
    json_t *a = rd_array(r, o, "items", sizeof(store_ledger_entry_t), &items, &l->n);
    l->items = items;
    for (size_t i = 0; a && i < l->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_ledger_entry_t *le = &l->items[i];
        int null_index;
        if (!json_is_object(e)) {
            r->bad = "items";
            break;
        }
        le->kind = rd_str(r, e, "kind", 0);
        le->amount = rd_int(r, e, "amount", NULL);
        le->generation_id = rd_str(r, e, "generation_id", 1);
        le->image_index = (int)rd_int(r, e, "image_index", &null_index);
        if (null_index)
            le->image_index = -1;
        le->reason = rd_str(r, e, "reason", 1);
        le->created_at = rd_str(r, e, "created_at", 0);
    }
    l->next_cursor = rd_str(r, o, "next_cursor", 1);
}

/* farm_audit_page (store/sql/farm_audit_page.sql). */
static void read_audit_page(rd_t *r, json_t *o, store_audit_result_t *l)
{
    void *items;
    json_t *a = rd_array(r, o, "items", sizeof(store_audit_entry_t), &items, &l->n);
    l->items = items;
    for (size_t i = 0; a && i < l->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_audit_entry_t *ae = &l->items[i];
        if (!json_is_object(e)) {
            r->bad = "items";
            break;
        }
        ae->id = rd_int(r, e, "id", NULL);
        ae->actor = rd_str(r, e, "actor", 0);
        ae->action = rd_str(r, e, "action", 0);
        ae->target = rd_str(r, e, "target", 1);
        ae->request_id = rd_str(r, e, "request_id", 1);
        ae->detail = rd_json(r, e, "detail", 0);
        ae->at = rd_str(r, e, "at", 0);
    }
    l->next_cursor = rd_str(r, o, "next_cursor", 1);
}

/* farm_sweep (migrations/0003). */
static void read_sweep(rd_t *r, json_t *o, store_sweep_result_t *s)
{
    s->locked = rd_bool(r, o, "locked");
    if (!s->locked)
        return;
    void *items;
    json_t *a = rd_array(r, o, "expired", sizeof(store_sweep_expired_t), &items, &s->n_expired);
    s->expired = items;
    for (size_t i = 0; a && i < s->n_expired && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        rd_word(r, e, "id", s->expired[i].id, sizeof(s->expired[i].id));
        rd_word(r, e, "user_id", s->expired[i].user_id, sizeof(s->expired[i].user_id));
    }
    a = rd_array(r, o, "candidates", sizeof(store_sweep_candidate_t), &items, &s->n_candidates);
    s->candidates = items;
    for (size_t i = 0; a && i < s->n_candidates && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_sweep_candidate_t *c = &s->candidates[i];
        int null_deadline;
        rd_word(r, e, "id", c->id, sizeof(c->id));
        rd_word(r, e, "user_id", c->user_id, sizeof(c->user_id));
        c->plan = rd_str(r, e, "plan", 0);
        c->status = rd_str(r, e, "status", 0);
        c->params = rd_json(r, e, "params", 0);
        c->deadline_ms = rd_int(r, e, "deadline_ms", &null_deadline);
        c->fence = rd_int(r, e, "fence", NULL);
    }
}

/* farm_generation_delete, farm_upload_delete and farm_lifecycle (migrations/0019). */
static void read_keys(rd_t *r, json_t *o, store_keys_result_t *k)
{
    void *items;
    json_t *a = rd_array(r, o, "keys", sizeof(char *), &items, &k->n);
    k->keys = items;
    for (size_t i = 0; a && i < k->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e))
            r->bad = "keys";
        else
            k->keys[i] = gf_xstrdup(json_string_value(e));
    }
    if (json_object_get(o, "outputs_expired") == NULL)
        return;
    k->outputs_expired = rd_int(r, o, "outputs_expired", NULL);
    k->uploads_expired = rd_int(r, o, "uploads_expired", NULL);
    k->idempotency_purged = rd_int(r, o, "idempotency_purged", NULL);
}

/* farm_uploads_page (migrations/0019). */
static void read_uploads(rd_t *r, json_t *o, store_uploads_result_t *l)
{
    void *items;
    json_t *a = rd_array(r, o, "items", sizeof(store_upload_t), &items, &l->n);
    l->items = items;
    for (size_t i = 0; a && i < l->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_upload_t *u = &l->items[i];
        rd_word(r, e, "id", u->id, sizeof(u->id));
        rd_word(r, e, "format", u->format, sizeof(u->format));
        u->width = (int)rd_int(r, e, "width", NULL);
        u->height = (int)rd_int(r, e, "height", NULL);
        u->bytes = rd_int(r, e, "bytes", NULL);
        u->created_at = rd_str(r, e, "created_at", 0);
    }
    l->next_cursor = rd_str(r, o, "next_cursor", 1);
}

/* farm_worker_resume (migrations/0008). */
static void read_resume(rd_t *r, json_t *o, store_resume_result_t *s)
{
    void *items;
    json_t *a = rd_array(r, o, "settled", sizeof(int), &items, &s->n_settled);
    s->settled = items;
    for (size_t i = 0; a && i < s->n_settled && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_integer(e))
            r->bad = "settled";
        s->settled[i] = (int)json_integer_value(e);
    }
    json_t *m = rd_get(r, o, "provider_requests");
    if (m != NULL && !json_is_object(m))
        r->bad = "provider_requests";
    const char *key;
    json_t *v;
    if (!r->bad && json_object_size(m)) {
        s->requests = gf_xcalloc(json_object_size(m), sizeof(*s->requests));
        json_object_foreach(m, key, v)
        {
            if (key_index(key) < 0 || !json_is_string(v)) {
                r->bad = "provider_requests";
                break;
            }
            s->requests[s->n_requests].index = key_index(key);
            s->requests[s->n_requests++].token = gf_xstrdup(json_string_value(v));
        }
    }
    s->identity_key = rd_str(r, o, "identity_key", 1);
    m = rd_get(r, o, "pose_keys");
    if (m != NULL && !json_is_object(m))
        r->bad = "pose_keys";
    if (!r->bad && json_object_size(m)) {
        s->pose_keys = gf_xcalloc(json_object_size(m), sizeof(*s->pose_keys));
        json_object_foreach(m, key, v)
        {
            if (key_index(key) < 0 || !json_is_string(v)) {
                r->bad = "pose_keys";
                break;
            }
            s->pose_keys[s->n_pose_keys].pose = key_index(key);
            s->pose_keys[s->n_pose_keys++].storage_key = gf_xstrdup(json_string_value(v));
        }
    }
}

/* farm_webhook_claim (store/sql/farm_webhook_claim.sql). */
static void read_webhook_claim(rd_t *r, json_t *o, store_webhook_claim_result_t *w)
{
    w->now_ms = rd_int(r, o, "now_ms", NULL);
    void *items;
    json_t *a = rd_array(r, o, "items", sizeof(store_webhook_claimed_t), &items, &w->n);
    w->items = items;
    for (size_t i = 0; a && i < w->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_webhook_claimed_t *d = &w->items[i];
        rd_word(r, e, "id", d->id, sizeof(d->id));
        rd_word(r, e, "generation_id", d->generation_id, sizeof(d->generation_id));
        d->url = rd_str(r, e, "url", 0);
        d->event = rd_str(r, e, "event", 0);
        d->data = rd_json(r, e, "data", 0);
        d->attempts = (int)rd_int(r, e, "attempts", NULL);
        d->lease_token = rd_int(r, e, "lease_token", NULL);
        d->created_ms = rd_int(r, e, "created_ms", NULL);
        int null_first;
        d->first_attempt_ms = rd_int(r, e, "first_attempt_ms", &null_first);
    }
}

/* farm_webhooks_list (store/sql/farm_webhooks_list.sql): a bare array. */
static void read_webhook_list(rd_t *r, json_t *a, store_webhook_list_result_t *l)
{
    l->n = json_array_size(a);
    l->items = l->n ? gf_xcalloc(l->n, sizeof(*l->items)) : NULL;
    for (size_t i = 0; i < l->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_webhook_t *w = &l->items[i];
        int null_code;
        rd_word(r, e, "id", w->id, sizeof(w->id));
        rd_word(r, e, "generation_id", w->generation_id, sizeof(w->generation_id));
        w->event = rd_str(r, e, "event", 0);
        w->url = rd_str(r, e, "url", 0);
        w->status = rd_str(r, e, "status", 0);
        w->attempts = (int)rd_int(r, e, "attempts", NULL);
        w->last_status_code = (int)rd_int(r, e, "last_status_code", &null_code);
        w->last_error = rd_str(r, e, "last_error", 1);
        w->created_at = rd_str(r, e, "created_at", 0);
        w->next_attempt_at = rd_str(r, e, "next_attempt_at", 1);
        w->delivered_at = rd_str(r, e, "delivered_at", 1);
    }
}

/*
 * farm_accept_generations (store/sql/farm_accept_generations.sql): one
 * outcome per request of the batch, in its order; a count that is not the
 * batch's is a bad shape.
 */
static void read_accept_batch(rd_t *r, json_t *a, size_t want, store_accept_batch_result_t *b)
{
    if (json_array_size(a) != want) {
        r->bad = "(not one outcome per request)";
        return;
    }
    b->n = want;
    b->items = gf_xcalloc(want, sizeof(*b->items));
    for (size_t i = 0; i < want && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        store_accept_outcome_t *o = &b->items[i];
        char outcome[16] = "";
        if (!json_is_object(e)) {
            r->bad = "(an outcome is not an object)";
            return;
        }
        rd_word(r, e, "outcome", outcome, sizeof(outcome));
        if (r->bad)
            return;
        if (strcmp(outcome, "missing") == 0) {
            rd_word(r, e, "missing", o->missing, sizeof(o->missing));
            gf_err_set(&o->err, GF_ENOTFOUND, "store", "a reference is not the user's (%s)",
                       o->missing);
            continue;
        }
        if (strcmp(outcome, "error") == 0) {
            char state[8] = "";
            char *msg = rd_str(r, e, "message", 1);
            rd_word(r, e, "sqlstate", state, sizeof(state));
            gf_err_set(&o->err, store__sqlstate_code(state), "store", "accept failed: %s",
                       msg ? msg : state);
            free(msg);
            continue;
        }
        int null_available = 0;
        json_t *id = rd_get(r, e, "generation_id"); /* null when refused for credits */
        if (id != NULL && !json_is_null(id))
            rd_word(r, e, "generation_id", o->accept.generation_id,
                    sizeof(o->accept.generation_id));
        o->accept.available = rd_int(r, e, "available", &null_available);
        if (strcmp(outcome, "accepted") == 0)
            continue;
        if (strcmp(outcome, "insufficient") == 0) {
            gf_err_set(&o->err, GF_ECREDITS, "store", "not enough credits (%lld available)",
                       o->accept.available);
            continue;
        }
        if (strcmp(outcome, "conflict") == 0) {
            gf_err_set(&o->err, GF_ECONFLICT, "store",
                       "idempotency key reused with another body (%s)", o->accept.generation_id);
            continue;
        }
        if (strcmp(outcome, "existing") != 0) {
            r->bad = "outcome";
            return;
        }
        o->accept.existing = 1;
        json_t *g = rd_get(r, e, "generation");
        if (g == NULL || json_is_null(g))
            continue;
        o->found = 1;
        rd_word(r, g, "kind", o->kind, sizeof(o->kind));
        rd_word(r, g, "status", o->status, sizeof(o->status));
        rd_word(r, g, "created_at", o->created_at, sizeof(o->created_at));
        o->cost = rd_int(r, g, "cost", NULL);
        o->images = (int)rd_int(r, g, "images", NULL);
    }
}

/* The function whose JSON an operation reads (for error messages). */
static const char *json_source(store_op_t op)
{
    switch (op) {
    case STORE_OP_GENERATION:
        return "farm_generation_json";
    case STORE_OP_LIST:
        return "farm_generations_page";
    case STORE_OP_LEDGER:
        return "farm_ledger_page";
    case STORE_OP_SWEEP:
        return "farm_sweep";
    case STORE_OP_RESUME:
        return "farm_worker_resume";
    case STORE_OP_WEBHOOK_CLAIM:
        return "farm_webhook_claim";
    case STORE_OP_WEBHOOK_LIST:
        return "farm_webhooks_list";
    case STORE_OP_GENERATION_DELETE:
        return "farm_generation_delete";
    case STORE_OP_UPLOAD_DELETE:
        return "farm_upload_delete";
    case STORE_OP_UPLOADS:
        return "farm_uploads_page";
    case STORE_OP_LIFECYCLE:
        return "farm_lifecycle";
    case STORE_OP_UNREFERENCED:
        return "farm_storage_unreferenced";
    case STORE_OP_AUDIT_PAGE:
        return "farm_audit_page";
    case STORE_OP_ACCEPT_BATCH:
        return "farm_accept_generations";
    default:
        return "store";
    }
}

/* Reads the JSON result of GENERATION, LIST, LEDGER, SWEEP or RESUME. */
static void parse_json(store_call_t *c, const char *text)
{
    const char *what = json_source(c->_op);
    json_error_t jerr;
    json_t *root = text ? json_loads(text, 0, &jerr) : NULL;
    if (root == NULL) {
        gf_err_set(&c->err, GF_EUNAVAIL, "store", "malformed %s result: %s", what,
                   text ? jerr.text : "NULL");
        return;
    }
    rd_t r = {0};
    if (c->_op == STORE_OP_WEBHOOK_LIST) {
        if (json_is_array(root))
            read_webhook_list(&r, root, &c->res.webhook_list);
        else
            r.bad = "(not an array)";
    } else if (c->_op == STORE_OP_ACCEPT_BATCH) {
        if (json_is_array(root))
            read_accept_batch(&r, root, c->_batch, &c->res.accept_batch);
        else
            r.bad = "(not an array)";
    } else if (!json_is_object(root))
        r.bad = "(not an object)";
    else if (c->_op == STORE_OP_WEBHOOK_CLAIM)
        read_webhook_claim(&r, root, &c->res.webhook_claim);
    else if (c->_op == STORE_OP_GENERATION)
        read_generation(&r, root, &c->res.generation);
    else if (c->_op == STORE_OP_LIST)
        read_list(&r, root, &c->res.list);
    else if (c->_op == STORE_OP_LEDGER)
        read_ledger(&r, root, &c->res.ledger);
    else if (c->_op == STORE_OP_SWEEP)
        read_sweep(&r, root, &c->res.sweep);
    else if (c->_op == STORE_OP_UPLOADS)
        read_uploads(&r, root, &c->res.uploads);
    else if (c->_op == STORE_OP_GENERATION_DELETE || c->_op == STORE_OP_UPLOAD_DELETE ||
             c->_op == STORE_OP_LIFECYCLE || c->_op == STORE_OP_UNREFERENCED)
        read_keys(&r, root, &c->res.keys);
    else if (c->_op == STORE_OP_AUDIT_PAGE)
        read_audit_page(&r, root, &c->res.audit);
    else
        read_resume(&r, root, &c->res.resume);
    /* A delete's outcome (farm_generation_delete, farm_upload_delete). */
    const char *outcome = json_string_value(json_object_get(root, "outcome"));
    if (r.bad == NULL && outcome != NULL && strcmp(outcome, "not_found") == 0)
        fail(c, GF_ENOTFOUND, "nothing %s to delete for this user", c->_params[0]);
    else if (r.bad == NULL && outcome != NULL && strcmp(outcome, "not_deletable") == 0)
        fail(c, GF_ECONFLICT, "generation %s is still queued or running", c->_params[0]);
    json_decref(root);
    if (r.bad) {
        store__result_dispose(c);
        gf_err_set(&c->err, GF_EUNAVAIL, "store", "malformed %s result: %s", what, r.bad);
    }
}

/* --- rows ---------------------------------------------------------------------- */

/* A column as a string ("" for SQL NULL, as libpq gives it). */
static const char *col(const store_row_t *row, int i)
{
    return row->v[i] ? row->v[i] : "";
}

static void word(char *out, size_t n, const char *s)
{
    snprintf(out, n, "%s", s);
}

void store__parse_row(store_call_t *c, const store_row_t *row)
{
    if (row == NULL) {
        if (c->_op == STORE_OP_GENERATION)
            fail(c, GF_ENOTFOUND, "no generation %s for this user", c->_params[0]);
        else
            fail(c, GF_EUNAVAIL, "no row from %s", store__stmt_name(c->_op));
        return;
    }
    const char *v0 = col(row, 0);
    switch (c->_op) {
    case STORE_OP_ACCEPT:
        word(c->res.accept.generation_id, sizeof(c->res.accept.generation_id), col(row, 1));
        c->res.accept.available = atoll(col(row, 2));
        if (strcmp(v0, "existing") == 0)
            c->res.accept.existing = 1;
        else if (strcmp(v0, "conflict") == 0)
            fail(c, GF_ECONFLICT, "idempotency key reused with another body (%s)", c->_params[10]);
        else if (strcmp(v0, "insufficient") == 0)
            fail(c, GF_ECREDITS, "not enough credits for generation %s", c->_params[0]);
        return;
    case STORE_OP_START:
        c->res.start.attempts = atoi(col(row, 1));
        word(c->res.start.status, sizeof(c->res.start.status), col(row, 2));
        worker_outcome(c, v0);
        return;
    case STORE_OP_PROVIDER_REQUEST:
        worker_outcome(c, v0);
        return;
    case STORE_OP_IMAGE:
    case STORE_OP_IMAGE_DONE:
        c->res.image.applied = strcmp(v0, "settled") == 0;
        if (strcmp(v0, "duplicate") != 0)
            worker_outcome(c, v0);
        return;
    case STORE_OP_FINISH:
        word(c->res.finish.status, sizeof(c->res.finish.status), col(row, 1));
        c->res.finish.applied = strcmp(v0, "finished") == 0;
        if (strcmp(v0, "already") != 0)
            worker_outcome(c, v0);
        return;
    case STORE_OP_CANCEL:
        c->res.cancel.applied = strcmp(v0, "canceled") == 0;
        if (strcmp(v0, "not_cancelable") == 0)
            fail(c, GF_ECONFLICT, "generation %s is finished", c->_params[0]);
        else if (strcmp(v0, "not_found") == 0)
            fail(c, GF_ENOTFOUND, "no generation %s for this user", c->_params[0]);
        return;
    case STORE_OP_EXPIRE:
        c->res.expire.applied = strcmp(v0, "expired") == 0;
        worker_outcome(c, v0);
        return;
    case STORE_OP_UPLOAD_ADD:
        if (strncmp(v0, "over_", 5) == 0) {
            word(c->res.upload.over, sizeof(c->res.upload.over), v0 + 5);
            fail(c, GF_ETOOBIG, "the upload is over the user's quota of %s", v0 + 5);
        }
        return;
    case STORE_OP_UPLOAD_USAGE:
        c->res.upload.uploads = atoll(v0);
        c->res.upload.bytes = atoll(col(row, 1));
        return;
    case STORE_OP_REFUSE:
        word(c->res.refuse.status, sizeof(c->res.refuse.status), v0);
        return;
    case STORE_OP_REFS:
        word(c->res.refs.missing, sizeof(c->res.refs.missing), v0);
        if (strcmp(v0, "ok") != 0)
            fail(c, GF_ENOTFOUND, "a reference is not the user's (%s)", v0);
        return;
    case STORE_OP_CREDIT:
        if (strcmp(v0, "insufficient") == 0)
            fail(c, GF_ECREDITS, "user %s would hold more than they have", c->_params[0]);
        return;
    case STORE_OP_BALANCE:
    case STORE_OP_TOTALS:
        c->res.balance.balance = atoll(v0);
        c->res.balance.held = atoll(col(row, 1));
        c->res.balance.captured = atoll(col(row, 2));
        c->res.balance.released = atoll(col(row, 3));
        c->res.balance.oldest_queued_s = atoll(col(row, 4));
        return;
    case STORE_OP_RESUME:
        if (row->v[0] == NULL) {
            fail(c, GF_ENOTFOUND, "no generation %s", c->_params[0]);
            return;
        }
        parse_json(c, row->v[0]);
        return;
    case STORE_OP_GENERATION:
    case STORE_OP_SWEEP:
    case STORE_OP_LIST:
    case STORE_OP_LEDGER:
    case STORE_OP_WEBHOOK_CLAIM:
    case STORE_OP_WEBHOOK_LIST:
    case STORE_OP_GENERATION_DELETE:
    case STORE_OP_UPLOAD_DELETE:
    case STORE_OP_UPLOADS:
    case STORE_OP_LIFECYCLE:
    case STORE_OP_UNREFERENCED:
    case STORE_OP_AUDIT_PAGE:
    case STORE_OP_ACCEPT_BATCH:
        parse_json(c, row->v[0]);
        return;
    case STORE_OP_AUDIT:
        c->res.audit.id = atoll(v0);
        return;
    case STORE_OP_RECONCILE_COUNT:
        c->res.reconcile.violations = atoll(v0);
        return;
    case STORE_OP_STORAGE_DELETED:
        return;
    case STORE_OP_WEBHOOK_RESULT:
        c->res.webhook_result.recorded = strcmp(v0, "recorded") == 0;
        c->res.webhook_result.lag_s = row->v[1] ? atof(row->v[1]) : -1;
        return;
    case STORE_OP_WEBHOOK_RETRY:
        c->res.webhook_list.n = (size_t)atol(v0);
        return;
    case STORE_OP_COUNT_:
        return;
    }
}

void store__result_dispose(store_call_t *c)
{
    switch (c->_op) {
    case STORE_OP_GENERATION:
        generation_dispose(&c->res.generation);
        break;
    case STORE_OP_LIST:
        for (size_t i = 0; i < c->res.list.n; i++)
            generation_dispose(&c->res.list.items[i]);
        free(c->res.list.items);
        free(c->res.list.next_cursor);
        break;
    case STORE_OP_LEDGER:
        for (size_t i = 0; i < c->res.ledger.n; i++) {
            store_ledger_entry_t *e = &c->res.ledger.items[i];
            free(e->kind);
            free(e->generation_id);
            free(e->reason);
            free(e->created_at);
        }
        free(c->res.ledger.items);
        free(c->res.ledger.next_cursor);
        break;
    case STORE_OP_SWEEP:
        for (size_t i = 0; i < c->res.sweep.n_candidates; i++) {
            free(c->res.sweep.candidates[i].plan);
            free(c->res.sweep.candidates[i].status);
            free(c->res.sweep.candidates[i].params);
        }
        free(c->res.sweep.candidates);
        free(c->res.sweep.expired);
        break;
    case STORE_OP_WEBHOOK_CLAIM:
        for (size_t i = 0; i < c->res.webhook_claim.n; i++) {
            free(c->res.webhook_claim.items[i].url);
            free(c->res.webhook_claim.items[i].event);
            free(c->res.webhook_claim.items[i].data);
        }
        free(c->res.webhook_claim.items);
        break;
    case STORE_OP_WEBHOOK_LIST:
        for (size_t i = 0; i < c->res.webhook_list.n; i++) {
            store_webhook_t *w = &c->res.webhook_list.items[i];
            free(w->event);
            free(w->url);
            free(w->status);
            free(w->last_error);
            free(w->created_at);
            free(w->next_attempt_at);
            free(w->delivered_at);
        }
        free(c->res.webhook_list.items);
        break;
    case STORE_OP_GENERATION_DELETE:
    case STORE_OP_UPLOAD_DELETE:
    case STORE_OP_LIFECYCLE:
    case STORE_OP_UNREFERENCED:
        for (size_t i = 0; i < c->res.keys.n; i++)
            free(c->res.keys.keys[i]);
        free(c->res.keys.keys);
        break;
    case STORE_OP_UPLOADS:
        for (size_t i = 0; i < c->res.uploads.n; i++)
            free(c->res.uploads.items[i].created_at);
        free(c->res.uploads.items);
        free(c->res.uploads.next_cursor);
        break;
    case STORE_OP_AUDIT_PAGE:
        for (size_t i = 0; i < c->res.audit.n; i++) {
            store_audit_entry_t *e = &c->res.audit.items[i];
            free(e->actor);
            free(e->action);
            free(e->target);
            free(e->request_id);
            free(e->detail);
            free(e->at);
        }
        free(c->res.audit.items);
        free(c->res.audit.next_cursor);
        break;
    case STORE_OP_ACCEPT_BATCH:
        free(c->res.accept_batch.items);
        break;
    case STORE_OP_RESUME:
        free(c->res.resume.settled);
        for (size_t i = 0; i < c->res.resume.n_requests; i++)
            free(c->res.resume.requests[i].token);
        free(c->res.resume.requests);
        free(c->res.resume.identity_key);
        for (size_t i = 0; i < c->res.resume.n_pose_keys; i++)
            free(c->res.resume.pose_keys[i].storage_key);
        free(c->res.resume.pose_keys);
        break;
    default:
        break;
    }
    memset(&c->res, 0, sizeof(c->res));
}

int store__sqlstate_code(const char *state)
{
    /*
     * GF409: a fencing token went stale during the call (store/sql/farm_image_settle.sql).
     * Class 22 (data) and 23 (constraints) are bad input; the rest is the database.
     */
    if (state && strcmp(state, "GF409") == 0)
        return GF_ECONFLICT;
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return GF_EINVAL;
    return GF_EUNAVAIL;
}
