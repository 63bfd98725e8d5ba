/*
 * queue/reply.h - hiredis replies into queue.h's types, and Redis errors into
 * gf_status (reply.c), shared by both clients; internal to queue/.
 */
#ifndef QUEUE_REPLY_H
#define QUEUE_REPLY_H

#include <hiredis/hiredis.h>

#include "queue.h"

/*
 * Whether a reply says our function is missing (FUNCTION FLUSH, or a Redis
 * that lost its data): nothing ran, so loading the library and calling again
 * is safe.
 */
int queue__reply_needs_load(const redisReply *r);

/* Whether a FUNCTION LOAD answer means the library is there (new or already loaded). */
int queue__reply_loaded(const redisReply *r);
/*
 * Whether an answer is Redis's OOM refusal (maxmemory reached): FUNCTION LOAD
 * is refused then even when the library is there, which a FUNCTION LIST
 * LIBRARYNAME answer tells (queue__reply_lists_library).
 */
int queue__reply_is_oom(const redisReply *r);
int queue__reply_lists_library(const redisReply *r);

/*
 * Translates a missing or error reply: NULL -> GF_EUNAVAIL, an error reply ->
 * GF_EINVAL ("EINVAL ..." from our scripts) or GF_EUNAVAIL (OOM, LOADING,
 * BUSY, anything else), recorded in `err` too. Returns 0 for any other reply.
 */
int queue__reply_check(const redisReply *r, gf_err_t *err);

/*
 * Parsers, one per operation. Each returns 0, or a negative gf_status that it
 * has also recorded in `err` (so the async client's handlers pass `err` on
 * and read the status there). queue__result_parser is the shape of those
 * that fill a queue_result_t.
 */
typedef int (*queue__result_parser)(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_enqueue(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_claim(const redisReply *r, queue_claim_t *out, gf_err_t *err);
int queue__parse_heartbeat(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_finish(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_cancel(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_event(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_position(const redisReply *r, queue_result_t *res, gf_err_t *err);
/* positions.lua's answer for `n` ids into `out` (dispose with queue_positions_dispose). */
int queue__parse_positions(const redisReply *r, size_t n, queue_positions_t *out, gf_err_t *err);
int queue__parse_ratelimit(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_stats(const redisReply *r, queue_stats_t *out, gf_err_t *err);
int queue__parse_gen_events(const redisReply *r, uint64_t after_id, queue_events_t *out,
                            gf_err_t *err);
int queue__parse_user_events(const redisReply *r, queue_events_t *out, gf_err_t *err);
int queue__parse_dead_list(const redisReply *r, queue_dead_list_t *out, gf_err_t *err);
int queue__parse_count(const redisReply *r, gf_err_t *err);

#endif
