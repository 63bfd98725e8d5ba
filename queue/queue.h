/*
 * queue/queue.h - the Redis side of the farm: the job queue and the event
 * streams (DESIGN.md). This first cut holds the connection: an async hiredis
 * client on the caller's libuv loop that reconnects with backoff after Redis
 * restarts, and a PING for /readyz. No other module sees a hiredis type.
 *
 * Async contract (libuv's rule): a call that returns an error never runs its
 * callback; a call that returns 0 runs it exactly once, on the loop thread,
 * with GF_ECANCELED when the queue is closed first.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stdint.h>
#include <uv.h>

#include "core.h"

typedef struct queue queue_t;

typedef void (*queue_ping_cb)(queue_t *q, int status, void *data);
typedef void (*queue_closed_cb)(queue_t *q, void *data);

/*
 * Returns a new queue client for cfg->redis_url that connects in the
 * background (a Redis that is down is not an error here: operations fail with
 * GF_EUNAVAIL until it answers). NULL with `err` on a bad URL.
 * `cfg` is borrowed and must outlive the queue.
 */
queue_t *queue_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);

/* Whether the connection is up right now. */
int queue_is_connected(const queue_t *q);

/*
 * PINGs Redis; `cb` gets 0, GF_EUNAVAIL (connection lost) or GF_ETIMEDOUT.
 * Returns GF_EUNAVAIL at once (no callback) while disconnected: fail fast.
 */
int queue_ping(queue_t *q, uint64_t timeout_ms, queue_ping_cb cb, void *data);

/*
 * Disconnects (pending operations finish with GF_ECANCELED or their reply),
 * stops reconnecting, and frees the queue; `cb` runs once everything is
 * closed. The queue must not be used after this call.
 */
void queue_close(queue_t *q, queue_closed_cb cb, void *data);

#endif
