/*
 * store/result_generations.c - the results about generations: one
 * (farm_generation_json), a page of them, the sweeper's candidates, what a
 * worker resumes and an accept batch's outcomes, read from their JSON and
 * freed.
 */
#include "result_int.h"
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static void output_dispose(store_output_t *o)
{
    free(o->variant);
    free(o->format);
    free(o->sha256);
    free(o->storage_key);
}

void store__generation_dispose(store_generation_t *g)
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

static void read_output(store_rd_t *r, json_t *o, void *item)
{
    store_output_t *out = item;
    int null_seed;
    out->index = (int)store__rd_int(r, o, "index", NULL);
    out->pose = (int)store__rd_int(r, o, "pose", NULL);
    out->variant = store__rd_str(r, o, "variant", 0);
    out->format = store__rd_str(r, o, "format", 0);
    out->width = (int)store__rd_int(r, o, "width", NULL);
    out->height = (int)store__rd_int(r, o, "height", NULL);
    out->bytes = store__rd_int(r, o, "bytes", NULL);
    out->sha256 = store__rd_str(r, o, "sha256", 0);
    out->seed = store__rd_int(r, o, "seed", &null_seed);
    out->has_seed = !null_seed;
    /* Optional in the shape (since migrations/0019): a deleted output has no key. */
    json_t *deleted = json_object_get(o, "deleted");
    out->deleted = json_is_true(deleted);
    out->storage_key = store__rd_str(r, o, "storage_key", out->deleted);
}

/* farm_generation_json (migrations/0004). */
void store__read_generation(store_rd_t *r, json_t *o, store_generation_t *g)
{
    if (!json_is_object(o)) {
        r->bad = r->bad ? r->bad : "generation";
        return;
    }
    store__rd_word(r, o, "id", g->id, sizeof(g->id));
    g->kind = store__rd_str(r, o, "kind", 0);
    g->status = store__rd_str(r, o, "status", 0);
    g->progress = (int)store__rd_int(r, o, "progress", NULL);
    g->stage = store__rd_str(r, o, "stage", 1);
    g->images = (int)store__rd_int(r, o, "images", NULL);
    g->images_done = (int)store__rd_int(r, o, "images_done", NULL);
    g->images_failed = (int)store__rd_int(r, o, "images_failed", NULL);
    g->params = store__rd_json(r, o, "params", 0);
    g->cost = store__rd_int(r, o, "cost", NULL);
    g->charged = store__rd_int(r, o, "charged", NULL);
    g->released = store__rd_int(r, o, "released", NULL);
    g->attempts = (int)store__rd_int(r, o, "attempts", NULL);
    g->provider = store__rd_str(r, o, "provider", 1);
    g->error = store__rd_json(r, o, "error", 1);
    g->failures = store__rd_json(r, o, "failures", 0);
    g->metadata = store__rd_json(r, o, "metadata", 1);
    g->created_at = store__rd_str(r, o, "created_at", 0);
    g->started_at = store__rd_str(r, o, "started_at", 1);
    g->finished_at = store__rd_str(r, o, "finished_at", 1);
    /* Optional in the shape (farm_generation_json has it since migrations/0018): absent is null. */
    json_t *wh = json_object_get(o, "webhook");
    g->webhook = wh && !json_is_null(wh) ? json_dumps(wh, JSON_COMPACT) : NULL;
    g->outputs = store__rd_items(r, o, "outputs", sizeof(*g->outputs), &g->n_outputs, read_output,
                                 "outputs");
}

static void read_list_item(store_rd_t *r, json_t *e, void *item)
{
    store__read_generation(r, e, item);
}

/* farm_generations_page (migrations/0004). */
void store__read_list(store_rd_t *r, json_t *o, store_list_result_t *l)
{
    l->items = store__rd_items(r, o, "items", sizeof(*l->items), &l->n, read_list_item, NULL);
    l->next_cursor = store__rd_str(r, o, "next_cursor", 1);
}

static void read_expired(store_rd_t *r, json_t *e, void *item)
{
    store_sweep_expired_t *x = item;
    store__rd_word(r, e, "id", x->id, sizeof(x->id));
    store__rd_word(r, e, "user_id", x->user_id, sizeof(x->user_id));
}

static void read_candidate(store_rd_t *r, json_t *e, void *item)
{
    store_sweep_candidate_t *c = item;
    int null_deadline;
    store__rd_word(r, e, "id", c->id, sizeof(c->id));
    store__rd_word(r, e, "user_id", c->user_id, sizeof(c->user_id));
    c->plan = store__rd_str(r, e, "plan", 0);
    c->status = store__rd_str(r, e, "status", 0);
    c->params = store__rd_json(r, e, "params", 0);
    c->deadline_ms = store__rd_int(r, e, "deadline_ms", &null_deadline);
    c->fence = store__rd_int(r, e, "fence", NULL);
}

/* farm_sweep (migrations/0003). */
void store__read_sweep(store_rd_t *r, json_t *o, store_sweep_result_t *s)
{
    s->locked = store__rd_bool(r, o, "locked");
    if (!s->locked)
        return;
    s->expired =
        store__rd_items(r, o, "expired", sizeof(*s->expired), &s->n_expired, read_expired, NULL);
    s->candidates = store__rd_items(r, o, "candidates", sizeof(*s->candidates), &s->n_candidates,
                                    read_candidate, NULL);
    s->canceling = store__rd_items(r, o, "canceling", sizeof(*s->canceling), &s->n_canceling,
                                   read_expired, NULL);
}

/* One entry of an index-keyed object into `item`: its index, and its string (new). */
typedef void (*index_put_fn)(void *item, int index, char *value);

/*
 * Object field `k` of `o` whose keys are decimal indexes and whose values are
 * strings, into a new vector of `size` bytes an element (NULL when absent or
 * empty) through `put`; *n entries. Any other shape is a bad shape named `k`.
 */
static void *read_index_map(store_rd_t *r, json_t *o, const char *k, size_t size, size_t *n,
                            index_put_fn put)
{
    *n = 0;
    json_t *m = store__rd_get(r, o, k);
    if (m != NULL && !json_is_object(m))
        r->bad = k;
    if (r->bad || json_object_size(m) == 0)
        return NULL;
    char *items = gf_xcalloc(json_object_size(m), size);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v)
    {
        int index = store__key_index(key);
        if (index < 0 || !json_is_string(v)) {
            r->bad = k;
            break;
        }
        put(items + *n * size, index, gf_xstrdup(json_string_value(v)));
        (*n)++;
    }
    return items;
}

static void put_request(void *item, int index, char *value)
{
    store_provider_request_t *p = item;
    p->index = index;
    p->token = value;
}

static void put_pose_key(void *item, int index, char *value)
{
    store_pose_key_t *p = item;
    p->pose = index;
    p->storage_key = value;
}

/* farm_worker_resume (migrations/0008). */
void store__read_resume(store_rd_t *r, json_t *o, store_resume_result_t *s)
{
    void *items;
    json_t *a = store__rd_array(r, o, "settled", sizeof(int), &items, &s->n_settled);
    s->settled = items;
    for (size_t i = 0; a && i < s->n_settled && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_integer(e))
            r->bad = "settled";
        s->settled[i] = (int)json_integer_value(e);
    }
    s->requests = read_index_map(r, o, "provider_requests", sizeof(*s->requests), &s->n_requests,
                                 put_request);
    s->identity_key = store__rd_str(r, o, "identity_key", 1);
    s->pose_keys =
        read_index_map(r, o, "pose_keys", sizeof(*s->pose_keys), &s->n_pose_keys, put_pose_key);
}

/*
 * farm_accept_generations (store/sql/farm_accept_generations.sql): one
 * outcome per request of the batch, in its order; a count that is not the
 * batch's is a bad shape.
 */
void store__read_accept_batch(store_rd_t *r, json_t *a, size_t want, store_accept_batch_result_t *b)
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
        store__rd_word(r, e, "outcome", outcome, sizeof(outcome));
        if (r->bad)
            return;
        if (strcmp(outcome, "missing") == 0) {
            store__rd_word(r, e, "missing", o->missing, sizeof(o->missing));
            gf_err_set(&o->err, GF_ENOTFOUND, "store", "a reference is not the user's (%s)",
                       o->missing);
            continue;
        }
        if (strcmp(outcome, "error") == 0) {
            char state[8] = "";
            char *msg = store__rd_str(r, e, "message", 1);
            store__rd_word(r, e, "sqlstate", state, sizeof(state));
            gf_err_set(&o->err, store__sqlstate_code(state), "store", "accept failed: %s",
                       msg ? msg : state);
            free(msg);
            continue;
        }
        int null_available = 0;
        json_t *id = store__rd_get(r, e, "generation_id"); /* null when refused for credits */
        if (id != NULL && !json_is_null(id))
            store__rd_word(r, e, "generation_id", o->accept.generation_id,
                           sizeof(o->accept.generation_id));
        o->accept.available = store__rd_int(r, e, "available", &null_available);
        if (strcmp(outcome, "accepted") == 0) {
            store__rd_word(r, e, "created_at", o->created_at, sizeof(o->created_at));
            continue;
        }
        if (strcmp(outcome, "insufficient") == 0) {
            gf_err_set(&o->err, GF_ECREDITS, "store", "not enough credits (%lld available)",
                       o->accept.available);
            continue;
        }
        if (strcmp(outcome, "at_cap") == 0) {
            gf_err_set(&o->err, GF_ETOOBIG, "store", "the user is at the active generations cap");
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
        json_t *g = store__rd_get(r, e, "generation");
        if (g == NULL || json_is_null(g))
            continue;
        o->found = 1;
        store__rd_word(r, g, "kind", o->kind, sizeof(o->kind));
        store__rd_word(r, g, "status", o->status, sizeof(o->status));
        store__rd_word(r, g, "created_at", o->created_at, sizeof(o->created_at));
        o->cost = store__rd_int(r, g, "cost", NULL);
        o->images = (int)store__rd_int(r, g, "images", NULL);
    }
}

void store__read_accept_resolve(store_rd_t *r, json_t *a, size_t want,
                                store_accept_resolve_result_t *s)
{
    if (json_array_size(a) != want) {
        r->bad = "(not one answer per id)";
        return;
    }
    s->created_at = gf_xcalloc(want, sizeof(*s->created_at));
    for (size_t i = 0; i < want && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_object(e)) {
            r->bad = "(an answer is not an object)";
            break;
        }
        s->accepted[i] = (unsigned char)store__rd_bool(r, e, "accepted");
        json_t *t = store__rd_get(r, e, "created_at");
        if (t != NULL && !json_is_null(t))
            store__rd_word(r, e, "created_at", s->created_at[i], sizeof(s->created_at[i]));
    }
    s->n = want;
}

void store__list_dispose(store_list_result_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        store__generation_dispose(&l->items[i]);
    free(l->items);
    free(l->next_cursor);
}

void store__sweep_dispose(store_sweep_result_t *s)
{
    for (size_t i = 0; i < s->n_candidates; i++) {
        free(s->candidates[i].plan);
        free(s->candidates[i].status);
        free(s->candidates[i].params);
    }
    free(s->candidates);
    free(s->expired);
    free(s->canceling);
}

void store__resume_dispose(store_resume_result_t *s)
{
    free(s->settled);
    for (size_t i = 0; i < s->n_requests; i++)
        free(s->requests[i].token);
    free(s->requests);
    free(s->identity_key);
    for (size_t i = 0; i < s->n_pose_keys; i++)
        free(s->pose_keys[i].storage_key);
    free(s->pose_keys);
}
