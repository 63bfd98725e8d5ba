/*
 * api/sse_int.h - private to api/events.c and api/sse_hub.c: one open event
 * stream (api_sse_t), and what each of the two files gives the other.
 * events.c holds the routes, a stream's life (its start, heartbeat, writes,
 * end) and the user stream; sse_hub.c delivers a generation's events to its
 * streams (the hubs of live generations, catch-up and replay reads, the
 * terminal event).
 */
#ifndef API_SSE_INT_H
#define API_SSE_INT_H

#include "api_int.h"

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
    unsigned pend_n;  /* how many: past API_SSE_USER_PEND_MAX the watch is held */
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

/*
 * The id of a terminal event made from Postgres once the queue's events of a
 * finished generation are gone: the largest id a generation stream accepts
 * (15 digits), the same on every reconnect, so a client that has it gets
 * nothing more instead of a new terminal event under a new id each time.
 */
#define SSE_MADE_TERMINAL_ID 999999999999999ULL

/* Whether an event of this type ends its generation's stream (core/include/vocab.h). */
static inline int api__sse_is_terminal(const char *type)
{
    return gf_event_is_terminal(gf_event_parse(type));
}

/* FNV-1a: the bucket of a user id or a generation id in the api's hash tables. */
static inline unsigned api__sse_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* --- events.c ------------------------------------------------------------------ */

/* Ends the stream (once): leaves its hub, stops its watch and heartbeat, finishes the request. */
void api__sse_finish(api_sse_t *s);
/* Frees a finished stream once nothing of it is in flight (events.c's opening comment). */
void api__sse_free_maybe(api_sse_t *s);
/* Writes a frame; a client that cannot keep up is dropped (the stream ends): then -1. */
int api__sse_write_frame(api_sse_t *s, gf_http_frame_t *f);
/* Writes the terminal event `id` with the whole generation `gen`. */
int api__sse_write_terminal(api_sse_t *s, const char *id, json_t *gen);
/* A generation event's frame, made once for however many streams write it. */
gf_http_frame_t *api__sse_gen_event_frame(api_t *api, const char *gen_id, const queue_event_t *ev);
/* A terminal event with the whole generation (API.md), named after its final status. */
gf_http_frame_t *api__sse_terminal_frame(api_t *api, const char *id, json_t *gen);
/* The final status Postgres recorded for `gen`; NULL while it has none. */
const char *api__sse_final_status(json_t *gen);
/* Hands the heap's free pages back soon after a burst of stream setups. */
void api__sse_trim_soon(api_t *api);

/* --- sse_hub.c ----------------------------------------------------------------- */

/* A live generation's stream joins the generation's hub; 0, or -1 (Redis is down). */
int api__sse_hub_join(api_sse_t *s);
/* The stream leaves its hub (if any); a hub nobody follows is freed. */
void api__sse_hub_leave(api_sse_t *s);
/* Whether a live hub follows `gen_id` for the owner `sub` (then no owner check is needed). */
int api__sse_hub_owned_by(api_t *api, const char *gen_id, const char *sub);
/* A finished generation's stream: replays the queue's events from its cursor; 0, or -1. */
int api__sse_replay(api_sse_t *s);
/* The terminal event `id` for this stream: its hub's, or made from its owner check's record. */
void api__sse_terminal(api_sse_t *s, uint64_t id);

#endif
