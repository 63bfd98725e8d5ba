/*
 * api/generations.c - POST /v1/generations, GET one, the list, and cancel.
 *
 * The order of an accept: validate -> in Postgres, in one round trip
 * shared with the other accepts of the loop turn (api/accept.c): the
 * references' check, the idempotency key and the hold -> enqueue in Redis.
 * When the enqueue fails after the hold committed, the answer is still 202:
 * the generation is accepted, its credits are held, and the sweeper
 * enqueues it (docs/api.md). A user already at the active cap (the gate asks
 * the queue with the rate limit: api/gate.c) is refused 429 too_many_active by
 * the accept itself, which writes nothing then; when the queue refuses one
 * that got past that check (two at once), the generation is finished as
 * canceled, releasing the hold, and the answer is the same 429 (or 202, when
 * Postgres could not record that: the generation then stands accepted).
 */
#include "api_int.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    api_route_t r;
    api_gen_req_t g;
    char gen_id[37];
    char created_at[32];
    int64_t deadline_ms; /* the start deadline, Unix ms; 0: none */
    char idem_key[129];
    int has_idem_key;
    char hash[65];
    const char **pose_uploads; /* accept: the uploads among the poses (into g.params) */
    json_t *gen;               /* a generation object (or a page of them) being answered */
    int answer_status;         /* of the generation answer: 200, or 202 after a cancel */
} gen_ctx_t;

static void ctx_dispose(api_route_t *r)
{
    gen_ctx_t *c = (gen_ctx_t *)r;
    api_gen_req_dispose(&c->g);
    free(c->pose_uploads);
    json_decref(c->gen);
}

static gen_ctx_t *ctx_new(api_t *api, gf_http_req_t *req)
{
    gen_ctx_t *c = api__route_new(api, req, sizeof(gen_ctx_t), ctx_dispose);
    c->answer_status = 200;
    return c;
}

static void ctx_free(gen_ctx_t *c)
{
    api__route_free(&c->r);
}

/* The body of a 202 (and of the 200 of a repeated idempotent request). */
static json_t *accepted_body(const char *id, const char *kind, const char *status, long long cost,
                             long long images, json_t *position, const char *created_at)
{
    char events[128], url[96];
    snprintf(events, sizeof(events), "/v1/generations/%s/events", id);
    snprintf(url, sizeof(url), "/v1/generations/%s", id);
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:s, s:s}", "id", id, "kind", kind,
                     "status", status, "cost", (json_int_t)cost, "images", (json_int_t)images,
                     "queue_position", position ? position : json_null(), "created_at", created_at,
                     "events_url", events, "url", url);
}

/* --- POST /v1/generations ------------------------------------------------------ */

static void answer_accepted(gen_ctx_t *c, int status, const queue_result_t *res);

/*
 * The refusal of a generation the queue turned away at the cap. Only a
 * refusal Postgres recorded (canceled, released) is answered 429; when it
 * failed, the generation stands accepted with its credits held, and a 429
 * (or a 503) would be a lie the client pays for when it retries: it is
 * answered 202 like any accepted one the queue has not taken, enqueued
 * again once the cap allows (api/requeue.c, then the sweeper).
 */
static void on_released(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    gen_ctx_t *c = data;
    if (err->code < 0) {
        gf_log_err(GF_LOG_ERROR, &(gf_log_ctx){.component = "api", .generation_id = c->gen_id},
                   err);
        answer_accepted(c, GF_ETOOBIG, NULL);
        return;
    }
    gf_http_set_header(c->r.req, "Retry-After", API_TOO_MANY_ACTIVE_RETRY);
    api__error(c->r.req, 429, "too_many_active", API_TOO_MANY_ACTIVE_MSG, NULL);
    ctx_free(c);
}

static void on_enqueued(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    (void)q;
    gen_ctx_t *c = data;
    if (err->code == GF_ETOOBIG) {
        store_call_dispose(&c->r.call);
        store_call_refuse(&c->r.call, c->gen_id, c->r.who.sub,
                          c->has_idem_key ? c->idem_key : NULL);
        if (api__store_exec(c->r.api, &c->r.call, on_released, c) < 0) {
            gf_err_t e = {0};
            gf_err_set(&e, GF_EUNAVAIL, "store", "postgres is unreachable: not refused");
            on_released(c->r.api->store, &e, &c->r.call, c);
        }
        return;
    }
    answer_accepted(c, err->code, res);
}

static queue_enqueue_req_t enqueue_req(const gen_ctx_t *c)
{
    queue_enqueue_req_t req = {.gen_id = c->gen_id,
                               .user_id = c->r.who.sub,
                               .tier = queue_tier_of(c->r.api->cfg, c->r.who.plan),
                               .payload = c->g.payload,
                               .deadline_ms = c->deadline_ms};
    return req;
}

/*
 * The 202 of a committed hold: with its queue position when the enqueue
 * succeeded (`status` 0), without when it failed: then the api keeps it and
 * enqueues it as soon as Redis answers (api/requeue.c; the sweeper covers an
 * api that stops first).
 */
static void answer_accepted(gen_ctx_t *c, int status, const queue_result_t *res)
{
    gf_log_ctx ctx = {.component = "api",
                      .request_id = gf_http_req_id(c->r.req),
                      .generation_id = c->gen_id,
                      .user_id = c->r.who.sub};
    gf_metric_add(c->r.api->m_credits_held, (double)c->g.params.images * c->g.unit_cost);
    json_t *position = NULL;
    if (status == 0) {
        position = json_integer(res->position);
    } else {
        GF_LOG(GF_LOG_WARN, &ctx, "accepted but not enqueued (%s)", gf_status_name(status));
        queue_enqueue_req_t req = enqueue_req(c);
        api__requeue_add(c->r.api, &req);
    }
    api__json(c->r.req, 202,
              accepted_body(c->gen_id, c->g.params.kind == IMG_KIND_POSE ? "pose" : "avatar",
                            "queued", (long long)c->g.params.images * c->g.unit_cost,
                            c->g.params.images, position, c->created_at));
    ctx_free(c);
}

static void on_position(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data);

/* The outcome of the accept (api/accept.c: one request of a group-committed batch). */
static void on_accepted(api_t *api, const gf_err_t *err, const store_accept_outcome_t *out,
                        void *data)
{
    (void)api;
    gen_ctx_t *c = data;
    char msg[200];
    long long cost = (long long)c->g.params.images * c->g.unit_cost;
    switch (err->code) {
    case 0:
        break;
    case GF_ENOTFOUND: /* a reference (out is set: only a request's own outcome says so) */
        api__error(c->r.req, 404, "not_found", "no such upload or generation output for this user",
                   out ? out->missing : NULL);
        ctx_free(c);
        return;
    case GF_ECREDITS:
        snprintf(msg, sizeof(msg), "this generation costs %lld credits; %lld available", cost,
                 out ? out->accept.available : 0);
        api__error(c->r.req, 402, "insufficient_credits", msg, NULL);
        ctx_free(c);
        return;
    case GF_ECONFLICT:
        api__error(c->r.req, 409, "idempotency_conflict",
                   "this Idempotency-Key was used with a different body", NULL);
        ctx_free(c);
        return;
    case GF_ETOOBIG: /* at the active cap (api/gate.c): nothing was written */
        gf_http_set_header(c->r.req, "Retry-After", API_TOO_MANY_ACTIVE_RETRY);
        api__error(c->r.req, 429, "too_many_active", API_TOO_MANY_ACTIVE_MSG, NULL);
        ctx_free(c);
        return;
    default:
        api__fail(c->r.req, err->code, err);
        ctx_free(c);
        return;
    }
    snprintf(c->gen_id, sizeof(c->gen_id), "%s", out->accept.generation_id);
    /* Postgres's, as GET and a repeated request show it */
    snprintf(c->created_at, sizeof(c->created_at), "%s", out->created_at);
    if (out->accept.existing) {
        if (!out->found) { /* deleted since: as GET answers it */
            gf_err_t e = {0};
            gf_err_set(&e, GF_ENOTFOUND, "api", "generation %s was deleted", c->gen_id);
            api__fail(c->r.req, e.code, &e);
            ctx_free(c);
            return;
        }
        /* The first answer's body (answered 200): a queued one's place from the queue, as
         * the 202 had it and as GET shows it. */
        c->gen = accepted_body(c->gen_id, out->kind, out->status, out->cost, out->images, NULL,
                               c->created_at);
        if (strcmp(out->status, "queued") == 0 && c->r.api->queue != NULL &&
            queue_position(c->r.api->queue, c->gen_id, on_position, c) == 0)
            return;
        api__json(c->r.req, 200, json_incref(c->gen));
        ctx_free(c);
        return;
    }
    queue_enqueue_req_t req = enqueue_req(c);
    int rc = c->r.api->queue == NULL ? GF_ECANCELED
                                     : queue_enqueue(c->r.api->queue, &req, on_enqueued, c);
    if (rc < 0)
        answer_accepted(c, rc, NULL);
}

/* webhook_events (IMG_WEBHOOK_* bits) as a Postgres array literal. */
static const char *const webhook_events[4] = {NULL, "{started}", "{image}", "{started,image}"};

/*
 * Holds the credits (with the idempotency key), after checking that the
 * files the generation refers to are the caller's own (API.md: 404
 * otherwise): one request of the loop turn's batch, one round trip.
 */
static void gen_accept(gen_ctx_t *c)
{
    api_t *api = c->r.api;
    const img_params *p = &c->g.params;
    gf_uuid4(c->gen_id);
    int64_t now_ms = gf_clock_unix_ms();
    c->deadline_ms = p->deadline_s ? now_ms + p->deadline_s * 1000 : 0;
    size_t nposes = 0;
    c->pose_uploads = p->nposes ? gf_xcalloc((size_t)p->nposes, sizeof(*c->pose_uploads)) : NULL;
    for (int i = 0; i < p->nposes; i++)
        if (p->poses[i].upload_id[0])
            c->pose_uploads[nposes++] = p->poses[i].upload_id;
    store_accept_item_t it = {.accept = {.id = c->gen_id,
                                         .user_id = c->r.who.sub,
                                         .plan = c->r.who.plan,
                                         .kind = p->kind == IMG_KIND_POSE ? "pose" : "avatar",
                                         .images = p->images,
                                         .unit_cost = c->g.unit_cost,
                                         .welcome_credits = api->cfg->welcome_credits,
                                         .params_json = c->g.payload,
                                         .metadata_json = p->metadata,
                                         .deadline_unix_ms = c->deadline_ms,
                                         .idempotency_key = c->has_idem_key ? c->idem_key : NULL,
                                         .request_hash = c->has_idem_key ? c->hash : NULL,
                                         .webhook_url = p->webhook_url,
                                         .webhook_events = webhook_events[p->webhook_events & 3]},
                              .identity_upload = p->identity_upload[0] ? p->identity_upload : NULL,
                              .identity_generation =
                                  p->identity_generation[0] ? p->identity_generation : NULL,
                              .identity_index = p->identity_index,
                              .pose_uploads = c->pose_uploads,
                              .n_pose_uploads = nposes,
                              .at_cap = api__gate_at_cap(c->r.req)};
    int rc = api__accept_add(api, &it, on_accepted, c);
    if (rc < 0) {
        api__fail(c->r.req, rc, NULL);
        ctx_free(c);
    }
}

static void on_create(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    gen_ctx_t *c = ctx_new(api, req);
    if (api__auth(api, req, &c->r.who, 0) < 0)
        goto done;
    if (!api__body_is_json(req))
        goto done;
    size_t len;
    const char *body = gf_http_req_body(req, &len);
    if (api_gen_validate(body, len, api->cfg, api->presets, &c->g) < 0) {
        api__error(req, 400, c->g.unsupported ? "unsupported" : "invalid_request", c->g.message,
                   c->g.field[0] ? c->g.field : NULL);
        goto done;
    }
    const char *key = gf_http_req_header(req, "idempotency-key");
    /* Printable ASCII, as the header's draft standard has it (and Postgres can store it). */
    size_t klen = key ? strlen(key) : 0;
    int printable = 1;
    for (size_t i = 0; i < klen; i++)
        printable &= key[i] >= 0x20 && key[i] <= 0x7e;
    if (key != NULL && (klen < 1 || klen > 128 || !printable)) {
        api__error(req, 400, "invalid_request",
                   "Idempotency-Key must be 1..128 printable ASCII characters", "Idempotency-Key");
        goto done;
    }
    if (key != NULL) {
        snprintf(c->idem_key, sizeof(c->idem_key), "%s", key);
        c->has_idem_key = 1;
        /* What a repeat of the key is compared with; without a key nothing reads it. */
        img_sha256_hex(body, len, c->hash);
    }
    gen_accept(c); /* the rate limit was taken at the headers (api/gate.c) */
    return;
done:
    ctx_free(c);
}

/* --- GET /v1/generations/:id ----------------------------------------------------- */

/*
 * The queue knows what Postgres does not: a queued generation's position, and
 * a running one's latest stage (the worker publishes each in an event). Into
 * `gen` (GET's shape) when the queue answered.
 */
static void queue_word(json_t *gen, const gf_err_t *err, const queue_result_t *res)
{
    int running =
        gf_gen_status_parse(json_string_value(json_object_get(gen, "status"))) == GF_GEN_RUNNING;
    /* Only while Postgres says queued: a running one the queue holds again (handed back,
     * re-driven) is still running for its client, as API.md has it. */
    if (err->code == GF_OK && !running && res->position >= 0)
        json_object_set_new(gen, "queue_position", json_integer(res->position));
    if (err->code == GF_OK && running && gf_stage_parse(res->stage) >= 0)
        json_object_set_new(gen, "stage", json_string(res->stage));
    /* The worker's progress, which moves while an image is made (Postgres's moves as images
     * settle): the larger, so GET never shows less than the images already done. */
    if (err->code == GF_OK && running &&
        res->progress > json_integer_value(json_object_get(gen, "progress")))
        json_object_set_new(gen, "progress", json_integer(res->progress));
}

/* Whether the queue has a word for `gen`: it is queued or running. */
static int in_queue(json_t *gen)
{
    int status = gf_gen_status_parse(json_string_value(json_object_get(gen, "status")));
    return status == GF_GEN_QUEUED || status == GF_GEN_RUNNING;
}

static void on_position(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    (void)q;
    gen_ctx_t *c = data;
    queue_word(c->gen, err, res);
    api__json(c->r.req, c->answer_status, json_incref(c->gen));
    ctx_free(c);
}

/* Answers `g` as GET shows it, with the queue's word when it is queued or running. */
static void answer_read(gen_ctx_t *c, const store_generation_t *g)
{
    c->gen = api__generation_json(g);
    api__sign_outputs(c->r.api, c->gen);
    if (in_queue(c->gen) && c->r.api->queue != NULL &&
        queue_position(c->r.api->queue, c->gen_id, on_position, c) == 0)
        return;
    api__json(c->r.req, c->answer_status, json_incref(c->gen));
    ctx_free(c);
}

static void on_generation(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    gen_ctx_t *c = data;
    if (api__route_failed(&c->r, err))
        return;
    answer_read(c, &call->res.generation);
}

/* Authenticates and checks the :id of the path; 0 or answered. */
static int gen_start(gen_ctx_t *c)
{
    if (api__auth(c->r.api, c->r.req, &c->r.who, 0) < 0)
        return -1;
    const char *id = gf_http_req_param(c->r.req, "id");
    if (!api_is_uuid(id)) {
        api__error(c->r.req, 404, "not_found", "no such generation", NULL);
        return -1;
    }
    snprintf(c->gen_id, sizeof(c->gen_id), "%s", id);
    return 0;
}

static void on_get(gf_http_req_t *req, void *data)
{
    gen_ctx_t *c = ctx_new(data, req);
    if (gen_start(c) < 0) {
        ctx_free(c);
        return;
    }
    store_call_generation(&c->r.call, c->gen_id, c->r.who.sub);
    api__route_run(&c->r, on_generation);
}

/* --- POST /v1/generations/:id/cancel ---------------------------------------------- */

/* A cancel the queue did not take: the worker sees it in Postgres at its next start. */
static void log_cancel_not_passed(int status)
{
    GF_LOG(GF_LOG_WARN, &(gf_log_ctx){.component = "api"},
           "cancel not passed to the queue (%s): the worker sees it at its next start",
           gf_status_name(status));
}

/* A running generation's cancel on its way to the queue, then to Postgres. */
typedef struct {
    api_t *api;
    char gen_id[37];
    store_call_t finish;
} cancel_pass_t;

static void on_cancel_finished(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    cancel_pass_t *p = data;
    if (err->code < 0 && err->code != GF_ECANCELED) {
        gf_log_ctx ctx = {.component = "api", .generation_id = p->gen_id};
        GF_LOG(GF_LOG_WARN, &ctx, "cannot finish a canceled generation (%s): the sweeper does",
               gf_status_name(err->code));
    }
    store_call_dispose(&p->finish);
    free(p);
}

/*
 * The queue's word on a cancel. For a generation Postgres had running, a
 * job no worker held (handed back: waiting in the queue again) ends
 * canceled in the queue at once; Postgres is finished the same way now,
 * not at a sweep, so GET and the user's event stream (which waits for
 * Postgres's terminal status) do not hang on it. A held job is its
 * holder's to finish.
 */
static void on_queue_canceled(queue_t *q, const gf_err_t *err, const queue_result_t *res,
                              void *data)
{
    (void)q;
    cancel_pass_t *p = data;
    if (err->code < 0 && err->code != GF_ECANCELED)
        log_cancel_not_passed(err->code);
    if (p == NULL)
        return;
    if (err->code == GF_OK && strcmp(res->state, "canceled") == 0) {
        store_call_finish(&p->finish, p->gen_id, -1, "canceled", NULL);
        if (api__store_exec(p->api, &p->finish, on_cancel_finished, p) == 0)
            return;
        store_call_dispose(&p->finish);
    }
    free(p);
}

static void on_canceled(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    gen_ctx_t *c = data;
    if (err->code == GF_ECONFLICT) {
        api__error(c->r.req, 409, "not_cancelable", "the generation is already finished", NULL);
        ctx_free(c);
        return;
    }
    if (api__route_failed(&c->r, err))
        return;
    /* Postgres decided; the queue drops a queued job or flags a running one for its worker. */
    cancel_pass_t *p = NULL;
    if (!c->r.call.res.cancel.applied) { /* running in Postgres: flagged */
        p = gf_xcalloc(1, sizeof(*p));
        p->api = c->r.api;
        snprintf(p->gen_id, sizeof(p->gen_id), "%s", c->gen_id);
    }
    int rc = c->r.api->queue == NULL
                 ? GF_ECANCELED
                 : queue_cancel(c->r.api->queue, c->gen_id, on_queue_canceled, p);
    if (rc < 0) {
        log_cancel_not_passed(rc);
        free(p);
    }
    /* The generation as the cancel left it, read in its transaction (farm_cancel_json). */
    c->answer_status = 202;
    answer_read(c, &c->r.call.res.cancel.generation);
}

static void on_cancel(gf_http_req_t *req, void *data)
{
    gen_ctx_t *c = ctx_new(data, req);
    if (gen_start(c) < 0) {
        ctx_free(c);
        return;
    }
    store_call_cancel(&c->r.call, c->gen_id, c->r.who.sub);
    api__route_run(&c->r, on_canceled);
}

/* --- GET /v1/generations ------------------------------------------------------------ */

static void answer_page(gen_ctx_t *c)
{
    api__json(c->r.req, 200, json_incref(c->gen));
    ctx_free(c);
}

/* The page's items that are queued or running, at most QUEUE_POSITIONS_MAX (a page's
 * limit is 100): their ids into `ids` and the items into `items`, borrowed. */
static size_t in_queue_items(json_t *page, const char **ids, json_t **items)
{
    size_t i, n = 0;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), i, item)
    {
        const char *id = json_string_value(json_object_get(item, "id"));
        if (id != NULL && in_queue(item) && n < QUEUE_POSITIONS_MAX) {
            ids[n] = id;
            items[n++] = item;
        }
    }
    return n;
}

static void on_page_positions(queue_t *q, const gf_err_t *err, const queue_positions_t *p,
                              void *data)
{
    (void)q;
    gen_ctx_t *c = data;
    const char *ids[QUEUE_POSITIONS_MAX];
    json_t *items[QUEUE_POSITIONS_MAX];
    size_t n = in_queue_items(c->gen, ids, items);
    for (size_t i = 0; err->code == GF_OK && i < n && i < p->n; i++)
        queue_word(items[i], err, &p->items[i]);
    answer_page(c);
}

/*
 * The page, each queued item with its queue_position and each running one with its stage,
 * as GET has them: one question to the queue for the whole page, which walks a tier's
 * users once for all of a user's queued items. Without the queue's answer the page goes
 * out as Postgres has it.
 */
static void on_page(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    gen_ctx_t *c = data;
    if (api__route_page_failed(&c->r, err))
        return;
    c->gen = api__generation_page_json(&call->res.list);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(c->gen, "items"), i, item)
    {
        api__sign_outputs(c->r.api, item);
    }
    const char *ids[QUEUE_POSITIONS_MAX];
    json_t *items[QUEUE_POSITIONS_MAX];
    size_t n = in_queue_items(c->gen, ids, items);
    if (n > 0 && c->r.api->queue != NULL &&
        queue_positions(c->r.api->queue, ids, n, on_page_positions, c) == 0)
        return;
    answer_page(c);
}

/* Parses ?limit= (1..100, default 20); -1 when malformed. */
int api__parse_limit(const char *s)
{
    if (s == NULL)
        return 20;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && *end == '\0' && v >= 1 && v <= 100 ? (int)v : -1;
}

int api__list_cursor_ok(const char *cursor)
{
    return cursor == NULL || (strlen(cursor) <= 80 && strchr(cursor, '.') != NULL);
}

static void on_list(gf_http_req_t *req, void *data)
{
    gen_ctx_t *c = ctx_new(data, req);
    if (api__auth(c->r.api, req, &c->r.who, 0) < 0) {
        ctx_free(c);
        return;
    }
    const char *status = api__query(req, "status");
    const char *kind = api__query(req, "kind");
    const char *cursor = api__query(req, "cursor");
    int limit = api__parse_limit(api__query(req, "limit"));
    int status_ok = status == NULL || gf_gen_status_parse(status) >= 0;
    const char *bad = !status_ok                                                         ? "status"
                      : kind && strcmp(kind, "avatar") != 0 && strcmp(kind, "pose") != 0 ? "kind"
                      : limit < 0                                                        ? "limit"
                      : !api__list_cursor_ok(cursor)                                     ? "cursor"
                                                                                         : NULL;
    if (bad != NULL) {
        api__error(req, 400, "invalid_request", "invalid query parameter", bad);
        ctx_free(c);
        return;
    }
    store_call_list(&c->r.call, c->r.who.sub, status, kind, limit, cursor);
    api__route_run(&c->r, on_page);
}

void api__generations_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "POST", "/v1/generations", 0, on_create, api);
    gf_httpd_route(api->httpd, "GET", "/v1/generations", 0, on_list, api);
    gf_httpd_route(api->httpd, "GET", "/v1/generations/:id", 0, on_get, api);
    gf_httpd_route(api->httpd, "POST", "/v1/generations/:id/cancel", 0, on_cancel, api);
}
