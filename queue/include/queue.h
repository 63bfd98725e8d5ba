/*
 * queue/include/queue.h - the Redis side of the farm: the job queue and the event
 * streams (DESIGN.md; the key layout, the scripts and the state machine are in
 * docs/queue.md). No other module sees a hiredis type.
 *
 * A job is a generation: its id (a UUID string), its user, its plan tier, an
 * opaque payload JSON and an optional start deadline. Jobs are leased to
 * workers with a fencing token that grows on every claim; heartbeat, finish
 * and progress events must present the current token, so a worker whose lease
 * was taken over can neither report nor charge the job.
 *
 * Two clients share the same scripts and semantics:
 * - queue_t, asynchronous on the caller's libuv loop (the api, the worker). It
 *   reconnects with backoff after Redis restarts and fails fast with
 *   GF_EUNAVAIL while Redis is down.
 *   Async contract (the same for every module of the farm): a call that fails
 *   at once returns its negative status and never runs its callback; a call
 *   that returns 0 runs it exactly once, on the loop thread, and never inside
 *   that call (nor inside queue_close), with GF_ECANCELED when the queue is
 *   closed first. Every callback gets `const gf_err_t *err`, never NULL:
 *   err->code is the status (GF_OK on success) and err->msg says why, for
 *   the logs. `err` and the results passed to a callback are borrowed and
 *   valid until it returns, unless said otherwise.
 * - queue_sync_t, blocking (the CLI, tests, the benchmark). One connection,
 *   not thread-safe; a call on a lost connection fails with GF_EUNAVAIL and
 *   the next call connects again.
 *
 * Status codes: GF_EUNAVAIL Redis down or erroring, GF_ETIMEDOUT no answer in
 * FARM_QUEUE_OP_TIMEOUT_MS (the operation may still have happened: every one
 * is safe to repeat), GF_ECONFLICT a stale fencing token, GF_ENOTFOUND an
 * unknown generation, GF_ETOOBIG the user's active cap (enqueue) or the
 * per-generation event cap, GF_EINVAL bad input (unknown tier, bad id).
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core.h"

typedef struct queue queue_t;
typedef struct queue_sync queue_sync_t;
typedef struct queue_watch queue_watch_t;

/* What enqueue takes. Every string is borrowed for the duration of the call. */
typedef struct {
    const char *gen_id;  /* UUID string; the job's identity (idempotency key) */
    const char *user_id; /* fairness and the active cap are per user */
    const char *tier;    /* a tier named in FARM_QUEUE_TIERS */
    const char *payload; /* opaque JSON handed to the worker */
    int64_t deadline_ms; /* unix ms by which it must start; 0: none */
    /* A job made anew leases its first attempt with a token above this: the fence
     * Postgres holds for the generation, when the sweeper enqueues one the queue lost
     * (a Redis restored empty), so the attempt is not refused as stale. 0: new. */
    uint64_t token_floor;
} queue_enqueue_req_t;

/* How a leased job ends (queue_finish). */
typedef enum {
    QUEUE_DONE = 0,     /* succeeded: terminal 'done' */
    QUEUE_FATAL = 2,    /* failed for good: dead letter (1 was a retry with backoff, which no
                         * worker sent: a provider's retries happen inside its call) */
    QUEUE_CANCELED = 3, /* the holder stopped after seeing the cancel flag */
    QUEUE_HANDBACK = 4, /* not the job's fault (Redis, Postgres or storage unavailable, the worker
                         * stopping): backoff without spending an attempt; dead letter only after
                         * FARM_QUEUE_HANDBACK_MAX of them */
} queue_outcome_t;

/*
 * The answer of the small operations; which fields are set depends on the
 * call. `state` is the job's state after the call: queued, delayed, running,
 * done, dead, canceled, canceling (a running job asked to stop), expired.
 */
typedef struct {
    int created;         /* enqueue: 1 new job, 0 already known (nothing changed) */
    char state[16];      /* enqueue, finish, cancel, position; on ECONFLICT the state seen */
    char stage[16];      /* position of a running job: its stage (core/vocab.h), or "" */
    int progress;        /* position of a running job: its worker's latest progress, or -1 */
    int64_t position;    /* enqueue, position: jobs that start before it; -1 when not queued */
    int cancel;          /* heartbeat: 1 once a cancel was requested */
    int64_t lease_until; /* heartbeat: the new lease end, unix ms (Redis's clock) */
    int64_t retry_in_ms; /* finish(QUEUE_HANDBACK) that was rescheduled: the wait */
    uint64_t event_id;   /* event_append: the new event's id */
    int64_t limit;       /* enqueue refused with GF_ETOOBIG: the cap */
} queue_result_t;

/* A leased job. Strings are owned by the job: free with queue_job_dispose(). */
typedef struct {
    char *gen_id, *user_id, *tier, *payload;
    uint64_t token;      /* fencing token: present it to heartbeat, finish, events */
    int attempt;         /* 1 on the first start, counting reclaims (a hand-back gives its own back) */
    int64_t deadline_ms; /* 0: none */
    int64_t lease_until; /* unix ms, Redis's clock */
    int64_t created_ms;  /* unix ms the enqueuer's clock gave at enqueue; 0: unknown */
} queue_job_t;

/* A job whose start deadline passed before any worker took it: release its credits. */
typedef struct {
    char *gen_id, *user_id;
} queue_expired_t;

/* A job whose holder never came back and that a claim ended instead of leasing it again. */
typedef struct {
    char *gen_id, *user_id;
    char state[16]; /* dead (a poison job) or canceled (a cancel was asked) */
} queue_ended_t;

/* What a claim returns; free with queue_claim_dispose(). A worker may steal strings (set NULL). */
typedef struct {
    queue_job_t *jobs;
    size_t n_jobs;
    queue_expired_t *expired;
    size_t n_expired;
    queue_ended_t *ended; /* final in the queue now: the claimer records them in Postgres */
    size_t n_ended;
} queue_claim_t;

/*
 * One event. For a generation's events `id` counts 1, 2, 3 … and `stream_id`
 * is NULL; for a user's events `stream_id` is the opaque increasing position
 * to resume after and `id` is the event's number within its generation.
 */
typedef struct {
    uint64_t id;
    char *stream_id;
    char *gen_id;
    char *type; /* queued, running, progress, retrying, requeued, done, failed, canceled, expired */
    int64_t ts_ms;
    char *data; /* JSON */
} queue_event_t;

typedef struct {
    queue_event_t *ev;
    size_t n;
} queue_events_t;

typedef struct {
    char *name;
    int64_t depth;
} queue_tier_depth_t;

/*
 * The answer of queue_positions: one item per id asked, in that order, each
 * with state, position and stage set as queue_position sets them; state ""
 * for an id the queue does not know.
 */
#define QUEUE_POSITIONS_MAX 100
typedef struct {
    queue_result_t *items;
    size_t n;
} queue_positions_t;

/* A live worker: its id, when it last claimed or heartbeat, and how many jobs it holds. */
typedef struct {
    char *id;
    int64_t last_seen_ms; /* unix ms, Redis's clock */
    int64_t in_flight;
} queue_worker_t;

typedef struct {
    queue_tier_depth_t *tiers;
    size_t n_tiers;
    int64_t delayed, in_flight, dead, workers;
    int64_t done_last_min, failed_last_min, done_this_min, failed_this_min;
    queue_worker_t *live; /* the `workers` live workers, most recently seen last */
    size_t n_live;
} queue_stats_t;

typedef struct {
    char *gen_id, *user_id, *tier, *reason;
    int attempts;
    int64_t dead_at_ms;
} queue_dead_t;

typedef struct {
    queue_dead_t *items;
    size_t n;
} queue_dead_list_t;

void queue_job_dispose(queue_job_t *job);
void queue_claim_dispose(queue_claim_t *c);
void queue_events_dispose(queue_events_t *e);
void queue_stats_dispose(queue_stats_t *s);
void queue_dead_list_dispose(queue_dead_list_t *d);

/*
 * The tier of a plan: the plan itself when FARM_QUEUE_TIERS names it, else
 * "free" when that is a tier, else the last tier (a plan the queue does not
 * know must not make a job unqueueable). Returns a name held by `cfg`.
 */
const char *queue_tier_of(const gf_config_t *cfg, const char *plan);

/* Whether a state is final (done, dead, canceled, expired). */
int queue_state_is_terminal(const char *state);

/* ------------------------------------------------------------------------ */
/* Asynchronous client                                                      */
/* ------------------------------------------------------------------------ */

typedef void (*queue_ping_cb)(queue_t *q, const gf_err_t *err, void *data);
/* Runs once the queue is freed: `q` is NULL. */
typedef void (*queue_closed_cb)(queue_t *q, void *data);
/*
 * `res` is never NULL; on failure only the fields a status names are
 * meaningful (state on GF_ECONFLICT, limit on GF_ETOOBIG).
 */
typedef void (*queue_result_cb)(queue_t *q, const gf_err_t *err, const queue_result_t *res,
                                void *data);
/* `c` is NULL when err->code < 0; otherwise the callback owns it (queue_claim_dispose). */
typedef void (*queue_claim_cb)(queue_t *q, const gf_err_t *err, queue_claim_t *c, void *data);
/* `e` and `s` are NULL when err->code < 0. */
typedef void (*queue_events_cb)(queue_t *q, const gf_err_t *err, const queue_events_t *e,
                                void *data);
typedef void (*queue_stats_cb)(queue_t *q, const gf_err_t *err, const queue_stats_t *s, void *data);
typedef void (*queue_positions_cb)(queue_t *q, const gf_err_t *err, const queue_positions_t *p,
                                   void *data);
/*
 * A watch's callback: new events in order (err->code GF_OK), or a final
 * failure (err->code < 0, `e` NULL) after which it never runs again
 * (GF_ECANCELED after queue_close, on a later loop turn).
 */
typedef void (*queue_watch_cb)(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e,
                               void *data);
/* A running job of this process was asked to stop (pub/sub, fast path). */
typedef void (*queue_cancel_cb)(queue_t *q, const char *gen_id, void *data);

/*
 * Returns a new queue client for cfg->redis_url that connects in the
 * background (a Redis that is down is not an error here: operations fail with
 * GF_EUNAVAIL until it answers and the scripts are loaded). NULL with `err` on
 * a bad URL or a bad FARM_QUEUE_TIERS. `cfg` is borrowed and must outlive the queue.
 */
queue_t *queue_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);

/* Whether the connection is up and the scripts are loaded right now. */
int queue_is_connected(const queue_t *q);

/*
 * PINGs Redis; `cb` gets GF_OK, GF_EUNAVAIL (connection lost) or
 * GF_ETIMEDOUT. Returns GF_EUNAVAIL at once (no callback) while
 * disconnected: fail fast.
 */
int queue_ping(queue_t *q, uint64_t timeout_ms, queue_ping_cb cb, void *data);

/* Enqueues (idempotent by gen_id); res->created, state, position; GF_ETOOBIG over the cap. */
int queue_enqueue(queue_t *q, const queue_enqueue_req_t *req, queue_result_cb cb, void *data);

/*
 * Leases up to `max` jobs to `worker_id` (borrowed). A claim that got no
 * answer (GF_ETIMEDOUT, GF_EUNAVAIL) may have leased jobs: the next claim of
 * the same worker asks again under its id, and gets those jobs (within a
 * lease) instead of nothing, their leases left to expire.
 */
int queue_claim(queue_t *q, const char *worker_id, int max, queue_claim_cb cb, void *data);

/* Extends a lease; res->cancel tells whether to stop. GF_ECONFLICT: the lease is lost. */
int queue_heartbeat(queue_t *q, const char *worker_id, const char *gen_id, uint64_t token,
                    queue_result_cb cb, void *data);

/*
 * Ends a lease with `outcome`; `detail` is the result JSON (QUEUE_DONE) or the
 * reason (failures), may be NULL. res->state tells where the job went.
 * GF_ECONFLICT: the token is stale; nothing changed and nothing may be charged.
 */
int queue_finish(queue_t *q, const char *gen_id, uint64_t token, queue_outcome_t outcome,
                 const char *detail, queue_result_cb cb, void *data);

/* Cancels: res->state 'canceled' (was queued/delayed), 'canceling' (running) or the final state. */
int queue_cancel(queue_t *q, const char *gen_id, queue_result_cb cb, void *data);
/* Ends a queued or delayed job as expired (Postgres expired its generation):
 * res->state 'expired', or the state of a job that started or ended (left as it is). */
int queue_expire(queue_t *q, const char *gen_id, queue_result_cb cb, void *data);

/* Appends an event (token 0: not fenced); res->event_id. */
int queue_event_append(queue_t *q, const char *gen_id, uint64_t token, const char *type,
                       const char *data_json, queue_result_cb cb, void *data);

/* Reads up to `max` events of a generation with id > after_id. */
int queue_events_read(queue_t *q, const char *gen_id, uint64_t after_id, int max,
                      queue_events_cb cb, void *data);

/* Reads up to `max` events of a user after `after` (a stream_id, or NULL/"" from the start). */
int queue_user_events_read(queue_t *q, const char *user_id, const char *after, int max,
                           queue_events_cb cb, void *data);

/* The state and queue position of a generation, and a running one's stage. */
int queue_position(queue_t *q, const char *gen_id, queue_result_cb cb, void *data);

/*
 * queue_position for `n` generations (1 .. QUEUE_POSITIONS_MAX) in one call:
 * the queued ones of a user share one walk of their tier. GF_EINVAL for an
 * empty id or one with a newline. `p` is valid during the callback only
 * (NULL when err is set).
 */
int queue_positions(queue_t *q, const char *const *gen_ids, size_t n, queue_positions_cb cb,
                    void *data);

int queue_stats(queue_t *q, queue_stats_cb cb, void *data);

/*
 * Takes one token from the bucket `bucket` (refilled at `per_minute`, holding
 * at most `burst`). res->created: 1 allowed, 0 refused; res->position: tokens
 * left; res->retry_in_ms: until the next token. With `cap_user` (NULL: none),
 * res->limit is the cap of tier `cap_tier` when that user already has that
 * many active generations (enqueue would refuse the next), else 0. The takes
 * of one loop iteration go to Redis as one call (queue/batch.c), in order.
 */
int queue_ratelimit(queue_t *q, const char *bucket, long per_minute, long burst,
                    const char *cap_user, const char *cap_tier, queue_result_cb cb, void *data);

/*
 * Live wait. Delivers the events of a generation (or a user, with
 * queue_watch_user) after `after`, then every new one as it is appended, in
 * order and without gaps, until queue_watch_stop(). All watches of a process
 * share one pub/sub connection; a notification only says "something new", and
 * the events are then read from the durable list, so a notification lost in
 * a reconnect loses nothing (every watch re-reads when the subscription comes
 * back). Returns NULL with `err` (GF_EUNAVAIL while down: fail fast).
 */
queue_watch_t *queue_watch_gen(queue_t *q, const char *gen_id, uint64_t after_id, queue_watch_cb cb,
                               void *data, gf_err_t *err);
queue_watch_t *queue_watch_user(queue_t *q, const char *user_id, const char *after,
                                queue_watch_cb cb, void *data, gf_err_t *err);

/* Stops a watch: its callback never runs again. Safe inside the callback. */
void queue_watch_stop(queue_watch_t *w);

/*
 * Holds a watch (`hold` 1): it reads nothing more, and its callback does not
 * run, until it is released (0); what came meanwhile is read then, in
 * order. For a reader that cannot keep up (a stream that must wait before
 * it writes what it has): what it holds in memory stays bounded. Safe
 * inside the callback; a release never runs the callback inside it.
 */
void queue_watch_hold(queue_watch_t *w, int hold);

/*
 * Registers the process's cancel listener (one; NULL unregisters). It runs
 * for every cancel of a running job anywhere; the worker ignores ids it does
 * not hold. The heartbeat answer remains the guarantee; this is the fast path.
 */
void queue_on_cancel(queue_t *q, queue_cancel_cb cb, void *data);

/*
 * Exports the latency of the async operations on `m` (borrowed; it must
 * outlive the queue) as farm_redis_command_seconds{op}: op is the queue
 * function's name (claim, enqueue, ...) or ping, xrange. Call once, after
 * queue_new(). A batch of enqueues or finishes, sent as one call, counts once.
 */
void queue_metrics(queue_t *q, gf_metrics_t *m);

/*
 * Disconnects (pending operations finish with their reply, their
 * GF_ETIMEDOUT or GF_ECANCELED, watches not stopped with GF_ECANCELED; none
 * of them inside this call), stops reconnecting, and frees the queue; `cb`
 * runs once everything is closed. Replies are awaited for at most
 * FARM_QUEUE_OP_TIMEOUT_MS from this call: a connection still waiting then is
 * dropped, so a silent Redis cannot hold the close. The queue must not be used after this
 * call, except to stop a watch whose final callback has not run yet.
 */
void queue_close(queue_t *q, queue_closed_cb cb, void *data);

/* ------------------------------------------------------------------------ */
/* Blocking client: same operations, same statuses, results in out-params. */
/* ------------------------------------------------------------------------ */

/* Connects (FARM_REDIS_CONNECT_TIMEOUT_MS) and loads the scripts. NULL with `err`. */
queue_sync_t *queue_sync_new(const gf_config_t *cfg, gf_err_t *err);
void queue_sync_free(queue_sync_t *qs);

int queue_sync_enqueue(queue_sync_t *qs, const queue_enqueue_req_t *req, queue_result_t *res,
                       gf_err_t *err);
/* `out` is filled (free with queue_claim_dispose) when the call returns 0. */
int queue_sync_claim(queue_sync_t *qs, const char *worker_id, int max, queue_claim_t *out,
                     gf_err_t *err);
int queue_sync_heartbeat(queue_sync_t *qs, const char *worker_id, const char *gen_id,
                         uint64_t token, queue_result_t *res, gf_err_t *err);
int queue_sync_finish(queue_sync_t *qs, const char *gen_id, uint64_t token, queue_outcome_t outcome,
                      const char *detail, queue_result_t *res, gf_err_t *err);
int queue_sync_cancel(queue_sync_t *qs, const char *gen_id, queue_result_t *res, gf_err_t *err);
int queue_sync_event_append(queue_sync_t *qs, const char *gen_id, uint64_t token, const char *type,
                            const char *data_json, queue_result_t *res, gf_err_t *err);
int queue_sync_events_read(queue_sync_t *qs, const char *gen_id, uint64_t after_id, int max,
                           queue_events_t *out, gf_err_t *err);
int queue_sync_user_events_read(queue_sync_t *qs, const char *user_id, const char *after, int max,
                                queue_events_t *out, gf_err_t *err);
int queue_sync_position(queue_sync_t *qs, const char *gen_id, queue_result_t *res, gf_err_t *err);
/* Dispose of `out` with queue_positions_dispose. */
int queue_sync_positions(queue_sync_t *qs, const char *const *gen_ids, size_t n,
                         queue_positions_t *out, gf_err_t *err);
void queue_positions_dispose(queue_positions_t *p);
int queue_sync_stats(queue_sync_t *qs, queue_stats_t *out, gf_err_t *err);

/* Dead letters: newest first, up to `max`; re-drive or purge one id or "*" (all). */
int queue_sync_dead_list(queue_sync_t *qs, int max, queue_dead_list_t *out, gf_err_t *err);
/* Returns how many were re-driven / purged (>= 0) or a negative status. */
int queue_sync_dead_retry(queue_sync_t *qs, const char *gen_id, gf_err_t *err);
int queue_sync_dead_purge(queue_sync_t *qs, const char *gen_id, gf_err_t *err);

/* This process's function library ("farm_<hash>", docs/queue.md). */
const char *queue_sync_library(const queue_sync_t *qs);

/*
 * The queue's other function libraries in Redis (other code versions or
 * settings); with `drop`, deletes them. A process still using one loads it
 * again on its next call, so this is safe while the farm runs. Returns how
 * many and `names` (NULL-terminated; free each and the array), or < 0.
 */
int queue_sync_old_libraries(queue_sync_t *qs, int drop, char ***names, gf_err_t *err);

#endif
