/*
 * tests/fuzz/fuzz_queue_reply.c - Redis replies through every parser of
 * queue/reply.h. The input is RESP, read by hiredis's own reader (the one
 * both queue clients use); each reply it yields goes to every parser, as a
 * reply of the wrong shape could reach any of them from a Redis that holds
 * other data or another version of our functions.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

/*
 * hiredis 0.14's reader has no maxelements: an aggregate header allocates its
 * count up front ("*4000000000\r\n" asks for 32 GB). Our Redis never sends
 * that, so an input with a count above this after a line start is skipped.
 */
#define FUZZ_MAX_ELEMENTS 4096

static int counts_are_sane(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && d[i - 1] != '\n') || (d[i] != '*' && d[i] != '%' && d[i] != '~'))
            continue;
        long long v = 0;
        for (size_t j = i + 1; j < n && d[j] >= '0' && d[j] <= '9'; j++)
            if ((v = v * 10 + (d[j] - '0')) > FUZZ_MAX_ELEMENTS)
                return 0;
    }
    return 1;
}

static void parse_all(const redisReply *r)
{
    gf_err_t err = {0};
    queue_result_t res;
    static const queue__result_parser small[] = {
        queue__parse_enqueue, queue__parse_heartbeat, queue__parse_finish,    queue__parse_cancel,
        queue__parse_event,   queue__parse_position,  queue__parse_ratelimit,
    };
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        memset(&res, 0, sizeof(res));
        memset(&err, 0, sizeof(err));
        small[i](r, &res, &err);
    }
    queue_claim_t claim = {0};
    if (queue__parse_claim(r, &claim, &err) == 0)
        queue_claim_dispose(&claim);
    /* positions: as many ids as the answer has triples, and one off either way */
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements / 3 : 1;
    for (size_t k = n > 0 ? n - 1 : 0; k <= n + 1; k++) {
        queue_positions_t pos = {0};
        if (k > 0 && queue__parse_positions(r, k, &pos, &err) == 0)
            queue_positions_dispose(&pos);
    }
    queue_stats_t stats = {0};
    if (queue__parse_stats(r, &stats, &err) == 0)
        queue_stats_dispose(&stats);
    queue_events_t ev = {0};
    if (queue__parse_gen_events(r, 3, &ev, &err) == 0)
        queue_events_dispose(&ev);
    memset(&ev, 0, sizeof(ev));
    if (queue__parse_user_events(r, &ev, &err) == 0)
        queue_events_dispose(&ev);
    queue_dead_list_t dead = {0};
    if (queue__parse_dead_list(r, &dead, &err) == 0)
        queue_dead_list_dispose(&dead);
    queue__parse_count(r, &err);
    queue__reply_check(r, &err);
    queue__reply_needs_load(r);
    queue__reply_loaded(r);
    queue__reply_is_oom(r);
    queue__reply_lists_library(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gf_log_min_level = GF_LOG_ERROR + 1; /* the claim parser warns about each bad job */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!counts_are_sane(data, size))
        return 0;
    redisReader *rd = redisReaderCreate();
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        void *reply = NULL;
        while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
            parse_all(reply);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    redisReaderFree(rd);
    return 0;
}
