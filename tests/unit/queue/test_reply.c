/*
 * tests/unit/queue/test_reply.c - queue/reply.c: each script's answer into
 * queue.h's types, Redis errors into gf_status, and malformed answers
 * refused without leaking. Replies are built by hand, no Redis needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "reply.h"

static redisReply *r_int(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *r_str_t(int type, const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = type;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *r_str(const char *s)
{
    return r_str_t(REDIS_REPLY_STRING, s);
}

static redisReply *r_arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(redisReply *));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void test_errors_translate_to_statuses(void **state)
{
    (void)state;
    gf_err_t err = {0};
    assert_int_equal(queue__reply_check(NULL, &err), GF_EUNAVAIL);
    redisReply *e = r_str_t(REDIS_REPLY_ERROR, "ERR user_script:1: EINVAL unknown tier x");
    gf_err_clear(&err);
    assert_int_equal(queue__reply_check(e, &err), GF_EINVAL);
    freeReplyObject(e);
    e = r_str_t(REDIS_REPLY_ERROR, "OOM command not allowed");
    gf_err_clear(&err);
    assert_int_equal(queue__reply_check(e, &err), GF_EUNAVAIL);
    assert_non_null(strstr(err.msg, "OOM"));
    freeReplyObject(e);
    e = r_str_t(REDIS_REPLY_ERROR, "ERR Function not found");
    assert_true(queue__reply_needs_load(e));
    assert_false(queue__reply_loaded(e));
    freeReplyObject(e);
    e = r_str_t(REDIS_REPLY_ERROR, "ERR Library 'farm_0123' already exists");
    assert_true(queue__reply_loaded(e));
    assert_false(queue__reply_needs_load(e));
    freeReplyObject(e);
    e = r_str_t(REDIS_REPLY_STRING, "farm_0123");
    assert_true(queue__reply_loaded(e));
    freeReplyObject(e);
    e = r_str_t(REDIS_REPLY_ERROR, "ERR Error compiling function: user_function:1: syntax error");
    assert_false(queue__reply_loaded(e));
    freeReplyObject(e);
}

static void test_enqueue_answers(void **state)
{
    (void)state;
    queue_result_t res;
    gf_err_t err = {0};
    redisReply *r = r_arr(3, r_int(1), r_str("queued"), r_int(7));
    assert_int_equal(queue__parse_enqueue(r, &res, &err), 0);
    assert_int_equal(res.created, 1);
    assert_string_equal(res.state, "queued");
    assert_int_equal(res.position, 7);
    freeReplyObject(r);
    r = r_arr(3, r_int(-1), r_str("too_many_active"), r_int(3));
    assert_int_equal(queue__parse_enqueue(r, &res, &err), GF_ETOOBIG);
    assert_int_equal(res.limit, 3);
    assert_int_equal(err.detail, 3);
    freeReplyObject(r);
    r = r_int(5);
    assert_int_equal(queue__parse_enqueue(r, &res, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
}

/* ratelimit: allowed, tokens left, ms to the next, and the active cap the user is at (or 0). */
static void test_ratelimit_answers(void **state)
{
    (void)state;
    queue_result_t res;
    gf_err_t err = {0};
    redisReply *r = r_arr(4, r_int(1), r_int(9), r_int(0), r_int(0));
    assert_int_equal(queue__parse_ratelimit(r, &res, &err), 0);
    assert_int_equal(res.created, 1);
    assert_int_equal(res.position, 9);
    assert_int_equal(res.limit, 0);
    freeReplyObject(r);
    r = r_arr(4, r_int(0), r_int(0), r_int(600), r_int(3));
    assert_int_equal(queue__parse_ratelimit(r, &res, &err), 0);
    assert_int_equal(res.created, 0);
    assert_int_equal(res.retry_in_ms, 600);
    assert_int_equal(res.limit, 3);
    freeReplyObject(r);
    r = r_arr(3, r_int(1), r_int(9), r_int(0)); /* the version before: not this one's */
    assert_int_equal(queue__parse_ratelimit(r, &res, &err), GF_EUNAVAIL);
    freeReplyObject(r);
}

static void test_fenced_answers(void **state)
{
    (void)state;
    queue_result_t res;
    redisReply *r = r_arr(2, r_int(-1), r_str("running"));
    assert_int_equal(queue__parse_heartbeat(r, &res, NULL), GF_ECONFLICT);
    assert_string_equal(res.state, "running");
    assert_int_equal(queue__parse_finish(r, &res, NULL), GF_ECONFLICT);
    freeReplyObject(r);
    r = r_arr(1, r_int(-2));
    assert_int_equal(queue__parse_finish(r, &res, NULL), GF_ENOTFOUND);
    freeReplyObject(r);
    r = r_arr(3, r_int(0), r_int(1), r_int(12345));
    assert_int_equal(queue__parse_heartbeat(r, &res, NULL), 0);
    assert_int_equal(res.cancel, 1);
    assert_int_equal(res.lease_until, 12345);
    freeReplyObject(r);
    r = r_arr(1, r_int(-3));
    assert_int_equal(queue__parse_event(r, &res, NULL), GF_ETOOBIG);
    freeReplyObject(r);
}

static void test_claim_answer_and_malformed_claim(void **state)
{
    (void)state;
    queue_claim_t c;
    /* Jobs are flat, four entries each; 'd' is "user\ntier\ndeadline\ncreated\npayload". */
    redisReply *r =
        r_arr(3,
              r_arr(8, r_str("g1"), r_str("u1\npro\n0\n5\n{}"), r_int(4), r_int(2), r_str("g3"),
                    r_str("u3\nfree\n1700000000123\n1700000000000\n{\"p\":\"two\nlines\"}"),
                    r_int(1), r_int(1)),
              r_arr(1, r_arr(2, r_str("g2"), r_str("u2"))), r_int(99));
    assert_int_equal(queue__parse_claim(r, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 2);
    assert_string_equal(c.jobs[0].gen_id, "g1");
    assert_string_equal(c.jobs[0].user_id, "u1");
    assert_string_equal(c.jobs[0].tier, "pro");
    assert_string_equal(c.jobs[0].payload, "{}");
    assert_int_equal(c.jobs[0].deadline_ms, 0);
    assert_int_equal(c.jobs[0].token, 4);
    assert_int_equal(c.jobs[0].attempt, 2);
    assert_int_equal(c.jobs[0].lease_until, 99);
    assert_int_equal(c.jobs[0].created_ms, 5);
    assert_string_equal(c.jobs[1].user_id, "u3");
    assert_string_equal(c.jobs[1].tier, "free");
    assert_int_equal(c.jobs[1].deadline_ms, 1700000000123LL);
    assert_string_equal(c.jobs[1].payload, "{\"p\":\"two\nlines\"}");
    assert_int_equal(c.jobs[1].lease_until, 99);
    assert_int_equal(c.jobs[1].created_ms, 1700000000000LL);
    assert_int_equal(c.n_expired, 1);
    assert_string_equal(c.expired[0].user_id, "u2");
    queue_claim_dispose(&c);
    freeReplyObject(r);
    /* A job whose data is malformed is left out (and leaks nothing: ASan
     * checks); the others claimed with it are handed out. */
    const char *bad_d[] = {"u1\npro\n0\n{}",   "u1\npro\n12x\n1\n{}",
                           "\npro\n0\n1\n{}",  "u1\n\n0\n1\n{}",
                           "u1\npro\n\n1\n{}", "u1\npro\n99999999999999999999\n1\n{}"};
    for (size_t i = 0; i < sizeof(bad_d) / sizeof(bad_d[0]); i++) {
        r = r_arr(3,
                  r_arr(12, r_str("g0"), r_str("u0\npro\n0\n1\nok"), r_int(1), r_int(1),
                        r_str("g1"), r_str(bad_d[i]), r_int(1), r_int(1), r_str("g2"),
                        r_str("u2\nfree\n7\n1\nfine"), r_int(3), r_int(2)),
                  r_arr(0), r_int(99));
        assert_int_equal(queue__parse_claim(r, &c, NULL), 0);
        assert_int_equal(c.n_jobs, 2);
        assert_string_equal(c.jobs[0].gen_id, "g0");
        assert_string_equal(c.jobs[0].payload, "ok");
        assert_string_equal(c.jobs[1].gen_id, "g2");
        assert_string_equal(c.jobs[1].payload, "fine");
        assert_int_equal(c.jobs[1].deadline_ms, 7);
        assert_int_equal(c.jobs[1].token, 3);
        queue_claim_dispose(&c);
        freeReplyObject(r);
    }
    /* A list that is not four entries per job, or no lease end. */
    r = r_arr(3, r_arr(2, r_str("g1"), r_str("u1\npro\n0\n5\n{}")), r_arr(0), r_int(99));
    assert_int_equal(queue__parse_claim(r, &c, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
    r = r_arr(2, r_arr(0), r_arr(0));
    assert_int_equal(queue__parse_claim(r, &c, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
    /* The jobs the claim ended, which the claimer records: {gen, user, state} each. */
    r = r_arr(4, r_arr(0), r_arr(0), r_int(99),
              r_arr(2, r_arr(3, r_str("g4"), r_str("u4"), r_str("dead")),
                    r_arr(3, r_str("g5"), r_str("u5"), r_str("canceled"))));
    assert_int_equal(queue__parse_claim(r, &c, NULL), 0);
    static const char *const ended[][3] = {{"g4", "u4", "dead"}, {"g5", "u5", "canceled"}};
    assert_int_equal(c.n_ended, 2);
    for (size_t i = 0; i < 2; i++) {
        const queue_ended_t *e = &c.ended[i];
        const char *got[3] = {e->gen_id, e->user_id, e->state};
        for (size_t k = 0; k < 3; k++)
            assert_string_equal(got[k], ended[i][k]);
    }
    queue_claim_dispose(&c);
    freeReplyObject(r);
    /* An ended entry short of its state, or ended not a list: the whole claim is refused. */
    r = r_arr(4, r_arr(0), r_arr(0), r_int(99), r_arr(1, r_arr(2, r_str("g4"), r_str("u4"))));
    assert_int_equal(queue__parse_claim(r, &c, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
    r = r_arr(4, r_arr(0), r_arr(0), r_int(99), r_int(1));
    assert_int_equal(queue__parse_claim(r, &c, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
}

/* A position answers the running job's stage and its worker's progress; a progress that is
 * not a percent reads as none (-1), as does an answer from a library without it. */
static void test_position_answers_stage_and_progress(void **state)
{
    (void)state;
    gf_err_t err = {0};
    queue_result_t res;
    redisReply *r = r_arr(4, r_str("running"), r_int(-1), r_str("generating"), r_str("10"));
    assert_int_equal(queue__parse_position(r, &res, &err), 0);
    assert_string_equal(res.state, "running");
    assert_string_equal(res.stage, "generating");
    assert_int_equal(res.progress, 10);
    freeReplyObject(r);
    const char *bad[] = {"", "101", "-1", "1x", "1000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = r_arr(4, r_str("running"), r_int(-1), r_str("generating"), r_str(bad[i]));
        assert_int_equal(queue__parse_position(r, &res, &err), 0);
        assert_int_equal(res.progress, -1);
        freeReplyObject(r);
    }
    r = r_arr(3, r_str("queued"), r_int(4), r_str(""));
    assert_int_equal(queue__parse_position(r, &res, &err), 0);
    assert_int_equal(res.position, 4);
    assert_int_equal(res.progress, -1);
    freeReplyObject(r);
    /* positions: four per id; three per id is malformed now. */
    queue_positions_t ps;
    r = r_arr(8, r_str("running"), r_int(-1), r_str("storing"), r_str("80"), r_str("queued"),
              r_int(2), r_str(""), r_str(""));
    assert_int_equal(queue__parse_positions(r, 2, &ps, &err), 0);
    assert_int_equal(ps.items[0].progress, 80);
    assert_string_equal(ps.items[0].stage, "storing");
    assert_int_equal(ps.items[1].position, 2);
    assert_int_equal(ps.items[1].progress, -1);
    queue_positions_dispose(&ps);
    freeReplyObject(r);
    r = r_arr(6, r_str("running"), r_int(-1), r_str("storing"), r_str("queued"), r_int(2),
              r_str(""));
    assert_int_equal(queue__parse_positions(r, 2, &ps, &err), GF_EUNAVAIL);
    freeReplyObject(r);
}

static void test_event_entries_split(void **state)
{
    (void)state;
    queue_events_t e;
    redisReply *r = r_arr(2, r_str("progress\n1700000000000\n{\"pct\":5}"), r_str("garbage"));
    assert_int_equal(queue__parse_gen_events(r, 4, &e, NULL), 0);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.ev[0].id, 5);
    assert_string_equal(e.ev[0].type, "progress");
    assert_int_equal(e.ev[0].ts_ms, 1700000000000LL);
    assert_string_equal(e.ev[0].data, "{\"pct\":5}");
    assert_int_equal(e.ev[1].id, 6);
    assert_string_equal(e.ev[1].type, "unknown");
    queue_events_dispose(&e);
    freeReplyObject(r);
    /* An ended job's terminal event at or below the cursor (its history went back). */
    r = r_arr(2, r_int(3), r_str("done\n1700000000000\n{}"));
    assert_int_equal(queue__parse_gen_events(r, 12, &e, NULL), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.ev[0].id, 3);
    assert_string_equal(e.ev[0].type, "done");
    queue_events_dispose(&e);
    assert_int_equal(queue__parse_gen_events(r, 3, &e, NULL), 0); /* at the cursor */
    queue_events_dispose(&e);
    assert_int_equal(queue__parse_gen_events(r, 2, &e, NULL), GF_EUNAVAIL); /* not past it */
    freeReplyObject(r);
    r = r_arr(2, r_int(0), r_str("done\n1\n{}"));
    assert_int_equal(queue__parse_gen_events(r, 12, &e, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
    r = r_arr(2, r_int(3), r_int(4));
    assert_int_equal(queue__parse_gen_events(r, 12, &e, NULL), GF_EUNAVAIL);
    freeReplyObject(r);
    r = r_arr(1, r_arr(2, r_str("1700000000123-4"),
                       r_arr(8, r_str("g"), r_str("gen"), r_str("n"), r_str("3"), r_str("t"),
                             r_str("done"), r_str("d"), r_str("{}"))));
    assert_int_equal(queue__parse_user_events(r, &e, NULL), 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.ev[0].stream_id, "1700000000123-4");
    assert_string_equal(e.ev[0].gen_id, "gen");
    assert_int_equal(e.ev[0].id, 3);
    assert_string_equal(e.ev[0].type, "done");
    assert_string_equal(e.ev[0].data, "{}");
    assert_int_equal(e.ev[0].ts_ms, 1700000000123LL); /* the stream id's time */
    queue_events_dispose(&e);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_translate_to_statuses),
        cmocka_unit_test(test_enqueue_answers),
        cmocka_unit_test(test_ratelimit_answers),
        cmocka_unit_test(test_fenced_answers),
        cmocka_unit_test(test_claim_answer_and_malformed_claim),
        cmocka_unit_test(test_position_answers_stage_and_progress),
        cmocka_unit_test(test_event_entries_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
