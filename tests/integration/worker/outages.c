/*
 * tests/integration/worker/outages.c - what users are told when Redis or
 * Postgres go away under running generations (issue #17), with a real
 * farm-api, a farm-worker and the fake provider (WF_LATENCY_MS per image)
 * over real HTTP, against the fixture's own redis-server and Postgres, which
 * the tests stop and start:
 * - a worker records a finish in Postgres while Redis is down: once Redis is
 *   back, the generation's stream and the user stream end with the status
 *   GET shows, and no dead letter exists;
 * - Postgres stopped for 25 s under running generations fails none of
 *   them: each succeeds once it is back, charged once, nothing left held;
 * - a generation accepted while Redis is down is enqueued by the api as soon
 *   as Redis is back (seconds), not by the sweeper's pass (made an hour here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_util.h"
#include "worker_farm.h"

/* The queue's state word for the generation's job ("" when Redis has no job). */
static void queue_state(const char *id, char out[32])
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %s hget '{farm}:j:%s' s",
             ts_env("FARM_TEST_REDIS_PORT"), id);
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    if (fgets(out, 32, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    pclose(p);
}

/* Waits until the queue holds the job in a final state; that state. */
static void wait_queue_final(const char *id, char state[32], double timeout_s)
{
    double end = ts_now() + timeout_s;
    do {
        queue_state(id, state);
        if (strcmp(state, "done") == 0 || strcmp(state, "canceled") == 0 ||
            strcmp(state, "dead") == 0 || strcmp(state, "expired") == 0)
            return;
        usleep(100000);
    } while (ts_now() < end);
    wf_dump_logs();
    fail_msg("the queue never ended %s (state '%s')", id, state);
}

static long long dead_letters(void)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %s zcard '{farm}:dead'",
             ts_env("FARM_TEST_REDIS_PORT"));
    FILE *p = popen(cmd, "r");
    char line[32] = "";
    if (p == NULL || fgets(line, sizeof(line), p) == NULL)
        line[0] = '\0';
    if (p)
        pclose(p);
    return atoll(line);
}

/*
 * The name of every terminal event of `id` in a stream read for `seconds`
 * (curl -N, the api's SSE as a client gets it), joined with ','.
 */
static void terminal_events(const char *path, const char *id, int seconds, char *out, size_t n)
{
    char file[600];
    snprintf(file, sizeof(file), "%s/stream.txt", ts_env("FARM_TEST_TMPDIR"));
    (void)ts_sh("curl -sN -m %d -H 'Authorization: Bearer %s' '%s%s' > '%s' 2>/dev/null", seconds,
                wf_tok, au_base, path, file);
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    out[0] = '\0';
    char line[65536], event[64] = "";
    static const char *const finals[] = {"succeeded", "partial", "failed",
                                         "canceled",  "expired", "done"};
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "event: ", 7) == 0) {
            snprintf(event, sizeof(event), "%.*s", (int)sizeof(event) - 1, line + 7);
            event[strcspn(event, "\r\n")] = '\0';
        } else if (strncmp(line, "data: ", 6) == 0 && strstr(line, id)) {
            for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
                if (strcmp(event, finals[i]) == 0) {
                    size_t len = strlen(out);
                    snprintf(out + len, n - len, "%s%s", len ? "," : "", event);
                }
        }
    }
    fclose(f);
}

static const char *status_of(json_t *g)
{
    return json_string_value(json_object_get(g, "status"));
}

static void test_finish_while_redis_is_down_is_told_as_postgres_recorded(void **state)
{
    (void)state;
    char id[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}", id);
    wf_expect_status(id, "running", 15);
    /* Redis goes while the provider works: the worker records the image and the
     * finish in Postgres, and its finish in the queue cannot land. */
    qt_redis_stop();
    json_t *g = wf_wait_status(id, "succeeded|partial|failed|canceled", 30);
    wf_assert_found(g);
    assert_string_equal(status_of(g), "succeeded");
    json_decref(g);
    sleep(3); /* past the 2 s lease: Redis comes back with the job's lease expired */
    qt_redis_start();
    char qs[32];
    wait_queue_final(id, qs, 30);
    assert_string_equal(qs, "done");
    assert_int_equal(dead_letters(), 0);

    /* The api reconnects to Redis after a backoff of up to 5 s; a user stream opened
     * before that ends at once, for its client to reconnect (as an EventSource does). */
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", au_base);
    assert_true(ts_wait_http(url, 200, NULL, 15));
    g = wf_wait_status(id, "succeeded|partial|failed|canceled", 5);
    wf_assert_found(g);
    char got[256], path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    terminal_events(path, id, 10, got, sizeof(got));
    assert_string_equal(got, status_of(g));
    terminal_events("/v1/events", id, 5, got, sizeof(got));
    assert_string_equal(got, status_of(g));
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    json_decref(g);
}

/* The user's balance and held credits (GET /v1/credits). */
static void credits(long long *balance, long long *held)
{
    ts_http_t r = wf_api("GET", "/v1/credits", NULL);
    assert_int_equal(r.status, 200);
    json_t *c = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    *balance = json_integer_value(json_object_get(c, "balance"));
    *held = json_integer_value(json_object_get(c, "held"));
    json_decref(c);
}

static void test_postgres_outage_fails_no_generation(void **state)
{
    (void)state;
    enum { N = 6 };
    long long balance0, held0;
    credits(&balance0, &held0);
    assert_int_equal(held0, 0);
    char ids[N][37];
    for (int i = 0; i < N; i++)
        wf_create("{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}",
                  ids[i]);
    for (int i = 0; i < N; i++)
        wf_expect_status(ids[i], "running", 20);
    /* Postgres goes while every generation waits on the provider, and stays away for
     * longer than the retry budget used to last (5 attempts, ~15 s of backoff). */
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    sleep(25);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    for (int i = 0; i < N; i++) {
        json_t *g = wf_wait_status(ids[i], "succeeded|partial|failed|canceled|expired", 90);
        wf_assert_found(g);
        if (strcmp(status_of(g), "succeeded") != 0)
            wf_dump_logs();
        assert_string_equal(status_of(g), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        json_decref(g);
    }
    long long balance, held;
    credits(&balance, &held);
    assert_int_equal(held, 0);
    assert_int_equal(balance, balance0 - N * 10);
    assert_int_equal(dead_letters(), 0);
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
}

static void test_accepted_while_redis_is_down_is_enqueued_when_it_returns(void **state)
{
    (void)state;
    /* A worker whose sweeper would enqueue it only after an hour: only the api can. */
    assert_int_equal(ts_stop(wf_worker_pid, SIGTERM, 40), 0);
    wf_worker_pid = wf_start_worker_more("worker-nosweep", NULL, "FARM_SWEEP_STALE_S=3600", NULL);
    qt_redis_stop();
    char id[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}", id);
    sleep(2);
    qt_redis_start();
    double back = ts_now();
    json_t *g = wf_wait_status(id, "running|succeeded", 15);
    wf_assert_found(g);
    fprintf(stderr, "started %.1f s after redis came back\n", ts_now() - back);
    json_decref(g);
    g = wf_wait_status(id, "succeeded|partial|failed|canceled", 30);
    wf_assert_found(g);
    assert_string_equal(status_of(g), "succeeded");
    json_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finish_while_redis_is_down_is_told_as_postgres_recorded),
        cmocka_unit_test(test_postgres_outage_fails_no_generation),
        cmocka_unit_test(test_accepted_while_redis_is_down_is_enqueued_when_it_returns),
    };
    return cmocka_run_group_tests(tests, wf_setup, wf_teardown);
}
