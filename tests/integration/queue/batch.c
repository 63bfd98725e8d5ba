/*
 * tests/integration/queue/batch.c - what the async client sends to the
 * fixture's real Redis: many calls of one loop iteration sent as one batch
 * with their own answers (enqueues, finishes, rate limit takes), a rate limit
 * bucket's expiry written once per refill, a function library lost to
 * FUNCTION FLUSH loaded again, and the error record every answer carries.
 * The fixture is async.c's (qt_async_setup in queue_util).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_util.h"
#include "support.h"

typedef qt_async_fx_t fx_t;

/* Answers of many calls made in one loop iteration (they go to Redis as one batch). */
typedef struct {
    int n, status[80];
    queue_result_t res[80];
} many_t;

static void on_many(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    many_t *m = data;
    (void)q;
    int i = m->n++;
    m->status[i] = err->code;
    m->res[i] = *res;
}

/* Runs the loop until `m` holds `n` answers or 10 s pass; how many it holds. */
static int answers(fx_t *fx, many_t *m, int n)
{
    double end = ts_now() + 10;
    while (m->n < n && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return m->n;
}

static long long fcalls(void)
{
    return qt_redis_stat("fcall");
}

static void test_calls_of_one_iteration_each_get_their_own_answer(void **state)
{
    fx_t *fx = *state;
    /* 70 enqueues in one iteration (more than one batch holds): 66 for 66 users, a
     * repeat of the first, one with an unknown tier, and the free tier's cap (3)
     * exceeded by a user's 4th. Each answer must be its own call's, in order. */
    static char gens[70][64];
    char users[70][32];
    many_t *m = calloc(1, sizeof(*m));
    long long before = fcalls();
    for (int i = 0; i < 70; i++) {
        qt_id(gens[i], sizeof(gens[i]), "many");
        snprintf(users[i], sizeof(users[i]), "many-u%d", i);
    }
    snprintf(gens[66], sizeof(gens[66]), "%s", gens[0]);
    for (int i = 67; i < 70; i++)
        snprintf(users[i], sizeof(users[i]), "many-capped");
    for (int i = 0; i < 70; i++) {
        queue_enqueue_req_t req = {.gen_id = gens[i],
                                   .user_id = users[i],
                                   .tier = i == 66 ? "pro" : "free",
                                   .payload = "{}"};
        if (i == 65)
            req.tier = "gold";
        assert_int_equal(queue_enqueue(fx->q, &req, on_many, m), 0);
    }
    /* The capped user's 4th job, in the same iteration. */
    char extra[64];
    queue_enqueue_req_t req = {
        .gen_id = qt_id(extra, sizeof(extra), "many"), .user_id = "many-capped", .tier = "free"};
    assert_int_equal(queue_enqueue(fx->q, &req, on_many, m), 0);
    assert_int_equal(answers(fx, m, 71), 71);
    for (int i = 0; i < 65; i++) {
        assert_int_equal(m->status[i], 0);
        assert_int_equal(m->res[i].created, 1);
        assert_string_equal(m->res[i].state, "queued");
    }
    assert_int_equal(m->status[65], GF_EINVAL); /* unknown tier */
    assert_int_equal(m->status[66], 0);         /* the repeat: known, nothing changed */
    assert_int_equal(m->res[66].created, 0);
    assert_string_equal(m->res[66].state, "queued");
    for (int i = 67; i < 70; i++)
        assert_int_equal(m->status[i], 0);
    assert_int_equal(m->status[70], GF_ETOOBIG);
    assert_int_equal(m->res[70].limit, 3);
    /* 71 calls, 2 batches (64 + 7), not 71 commands. */
    assert_int_equal(fcalls() - before, 2);

    /* Finishes batch the same way, each with its own fencing check. */
    queue_claim_t c;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_claim(fx->qs, "wm", 80, &c, &err), 0);
    assert_int_equal(c.n_jobs, 68);
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < c.n_jobs; i++)
        assert_int_equal(queue_finish(fx->q, c.jobs[i].gen_id, c.jobs[i].token + (i == 5),
                                      QUEUE_DONE, NULL, on_many, m),
                         0);
    assert_int_equal(answers(fx, m, (int)c.n_jobs), (int)c.n_jobs);
    for (size_t i = 0; i < c.n_jobs; i++) {
        assert_int_equal(m->status[i], i == 5 ? GF_ECONFLICT : 0);
        assert_string_equal(m->res[i].state, i == 5 ? "running" : "done");
    }
    queue_claim_dispose(&c);
    free(m);
}

/* Rate limit takes of one iteration: one call, in order, each its own answer. */
static void test_rate_limit_takes_of_one_iteration_go_as_one_call(void **state)
{
    fx_t *fx = *state;
    char a[64], b[64];
    qt_id(a, sizeof(a), "rl-a");
    qt_id(b, sizeof(b), "rl-b");
    many_t *m = calloc(1, sizeof(*m));
    long long before = fcalls();
    /* a: 2 tokens, 1 a minute; b: 5 tokens. Interleaved: a, b, a, a. */
    const char *bucket[] = {a, b, a, a};
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            queue_ratelimit(fx->q, bucket[i], 1, bucket[i] == a ? 2 : 5, NULL, NULL, on_many, m),
            0);
    assert_int_equal(m->n, 0); /* no answer inside the calls */
    assert_int_equal(answers(fx, m, 4), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(m->status[i], 0);
    static const int allowed[] = {1, 1, 1, 0}, left[] = {1, 4, 0, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m->res[i].created, allowed[i]);
        assert_int_equal(m->res[i].position, left[i]);
    }
    /* a's third take waits for a token at 1 a minute. */
    assert_true(m->res[3].retry_in_ms > 50000 && m->res[3].retry_in_ms <= 60000);
    assert_int_equal(fcalls() - before, 1);
    free(m);
}

/*
 * A bucket's expiry: set by its first take, to twice its refill time (burst /
 * rate minutes, and a second), and pushed out again only when less than that
 * is left, so the takes in between write no PEXPIRE (nor its AOF entry).
 */
static void test_rate_limit_bucket_expiry_is_written_once_per_refill(void **state)
{
    fx_t *fx = *state;
    char a[64], key[128], cmd[160];
    qt_id(a, sizeof(a), "rl-ttl");
    snprintf(key, sizeof(key), "{%s}:rl:%s", fx->cfg->queue_name, a);
    snprintf(cmd, sizeof(cmd), "PTTL %s", key);
    long long before = qt_redis_stat("pexpire");
    many_t *m = calloc(1, sizeof(*m));
    /* 60 a minute, burst 10: full again 10 s (and a second) after a take */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(queue_ratelimit(fx->q, a, 60, 10, NULL, NULL, on_many, m), 0);
        assert_int_equal(answers(fx, m, i + 1), i + 1);
        assert_int_equal(m->status[i], 0);
        assert_int_equal(m->res[i].created, 1);
        assert_int_equal(m->res[i].position, 9 - i); /* tokens left */
        long long ttl = qt_redis_int(cmd);
        assert_true(ttl > 11000 && ttl <= 22000);
    }
    assert_int_equal(qt_redis_stat("pexpire") - before, 1);
    /* less than the refill time left: the next take pushes it out again */
    snprintf(cmd, sizeof(cmd), "PEXPIRE %s 5000", key);
    assert_int_equal(qt_redis_int(cmd), 1);
    assert_int_equal(queue_ratelimit(fx->q, a, 60, 10, NULL, NULL, on_many, m), 0);
    assert_int_equal(answers(fx, m, 4), 4);
    assert_int_equal(m->res[3].position, 6);
    snprintf(cmd, sizeof(cmd), "PTTL %s", key);
    assert_true(qt_redis_int(cmd) > 20000);
    assert_int_equal(qt_redis_stat("pexpire") - before, 3); /* ours, then the take's */
    free(m);
}

static void test_a_flushed_function_library_is_loaded_again(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "flush"), "uf", "pro");
    /* An operator's FUNCTION FLUSH: both clients load the library again and the
     * call that found it missing still runs, once. */
    assert_int_equal(qt_redis_ok("FUNCTION FLUSH"), 1);
    queue_result_t res;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_position(fx->qs, gen, &res, &err), 0);
    assert_string_equal(res.state, "queued");
    assert_int_equal(qt_redis_ok("FUNCTION FLUSH"), 1);
    assert_int_equal(qt_wait_op(fx, queue_cancel(fx->q, gen, qt_on_result, fx)), 0);
    assert_string_equal(fx->res.state, "canceled");
    assert_int_equal(queue_sync_position(fx->qs, gen, &res, &err), 0);
    assert_string_equal(res.state, "canceled");
}

/* Every answer carries its error record: the status, the module, and what happened. */
static void test_an_answer_carries_its_error_record(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "errrec"), "uer", "pro");
    assert_int_equal(qt_wait_op(fx, queue_claim(fx->q, "wer", 1, qt_on_claim, fx)), 0);
    assert_int_equal(fx->err.code, GF_OK);
    assert_int_equal(fx->claim->n_jobs, 1);
    uint64_t tok = fx->claim->jobs[0].token;
    queue_claim_dispose(fx->claim);
    free(fx->claim);
    /* A single call and a batched one, both refused for a stale token. */
    assert_int_equal(qt_wait_op(fx, queue_heartbeat(fx->q, "wer", gen, tok + 1, qt_on_result, fx)),
                     GF_ECONFLICT);
    assert_int_equal(fx->err.code, GF_ECONFLICT);
    assert_string_equal(fx->err.domain, "queue");
    assert_non_null(strstr(fx->err.msg, "token"));
    assert_int_equal(
        qt_wait_op(fx, queue_finish(fx->q, gen, tok + 1, QUEUE_DONE, NULL, qt_on_result, fx)),
        GF_ECONFLICT);
    assert_int_equal(fx->err.code, GF_ECONFLICT);
    assert_non_null(strstr(fx->err.msg, "token"));
    assert_int_equal(
        qt_wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_DONE, NULL, qt_on_result, fx)), 0);
    assert_int_equal(fx->err.code, GF_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls_of_one_iteration_each_get_their_own_answer,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_takes_of_one_iteration_go_as_one_call,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_bucket_expiry_is_written_once_per_refill,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_flushed_function_library_is_loaded_again,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_an_answer_carries_its_error_record, qt_async_setup,
                                        qt_async_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
