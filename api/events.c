/*
 * api/events.c - progress over Server-Sent Events (API.md):
 * GET /v1/generations/:id/events and GET /v1/events. The routes, a stream's
 * life (the owner check, its start, heartbeat, writes and end), the frames
 * of its events, and the user stream, which keeps a watch of its own. A
 * generation's events reach its streams through sse_hub.c (the hub of a
 * live generation, catch-up and replay reads, the terminal event). Every
 * stream's heartbeat is one node of one queue (api->sse_pings) on one
 * timer.
 *
 * Lifetime: a stream is freed once it is finished and nothing of it is in
 * flight: no store call (`store_pending`), no replay or catch-up read
 * (`read_pending`), no callback still using it (`in_callback`);
 * api__sse_free_maybe() checks.
 */
#include "sse_int.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One user's count of open streams (a node exists only while it is above 0). */
typedef struct api_sse_user {
    struct api_sse_user *next;
    char sub[37];
    long long open;
} api_sse_user_t;

static api_sse_user_t **user_slot(api_t *api, const char *sub)
{
    api_sse_user_t **pp = &api->sse_users[api__sse_hash(sub) % API_SSE_USER_BUCKETS];
    while (*pp && strcmp((*pp)->sub, sub) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Adds `d` (+1 or -1) to the user's open streams; returns the count before. */
static long long user_open_add(api_t *api, const char *sub, int d)
{
    api_sse_user_t **pp = user_slot(api, sub);
    if (*pp == NULL) {
        if (d < 0)
            return 0;
        *pp = gf_xcalloc(1, sizeof(**pp));
        snprintf((*pp)->sub, sizeof((*pp)->sub), "%s", sub);
    }
    long long before = (*pp)->open;
    (*pp)->open += d;
    if ((*pp)->open <= 0) {
        api_sse_user_t *dead = *pp;
        *pp = dead->next;
        free(dead);
    }
    return before;
}

/* --- heartbeats: one timer for every stream --------------------------------------- */

static uint64_t ping_every_ms(const api_t *api)
{
    return (uint64_t)api->cfg->sse_heartbeat_s * 1000;
}

static void on_ping(uv_timer_t *t);

/* Sets the timer for the earliest heartbeat due (stopped when none is). */
static void ping_arm(api_t *api)
{
    uint64_t next = gf_dueq_next(&api->sse_pings), now = uv_now(api->loop);
    if (next == UINT64_MAX)
        uv_timer_stop(&api->sse_ping_timer);
    else
        uv_timer_start(&api->sse_ping_timer, on_ping, next > now ? next - now : 0, 0);
}

/* Sends a comment line to every stream whose heartbeat is due, each then due a period later. */
static void on_ping(uv_timer_t *t)
{
    api_t *api = t->data;
    uint64_t now = uv_now(api->loop), every = ping_every_ms(api);
    gf_due_t *d;
    while ((d = gf_dueq_pop_due(&api->sse_pings, now)) != NULL) {
        api_sse_t *s = (api_sse_t *)((char *)d - offsetof(api_sse_t, ping));
        gf_dueq_push(&api->sse_pings, d, now + every); /* before the write: a failure unlinks it */
        if (gf_http_stream_write(s->req, ": ping\n\n", 8) < 0)
            api__sse_finish(s);
    }
    ping_arm(api);
}

/* Starts the stream's heartbeat: every FARM_SSE_HEARTBEAT_S from now. */
static void ping_start(api_sse_t *s)
{
    api_t *api = s->api;
    if (api->sse_closed)
        return; /* stopping: no timer is made again */
    if (!api->sse_ping_on) {
        uv_timer_init(api->loop, &api->sse_ping_timer);
        api->sse_ping_timer.data = api;
        api->sse_ping_on = 1;
    }
    int idle = api->sse_pings.head == NULL;
    gf_dueq_push(&api->sse_pings, &s->ping, uv_now(api->loop) + ping_every_ms(api));
    if (idle)
        ping_arm(api); /* otherwise the timer is set for an earlier one already */
}

/* --- memory after a burst of setups --------------------------------------------------- */

/* How long after a stream's start the heap's free memory goes back (at most once per period). */
#define SSE_TRIM_AFTER_MS 500

static void on_trim(uv_timer_t *t)
{
    (void)t;
    malloc_trim(0);
}

/*
 * Streams open in bursts (a gallery's page, every client of a restarted
 * api reconnecting), and each setup uses for a moment several times what
 * an open stream keeps (its request parsed, its token checked, its owner
 * read). Those blocks are freed between the long-lived ones, so the heap
 * keeps the burst's peak as resident memory. Half a second after a stream
 * starts or catches up (once per half second while they keep coming),
 * malloc_trim() gives the free pages back, and an idle api holds what its
 * streams use (they are in a slab, off the heap's pages).
 */
void api__sse_trim_soon(api_t *api)
{
    if (api->sse_closed)
        return;
    if (!api->sse_trim_on) {
        uv_timer_init(api->loop, &api->sse_trim_timer);
        api->sse_trim_on = 1;
    }
    if (!uv_is_active((uv_handle_t *)&api->sse_trim_timer))
        uv_timer_start(&api->sse_trim_timer, on_trim, SSE_TRIM_AFTER_MS, 0);
}

/* --- a stream ------------------------------------------------------------------- */

/* Ends the stream (once): leaves its hub, stops its watch and heartbeat, finishes the request. */
void api__sse_finish(api_sse_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    if (s->watch) {
        queue_watch_stop(s->watch);
        s->watch = NULL;
    }
    gf_dueq_remove(&s->api->sse_pings, &s->ping);
    api__sse_hub_leave(s);
    if (s->started)
        gf_http_stream_end(s->req);
    s->req = NULL;
    api__sse_free_maybe(s);
}

static void user_ev_free(user_ev_t *e)
{
    free(e->sid);
    free(e->gen);
    free(e->type);
    free(e->data);
    free(e);
}

void api__sse_free_maybe(api_sse_t *s)
{
    if (!s->finished || s->store_pending || s->read_pending || s->in_callback)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else if (s->api->streams == s)
        s->api->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    user_open_add(s->api, s->sub, -1);
    while (s->pend_head) {
        user_ev_t *e = s->pend_head;
        s->pend_head = e->next;
        user_ev_free(e);
    }
    json_decref(s->record);
    free(s->after_user);
    gf_slab_free(&s->api->sse_slab, s);
}

static void on_client_gone(gf_http_req_t *req, void *data)
{
    (void)req;
    api__sse_finish(data);
}

/* A store call of the stream's own, made for one use. */
static store_call_t *sse_call(api_sse_t *s)
{
    s->call = gf_xcalloc(1, sizeof(*s->call));
    return s->call;
}

static void sse_call_done(api_sse_t *s)
{
    store_call_dispose(s->call);
    free(s->call);
    s->call = NULL;
    s->store_pending = 0;
}

/* An event's bytes on the stream: "id: ..\nevent: ..\ndata: ..\n\n", as one frame. */
static gf_http_frame_t *event_frame(const char *id, const char *name, const char *data)
{
    gf_buf_t b = {0};
    gf_buf_printf(&b, "id: %s\nevent: %s\ndata: %s\n\n", id, name, data);
    gf_http_frame_t *f = gf_http_frame_new(b.p, b.len);
    gf_buf_dispose(&b);
    return f;
}

/* Writes a frame; a client that cannot keep up is dropped (the stream ends). */
int api__sse_write_frame(api_sse_t *s, gf_http_frame_t *f)
{
    int rc = gf_http_stream_write_frame(s->req, f);
    if (rc < 0)
        api__sse_finish(s);
    return rc;
}

static int sse_write(api_sse_t *s, const char *id, const char *name, const char *data)
{
    gf_http_frame_t *f = event_frame(id, name, data);
    int rc = api__sse_write_frame(s, f);
    gf_http_frame_unref(f);
    return rc;
}

/*
 * The name clients see for a non-terminal queue event, API.md's: the
 * queue's `retrying` (a lease ended by a retry or a hand-back, the job
 * claimed again after its backoff) is a `progress` of the generation, which
 * is still running (`*status`); `requeued` (a dead letter an operator
 * re-drove) is `queued` again. Any other name is the queue's (*status NULL:
 * the data says it).
 */
static const char *client_event(const char *type, const char **status)
{
    *status = NULL;
    if (type && strcmp(type, gf_event_name(GF_EV_RETRYING)) == 0) {
        *status = gf_gen_status_name(GF_GEN_RUNNING);
        return gf_event_name(GF_EV_PROGRESS);
    }
    if (type && strcmp(type, gf_event_name(GF_EV_REQUEUED)) == 0) {
        *status = gf_gen_status_name(GF_GEN_QUEUED);
        return gf_event_name(GF_EV_QUEUED);
    }
    return type;
}

/*
 * The data of an event: its own JSON object, or a small object naming the
 * generation, with the status client_event() gives it (and a `queued`
 * event's `queue_position`, null when the queue did not say). An `image`
 * event's outputs get their signed `url` (and lose the storage key), as in
 * GET.
 */
static char *event_data(api_t *api, const char *gen_id, const queue_event_t *ev)
{
    const char *status;
    const char *name = client_event(ev->type, &status);
    json_t *d = ev->data ? json_loads(ev->data, JSON_DECODE_ANY, NULL) : NULL;
    if (!json_is_object(d)) {
        json_decref(d);
        d = json_pack("{s:s, s:s}", "id", gen_id, "status", status ? status : ev->type);
    } else if (json_object_get(d, "id") == NULL) {
        json_object_set_new(d, "id", json_string(gen_id));
    }
    if (status)
        json_object_set_new(d, "status", json_string(status));
    if (name && strcmp(name, gf_event_name(GF_EV_QUEUED)) == 0 &&
        !json_object_get(d, "queue_position"))
        json_object_set_new(d, "queue_position", json_null());
    api__sign_outputs(api, d);
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    return text;
}

/* A generation event's frame, made once for however many streams write it. */
gf_http_frame_t *api__sse_gen_event_frame(api_t *api, const char *gen_id, const queue_event_t *ev)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, ev->id);
    char *text = event_data(api, gen_id, ev);
    const char *status;
    gf_http_frame_t *f = event_frame(id, client_event(ev->type, &status), text ? text : "{}");
    free(text);
    return f;
}

/*
 * The status a terminal event is named after: the one Postgres recorded (the
 * record GET reads), whatever the queue's word was ('done', 'canceled', a
 * dead letter's 'failed'); NULL while Postgres has no final status yet (the
 * queue ended the job first: the sweeper or a worker is about to finish it).
 */
const char *api__sse_final_status(json_t *gen)
{
    const char *status = json_string_value(json_object_get(gen, "status"));
    int st = status ? gf_gen_status_parse(status) : -1;
    return st >= 0 && gf_gen_status_is_final((gf_gen_status)st) ? status : NULL;
}

/* A terminal event with the whole generation (API.md), named after its final status. */
gf_http_frame_t *api__sse_terminal_frame(api_t *api, const char *id, json_t *gen)
{
    api__sign_outputs(api, gen);
    char *text = json_dumps(gen, JSON_COMPACT);
    gf_http_frame_t *f = event_frame(id, api__sse_final_status(gen), text ? text : "{}");
    free(text);
    return f;
}

int api__sse_write_terminal(api_sse_t *s, const char *id, json_t *gen)
{
    gf_http_frame_t *f = api__sse_terminal_frame(s->api, id, gen);
    int rc = api__sse_write_frame(s, f);
    gf_http_frame_unref(f);
    return rc;
}

/* --- the user stream ---------------------------------------------------------------- */

static void user_pump(api_sse_t *s);

/*
 * The most user-stream events a stream keeps waiting: a stream that starts
 * from the user's whole history (no Last-Event-ID) reads it in batches of
 * 100 while each terminal event waits for its generation's read, so without
 * a bound it would hold the whole history (up to FARM_EVENTS_USER_MAXLEN) at
 * once. Past it the watch is held; below half of it, released.
 */
#define API_SSE_USER_PEND_MAX 256

/* The user-stream event at the head, off the list (the caller frees it). */
static user_ev_t *user_take_head(api_sse_t *s)
{
    user_ev_t *e = s->pend_head;
    s->pend_head = e->next;
    if (s->pend_head == NULL)
        s->pend_tail = NULL;
    if (--s->pend_n < API_SSE_USER_PEND_MAX / 2 && s->watch)
        queue_watch_hold(s->watch, 0);
    return e;
}

/* Writes the user-stream event at the head and drops it; `gen` is its generation, read
 * for a terminal event (NULL for any other event: written as the queue has it). */
static int user_write_head(api_sse_t *s, json_t *gen)
{
    user_ev_t *e = user_take_head(s);
    int rc;
    if (gen != NULL) {
        rc = api__sse_write_terminal(s, e->sid, gen);
    } else {
        queue_event_t ev = {.type = e->type, .data = e->data};
        char *text = event_data(s->api, e->gen, &ev);
        const char *status;
        rc = sse_write(s, e->sid, client_event(e->type, &status), text ? text : "{}");
        free(text);
    }
    user_ev_free(e);
    return rc;
}

/*
 * A terminal event's generation, read: written under the status Postgres
 * recorded. Without one (Postgres unreadable, or the queue ended the job
 * before Postgres did) the stream ends before it: the client resumes from
 * the last event it has and meets this one again (on_hub_terminal). A
 * generation deleted since (only a finished one can be) has no record to
 * send: its terminal event is skipped, and the stream goes on.
 */
static void on_user_terminal(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    json_t *gen = err->code == 0 ? api__generation_json(&call->res.generation) : NULL;
    int deleted = err->code == GF_ENOTFOUND;
    sse_call_done(s); /* `err` and `call` are gone */
    s->user_fetching = 0;
    s->in_callback = 1; /* a stream ended here is freed below, not under us */
    if (!s->finished && s->pend_head) {
        if (gen != NULL && api__sse_final_status(gen) != NULL) {
            if (user_write_head(s, gen) == 0)
                user_pump(s);
        } else if (deleted) {
            user_ev_free(user_take_head(s));
            user_pump(s);
        } else {
            api__sse_finish(s);
        }
    }
    json_decref(gen);
    s->in_callback = 0;
    api__sse_free_maybe(s);
}

/* Writes the waiting events in order until one needs its generation read. */
static void user_pump(api_sse_t *s)
{
    while (!s->finished && !s->user_fetching && s->pend_head) {
        user_ev_t *e = s->pend_head;
        if (api__sse_is_terminal(e->type)) {
            store_call_t *call = sse_call(s);
            store_call_generation(call, e->gen, s->sub);
            if (api__store_exec(s->api, call, on_user_terminal, s) == 0) {
                s->store_pending = 1;
                s->user_fetching = 1;
                if (s->api->m_sse_terminal_reads)
                    gf_metric_inc(s->api->m_sse_terminal_reads);
            } else {
                sse_call_done(s);
                api__sse_finish(s); /* resumed from here when the client reconnects */
            }
            return;
        }
        if (user_write_head(s, NULL) < 0)
            return;
    }
}

static void on_user_events(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e,
                           void *data)
{
    (void)w;
    api_sse_t *s = data;
    if (err->code < 0) {
        s->watch = NULL;
        api__sse_finish(s);
        return;
    }
    for (size_t i = 0; i < e->n; i++) {
        const queue_event_t *ev = &e->ev[i];
        user_ev_t *u = gf_xcalloc(1, sizeof(*u));
        u->sid = gf_xstrdup(ev->stream_id ? ev->stream_id : "");
        u->gen = gf_xstrdup(ev->gen_id ? ev->gen_id : "");
        u->type = gf_xstrdup(ev->type ? ev->type : "unknown");
        u->data = ev->data ? gf_xstrdup(ev->data) : NULL;
        if (s->pend_tail)
            s->pend_tail->next = u;
        else
            s->pend_head = u;
        s->pend_tail = u;
        s->pend_n++;
    }
    if (s->pend_n >= API_SSE_USER_PEND_MAX)
        queue_watch_hold(s->watch, 1);
    user_pump(s);
}

/* --- beginning a stream ------------------------------------------------------------ */

/* Sends the stream's headers and first bytes, then follows the events and starts the heartbeat. */
static void sse_begin(api_sse_t *s)
{
    gf_http_set_header(s->req, "Cache-Control", "no-cache");
    gf_http_set_header(s->req, "X-Accel-Buffering", "no");
    gf_http_set_header(s->req, "X-Content-Type-Options", "nosniff");
    gf_http_req_on_close(s->req, on_client_gone, s);
    s->started = 1;
    if (gf_http_stream_start(s->req, 200, "text/event-stream; charset=utf-8") < 0 ||
        gf_http_stream_write(s->req, "retry: 2000\n\n", 13) < 0) {
        api__sse_finish(s);
        return;
    }
    if (s->finished_gen) {
        if (api__sse_replay(s) == 0)
            return;
        if (s->after >= SSE_MADE_TERMINAL_ID)
            api__sse_finish(s);
        else
            api__sse_terminal(s, SSE_MADE_TERMINAL_ID);
        return;
    }
    int rc;
    if (s->gen_id[0]) {
        rc = api__sse_hub_join(s);
    } else {
        gf_err_t err = {0};
        s->watch = queue_watch_user(s->api->queue, s->sub, s->after_user, on_user_events, s, &err);
        rc = s->watch ? 0 : -1;
        free(s->after_user); /* the watch has its own copy */
        s->after_user = NULL;
    }
    if (rc < 0) {
        /* Redis is down: end now; the client reconnects with Last-Event-ID and loses nothing. */
        api__sse_finish(s);
        return;
    }
    ping_start(s);
    api__sse_trim_soon(s->api);
}

static void on_owner_checked(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    if (err->code < 0) {
        api__fail(s->req, err->code, err);
        sse_call_done(s);   /* `err` is the call's: freed here, after its use */
        api__sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    int gs = gf_gen_status_parse(call->res.generation.status);
    if (gs != GF_GEN_QUEUED && gs != GF_GEN_RUNNING) {
        /* Finished: this record is the terminal event's data; no second read. */
        s->finished_gen = 1;
        s->record = api__generation_json(&call->res.generation);
    }
    sse_call_done(s);
    sse_begin(s);
}

/* Authenticates, enforces the per-user limit, registers the stream; NULL when answered. */
static api_sse_t *sse_new(api_t *api, gf_http_req_t *req)
{
    api_principal_t who;
    if (api__auth(api, req, &who, 1) < 0)
        return NULL;
    /* O(1): a count per user, not a walk over every open stream. */
    if (user_open_add(api, who.sub, +1) >= api->cfg->sse_max_per_user) {
        user_open_add(api, who.sub, -1);
        gf_http_set_header(req, "Retry-After", "5");
        api__error(req, 429, "rate_limited", "too many open event streams for this user", NULL);
        return NULL;
    }
    gf_http_req_set_user(req, NULL, NULL); /* the gate's caller, read: a stream keeps only its id */
    api_sse_t *s = gf_slab_alloc(&api->sse_slab);
    s->api = api;
    s->req = req;
    snprintf(s->sub, sizeof(s->sub), "%s", who.sub);
    s->next = api->streams;
    if (api->streams)
        api->streams->prev = s;
    api->streams = s;
    return s;
}

/*
 * Last-Event-ID of a generation stream: plain decimal digits, at most 15 of
 * them (ids count from 1 and stay far below; 15 digits are exact in the
 * queue's Lua numbers). No sign, space or overflow, unlike strtoull.
 */
static int parse_gen_event_id(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || strspn(s, "0123456789") != n)
        return -1;
    *out = strtoull(s, NULL, 10);
    return 0;
}

/* How far a user stream cursor's time may be ahead of our clock (clock skew between hosts). */
#define USER_CURSOR_AHEAD_MS (10 * 60 * 1000ULL)

/* One part of a stream id: 1-20 digits that fit 64 bits (Redis refuses more). */
static const char *stream_id_part(const char *s, unsigned long long *v)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 20)
        return NULL;
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno == 0 && end == s + n ? end : NULL;
}

/*
 * Last-Event-ID of the user stream: a Redis stream id "<ms>-<seq>", as we
 * send them. Redis refuses a part past 64 bits, and a cursor from the
 * future hides every event until that time: either left the stream open
 * and silent.
 */
static int user_event_id_ok(const char *s)
{
    unsigned long long ms, seq;
    const char *p = stream_id_part(s, &ms);
    if (p == NULL || *p != '-' || (p = stream_id_part(p + 1, &seq)) == NULL || *p != '\0')
        return 0;
    return ms <= (unsigned long long)gf_clock_unix_ms() + USER_CURSOR_AHEAD_MS;
}

static void on_generation_stream(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    const char *id = gf_http_req_param(req, "id");
    const char *last = gf_http_req_header(req, "last-event-id");
    api_sse_t *s = sse_new(api, req);
    if (s == NULL)
        return;
    if (!api_is_uuid(id) || (last && parse_gen_event_id(last, &s->after) < 0)) {
        if (!api_is_uuid(id))
            api__error(req, 404, "not_found", "no such generation", NULL);
        else
            api__error(req, 400, "invalid_request", "Last-Event-ID must be an event number",
                       "Last-Event-ID");
        api__sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    snprintf(s->gen_id, sizeof(s->gen_id), "%s", id);
    s->last_id = s->after;
    /* Its live hub knows the owner already (its first stream's owner check
     * read it, and it never changes): the stream joins without a read. */
    if (api__sse_hub_owned_by(api, s->gen_id, s->sub)) {
        sse_begin(s);
        return;
    }
    /* Only its owner may follow a generation: 404 otherwise, as for GET. */
    store_call_t *call = sse_call(s);
    store_call_generation(call, s->gen_id, s->sub);
    if (api__store_exec(api, call, on_owner_checked, s) == 0) {
        s->store_pending = 1;
        return;
    }
    sse_call_done(s);
    api__fail(req, GF_EUNAVAIL, NULL);
    api__sse_finish(s); /* answered: not started, so nothing else to end */
}

static void on_user_stream(gf_http_req_t *req, void *data)
{
    api_sse_t *s = sse_new(data, req);
    if (s == NULL)
        return;
    const char *last = gf_http_req_header(req, "last-event-id");
    if (last && !user_event_id_ok(last)) {
        /* A cursor Redis refuses would leave the watch failing silently forever. */
        api__error(req, 400, "invalid_request", "Last-Event-ID must be an event id of this stream",
                   "Last-Event-ID");
        api__sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    if (last)
        s->after_user = gf_xstrdup(last);
    sse_begin(s);
}

void api__events_close_all(api_t *api)
{
    api->sse_closed = 1;
    for (api_sse_t *s = api->streams; s;) {
        api_sse_t *next = s->next;
        /* A stream not started yet is still a request waiting on its owner
         * check: on_owner_checked answers it (the store's close fails the
         * check). Finishing it here dropped s->req unanswered, and the
         * callback then answered NULL. */
        if (s->started)
            api__sse_finish(s);
        s = next;
    }
    if (api->sse_ping_on) {
        api->sse_ping_on = 0;
        uv_close((uv_handle_t *)&api->sse_ping_timer, NULL);
    }
    if (api->sse_trim_on) {
        api->sse_trim_on = 0;
        uv_close((uv_handle_t *)&api->sse_trim_timer, NULL);
    }
}

void api__events_routes(api_t *api)
{
    gf_slab_init(&api->sse_slab, sizeof(api_sse_t));
    api->m_sse_terminal_reads = gf_metric_with(
        gf_metrics_counter(api->metrics, "farm_sse_terminal_reads_total",
                           "reads of a generation from Postgres for SSE terminal events: one per "
                           "generation for its streams, one per terminal event of a user stream",
                           NULL),
        NULL, NULL, NULL);
    gf_httpd_route(api->httpd, "GET", "/v1/generations/:id/events", 0, on_generation_stream, api);
    gf_httpd_route(api->httpd, "GET", "/v1/events", 0, on_user_stream, api);
}
