/*
 * api/events.c - progress over Server-Sent Events (API.md):
 * GET /v1/generations/:id/events and GET /v1/events.
 *
 * A stream replays the events after Last-Event-ID from the queue, then
 * follows live ones through a queue watch. Every watch of the process shares
 * the queue's one subscription, and a watch delivers each event once and in
 * order, so there is no gap and no duplicate at the seam between replay and
 * live. A generation's stream ends after its terminal event, whose data is
 * the generation as GET returns it (read from Postgres, the record).
 *
 * Lifetime: a stream is freed once it is finished and nothing of it is in
 * flight: no store call (`store_pending`), no replay read (`read_pending`),
 * no heartbeat timer still closing (`ping_open`); sse_free_maybe() checks.
 */
#include "api_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct api_sse {
    struct api_sse *next, *prev;
    api_t *api;
    gf_http_req_t *req;
    api_principal_t who;
    char gen_id[37]; /* empty for the user stream */
    uint64_t after;
    char *after_user;
    uint64_t last_id; /* the last generation event written */
    queue_watch_t *watch;
    uv_timer_t ping;
    int ping_open;
    store_call_t call;
    int store_pending;
    int started, finished;
    uint64_t terminal_id;
    char finished_status[16]; /* the generation was already finished when the stream began */
    int read_pending;         /* a replay read of a finished generation is in flight */
    /* The user stream's events not written yet: they wait behind a terminal
     * event while its generation is read (it is written whole, in order). */
    struct user_ev *pend_head, *pend_tail;
    int user_fetching;
} api_sse_t;

/* A user-stream event, owned (a watch's events are borrowed only during its callback). */
typedef struct user_ev {
    struct user_ev *next;
    char *sid, *gen, *type, *data;
} user_ev_t;

/* Whether an event of this type ends its generation's stream (core/include/vocab.h). */
/*
 * The id of a terminal event made from Postgres once the queue's events of a
 * finished generation are gone: the largest id a generation stream accepts
 * (15 digits), the same on every reconnect, so a client that has it gets
 * nothing more instead of a new terminal event under a new id each time.
 */
#define SSE_MADE_TERMINAL_ID 999999999999999ULL

static int is_terminal(const char *type)
{
    return gf_event_is_terminal(gf_event_parse(type));
}

static void sse_free_maybe(api_sse_t *s);

/* One user's count of open streams (a node exists only while it is above 0). */
typedef struct api_sse_user {
    struct api_sse_user *next;
    char sub[37];
    long long open;
} api_sse_user_t;

static api_sse_user_t **user_slot(api_t *api, const char *sub)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sub; *p; p++)
        h = (h ^ *p) * 16777619u;
    api_sse_user_t **pp = &api->sse_users[h % API_SSE_USER_BUCKETS];
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

static void on_ping_closed(uv_handle_t *h)
{
    api_sse_t *s = h->data;
    s->ping_open = 0;
    sse_free_maybe(s);
}

/* Ends the stream (once): stops the watch and the heartbeat, finishes the request. */
static void sse_finish(api_sse_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    if (s->watch) {
        queue_watch_stop(s->watch);
        s->watch = NULL;
    }
    if (s->ping_open && !uv_is_closing((uv_handle_t *)&s->ping))
        uv_close((uv_handle_t *)&s->ping, on_ping_closed);
    if (s->started)
        gf_http_stream_end(s->req);
    s->req = NULL;
    sse_free_maybe(s);
}

static void sse_free_maybe(api_sse_t *s)
{
    if (!s->finished || s->store_pending || s->ping_open || s->read_pending)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else if (s->api->streams == s)
        s->api->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    user_open_add(s->api, s->who.sub, -1);
    while (s->pend_head) {
        user_ev_t *e = s->pend_head;
        s->pend_head = e->next;
        free(e->sid);
        free(e->gen);
        free(e->type);
        free(e->data);
        free(e);
    }
    store_call_dispose(&s->call);
    free(s->after_user);
    free(s);
}

static void on_client_gone(gf_http_req_t *req, void *data)
{
    (void)req;
    sse_finish(data);
}

/* Writes one event; a client that cannot keep up is dropped (the stream ends). */
static int sse_write(api_sse_t *s, const char *id, const char *name, const char *data)
{
    gf_buf_t b = {0};
    gf_buf_printf(&b, "id: %s\nevent: %s\ndata: %s\n\n", id, name, data);
    int rc = gf_http_stream_write(s->req, b.p, b.len);
    gf_buf_dispose(&b);
    if (rc < 0)
        sse_finish(s);
    return rc;
}

static void on_ping(uv_timer_t *t)
{
    api_sse_t *s = t->data;
    if (gf_http_stream_write(s->req, ": ping\n\n", 8) < 0)
        sse_finish(s);
}

/*
 * The data of an event: its own JSON object, or a small object naming the
 * generation. An `image` event's outputs get their signed `url` (and lose
 * the storage key), as in GET.
 */
static char *event_data(api_t *api, const char *gen_id, const queue_event_t *ev)
{
    json_t *d = ev->data ? json_loads(ev->data, JSON_DECODE_ANY, NULL) : NULL;
    if (!json_is_object(d)) {
        json_decref(d);
        d = json_pack("{s:s, s:s}", "id", gen_id, "status", ev->type);
    } else if (json_object_get(d, "id") == NULL) {
        json_object_set_new(d, "id", json_string(gen_id));
    }
    api__sign_outputs(api, d);
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    return text;
}

/*
 * The status a terminal event is named after: the one Postgres recorded (the
 * record GET reads), whatever the queue's word was ('done', 'canceled', a
 * dead letter's 'failed'); NULL while Postgres has no final status yet (the
 * queue ended the job first: the sweeper or a worker is about to finish it).
 */
static const char *final_status(json_t *gen)
{
    const char *status = json_string_value(json_object_get(gen, "status"));
    int st = status ? gf_gen_status_parse(status) : -1;
    return st >= 0 && gf_gen_status_is_final((gf_gen_status)st) ? status : NULL;
}

/* Writes a terminal event with the whole generation (API.md), named after its final status. */
static int write_terminal(api_sse_t *s, const char *id, json_t *gen)
{
    api__sign_outputs(s->api, gen);
    const char *name = final_status(gen);
    char *text = json_dumps(gen, JSON_COMPACT);
    int rc = sse_write(s, id, name, text ? text : "{}");
    free(text);
    return rc;
}

/*
 * The generation read for its terminal event. Without a final status in
 * Postgres (or without Postgres) nothing is written and the stream ends:
 * the client reconnects with its Last-Event-ID and meets the same terminal
 * event again, read again, so no client is ever told another status than GET's.
 */
static void on_terminal_generation(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    json_t *gen = err->code == 0 ? api__generation_json(&call->res.generation) : NULL;
    /* store_pending stays set while writing: a failed write finishes the stream
     * but must not free it under us. */
    if (!s->finished && gen != NULL && final_status(gen) != NULL) {
        char id[24];
        snprintf(id, sizeof(id), "%" PRIu64, s->terminal_id);
        write_terminal(s, id, gen);
    }
    json_decref(gen);
    s->store_pending = 0;
    if (s->finished)
        sse_free_maybe(s);
    else
        sse_finish(s);
}

/* The terminal event carries the whole generation: read it, then write and end. */
static void sse_terminal(api_sse_t *s, uint64_t id)
{
    if (s->watch) {
        queue_watch_stop(s->watch);
        s->watch = NULL;
    }
    s->terminal_id = id;
    store_call_dispose(&s->call);
    store_call_generation(&s->call, s->gen_id, s->who.sub);
    if (store_exec(s->api->store, &s->call, on_terminal_generation, s) < 0) {
        sse_finish(s);
        return;
    }
    s->store_pending = 1;
}

/*
 * Writes a generation's events past the last one written, in order; the
 * terminal one goes through sse_terminal(). Returns 0 when all were written,
 * 1 when the terminal event was reached, < 0 when the client is gone.
 */
static int write_gen_events(api_sse_t *s, const queue_events_t *e)
{
    for (size_t i = 0; i < e->n && !s->finished; i++) {
        const queue_event_t *ev = &e->ev[i];
        if (ev->id <= s->last_id) {
            /* The terminal event at or before a client's Last-Event-ID: at
             * it, the client has everything; before it (a cursor past the
             * end), the client gets it once, under its own id. Either way
             * the stream ends rather than wait for an event that never comes. */
            if (is_terminal(ev->type) && ev->id <= s->after) {
                if (ev->id == s->after)
                    sse_finish(s);
                else
                    sse_terminal(s, ev->id);
                return 1;
            }
            continue;
        }
        s->last_id = ev->id;
        if (is_terminal(ev->type)) {
            sse_terminal(s, ev->id);
            return 1;
        }
        char id[24];
        snprintf(id, sizeof(id), "%" PRIu64, ev->id);
        char *text = event_data(s->api, s->gen_id, ev);
        int rc = sse_write(s, id, ev->type, text ? text : "{}");
        free(text);
        if (rc < 0)
            return rc;
    }
    return s->finished ? -1 : 0;
}

static void on_gen_events(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e,
                          void *data)
{
    (void)w;
    api_sse_t *s = data;
    if (err->code < 0) {
        s->watch = NULL; /* a watch that reports a final status is over */
        sse_finish(s);
        return;
    }
    write_gen_events(s, e);
}

static void user_pump(api_sse_t *s);

/* Writes the user-stream event at the head and drops it; `gen` is its generation, read
 * for a terminal event (NULL for any other event: written as the queue has it). */
static int user_write_head(api_sse_t *s, json_t *gen)
{
    user_ev_t *e = s->pend_head;
    s->pend_head = e->next;
    if (s->pend_head == NULL)
        s->pend_tail = NULL;
    int rc;
    if (gen != NULL) {
        rc = write_terminal(s, e->sid, gen);
    } else {
        queue_event_t ev = {.type = e->type, .data = e->data};
        char *text = event_data(s->api, e->gen, &ev);
        rc = sse_write(s, e->sid, e->type, text ? text : "{}");
        free(text);
    }
    free(e->sid);
    free(e->gen);
    free(e->type);
    free(e->data);
    free(e);
    return rc;
}

/*
 * A terminal event's generation, read: written under the status Postgres
 * recorded. Without one (Postgres unreadable, or the queue ended the job
 * before Postgres did) the stream ends before it: the client resumes from
 * the last event it has and meets this one again (on_terminal_generation).
 */
static void on_user_terminal(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    s->store_pending = 0;
    s->user_fetching = 0;
    if (!s->finished && s->pend_head) {
        json_t *gen = err->code == 0 ? api__generation_json(&call->res.generation) : NULL;
        if (gen != NULL && final_status(gen) != NULL) {
            if (user_write_head(s, gen) == 0)
                user_pump(s);
        } else {
            sse_finish(s);
        }
        json_decref(gen);
    }
    sse_free_maybe(s);
}

/* Writes the waiting events in order until one needs its generation read. */
static void user_pump(api_sse_t *s)
{
    while (!s->finished && !s->user_fetching && s->pend_head) {
        user_ev_t *e = s->pend_head;
        if (is_terminal(e->type)) {
            store_call_dispose(&s->call);
            store_call_generation(&s->call, e->gen, s->who.sub);
            if (store_exec(s->api->store, &s->call, on_user_terminal, s) == 0) {
                s->store_pending = 1;
                s->user_fetching = 1;
            } else {
                sse_finish(s); /* resumed from here when the client reconnects */
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
        sse_finish(s);
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
    }
    user_pump(s);
}

/*
 * A finished generation: replay what the queue still has after the cursor,
 * then the terminal event (the queue's own, or one made from Postgres when
 * the queue's events have expired), and end. The read starts at the cursor
 * itself: when that event is the terminal one, the client has seen
 * everything, and the stream ends with nothing new. A terminal event made
 * from Postgres always has SSE_MADE_TERMINAL_ID. (An EventSource reconnects
 * after every end; one made up at cursor + 1 would come back every 2 s,
 * under a new id each time.)
 */
static void on_replay_read(queue_t *q, const gf_err_t *err, const queue_events_t *e, void *data)
{
    (void)q;
    api_sse_t *s = data;
    s->read_pending = 0;
    if (s->finished) {
        sse_free_maybe(s);
        return;
    }
    if ((err->code == GF_OK && s->after > 0 && e->n > 0 && e->ev[0].id == s->after &&
         is_terminal(e->ev[0].type)) ||
        s->after >= SSE_MADE_TERMINAL_ID) {
        sse_finish(s); /* the client has the terminal event already */
        return;
    }
    if (err->code == GF_OK && write_gen_events(s, e) != 0)
        return; /* the terminal event came from the queue, or the client is gone */
    sse_terminal(s, SSE_MADE_TERMINAL_ID);
}

/* Sends the stream's headers and first bytes, then starts the watch and the heartbeat. */
static void sse_begin(api_sse_t *s)
{
    gf_http_set_header(s->req, "Cache-Control", "no-cache");
    gf_http_set_header(s->req, "X-Accel-Buffering", "no");
    gf_http_set_header(s->req, "X-Content-Type-Options", "nosniff");
    gf_http_req_on_close(s->req, on_client_gone, s);
    s->started = 1;
    if (gf_http_stream_start(s->req, 200, "text/event-stream; charset=utf-8") < 0 ||
        gf_http_stream_write(s->req, "retry: 2000\n\n", 13) < 0) {
        sse_finish(s);
        return;
    }
    if (s->finished_status[0]) {
        uint64_t from = s->after > 0 ? s->after - 1 : 0; /* the cursor's own event too */
        if (queue_events_read(s->api->queue, s->gen_id, from, 1000, on_replay_read, s) == 0)
            s->read_pending = 1;
        else if (s->after >= SSE_MADE_TERMINAL_ID)
            sse_finish(s);
        else
            sse_terminal(s, SSE_MADE_TERMINAL_ID);
        return;
    }
    gf_err_t err = {0};
    /* A generation's watch starts at its first event, whatever the cursor: the
     * events up to the cursor are skipped (write_gen_events), but a terminal
     * event among them must still end the stream. */
    s->watch = s->gen_id[0] ? queue_watch_gen(s->api->queue, s->gen_id, 0, on_gen_events, s, &err)
                            : queue_watch_user(s->api->queue, s->who.sub, s->after_user,
                                               on_user_events, s, &err);
    if (s->watch == NULL) {
        /* Redis is down: end now; the client reconnects with Last-Event-ID and loses nothing. */
        sse_finish(s);
        return;
    }
    uv_timer_init(s->api->loop, &s->ping);
    s->ping.data = s;
    s->ping_open = 1;
    uint64_t every = (uint64_t)s->api->cfg->sse_heartbeat_s * 1000;
    uv_timer_start(&s->ping, on_ping, every, every);
}

static void on_owner_checked(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    s->store_pending = 0;
    if (err->code < 0) {
        api__fail(s->req, err->code, err);
        sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    const char *status = call->res.generation.status;
    int gs = gf_gen_status_parse(status);
    if (gs != GF_GEN_QUEUED && gs != GF_GEN_RUNNING)
        snprintf(s->finished_status, sizeof(s->finished_status), "%s", status);
    sse_begin(s);
}

/* Authenticates, enforces the per-user limit, registers the stream; NULL when answered. */
static api_sse_t *sse_new(api_t *api, gf_http_req_t *req)
{
    api_sse_t *s = gf_xcalloc(1, sizeof(*s));
    s->api = api;
    s->req = req;
    if (api__auth(api, req, &s->who, 1) < 0) {
        free(s);
        return NULL;
    }
    /* O(1): a count per user, not a walk over every open stream. */
    if (user_open_add(api, s->who.sub, +1) >= api->cfg->sse_max_per_user) {
        user_open_add(api, s->who.sub, -1);
        gf_http_set_header(req, "Retry-After", "5");
        api__error(req, 429, "rate_limited", "too many open event streams for this user", NULL);
        free(s);
        return NULL;
    }
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
        sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    snprintf(s->gen_id, sizeof(s->gen_id), "%s", id);
    s->last_id = s->after;
    /* Only its owner may follow a generation: 404 otherwise, as for GET. */
    store_call_generation(&s->call, s->gen_id, s->who.sub);
    if (store_exec(api->store, &s->call, on_owner_checked, s) == 0) {
        s->store_pending = 1;
        return;
    }
    api__fail(req, GF_EUNAVAIL, NULL);
    sse_finish(s); /* answered: not started, so nothing else to end */
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
        sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    if (last)
        s->after_user = gf_xstrdup(last);
    sse_begin(s);
}

void api__events_close_all(api_t *api)
{
    for (api_sse_t *s = api->streams; s;) {
        api_sse_t *next = s->next;
        /* A stream not started yet is still a request waiting on its owner
         * check: on_owner_checked answers it (the store's close fails the
         * check). Finishing it here dropped s->req unanswered, and the
         * callback then answered NULL. */
        if (s->started)
            sse_finish(s);
        s = next;
    }
}

void api__events_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "GET", "/v1/generations/:id/events", 0, on_generation_stream, api);
    gf_httpd_route(api->httpd, "GET", "/v1/events", 0, on_user_stream, api);
}
