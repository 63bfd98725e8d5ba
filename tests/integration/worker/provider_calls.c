/*
 * worker_provider_calls: farm_worker_provider_calls_total counts the
 * provider calls per delivered image (issue #17, docs/providers.md). A
 * farm-api and one farm-worker on the fake provider, the async fal path
 * first in the chain:
 * - a generation of 2 images: 2 new (resumed="false") fal calls, 2 images
 *   captured; the fake's own log counts 2 fal submits;
 * - a generation of 1 image whose first request the provider forgets (its
 *   status answers 404 once: the call fails as a lost job, retryable, and
 *   the worker calls again): 2 new fal calls for 1 image captured; the
 *   fake counts 2 submits.
 * The metric is read from the worker's /metrics, the submits from the
 * fake's /__fake/log (a count that is not the farm's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "api_harness.h"
#include "support.h"

#define CALLS    "farm_worker_provider_calls_total{provider=\"fal\",resumed=\"false\"} "
#define CAPTURED "farm_worker_images_total{outcome=\"captured\"} "

static char storage_env[700];
static char fake_env[128];
static const char *fake_url; /* in fake_env, after '=' */
static char metrics_env[64];
static int metrics_port;
static pid_t api_pid, worker_pid, fake_pid;
static char *tok;
static char user[37];

static int setup(void **state)
{
    (void)state;
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    metrics_port = ts_free_port();
    snprintf(metrics_env, sizeof(metrics_env), "FARM_WORKER_METRICS_PORT=%d", metrics_port);
    fake_pid = ts_fake_start(200, fake_env);
    if (fake_env[0] == '\0')
        return -1;
    fake_url = strchr(fake_env, '=') + 1;
    const char *extra[] = {storage_env, "FARM_PROVIDER=fake",
                           "FARM_PROVIDER_FALLBACK=fal,bfl,replicate,hf", NULL};
    api_pid = au_api_start(extra);
    if (api_pid < 0)
        return -1;
    char log_path[600];
    snprintf(log_path, sizeof(log_path), "%s/worker.log", ts_env("FARM_TEST_TMPDIR"));
    char *env[] = {storage_env,
                   fake_env,
                   metrics_env,
                   "FARM_PROVIDER=fake",
                   "FARM_PROVIDER_FALLBACK=fal,bfl,replicate,hf",
                   "FARM_JWT_SECRET=" AU_SECRET,
                   "FARM_FILE_SECRET=test-file-secret-0123456789",
                   "FARM_PROVIDER_POLL_MIN_MS=100",
                   NULL};
    char *argv[] = {(char *)ts_env("FARM_TEST_WORKER_BIN"), NULL};
    worker_pid = ts_spawn(argv, env, log_path);
    tok = au_token(NULL, "pro", NULL, user);
    return au_grant(user, 10000, "provider-calls") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(worker_pid, api_pid, fake_pid);
    free(tok);
    return bad ? -1 : 0;
}

static void dump_logs(void)
{
    ts_sh("for f in \"$FARM_TEST_TMPDIR\"/*.log; do echo \"== $f\"; tail -n 30 \"$f\"; done >&2");
}

static double worker_metric(const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    const char *at = strstr(r.body, series);
    double v = at ? strtod(at + strlen(series), NULL) : 0;
    ts_http_dispose(&r);
    return v;
}

/* The fake's count of requests to `endpoint` ("fal.submit"). */
static long long fake_count(const char *endpoint)
{
    char url[200];
    snprintf(url, sizeof(url), "%s/__fake/log", fake_url);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    assert_non_null(j);
    long long n = json_integer_value(json_object_get(json_object_get(j, "counts"), endpoint));
    json_decref(j);
    return n;
}

/* Creates an avatar of `count` images and waits for it to succeed. */
static void generation_succeeds(int count)
{
    char body[300], id[37], path[128];
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"provider calls\",\"count\":%d,\"width\":256,"
             "\"height\":256}",
             count);
    au_create(tok, body, id);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    const char *st = NULL;
    json_t *g = NULL;
    double end = ts_now() + 60;
    do {
        json_decref(g);
        usleep(100000);
        ts_http_t r = au_call("GET", path, tok, NULL, NULL);
        g = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
        ts_http_dispose(&r);
        st = json_string_value(json_object_get(g, "status"));
    } while ((st == NULL || strcmp(st, "queued") == 0 || strcmp(st, "running") == 0) &&
             ts_now() < end);
    if (st == NULL || strcmp(st, "succeeded") != 0)
        dump_logs();
    assert_non_null(st);
    assert_string_equal(st, "succeeded");
    assert_int_equal(json_integer_value(json_object_get(g, "images_done")), count);
    json_decref(g);
}

/* The metric is counted when the call ends, before the image settles: wait for it. */
static double metric_reaches(const char *series, double want)
{
    double v, end = ts_now() + 5;
    while ((v = worker_metric(series)) < want && ts_now() < end)
        usleep(100000);
    return v;
}

static void test_one_call_per_image(void **state)
{
    (void)state;
    double calls0 = worker_metric(CALLS), captured0 = worker_metric(CAPTURED);
    long long submits0 = fake_count("fal.submit");
    generation_succeeds(2);
    assert_int_equal((int)metric_reaches(CAPTURED, captured0 + 2), (int)captured0 + 2);
    assert_int_equal((int)worker_metric(CALLS), (int)calls0 + 2);
    assert_int_equal(fake_count("fal.submit"), submits0 + 2);
}

static void test_a_forced_retry_is_another_call(void **state)
{
    (void)state;
    double calls0 = worker_metric(CALLS), captured0 = worker_metric(CAPTURED);
    long long submits0 = fake_count("fal.submit");
    char url[200];
    snprintf(url, sizeof(url), "%s/__fake/faults", fake_url);
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *fault = "[{\"match\":\"fal.status\",\"mode\":\"not_found_404\",\"times\":1}]";
    ts_http_t r = ts_http("POST", url, h, fault, strlen(fault));
    assert_int_equal(r.status, 200);
    ts_http_dispose(&r);
    generation_succeeds(1);
    assert_int_equal((int)metric_reaches(CAPTURED, captured0 + 1), (int)captured0 + 1);
    /* the lost request and the one that delivered: 2 calls for 1 image */
    assert_int_equal((int)worker_metric(CALLS), (int)calls0 + 2);
    assert_int_equal(fake_count("fal.submit"), submits0 + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_call_per_image),
        cmocka_unit_test(test_a_forced_retry_is_another_call),
    };
    return cmocka_run_group_tests_name("worker_provider_calls", tests, setup, teardown);
}
