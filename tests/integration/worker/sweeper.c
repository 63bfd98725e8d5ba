/*
 * tests/integration/worker/sweeper.c - a real farm-worker's sweeper against
 * the fixture's Redis and Postgres: a generation whose enqueue was lost is
 * enqueued again, one past its deadline is expired and released, one the
 * queue dead-lettered is failed and released, one the queue lost with its
 * lease tokens resumes above Postgres's fence, and is not expired by a start
 * deadline that passed after it started; an expiry and a cancel reach the
 * queue although the api's word did not; then SIGTERM exits 0. Last, a
 * poison job is failed by the live worker whose claim dead-letters it, and
 * a takeover that finds every image settled fails with the images' error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "queue.h"
#include "queue_util.h"
#include "store.h"
#include "support.h"

extern char **environ;

static store_conn_t *sc;
static queue_sync_t *qs;
static gf_config_t *cfg;
static pid_t worker_pid;

static int setup(void **state)
{
    (void)state;
    gf_err_t err = {0};
    cfg = gf_cfg_load(environ, &err);
    sc = cfg ? store_conn_new(cfg->database_url, &err) : NULL;
    qs = sc ? queue_sync_new(cfg, &err) : NULL;
    if (qs == NULL) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    char *extra[] = {"FARM_FILE_SECRET=sweeper-file-secret-0123",
                     "FARM_SWEEP_INTERVAL_S=1",
                     "FARM_SWEEP_STALE_S=1",
                     "FARM_WORKER_METRICS_PORT=0",
                     "FARM_WORKER_CONCURRENCY=0",
                     NULL};
    worker_pid = ts_spawn_farm("FARM_TEST_WORKER_BIN", extra, "worker.log");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (worker_pid > 0)
        ts_stop(worker_pid, SIGKILL, 5);
    queue_sync_free(qs);
    store_conn_free(sc);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    return 0;
}

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Accepts a 2-image generation of a new user with `params` (JSON) as its parameters. */
static void accept_gen_with(char gen[37], char user[37], long long deadline_ms, const char *params)
{
    gf_uuid4(gen);
    gf_uuid4(user);
    store_call_t c;
    store_accept_t a = {.id = gen,
                        .user_id = user,
                        .plan = "free",
                        .kind = "avatar",
                        .images = 2,
                        .unit_cost = 10,
                        .welcome_credits = 100,
                        .params_json = params,
                        .deadline_unix_ms = deadline_ms};
    store_call_accept(&c, &a);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
}

static void accept_gen(char gen[37], char user[37], long long deadline_ms)
{
    accept_gen_with(gen, user, deadline_ms, "{\"prompt\":\"a red fox\"}");
}

/* Waits until the generation's status is `status`. */
static int wait_status(const char *gen, const char *user, const char *status, double timeout_s)
{
    double end = ts_now() + timeout_s;
    do {
        store_call_t c;
        store_call_generation(&c, gen, user);
        int ok = store_conn_exec(sc, &c) == 0 && strcmp(c.res.generation.status, status) == 0;
        store_call_dispose(&c);
        if (ok)
            return 1;
        usleep(100000);
    } while (ts_now() < end);
    return 0;
}

static long long held(const char *user)
{
    store_call_t c;
    store_call_balance(&c, user, 100);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    long long h = c.res.balance.held;
    store_call_dispose(&c);
    return h;
}

static void test_lost_enqueue_is_enqueued_again(void **state)
{
    (void)state;
    char gen[37], user[37];
    accept_gen(gen, user, 0);
    double end = ts_now() + 15;
    char seen[16] = "";
    do {
        queue_result_t res = {0};
        gf_err_t err = {0};
        if (queue_sync_position(qs, gen, &res, &err) == 0)
            snprintf(seen, sizeof(seen), "%s", res.state);
        if (strcmp(seen, "queued") == 0)
            break;
        usleep(100000);
    } while (ts_now() < end);
    assert_string_equal(seen, "queued");
}

/*
 * The candidates rotate: each sweep takes the least recently checked open
 * generations, so older ones the queue holds healthily (checked and left
 * alone every tick) do not hide a newer one from a sweep of one at a time.
 * Before, every sweep listed the oldest open generation again.
 */
static void test_sweep_candidates_rotate_past_older_ones(void **state)
{
    (void)state;
    char a[37], ua[37], b[37], ub[37];
    accept_gen(a, ua, 0);
    accept_gen(b, ub, 0);
    int seen_a = 0, seen_b = 0, sweeps = 0;
    for (double end = ts_now() + 15; !(seen_a && seen_b) && sweeps < 200 && ts_now() < end;) {
        store_call_t c;
        store_call_sweep(&c, 0, 1);
        assert_int_equal(store_conn_exec(sc, &c), 0);
        const store_sweep_result_t *r = &c.res.sweep;
        if (r->locked) { /* else the worker's sweeper held the lock: again */
            sweeps++;
            for (size_t i = 0; i < r->n_candidates; i++) {
                seen_a |= strcmp(r->candidates[i].id, a) == 0;
                seen_b |= strcmp(r->candidates[i].id, b) == 0;
            }
        }
        store_call_dispose(&c);
    }
    assert_true(seen_a);
    assert_true(seen_b);
}

static void test_missed_deadline_is_expired_and_released(void **state)
{
    (void)state;
    char gen[37], user[37];
    accept_gen(gen, user, now_ms() - 1000);
    assert_int_equal(held(user), 20);
    assert_true(wait_status(gen, user, "expired", 15));
    assert_int_equal(held(user), 0);
}

static void test_dead_lettered_job_is_failed_and_released(void **state)
{
    (void)state;
    char gen[37], user[37];
    accept_gen(gen, user, 0);
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = user, .tier = "free", .payload = "{}"};
    queue_result_t res = {0};
    gf_err_t err = {0};
    assert_int_equal(queue_sync_enqueue(qs, &req, &res, &err), 0);
    /* A worker takes it and gives up for good: the queue dead-letters it. */
    int found = 0;
    for (int round = 0; round < 50 && !found; round++) {
        queue_claim_t claim = {0};
        assert_int_equal(queue_sync_claim(qs, "test-worker", 8, &claim, &err), 0);
        for (size_t i = 0; i < claim.n_jobs; i++) {
            int mine = strcmp(claim.jobs[i].gen_id, gen) == 0;
            found |= mine;
            queue_result_t fr = {0};
            queue_sync_finish(qs, claim.jobs[i].gen_id, claim.jobs[i].token,
                              mine ? QUEUE_FATAL : QUEUE_DONE, "test: provider refused", &fr, &err);
        }
        queue_claim_dispose(&claim);
    }
    assert_true(found);
    assert_true(wait_status(gen, user, "failed", 15));
    assert_int_equal(held(user), 0);
}

/* Claims as "test-worker" until `gen` comes (within 20 s), finishing any other job it gets;
 * returns its token, 0 when it never came. */
static uint64_t claim_gen(const char *gen)
{
    uint64_t token = 0;
    gf_err_t err = {0};
    for (double end = ts_now() + 20; token == 0 && ts_now() < end; usleep(100000)) {
        queue_claim_t claim = {0};
        assert_int_equal(queue_sync_claim(qs, "test-worker", 8, &claim, &err), 0);
        for (size_t i = 0; i < claim.n_jobs; i++) {
            if (strcmp(claim.jobs[i].gen_id, gen) == 0) {
                token = claim.jobs[i].token;
                continue;
            }
            queue_result_t fr = {0};
            queue_sync_finish(qs, claim.jobs[i].gen_id, claim.jobs[i].token, QUEUE_DONE, NULL, &fr,
                              &err);
        }
        queue_claim_dispose(&claim);
    }
    return token;
}

/*
 * Redis restored empty (no AOF) loses every job with its lease tokens: the
 * sweeper enqueues a running generation again, and its next attempt must
 * lease with a token above the fence Postgres holds; a token from 1 again
 * is refused as stale at every start until the reclaims run out.
 */
static void test_job_the_queue_lost_resumes_above_the_fence(void **state)
{
    (void)state;
    char gen[37], user[37];
    accept_gen(gen, user, 0);
    store_call_t c;
    store_call_start(&c, gen, 5, "fake", NULL); /* its fifth attempt started, then Redis lost all */
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    uint64_t token = claim_gen(gen);
    assert_true(token > 5);
    store_call_start(&c, gen, (long long)token, "fake", NULL); /* the attempt is not stale */
    assert_int_equal(store_conn_exec(sc, &c), 0);
    assert_int_equal(c.res.start.attempts, 2);
    store_call_dispose(&c);
}

/*
 * The same, with a start deadline that passes after the start: the deadline
 * bounds the wait for a start only, so the job the sweeper enqueues again is
 * leased, not expired, and the generation keeps running.
 */
static void test_job_the_queue_lost_outlives_its_start_deadline(void **state)
{
    (void)state;
    char gen[37], user[37];
    accept_gen(gen, user, now_ms() + 1500);
    store_call_t c;
    store_call_start(&c, gen, 5, "fake", NULL); /* started in time, then Redis lost all */
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    usleep(2000 * 1000); /* the deadline passes */
    uint64_t token = claim_gen(gen);
    assert_true(token > 5);
    store_call_start(&c, gen, (long long)token, "fake", NULL); /* the attempt is not stale */
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    store_call_generation(&c, gen, user);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    assert_string_equal(c.res.generation.status, "running");
    store_call_dispose(&c);
}

/* Enqueues `gen` and claims it as "test-worker" (claim_gen): its token. */
static uint64_t enqueue_and_claim(const char *gen, const char *user)
{
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = user, .tier = "free", .payload = "{}"};
    queue_result_t res = {0};
    gf_err_t err = {0};
    assert_int_equal(queue_sync_enqueue(qs, &req, &res, &err), 0);
    uint64_t token = claim_gen(gen);
    assert_true(token > 0);
    return token;
}

/* A new generation, claimed as "test-worker" and started in Postgres: its token. */
static uint64_t running_gen(char gen[37], char user[37])
{
    accept_gen(gen, user, 0);
    uint64_t token = enqueue_and_claim(gen, user);
    store_call_t c;
    store_call_start(&c, gen, (long long)token, "fake", NULL);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    return token;
}

static void cancel_in_postgres(const char *gen, const char *user)
{
    store_call_t c;
    store_call_cancel(&c, gen, user);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    assert_int_equal(c.res.cancel.applied, 0); /* running: flagged for its worker */
    store_call_dispose(&c);
}

/* Postgres expires a queued generation whose start deadline passed; the queue
 * is told at once, so its stream gets `expired` and the job is not left for a
 * claim to find (no worker claims here). */
static void test_an_expiry_reaches_the_queue(void **state)
{
    (void)state;
    char gen[37], user[37];
    long long deadline = now_ms() + 1500;
    accept_gen(gen, user, deadline);
    queue_enqueue_req_t req = {
        .gen_id = gen, .user_id = user, .tier = "free", .payload = "{}", .deadline_ms = deadline};
    queue_result_t res = {0};
    gf_err_t err = {0};
    assert_int_equal(queue_sync_enqueue(qs, &req, &res, &err), 0);
    assert_true(wait_status(gen, user, "expired", 15));
    char seen[16] = "";
    for (double end = ts_now() + 5; strcmp(seen, "expired") != 0 && ts_now() < end;
         usleep(100000)) {
        if (queue_sync_position(qs, gen, &res, &err) == 0)
            snprintf(seen, sizeof(seen), "%s", res.state);
    }
    assert_string_equal(seen, "expired");
}

/*
 * A running generation canceled in Postgres only (the api's word to the
 * queue lost): heartbeats it as its holder until the queue says cancel (8 s
 * at most), with `keep_writing` recording a provider request before each, as
 * a holder still at work does; then ends it. Whether the holder was told.
 */
static int holder_told_of_missed_cancel(int keep_writing)
{
    char gen[37], user[37];
    uint64_t token = running_gen(gen, user);
    cancel_in_postgres(gen, user);
    int told = 0;
    for (double end = ts_now() + 8; !told && ts_now() < end; usleep(200000)) {
        if (keep_writing) {
            store_call_t c;
            store_call_provider_request(&c, gen, (long long)token, 0,
                                        "fal:https://x/1 https://x/2 -");
            assert_int_equal(store_conn_exec(sc, &c), 0);
            store_call_dispose(&c);
        }
        queue_result_t res = {0};
        gf_err_t err = {0};
        assert_int_equal(queue_sync_heartbeat(qs, "test-worker", gen, token, &res, &err), 0);
        told = res.cancel;
    }
    queue_result_t fr = {0};
    gf_err_t err = {0};
    queue_sync_finish(qs, gen, token, QUEUE_CANCELED, NULL, &fr, &err);
    return told;
}

/* A cancel Postgres took for a running generation whose word never reached
 * the queue (the api's queue_cancel failed): the sweeper says it again, and
 * the holder learns it from its next heartbeat. */
static void test_a_cancel_the_queue_missed_reaches_the_holder(void **state)
{
    (void)state;
    assert_true(holder_told_of_missed_cancel(0));
}

/* The same while its holder keeps writing (each write refreshes updated_at,
 * which hid the cancel from the sweeper for as long as the writes came less
 * than 2 s apart): the cancel's own time decides. */
static void test_a_missed_cancel_reaches_a_holder_that_keeps_writing(void **state)
{
    (void)state;
    assert_true(holder_told_of_missed_cancel(1));
}

/* A cancel of a generation whose worker had handed the job back (Postgres:
 * running; the queue: waiting, no holder to tell): it ends canceled in the
 * queue and in Postgres within a sweep, its credits released, not after the
 * stale period. */
static void test_a_handed_back_generation_is_canceled_within_a_sweep(void **state)
{
    (void)state;
    char gen[37], user[37];
    uint64_t token = running_gen(gen, user);
    queue_result_t res = {0};
    gf_err_t err = {0};
    assert_int_equal(queue_sync_finish(qs, gen, token, QUEUE_HANDBACK, NULL, &res, &err), 0);
    cancel_in_postgres(gen, user);
    assert_true(wait_status(gen, user, "canceled", 8));
    assert_int_equal(held(user), 0);
    assert_int_equal(queue_sync_position(qs, gen, &res, &err), 0);
    assert_string_equal(res.state, "canceled");
}

static void test_sigterm_exits_zero(void **state)
{
    (void)state;
    assert_int_equal(ts_stop(worker_pid, SIGTERM, 15), 0);
    worker_pid = 0;
}

/*
 * A poison job: its holder never came back, and the next claim, by a live
 * worker, dead-letters it. That worker fails the generation and releases its
 * credits at once, as the failed event clients got says, not the sweeper a
 * stale period (here an hour) later. After the sweeper worker has stopped.
 * The generation counts in its farm_generation_outcomes_total, as a failure
 * (FarmGenerationFailureRatioHigh reads it).
 */
static void test_poison_job_is_failed_by_the_claimer_that_ends_it(void **state)
{
    (void)state;
    static const char *const poison[] = {"FARM_QUEUE_LEASE_S=1", "FARM_QUEUE_MAX_RECLAIMS=0", NULL};
    char gen[37], user[37];
    gf_err_t err = {0};
    qt_flush();
    accept_gen(gen, user, 0);
    gf_config_t *pcfg = qt_cfg(poison);
    queue_sync_t *crashed = queue_sync_new(pcfg, &err);
    assert_non_null(crashed);
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = user, .tier = "free", .payload = "{}"};
    queue_result_t res = {0};
    assert_int_equal(queue_sync_enqueue(crashed, &req, &res, &err), 0);
    queue_claim_t claim = {0};
    assert_int_equal(queue_sync_claim(crashed, "crashed-worker", 1, &claim, &err), 0);
    assert_int_equal(claim.n_jobs, 1);
    queue_claim_dispose(&claim);
    usleep(1200 * 1000); /* its lease (1 s) runs out: the holder never comes back */
    char port_env[64], metrics_url[96];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_WORKER_METRICS_PORT=%d", port);
    snprintf(metrics_url, sizeof(metrics_url), "http://127.0.0.1:%d/metrics", port);
    char *extra[] = {"FARM_FILE_SECRET=sweeper-file-secret-0123",
                     "FARM_QUEUE_LEASE_S=1",
                     "FARM_QUEUE_MAX_RECLAIMS=0",
                     "FARM_SWEEP_INTERVAL_S=3600",
                     "FARM_SWEEP_STALE_S=3600",
                     port_env,
                     "FARM_WORKER_CONCURRENCY=1",
                     NULL};
    pid_t claimer = ts_spawn_farm("FARM_TEST_WORKER_BIN", extra, "worker-claimer.log");
    int failed = wait_status(gen, user, "failed", 20);
    const char *counted = "\nfarm_generation_outcomes_total{kind=\"avatar\",status=\"failed\","
                          "code=\"internal\"} 1\n";
    int seen = 0;
    for (double end = ts_now() + 10; !seen && ts_now() < end; usleep(100 * 1000)) {
        ts_http_t m = ts_http("GET", metrics_url, NULL, NULL, 0);
        seen = m.status == 200 && m.body && strstr(m.body, counted) != NULL;
        ts_http_dispose(&m);
    }
    assert_int_equal(queue_sync_position(crashed, gen, &res, &err), 0);
    assert_string_equal(res.state, "dead");
    assert_int_equal(ts_stop(claimer, SIGTERM, 15), 0);
    queue_sync_free(crashed);
    gf_cfg_free(pcfg);
    assert_true(failed);
    assert_true(seen);
    assert_int_equal(held(user), 0);
}

/*
 * A takeover that finds every image settled: an earlier attempt released
 * both (the provider refused them), then died before its finish. The worker
 * that takes it over finishes it failed, and a failed generation carries an
 * error (API.md): the images' own, although this attempt saw none of them.
 */
static void test_takeover_of_settled_images_fails_with_their_error(void **state)
{
    (void)state;
    static const char *const rejected =
        "{\"code\":\"content_rejected\",\"message\":\"refused by the provider's "
        "filter\",\"retryable\":false}";
    static const char *const params = "{\"kind\":\"avatar\",\"prompt\":\"a red fox\",\"count\":2}";
    char gen[37], user[37];
    gf_err_t err = {0};
    qt_flush();
    accept_gen_with(gen, user, 0, params);
    store_call_t c;
    store_call_start(&c, gen, 1, "fake", NULL);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    for (int i = 0; i < 2; i++) {
        store_call_image(&c, gen, 1, i, 0, rejected);
        assert_int_equal(store_conn_exec(sc, &c), 0);
        store_call_dispose(&c);
    }
    /* Its job, as the earlier attempt (token 1) left it to the next. */
    queue_enqueue_req_t req = {
        .gen_id = gen, .user_id = user, .tier = "free", .payload = params, .token_floor = 1};
    queue_result_t res = {0};
    assert_int_equal(queue_sync_enqueue(qs, &req, &res, &err), 0);
    char *extra[] = {"FARM_FILE_SECRET=sweeper-file-secret-0123",
                     "FARM_SWEEP_INTERVAL_S=3600",
                     "FARM_SWEEP_STALE_S=3600",
                     "FARM_WORKER_METRICS_PORT=0",
                     "FARM_WORKER_CONCURRENCY=1",
                     NULL};
    pid_t taker = ts_spawn_farm("FARM_TEST_WORKER_BIN", extra, "worker-taker.log");
    int failed = wait_status(gen, user, "failed", 20);
    assert_int_equal(ts_stop(taker, SIGTERM, 15), 0);
    assert_true(failed);
    store_call_generation(&c, gen, user);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    assert_non_null(c.res.generation.error);
    assert_non_null(strstr(c.res.generation.error, "content_rejected"));
    store_call_dispose(&c);
    assert_int_equal(held(user), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_enqueue_is_enqueued_again),
        cmocka_unit_test(test_sweep_candidates_rotate_past_older_ones),
        cmocka_unit_test(test_missed_deadline_is_expired_and_released),
        cmocka_unit_test(test_dead_lettered_job_is_failed_and_released),
        cmocka_unit_test(test_job_the_queue_lost_resumes_above_the_fence),
        cmocka_unit_test(test_job_the_queue_lost_outlives_its_start_deadline),
        cmocka_unit_test(test_an_expiry_reaches_the_queue),
        cmocka_unit_test(test_a_cancel_the_queue_missed_reaches_the_holder),
        cmocka_unit_test(test_a_missed_cancel_reaches_a_holder_that_keeps_writing),
        cmocka_unit_test(test_a_handed_back_generation_is_canceled_within_a_sweep),
        cmocka_unit_test(test_sigterm_exits_zero),
        cmocka_unit_test(test_poison_job_is_failed_by_the_claimer_that_ends_it),
        cmocka_unit_test(test_takeover_of_settled_images_fails_with_their_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
