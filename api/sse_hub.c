/*
 * api/sse_hub.c - a generation's events delivered to its streams
 * (GET /v1/generations/:id/events; the routes are in events.c).
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
 * with the record the owner check read (no second read).
 *
 * Lifetime: a hub is freed once it has no listener, is not delivering
 * (`busy`) and has no store call in flight.
 */
#include "sse_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* --- hubs: a generation's live streams together ---------------------------------- */

static sse_hub_t **hub_slot(api_t *api, const char *gen_id)
{
    sse_hub_t **pp = &api->sse_hubs[api__sse_hash(gen_id) % API_SSE_HUB_BUCKETS];
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

void api__sse_hub_leave(api_sse_t *s)
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
    if (hub->term == TERM_READY && api__sse_write_frame(s, hub->term_frame) < 0)
        return; /* ended (and maybe freed) by the failed write */
    api__sse_finish(s);
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
    if (gen != NULL && api__sse_final_status(gen) != NULL) {
        char id[24];
        snprintf(id, sizeof(id), "%" PRIu64, hub->term_id);
        hub->term_frame = api__sse_terminal_frame(hub->api, id, gen);
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
        if (api__store_exec(hub->api, &hub->call, on_hub_terminal, hub) == 0) {
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
        api__sse_finish(s);
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
void api__sse_terminal(api_sse_t *s, uint64_t id)
{
    if (s->hub) {
        hub_terminal(s->hub, s, id);
        return;
    }
    if (s->record != NULL) {
        char text[24];
        snprintf(text, sizeof(text), "%" PRIu64, id);
        if (api__sse_write_terminal(s, text, s->record) < 0)
            return; /* ended (and maybe freed) by the failed write */
    }
    api__sse_finish(s);
}

/*
 * One event for one stream, past the last one it wrote; `terminal` is
 * whether the event ends the generation (api__sse_is_terminal(ev->type),
 * worked out once per event, not per listener) and `frame` holds the
 * event's frame once made (NULL until a stream needs it), so the streams
 * of a hub share one. Returns 0 to go on, 1 when the stream is done with
 * events (it reached the terminal event, or it ended).
 */
static int sse_gen_event(api_sse_t *s, const queue_event_t *ev, int terminal,
                         gf_http_frame_t **frame)
{
    if (ev->id <= s->last_id) {
        /* The terminal event at or before what the client has: at the
         * Last-Event-ID it came with, nothing sent since, the client has
         * everything. Otherwise the client holds other events under those ids
         * (a cursor past the end, or the queue's history went back after Redis
         * lost writes) and gets it once, under its own id. Either way the
         * stream ends rather than wait for an event that never comes. */
        if (terminal) {
            if (ev->id == s->after && s->last_id == s->after)
                api__sse_finish(s);
            else
                api__sse_terminal(s, ev->id);
            return 1;
        }
        return 0;
    }
    s->last_id = ev->id;
    if (terminal) {
        api__sse_terminal(s, ev->id);
        return 1;
    }
    if (*frame == NULL)
        *frame = api__sse_gen_event_frame(s->api, s->gen_id, ev);
    return api__sse_write_frame(s, *frame) < 0;
}

/* The events of one read for one stream, in order; 0 when all were written, else 1 (as above). */
static int sse_gen_events(api_sse_t *s, const queue_events_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        gf_http_frame_t *frame = NULL;
        int done = sse_gen_event(s, &e->ev[i], api__sse_is_terminal(e->ev[i].type), &frame);
        gf_http_frame_unref(frame);
        if (done)
            return 1;
    }
    return s->finished;
}

/*
 * A non-terminal event to every stream of the hub that follows it and has
 * not had it: one frame, written to all of them at once
 * (gf_http_stream_write_frame_all, which may share a large fan-out's sends
 * among threads); a stream whose write failed ends.
 */
static void hub_write_all(sse_hub_t *hub, const queue_event_t *ev)
{
    if (hub->n == 0)
        return;
    api_sse_t **to = gf_xmalloc(hub->n * sizeof(*to));
    gf_http_req_t **reqs = gf_xmalloc(hub->n * sizeof(*reqs));
    size_t k = 0;
    for (api_sse_t *s = hub->head; s; s = s->hnext)
        if (!s->catching_up && !s->awaiting_terminal && ev->id > s->last_id) {
            s->last_id = ev->id;
            to[k] = s;
            reqs[k++] = s->req;
        }
    if (k > 0) {
        int *rc = gf_xmalloc(k * sizeof(*rc));
        gf_http_frame_t *frame = api__sse_gen_event_frame(hub->api, hub->gen_id, ev);
        gf_http_stream_write_frame_all(reqs, k, frame, rc);
        gf_http_frame_unref(frame);
        for (size_t i = 0; i < k; i++)
            if (rc[i] < 0)
                api__sse_finish(to[i]); /* a client that cannot keep up is dropped */
        free(rc);
    }
    free(reqs);
    free(to);
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
            api__sse_finish(hub->head);
    }
    for (size_t i = 0; err->code == 0 && i < e->n; i++) {
        const queue_event_t *ev = &e->ev[i];
        int terminal = api__sse_is_terminal(ev->type);
        hub->last = ev->id;
        if (!terminal) {
            hub_write_all(hub, ev);
            continue;
        }
        gf_http_frame_t *frame = NULL;
        for (api_sse_t *s = hub->head, *next; s; s = next) {
            next = s->hnext;
            if (!s->catching_up && !s->awaiting_terminal)
                sse_gen_event(s, ev, terminal, &frame);
        }
        gf_http_frame_unref(frame);
        if (hub->watch) {
            queue_watch_stop(hub->watch); /* nothing comes after it */
            hub->watch = NULL;
        }
        break;
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
        api__sse_free_maybe(s);
        return;
    }
    api__sse_trim_soon(s->api); /* the last step of a setup */
    if (err->code < 0) {
        api__sse_finish(s); /* the client reconnects with Last-Event-ID and loses nothing */
        return;
    }
    if (sse_gen_events(s, e) != 0)
        return;
    if (s->hub && s->hub->last > s->last_id)
        api__sse_finish(s);
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
int api__sse_hub_join(api_sse_t *s)
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
        api__sse_free_maybe(s);
        return;
    }
    if ((err->code == GF_OK && s->after > 0 && e->n > 0 && e->ev[0].id == s->after &&
         api__sse_is_terminal(e->ev[0].type)) ||
        s->after >= SSE_MADE_TERMINAL_ID) {
        api__sse_finish(s); /* the client has the terminal event already */
        return;
    }
    if (err->code == GF_OK && sse_gen_events(s, e) != 0)
        return; /* the terminal event came from the queue, or the client is gone */
    api__sse_terminal(s, SSE_MADE_TERMINAL_ID);
}

int api__sse_replay(api_sse_t *s)
{
    return sse_read_from_cursor(s, on_replay_read);
}

int api__sse_hub_owned_by(api_t *api, const char *gen_id, const char *sub)
{
    sse_hub_t *hub = *hub_slot(api, gen_id);
    return hub != NULL && strcmp(hub->sub, sub) == 0;
}
