/*
 * tests/integration/worker/faults.c - the worker when things go wrong, with
 * a real farm-api, real farm-workers and the fake provider (slow on purpose)
 * over real HTTP: a running generation is canceled promptly, keeping nothing
 * it did not finish; a worker killed with -9 in the middle of 20 generations
 * loses none of them and charges each exactly once; one killed while its
 * BFL tasks or Replicate predictions run resumes them without paying twice.
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

#include "store.h"
#include "worker_farm.h"

static void test_running_generation_is_canceled_promptly(void **state)
{
    (void)state;
    char id[37], path[128];
    wf_create(
        "{\"kind\":\"avatar\",\"prompt\":\"slow fox\",\"count\":2,\"width\":256,\"height\":256}",
        id);
    wf_expect_status(id, "running", 15);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    double asked = ts_now();
    ts_http_t r = wf_api("POST", path, NULL);
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    /* The provider takes WF_LATENCY_MS per image: ending well before proves the abort. */
    json_t *g = wf_wait_status(id, "canceled", 15);
    wf_assert_found(g);
    assert_true(ts_now() - asked < WF_LATENCY_MS / 1000.0 - 1.0);
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 20);
    json_decref(g);
}

static void test_kill_9_loses_nothing_and_charges_once(void **state)
{
    (void)state;
    enum { N = 20 };
    char ids[N][37];
    for (int i = 0; i < N; i++)
        wf_create("{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}",
                  ids[i]);
    /* Once the first worker holds them all, it dies without a word. */
    wf_expect_status(ids[N - 1], "running", 15);
    assert_int_equal(ts_stop(wf_worker_pid, SIGKILL, 5), 128 + SIGKILL);
    wf_worker_pid = wf_start_worker("worker2");
    for (int i = 0; i < N; i++) {
        json_t *g = wf_wait_end(ids[i], 60);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        assert_true(json_integer_value(json_object_get(g, "attempts")) >= 2);
        json_decref(g);
    }
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
}

static void test_partial_success_charges_only_finished_images(void **state)
{
    (void)state;
    char id[37];
    /* The first provider call is refused as bad input (not retryable); the second works. */
    json_t *g = wf_create_ended(
        "{\"kind\":\"avatar\",\"prompt\":\"a fox [[validation_400*1]]\",\"count\":2,"
        "\"width\":256,\"height\":256}",
        id, 30);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "partial");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "images_done")), 1);
    json_t *f = json_array_get(json_object_get(g, "failures"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f, "error"), "code")),
                        "provider_error");
    assert_true(json_is_false(json_object_get(json_object_get(f, "error"), "retryable")));
    /* Only the delivered image has outputs. */
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(g, "outputs"), i, o)
    {
        assert_int_equal(json_integer_value(json_object_get(o, "index")),
                         json_integer_value(json_object_get(
                             json_array_get(json_object_get(g, "outputs"), 0), "index")));
    }
    json_decref(g);
}

/* A generation that refers to an upload, where one image fails: the worker survives it. */
static void test_failed_image_of_a_generation_with_an_identity(void **state)
{
    (void)state;
    char upload[37];
    wf_upload_png(64, 64, upload);
    json_t *g = wf_identity_avatar("me [[validation_400*1]]", 2, upload);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "partial");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    json_decref(g);
    /* The worker that ran it is still alive and well: the next generation runs too. */
    char id[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"after\",\"width\":256,\"height\":256}", id);
    wf_expect_status(id, "succeeded", 30);
}

static void test_every_image_failing_fails_with_its_error(void **state)
{
    (void)state;
    char id[37];
    json_t *g = wf_create_ended(
        "{\"kind\":\"avatar\",\"prompt\":\"a fox [[validation_422]]\",\"width\":256,"
        "\"height\":256}",
        id, 30);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    assert_string_equal(json_string_value(json_object_get(json_object_get(g, "error"), "code")),
                        "provider_error");
    json_decref(g);
}

/* A request that names a provider of the chain gets that one, not the chain's first. */
static void test_a_named_provider_is_the_one_used(void **state)
{
    (void)state;
    char id[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"named\",\"width\":256,\"height\":256,"
              "\"provider\":\"bfl\"}",
              id);
    json_t *g = wf_wait_status(id, "succeeded", 30);
    wf_assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "provider")), "bfl");
    json_decref(g);
    /* BFL is asynchronous: the worker persisted the request it polled, under bfl's name
     * (with the chain alone, hf would have answered first and persisted nothing). */
    store_conn_t *sc = store_conn_new(ts_env("FARM_DATABASE_URL"), NULL);
    assert_non_null(sc);
    store_call_t c;
    store_call_resume(&c, id);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    int bfl = 0; /* a persisted request "bfl:<id>" */
    for (size_t i = 0; i < c.res.resume.n_requests; i++)
        bfl |= strncmp(c.res.resume.requests[i].token, "bfl:", 4) == 0;
    assert_true(bfl);
    store_call_dispose(&c);
    store_conn_free(sc);
}

/* The start names its worker in Postgres, which then refuses a start by another worker
 * under the same token (one Redis gave twice after losing its last writes). */
static void test_the_start_names_its_worker(void **state)
{
    (void)state;
    char id[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"named worker\",\"width\":256,\"height\":256}", id);
    json_t *g = wf_wait_status(id, "succeeded", 30);
    wf_assert_found(g);
    json_decref(g);
    /* runner.c's id: host-pid-random */
    assert_int_equal(ts_sh("test \"$(psql \"$FARM_DATABASE_URL\" -tAc \"SELECT count(*) FROM "
                           "generations WHERE id = '%s' AND fence_worker LIKE '%%-%d-%%'\")\" = 1",
                           id, (int)wf_worker_pid),
                     0);
}

static void test_deadline_passed_before_start_expires(void **state)
{
    (void)state;
    char id[37];
    /* Nobody can start it in time: the only worker is paused past the deadline. */
    kill(wf_worker_pid, SIGSTOP);
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"late fox\",\"deadline_s\":1,\"width\":256,"
              "\"height\":256}",
              id);
    sleep(2);
    kill(wf_worker_pid, SIGCONT);
    json_t *g = wf_wait_status(id, "expired", 30);
    wf_assert_found(g);
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    json_decref(g);
}

static void test_sigterm_drains_running_generations(void **state)
{
    (void)state;
    char a[37], b[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"fox a\",\"width\":256,\"height\":256}", a);
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"fox b\",\"width\":256,\"height\":256}", b);
    wf_expect_status(b, "running", 15);
    wf_expect_status(a, "running", 15);
    /* Running generations finish within FARM_WORKER_DRAIN_S, then the worker exits 0. */
    assert_int_equal(ts_stop(wf_worker_pid, SIGTERM, 40), 0);
    wf_worker_pid = 0;
    for (int i = 0; i < 2; i++)
        wf_expect_status(i ? b : a, "succeeded", 5);
    wf_worker_pid = wf_start_worker("worker3");
}

static void fake_config(const char *json)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/config", strchr(wf_fake_env, '=') + 1);
    ts_http_t r = ts_http("POST", url, NULL, json, strlen(json));
    assert_int_equal(r.status, 200);
    ts_http_dispose(&r);
}

/*
 * Replaces the idle worker (killed: nothing of it to hand back) by one named
 * `name` whose chain is `fallback` only (and `more`, a setting or NULL), and
 * resets the fake's log and jobs.
 */
static void worker_on_more(const char *name, const char *fallback, const char *more)
{
    ts_stop(wf_worker_pid, SIGKILL, 10);
    wf_worker_pid = wf_start_worker_more(name, fallback, more, NULL);
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/reset", strchr(wf_fake_env, '=') + 1);
    ts_http_t r = ts_http("POST", url, NULL, "{}", 2);
    ts_http_dispose(&r);
}

static void worker_on(const char *name, const char *fallback)
{
    worker_on_more(name, fallback, NULL);
}

/* Waits up to 10 s until `n` running generations have provider requests matching `where`. */
static int requests_persisted(const char *where, int n)
{
    int persisted = 0;
    for (int t = 0; t < 200 && !persisted; t++) {
        persisted = ts_sh("test \"$(psql -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                          "generations WHERE status = 'running' AND %s\")\" -ge %d",
                          where, n) == 0;
        if (!persisted)
            usleep(50000);
    }
    return persisted;
}

static void test_kill_9_resumes_persisted_requests_instead_of_paying_again(void **state)
{
    (void)state;
    enum { N = 5 };
    /* Workers that use BFL (submit, then poll): its request is persisted before the wait. */
    worker_on("worker-bfl-1", "FARM_PROVIDER_FALLBACK=bfl");
    char ids[N][37];
    for (int i = 0; i < N; i++)
        wf_create("{\"kind\":\"avatar\",\"prompt\":\"a bfl fox\",\"width\":256,\"height\":256}",
                  ids[i]);
    /* Wait until every provider request is persisted, then kill the worker. */
    assert_true(requests_persisted("provider_requests <> '{}'::jsonb", N));
    assert_int_equal(wf_fake_count("bfl.submit"), N);
    assert_int_equal(ts_stop(wf_worker_pid, SIGKILL, 5), 128 + SIGKILL);
    wf_worker_pid = wf_start_worker_with("worker-bfl-2", "FARM_PROVIDER_FALLBACK=bfl");
    for (int i = 0; i < N; i++) {
        json_t *g = wf_wait_end(ids[i], 60);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        json_decref(g);
    }
    /* The second worker polled the persisted requests: no second submission. */
    assert_int_equal(wf_fake_count("bfl.submit"), N);
}

/*
 * Replicate: a worker killed with -9 while its predictions run (past the
 * `Prefer: wait`, polled through urls.get) hands them to the next worker,
 * which polls the persisted predictions to their images: no second
 * prediction, each charged once.
 */
static void test_kill_9_resumes_replicate_predictions_without_a_second_one(void **state)
{
    (void)state;
    enum { N = 5 };
    worker_on("worker-rep-1", "FARM_PROVIDER_FALLBACK=replicate");
    fake_config("{\"polls\":6}"); /* predictions that run for a few seconds of polls */
    char ids[N][37];
    for (int i = 0; i < N; i++)
        wf_create("{\"kind\":\"avatar\",\"prompt\":\"a replicate fox [[sync_timeout]]\","
                  "\"width\":256,\"height\":256}",
                  ids[i]);
    assert_true(requests_persisted("provider_requests::text LIKE '%replicate:%'", N));
    assert_int_equal(wf_fake_count("replicate.submit"), N);
    assert_int_equal(ts_stop(wf_worker_pid, SIGKILL, 5), 128 + SIGKILL);
    long polls_at_kill = wf_fake_count("replicate.poll");
    wf_worker_pid = wf_start_worker_with("worker-rep-2", "FARM_PROVIDER_FALLBACK=replicate");
    for (int i = 0; i < N; i++) {
        json_t *g = wf_wait_end(ids[i], 60);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        assert_string_equal(json_string_value(json_object_get(g, "provider")), "replicate");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        json_decref(g);
    }
    fake_config("{\"polls\":2}");
    /* The second worker polled the persisted predictions: none made twice, none canceled. */
    assert_int_equal(wf_fake_count("replicate.submit"), N);
    assert_true(wf_fake_count("replicate.poll") > polls_at_kill);
    assert_int_equal(wf_fake_count("replicate.cancel"), 0);
    ts_stop(wf_worker_pid, SIGTERM, 40);
    wf_worker_pid = wf_start_worker("worker-after-rep");
}

/*
 * A worker that stops without waiting (FARM_WORKER_DRAIN_S=0) hands its
 * running generations back; their Replicate predictions are recorded, so
 * it leaves them running at Replicate, and the next worker resumes them: a
 * cancel there would end each prediction and make the next worker pay for
 * another.
 */
static void test_a_handed_back_prediction_is_left_running_for_the_next_worker(void **state)
{
    (void)state;
    enum { N = 3 };
    worker_on_more("worker-rep-drain-1", "FARM_PROVIDER_FALLBACK=replicate",
                   "FARM_WORKER_DRAIN_S=0");
    fake_config("{\"polls\":6}");
    char ids[N][37];
    for (int i = 0; i < N; i++)
        wf_create("{\"kind\":\"avatar\",\"prompt\":\"a handed back fox [[sync_timeout]]\","
                  "\"width\":256,\"height\":256}",
                  ids[i]);
    assert_true(requests_persisted("provider_requests::text LIKE '%replicate:%'", N));
    assert_int_equal(ts_stop(wf_worker_pid, SIGTERM, 40), 0);
    assert_int_equal(wf_fake_count("replicate.cancel"), 0);
    wf_worker_pid = wf_start_worker_with("worker-rep-drain-2", "FARM_PROVIDER_FALLBACK=replicate");
    for (int i = 0; i < N; i++) {
        json_t *g = wf_wait_end(ids[i], 60);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        json_decref(g);
    }
    fake_config("{\"polls\":2}");
    assert_int_equal(wf_fake_count("replicate.submit"), N);
    assert_int_equal(wf_fake_count("replicate.cancel"), 0);
    ts_stop(wf_worker_pid, SIGTERM, 40);
    wf_worker_pid = wf_start_worker("worker-after-rep-drain");
}

/* Each provider fault, on every adapter of the chain, ends as API.md documents it. */
static void test_every_fault_mode_ends_in_its_documented_error(void **state)
{
    (void)state;
    static const struct {
        const char *marker, *code;
        int retryable;
    } rows[] = {
        {"credits_402", "provider_error", 0},    {"auth_401", "provider_error", 0},
        {"validation_422", "provider_error", 0}, {"server_500", "provider_error", 1},
        {"json_on_200", "provider_error", 1},    {"corrupt_image", "invalid_output", 1},
        {"truncated", "invalid_output", 1},
    };
    enum { N = sizeof(rows) / sizeof(rows[0]) };
    char ids[N][37];
    /*
     * One adapter, and a breaker that stays closed: this checks the mapping of
     * each fault, not the breaker (an open one fails fast as provider_error).
     */
    ts_stop(wf_worker_pid, SIGKILL, 10); /* idle */
    wf_worker_pid = wf_start_worker_more("worker-faults", "FARM_PROVIDER_FALLBACK=hf",
                                         "FARM_PROVIDER_BREAKER_FAILURES=1000",
                                         "FARM_PROVIDER_BREAKER_CREDITS_COOLDOWN_S=0");
    fake_config("{\"latency_ms\":0}");
    for (int i = 0; i < N; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"kind\":\"avatar\",\"prompt\":\"fox [[%s]]\",\"width\":256,\"height\":256}",
                 rows[i].marker);
        wf_create(body, ids[i]);
    }
    json_t *got[N];
    for (int i = 0; i < N; i++)
        got[i] = wf_wait_status(ids[i], "succeeded|partial|failed", 60);
    /* The fake goes back to its latency before anything can fail. */
    char latency[64];
    snprintf(latency, sizeof(latency), "{\"latency_ms\":%d}", WF_LATENCY_MS);
    fake_config(latency);
    ts_stop(wf_worker_pid, SIGTERM, 40);
    wf_worker_pid = wf_start_worker("worker-after-faults");
    for (int i = 0; i < N; i++) {
        json_t *g = got[i], *err = json_object_get(g, "error");
        fprintf(stderr, "%s: %s %s retryable=%d charged=%lld released=%lld\n", rows[i].marker,
                json_string_value(json_object_get(g, "status")),
                json_string_value(json_object_get(err, "code")),
                json_is_true(json_object_get(err, "retryable")),
                (long long)json_integer_value(json_object_get(g, "charged")),
                (long long)json_integer_value(json_object_get(g, "released")));
    }
    for (int i = 0; i < N; i++) {
        json_t *g = got[i], *err = json_object_get(g, "error");
        wf_assert_found(g);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
        assert_string_equal(json_string_value(json_object_get(err, "code")), rows[i].code);
        assert_int_equal(json_is_true(json_object_get(err, "retryable")), rows[i].retryable);
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
        assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    }
    for (int i = 0; i < N; i++)
        json_decref(got[i]);
}

/* Whether the worker's /metrics on `port` says hf's breaker gauge is `v`. */
static int hf_breaker_gauge_is(int port, int v)
{
    char url[96], want[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    snprintf(want, sizeof(want), "\nfarm_provider_breaker_open{provider=\"hf\"} %d\n", v);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    int yes = r.status == 200 && strstr(r.body, want) != NULL;
    ts_http_dispose(&r);
    return yes;
}

/*
 * farm_provider_breaker_open reads 1 while a breaker refuses calls: open, and
 * half-open while its one probe is out. It read 0 from the end of the
 * cooldown on, so a provider that stays down, probed at each cooldown by a
 * call that hangs, showed 0 most of the time and the alert's 5 minutes never
 * held. Past the cooldown with no probe sent it reads 0: nothing is refused.
 */
static void test_the_breaker_gauge_reads_1_while_a_probe_is_out(void **state)
{
    (void)state;
    char metrics_env[64], id[37], probe[37];
    int port = ts_free_port();
    snprintf(metrics_env, sizeof(metrics_env), "FARM_WORKER_METRICS_PORT=%d", port);
    ts_stop(wf_worker_pid, SIGKILL, 10); /* idle */
    /* One failure opens hf's breaker; a 402's cooldown is 1 s here. */
    const char *const more[] = {"FARM_PROVIDER_BREAKER_FAILURES=1",
                                "FARM_PROVIDER_BREAKER_CREDITS_COOLDOWN_S=1", metrics_env, NULL};
    wf_worker_pid = wf_start_worker_env("worker-breaker", "FARM_PROVIDER_FALLBACK=hf", more);
    fake_config("{\"latency_ms\":0}");
    json_t *g = wf_create_ended(
        "{\"kind\":\"avatar\",\"prompt\":\"fox [[credits_402]]\",\"width\":256,\"height\":256}", id,
        30);
    json_decref(g);
    int open_seen = 0;
    for (double end = ts_now() + 5; !open_seen && ts_now() < end; usleep(100000))
        open_seen = hf_breaker_gauge_is(port, 1);
    assert_true(open_seen);
    /* After the cooldown, with no call sent, nothing is refused: 0 (a fallback adapter that
     * nothing calls any more does not read 1 for ever). The next call is the probe, and it
     * hangs (8 s). */
    fake_config("{\"latency_ms\":8000}");
    usleep(1500000);
    int cooled_seen = 0;
    for (double end = ts_now() + 5; !cooled_seen && ts_now() < end; usleep(100000))
        cooled_seen = hf_breaker_gauge_is(port, 0);
    assert_true(cooled_seen);
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"probe fox\",\"width\":256,\"height\":256}", probe);
    wf_expect_status(probe, "running", 10);
    /* Two heartbeat ticks (2 s leases) later, and for 2 s more: 1 at every scrape. */
    usleep(1500000);
    int ones = 0, scrapes = 0;
    for (double end = ts_now() + 2; ts_now() < end; usleep(200000), scrapes++)
        ones += hf_breaker_gauge_is(port, 1);
    fprintf(stderr, "breaker gauge while the probe is out: 1 in %d of %d scrapes\n", ones, scrapes);
    assert_int_equal(ones, scrapes);
    char latency[64];
    snprintf(latency, sizeof(latency), "{\"latency_ms\":%d}", WF_LATENCY_MS);
    fake_config(latency);
    json_decref(wf_wait_end(probe, 30)); /* the probe succeeds: the breaker closes */
    int closed_seen = 0;
    for (double end = ts_now() + 5; !closed_seen && ts_now() < end; usleep(100000))
        closed_seen = hf_breaker_gauge_is(port, 0);
    assert_true(closed_seen);
    ts_stop(wf_worker_pid, SIGTERM, 40);
    wf_worker_pid = wf_start_worker("worker-after-breaker");
}

static void test_paused_worker_loses_its_lease_and_charges_nothing(void **state)
{
    (void)state;
    char id[37];
    wf_create("{\"kind\":\"avatar\",\"prompt\":\"paused fox\",\"width\":256,\"height\":256}", id);
    wf_expect_status(id, "running", 15);
    /* Paused past its 2 s lease while the provider works; another worker takes over. */
    pid_t paused = wf_worker_pid;
    kill(paused, SIGSTOP);
    wf_worker_pid = wf_start_worker("worker-after-pause");
    json_t *g = wf_wait_status(id, "succeeded|partial|failed", 30);
    kill(paused, SIGCONT);
    wf_assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_decref(g);
    /* The paused worker wakes up with a stale token: its late result is refused. */
    sleep(WF_LATENCY_MS / 1000 + 1);
    g = wf_wait_status(id, "succeeded", 5);
    wf_assert_found(g);
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "images_done")), 1);
    json_decref(g);
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile-pause.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
    assert_int_equal(ts_stop(paused, SIGTERM, 40), 0); /* and it never crashed */
}

static void test_redis_restart_mid_run_loses_nothing(void **state)
{
    (void)state;
    enum { N = 200 };
    static char ids[N][37];
    pid_t second = wf_start_worker("worker-second");
    for (int i = 0; i < N; i++)
        wf_create("{\"kind\":\"avatar\",\"prompt\":\"many foxes\",\"width\":256,"
                  "\"height\":256}",
                  ids[i]);
    /* Redis goes away with generations queued and running, and comes back from its AOF. */
    int port = atoi(ts_env("FARM_TEST_REDIS_PORT"));
    assert_int_equal(ts_sh("redis-cli -p %d shutdown >/dev/null 2>&1 || true", port), 0);
    sleep(2);
    assert_int_equal(ts_sh("redis-server '%s' >/dev/null", ts_env("FARM_TEST_REDIS_CONF")), 0);
    for (int i = 0; i < N; i++) {
        json_t *g = wf_wait_status(ids[i], "succeeded|partial|failed|canceled|expired", 120);
        wf_assert_found(g);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        json_decref(g);
    }
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile-redis.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
    assert_int_equal(ts_stop(second, SIGTERM, 60), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_running_generation_is_canceled_promptly),
        cmocka_unit_test(test_partial_success_charges_only_finished_images),
        cmocka_unit_test(test_failed_image_of_a_generation_with_an_identity),
        cmocka_unit_test(test_every_image_failing_fails_with_its_error),
        cmocka_unit_test(test_every_fault_mode_ends_in_its_documented_error),
        cmocka_unit_test(test_the_breaker_gauge_reads_1_while_a_probe_is_out),
        cmocka_unit_test(test_a_named_provider_is_the_one_used),
        cmocka_unit_test(test_the_start_names_its_worker),
        cmocka_unit_test(test_deadline_passed_before_start_expires),
        cmocka_unit_test(test_sigterm_drains_running_generations),
        /* Replicate's first: the BFL test leaves the BFL-only worker the tests after it use. */
        cmocka_unit_test(test_kill_9_resumes_replicate_predictions_without_a_second_one),
        cmocka_unit_test(test_a_handed_back_prediction_is_left_running_for_the_next_worker),
        cmocka_unit_test(test_kill_9_resumes_persisted_requests_instead_of_paying_again),
        cmocka_unit_test(test_paused_worker_loses_its_lease_and_charges_nothing),
        cmocka_unit_test(test_redis_restart_mid_run_loses_nothing),
        cmocka_unit_test(test_kill_9_loses_nothing_and_charges_once),
    };
    return cmocka_run_group_tests(tests, wf_setup, wf_teardown);
}
