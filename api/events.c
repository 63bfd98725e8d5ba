/*
 * api/events.c - progress over Server-Sent Events (API.md):
 * GET /v1/generations/:id/events and GET /v1/events.
 *
 * A generation's live streams share one hub (sse_hub_t): one queue watch
 * from its first event, each event made once into a frame shared by every
 * listener (gf_http_stream_write_frame: no copy per listener), and one read
 * of the generation from Postgres for the terminal event, whose data is the
 * generation as GET returns it (the record). A stream that joins a hub which
 * has already delivered events past its cursor first reads them from the
 * queue itself (catching up), then follows the hub: the queue answers its
 * reads in order on one connection, so the hub's next events come after
 * that read's, with no gap and no duplicate at the seam. A generation
 * already finished when its stream begins replays from the queue and ends
 * with the record the owner check read (no second read). The user stream
 * keeps a watch of its own. Every stream's heartbeat is one node of one
 * queue (api->sse_pings) on one timer.
 *
 * Lifetime: a stream is freed once it is finished and nothing of it is in
 * flight: no store call (`store_pending`), no replay or catch-up read
 * (`read_pending`), no callback still using it (`in_callback`);
 * sse_free_maybe() checks. A hub is freed once it has no
 * listener, is not delivering (`busy`) and has no store call in flight.
 */
#include "api_int.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sse_hub sse_hub_t;

/* A user-stream event, owned (a watch's events are borrowed only during its callback). */
typedef struct user_ev {
    struct user_ev *next;
    char *sid, *gen, *type, *data;
} user_ev_t;

/* One open stream; kept small, for an idle stream costs only this and its connection. */
typedef struct api_sse {
    struct api_sse *next, *prev;   /* api->streams */
    struct api_sse *hnext, *hprev; /* its hub's listeners */
    gf_due_t ping;                 /* its heartbeat in api->sse_pings */
    api_t *api;
    gf_http_req_t *req;
    sse_hub_t *hub;       /* a live generation stream's */
    queue_watch_t *watch; /* the user stream's */
    store_call_t *call;   /* a store call in flight (the owner check, a user-stream terminal) */
    json_t *record;       /* a finished generation, as the owner check read it */
    char *after_user;
    /* The user stream's events not written yet: they wait behind a terminal
     * event while its generation is read (it is written whole, in order). */
    user_ev_t *pend_head, *pend_tail;
    uint64_t after;   /* Last-Event-ID of a generation stream */
    uint64_t last_id; /* the last generation event written */
    char sub[37];
    char gen_id[37]; /* empty for the user stream */
    unsigned started : 1, finished : 1, store_pending : 1, read_pending : 1, user_fetching : 1;
    unsigned finished_gen : 1;      /* the generation was already finished when the stream began */
    unsigned catching_up : 1;       /* its own read of the events before the hub's is in flight */
    unsigned awaiting_terminal : 1; /* it reached the terminal event: its hub reads it */
    unsigned in_callback : 1;       /* a callback still uses it: not freed until it returns */
} api_sse_t;

/* A hub's terminal event: not met yet, being read, ready to write, or none to give. */
enum { TERM_NONE, TERM_FETCHING, TERM_READY, TERM_ENDED };

struct sse_hub {
    sse_hub_t *next; /* bucket chain of api->sse_hubs */
    api_t *api;
    char gen_id[37];
    char sub[37]; /* the owner (every listener passed the owner check) */
    queue_watch_t *watch;
    api_sse_t *head; /* listeners */
    size_t n;
    uint64_t last; /* the id of the last event the watch delivered (0: none yet) */
    int busy;      /* delivering: listeners may leave, the hub stays */
    int term;
    uint64_t term_id;
    gf_http_frame_t *term_frame; /* TERM_READY */
    store_call_t call;
    int store_pending;
};

/*
 * The id of a terminal event made from Postgres once the queue's events of a
 * finished generation are gone: the largest id a generation stream accepts
 * (15 digits), the same on every reconnect, so a client that has it gets
 * nothing more instead of a new terminal event under a new id each time.
 */
#define SSE_MADE_TERMINAL_ID 999999999999999ULL

/* Whether an event of this type ends its generation's stream (core/include/vocab.h). */
static int is_terminal(const char *type)
{
    return gf_event_is_terminal(gf_event_parse(type));
}

static unsigned fnv1a(const char *s)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void sse_free_maybe(api_sse_t *s);
static void hub_leave(api_sse_t *s);

/* One user's count of open streams (a node exists only while it is above 0). */
typedef struct api_sse_user {
    struct api_sse_user *next;
    char sub[37];
    long long open;
} api_sse_user_t;

static api_sse_user_t **user_slot(api_t *api, const char *sub)
{
    api_sse_user_t **pp = &api->sse_users[fnv1a(sub) % API_SSE_USER_BUCKETS];
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

static void sse_finish(api_sse_t *s);

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
            sse_finish(s);
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
static void trim_soon(api_t *api)
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
static void sse_finish(api_sse_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    if (s->watch) {
        queue_watch_stop(s->watch);
        s->watch = NULL;
    }
    gf_dueq_remove(&s->api->sse_pings, &s->ping);
    hub_leave(s);
    if (s->started)
        gf_http_stream_end(s->req);
    s->req = NULL;
    sse_free_maybe(s);
}

static void user_ev_free(user_ev_t *e)
{
    free(e->sid);
    free(e->gen);
    free(e->type);
    free(e->data);
    free(e);
}

static void sse_free_maybe(api_sse_t *s)
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
    sse_finish(data);
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
static int sse_write_frame(api_sse_t *s, gf_http_frame_t *f)
{
    int rc = gf_http_stream_write_frame(s->req, f);
    if (rc < 0)
        sse_finish(s);
    return rc;
}

static int sse_write(api_sse_t *s, const char *id, const char *name, const char *data)
{
    gf_http_frame_t *f = event_frame(id, name, data);
    int rc = sse_write_frame(s, f);
    gf_http_frame_unref(f);
    return rc;
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

/* A generation event's frame, made once for however many streams write it. */
static gf_http_frame_t *gen_event_frame(api_t *api, const char *gen_id, const queue_event_t *ev)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, ev->id);
    char *text = event_data(api, gen_id, ev);
    gf_http_frame_t *f = event_frame(id, ev->type, text ? text : "{}");
    free(text);
    return f;
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

/* A terminal event with the whole generation (API.md), named after its final status. */
static gf_http_frame_t *terminal_frame(api_t *api, const char *id, json_t *gen)
{
    api__sign_outputs(api, gen);
    char *text = json_dumps(gen, JSON_COMPACT);
    gf_http_frame_t *f = event_frame(id, final_status(gen), text ? text : "{}");
    free(text);
    return f;
}

static int write_terminal(api_sse_t *s, const char *id, json_t *gen)
{
    gf_http_frame_t *f = terminal_frame(s->api, id, gen);
    int rc = sse_write_frame(s, f);
    gf_http_frame_unref(f);
    return rc;
}

/* --- hubs: a generation's live streams together ---------------------------------- */

static sse_hub_t **hub_slot(api_t *api, const char *gen_id)
{
    sse_hub_t **pp = &api->sse_hubs[fnv1a(gen_id) % API_SSE_HUB_BUCKETS];
    while (*pp && strcmp((*pp)->gen_id, gen_id) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void hub_free_maybe(sse_hub_t *hub)
{
    if (hub->n > 0 || hub->busy || hub->store_pending)
        return;
    sse_hub_t **pp = hub_slot(hub->api, hub->gen_id);
    if (*pp == hub)
        *pp = hub->next;
    if (hub->watch)
        queue_watch_stop(hub->watch);
    gf_http_frame_unref(hub->term_frame);
    store_call_dispose(&hub->call);
    free(hub);
}

static void hub_leave(api_sse_t *s)
{
    sse_hub_t *hub = s->hub;
    if (hub == NULL)
        return;
    if (s->hprev)
        s->hprev->hnext = s->hnext;
    else
        hub->head = s->hnext;
    if (s->hnext)
        s->hnext->hprev = s->hprev;
    s->hnext = s->hprev = NULL;
    s->hub = NULL;
    hub->n--;
    if (hub->n == 0 && hub->watch) {
        queue_watch_stop(hub->watch); /* nobody follows it: no more reads for it */
        hub->watch = NULL;
    }
    hub_free_maybe(hub);
}

/* Writes the hub's terminal event (when it has one) to a stream that reached it, and ends it. */
static void hub_serve_terminal(sse_hub_t *hub, api_sse_t *s)
{
    s->awaiting_terminal = 0;
    if (hub->term == TERM_READY && sse_write_frame(s, hub->term_frame) < 0)
        return; /* ended (and maybe freed) by the failed write */
    sse_finish(s);
}

/*
 * The generation read once for the terminal event of every listener. Without
 * a final status in Postgres (or without Postgres) nothing is written and the
 * streams end: each client reconnects with its Last-Event-ID and meets the
 * same terminal event again, read again, so no client is ever told another
 * status than GET's.
 */
static void on_hub_terminal(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    sse_hub_t *hub = data;
    hub->store_pending = 0;
    json_t *gen = err->code == 0 ? api__generation_json(&call->res.generation) : NULL;
    if (gen != NULL && final_status(gen) != NULL) {
        char id[24];
        snprintf(id, sizeof(id), "%" PRIu64, hub->term_id);
        hub->term_frame = terminal_frame(hub->api, id, gen);
        hub->term = TERM_READY;
    } else {
        hub->term = TERM_ENDED;
    }
    json_decref(gen);
    store_call_dispose(&hub->call);
    hub->busy++;
    for (api_sse_t *s = hub->head, *next; s; s = next) {
        next = s->hnext;
        if (s->awaiting_terminal)
            hub_serve_terminal(hub, s);
    }
    hub->busy--;
    hub_free_maybe(hub);
}

/*
 * A stream reached the terminal event `id`: it gets the hub's one read of
 * the generation (started by the first stream to get there).
 */
static void hub_terminal(sse_hub_t *hub, api_sse_t *s, uint64_t id)
{
    if (hub->term == TERM_NONE) {
        hub->term_id = id;
        store_call_generation(&hub->call, hub->gen_id, hub->sub);
        if (store_exec(hub->api->store, &hub->call, on_hub_terminal, hub) == 0) {
            hub->store_pending = 1;
            hub->term = TERM_FETCHING;
            if (hub->api->m_sse_terminal_reads)
                gf_metric_inc(hub->api->m_sse_terminal_reads);
        } else {
            store_call_dispose(&hub->call);
            hub->term = TERM_ENDED; /* resumed from here when the clients reconnect */
        }
    }
    if (hub->term_id != id) {
        /* A generation has one terminal event, so this is not expected: the
         * stream ends, and its client resumes and meets the event again. */
        sse_finish(s);
        return;
    }
    if (hub->term == TERM_FETCHING) {
        s->awaiting_terminal = 1;
        return;
    }
    hub_serve_terminal(hub, s);
}

/* --- a generation's events, for one stream ----------------------------------------- */

/*
 * The terminal event `id` for this stream: its hub's, or for a generation
 * finished before the stream began, made from the record its owner check read.
 */
static void sse_terminal(api_sse_t *s, uint64_t id)
{
    if (s->hub) {
        hub_terminal(s->hub, s, id);
        return;
    }
    if (s->record != NULL) {
        char text[24];
        snprintf(text, sizeof(text), "%" PRIu64, id);
        if (write_terminal(s, text, s->record) < 0)
            return; /* ended (and maybe freed) by the failed write */
    }
    sse_finish(s);
}

/*
 * One event for one stream, past the last one it wrote; `frame` holds the
 * event's frame once made (NULL until a stream needs it), so the streams
 * of a hub share one. Returns 0 to go on, 1 when the stream is done with
 * events (it reached the terminal event, or it ended).
 */
static int sse_gen_event(api_sse_t *s, const queue_event_t *ev, gf_http_frame_t **frame)
{
    if (ev->id <= s->last_id) {
        /* The terminal event at or before a client's Last-Event-ID: at it, the
         * client has everything; before it (a cursor past the end), the client
         * gets it once, under its own id. Either way the stream ends rather than
         * wait for an event that never comes. */
        if (is_terminal(ev->type) && ev->id <= s->after) {
            if (ev->id == s->after)
                sse_finish(s);
            else
                sse_terminal(s, ev->id);
            return 1;
        }
        return 0;
    }
    s->last_id = ev->id;
    if (is_terminal(ev->type)) {
        sse_terminal(s, ev->id);
        return 1;
    }
    if (*frame == NULL)
        *frame = gen_event_frame(s->api, s->gen_id, ev);
    return sse_write_frame(s, *frame) < 0;
}

/* The events of one read for one stream, in order; 0 when all were written, else 1 (as above). */
static int sse_gen_events(api_sse_t *s, const queue_events_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        gf_http_frame_t *frame = NULL;
        int done = sse_gen_event(s, &e->ev[i], &frame);
        gf_http_frame_unref(frame);
        if (done)
            return 1;
    }
    return s->finished;
}

/* The hub's watch: each event made once and written to every stream that follows the hub. */
static void on_hub_events(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e,
                          void *data)
{
    (void)w;
    sse_hub_t *hub = data;
    hub->busy++;
    if (err->code < 0) {
        hub->watch = NULL; /* a watch that reports a final status is over */
        while (hub->head)
            sse_finish(hub->head);
    }
    for (size_t i = 0; err->code == 0 && i < e->n; i++) {
        const queue_event_t *ev = &e->ev[i];
        hub->last = ev->id;
        gf_http_frame_t *frame = NULL;
        for (api_sse_t *s = hub->head, *next; s; s = next) {
            next = s->hnext;
            if (!s->catching_up && !s->awaiting_terminal)
                sse_gen_event(s, ev, &frame);
        }
        gf_http_frame_unref(frame);
        if (is_terminal(ev->type)) {
            if (hub->watch) {
                queue_watch_stop(hub->watch); /* nothing comes after it */
                hub->watch = NULL;
            }
            break;
        }
    }
    hub->busy--;
    hub_free_maybe(hub);
}

/*
 * A stream's own read of the events before the hub's: written, and the
 * stream follows the hub from there. Should the hub have delivered past what
 * this read saw (only possible when the queue's connection came back between
 * the two), the stream ends and its client resumes with its Last-Event-ID.
 */
static void on_catchup_read(queue_t *q, const gf_err_t *err, const queue_events_t *e, void *data)
{
    (void)q;
    api_sse_t *s = data;
    s->read_pending = 0;
    s->catching_up = 0;
    if (s->finished) {
        sse_free_maybe(s);
        return;
    }
    trim_soon(s->api); /* the last step of a setup */
    if (err->code < 0) {
        sse_finish(s); /* the client reconnects with Last-Event-ID and loses nothing */
        return;
    }
    if (sse_gen_events(s, e) != 0)
        return;
    if (s->hub && s->hub->last > s->last_id)
        sse_finish(s);
}

/* Reads a generation's events from the stream's cursor's own (a terminal event there ends it). */
static int sse_read_from_cursor(api_sse_t *s, queue_events_cb cb)
{
    uint64_t from = s->after > 0 ? s->after - 1 : 0;
    int max = (int)s->api->cfg->events_max_per_gen + 1;
    if (queue_events_read(s->api->queue, s->gen_id, from, max, cb, s) < 0)
        return -1;
    s->read_pending = 1;
    return 0;
}

/*
 * A live generation's stream joins the generation's hub (made, with its
 * watch from the first event, by the first stream). A stream whose cursor
 * is behind what the hub has delivered, or that joins once the hub met the
 * terminal event, reads what it misses first (the terminal event included).
 */
static int hub_join(api_sse_t *s)
{
    api_t *api = s->api;
    sse_hub_t **pp = hub_slot(api, s->gen_id), *hub = *pp;
    if (hub == NULL) {
        hub = gf_xcalloc(1, sizeof(*hub));
        hub->api = api;
        snprintf(hub->gen_id, sizeof(hub->gen_id), "%s", s->gen_id);
        snprintf(hub->sub, sizeof(hub->sub), "%s", s->sub);
        gf_err_t err = {0};
        /* From the first event, whatever the cursors: the events up to a cursor
         * are skipped, but a terminal event among them must still end the stream. */
        hub->watch = queue_watch_gen(api->queue, hub->gen_id, 0, on_hub_events, hub, &err);
        if (hub->watch == NULL) {
            free(hub);
            return -1;
        }
        *pp = hub;
    }
    s->hub = hub;
    s->hnext = hub->head;
    if (hub->head)
        hub->head->hprev = s;
    hub->head = s;
    hub->n++;
    /* Without a watch the hub has met its terminal event (or its end): what
     * comes is read, never delivered. */
    if (hub->term != TERM_NONE || hub->watch == NULL || hub->last > s->after) {
        s->catching_up = 1;
        if (sse_read_from_cursor(s, on_catchup_read) < 0) {
            s->catching_up = 0;
            return -1;
        }
    }
    return 0;
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
    if (err->code == GF_OK && sse_gen_events(s, e) != 0)
        return; /* the terminal event came from the queue, or the client is gone */
    sse_terminal(s, SSE_MADE_TERMINAL_ID);
}

/* --- the user stream ---------------------------------------------------------------- */

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
    user_ev_free(e);
    return rc;
}

/*
 * A terminal event's generation, read: written under the status Postgres
 * recorded. Without one (Postgres unreadable, or the queue ended the job
 * before Postgres did) the stream ends before it: the client resumes from
 * the last event it has and meets this one again (on_hub_terminal).
 */
static void on_user_terminal(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    json_t *gen = err->code == 0 ? api__generation_json(&call->res.generation) : NULL;
    sse_call_done(s);
    s->user_fetching = 0;
    s->in_callback = 1; /* a stream ended here is freed below, not under us */
    if (!s->finished && s->pend_head) {
        if (gen != NULL && final_status(gen) != NULL) {
            if (user_write_head(s, gen) == 0)
                user_pump(s);
        } else {
            sse_finish(s);
        }
    }
    json_decref(gen);
    s->in_callback = 0;
    sse_free_maybe(s);
}

/* Writes the waiting events in order until one needs its generation read. */
static void user_pump(api_sse_t *s)
{
    while (!s->finished && !s->user_fetching && s->pend_head) {
        user_ev_t *e = s->pend_head;
        if (is_terminal(e->type)) {
            store_call_t *call = sse_call(s);
            store_call_generation(call, e->gen, s->sub);
            if (store_exec(s->api->store, call, on_user_terminal, s) == 0) {
                s->store_pending = 1;
                s->user_fetching = 1;
                if (s->api->m_sse_terminal_reads)
                    gf_metric_inc(s->api->m_sse_terminal_reads);
            } else {
                sse_call_done(s);
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
        sse_finish(s);
        return;
    }
    if (s->finished_gen) {
        if (sse_read_from_cursor(s, on_replay_read) == 0)
            return;
        if (s->after >= SSE_MADE_TERMINAL_ID)
            sse_finish(s);
        else
            sse_terminal(s, SSE_MADE_TERMINAL_ID);
        return;
    }
    int rc;
    if (s->gen_id[0]) {
        rc = hub_join(s);
    } else {
        gf_err_t err = {0};
        s->watch = queue_watch_user(s->api->queue, s->sub, s->after_user, on_user_events, s, &err);
        rc = s->watch ? 0 : -1;
        free(s->after_user); /* the watch has its own copy */
        s->after_user = NULL;
    }
    if (rc < 0) {
        /* Redis is down: end now; the client reconnects with Last-Event-ID and loses nothing. */
        sse_finish(s);
        return;
    }
    ping_start(s);
    trim_soon(s->api);
}

static void on_owner_checked(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    api_sse_t *s = data;
    if (err->code < 0) {
        api__fail(s->req, err->code, err);
        sse_call_done(s); /* `err` is the call's: freed here, after its use */
        sse_finish(s);    /* answered: not started, so nothing else to end */
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
        sse_finish(s); /* answered: not started, so nothing else to end */
        return;
    }
    snprintf(s->gen_id, sizeof(s->gen_id), "%s", id);
    s->last_id = s->after;
    /* Its live hub knows the owner already (its first stream's owner check
     * read it, and it never changes): the stream joins without a read. */
    sse_hub_t *hub = *hub_slot(api, s->gen_id);
    if (hub != NULL && strcmp(hub->sub, s->sub) == 0) {
        sse_begin(s);
        return;
    }
    /* Only its owner may follow a generation: 404 otherwise, as for GET. */
    store_call_t *call = sse_call(s);
    store_call_generation(call, s->gen_id, s->sub);
    if (store_exec(api->store, call, on_owner_checked, s) == 0) {
        s->store_pending = 1;
        return;
    }
    sse_call_done(s);
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
    api->sse_closed = 1;
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
