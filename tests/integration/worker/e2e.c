/*
 * tests/integration/worker/e2e.c - the whole farm on the offline `local`
 * provider: a real farm-api and two real farm-workers on the fixture's Redis
 * and Postgres. A generation goes from POST to its terminal event; every
 * output file decodes at its documented size; the ledger reconciles.
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
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

#include "api_harness.h"
#include "imaging.h"
#include "support.h"

static char storage[512];
static int metrics_port[2];
static char metrics_env[2][64];
static pid_t api_pid, workers[2];
static char *tok;

static int setup(void **state)
{
    (void)state;
    static char port_env[64], storage_env[600];
    snprintf(storage, sizeof(storage), "%s/storage", ts_env("FARM_TEST_TMPDIR"));
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s", storage);
    const char *extra[] = {storage_env, "FARM_WORKER_METRICS_PORT=0", "FARM_PROVIDER=local", NULL};
    api_pid = au_api_start(extra);
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%s", strrchr(au_base, ':') + 1);
    for (int i = 0; i < 2; i++) {
        metrics_port[i] = ts_free_port();
        snprintf(metrics_env[i], sizeof(metrics_env[i]), "FARM_WORKER_METRICS_PORT=%d",
                 metrics_port[i]);
        char *wextra[] = {port_env,
                          AU_FILE_SECRET_ENV,
                          storage_env,
                          "FARM_PROVIDER=local",
                          metrics_env[i],
                          "FARM_RECONCILE_INTERVAL_S=1",
                          NULL};
        workers[i] = ts_spawn_farm("FARM_TEST_WORKER_BIN", wextra, "worker%d.log", i);
    }
    char user[37];
    tok = au_token(NULL, "pro", NULL, user);
    if (api_pid < 0)
        return -1;
    /* Enough credits for every generation below (welcome credits: 100). */
    return au_grant(user, 1000, "e2e") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = 0;
    if (api_pid > 0)
        bad |= ts_stop(api_pid, SIGTERM, 15) != 0;
    for (int i = 0; i < 2; i++)
        if (workers[i] > 0)
            bad |= ts_stop(workers[i], SIGTERM, 40) != 0;
    free(tok);
    return bad ? -1 : 0; /* every process exits 0 on SIGTERM, sanitizers clean */
}

/* POSTs `body`, follows the events to the end; returns the terminal event's data. */
static json_t *run_generation(const char *body, char *events_out, size_t events_size)
{
    ts_http_t r = au_call("POST", "/v1/generations", tok, body, NULL);
    assert_int_equal(r.status, 202);
    char url[256], auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    json_t *created = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    snprintf(url, sizeof(url), "%s%s", au_base,
             json_string_value(json_object_get(created, "events_url")));
    json_decref(created);
    const char *h2[] = {auth, NULL};
    r = ts_http("GET", url, h2, NULL, 0); /* the stream ends after the terminal event */
    assert_int_equal(r.status, 200);
    snprintf(events_out, events_size, "%s", r.body);
    /* The terminal event is the last one: its data line is the generation. */
    const char *last = NULL;
    for (const char *p = strstr(r.body, "\ndata: "); p; p = strstr(p + 1, "\ndata: "))
        last = p + 7;
    assert_non_null(last);
    json_t *gen = json_loadb(last, strcspn(last, "\n"), 0, NULL);
    ts_http_dispose(&r);
    assert_non_null(gen);
    return gen;
}

/* Every output: its file exists, decodes, and has the size and format it claims. */
static void check_outputs(json_t *gen, size_t want)
{
    json_t *outputs = json_object_get(gen, "outputs");
    assert_int_equal(json_array_size(outputs), want);
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o)
    {
        const char *url = json_string_value(json_object_get(o, "url"));
        assert_non_null(url);
        assert_non_null(strstr(url, "sig="));
        const char *key = url + strlen("/v1/files/");
        char path[1200];
        snprintf(path, sizeof(path), "%s/%.*s", storage, (int)strcspn(key, "?"), key);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static unsigned char buf[8 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        assert_int_equal(n, json_integer_value(json_object_get(o, "bytes")));
        img_info info;
        au_assert_output_image(buf, n, o, &info);
        const char *variant = json_string_value(json_object_get(o, "variant"));
        if (strcmp(variant, "thumb") == 0)
            assert_int_equal(info.width, 128);
        else if (strcmp(variant, "512") == 0)
            assert_int_equal(info.width * 10000 + info.height, 512 * 10000 + 512);
        else if (strcmp(variant, "instagram_story") == 0)
            assert_int_equal(info.width * 10000 + info.height, 1080 * 10000 + 1920);
    }
}

/* An `image` event's outputs carry their signed url, as GET's do, and no storage key. */
static void check_image_event(const char *events)
{
    const char *at = strstr(events, "event: image\ndata: ");
    assert_non_null(at);
    at += strlen("event: image\ndata: ");
    json_t *ev = json_loadb(at, strcspn(at, "\n"), 0, NULL);
    assert_non_null(ev);
    json_t *outputs = json_object_get(ev, "outputs"), *o;
    assert_true(json_array_size(outputs) > 0);
    size_t i;
    json_array_foreach(outputs, i, o)
    {
        assert_null(json_object_get(o, "storage_key"));
        ts_http_t r = au_get_output(o);
        ts_http_dispose(&r);
    }
    json_decref(ev);
}

static void test_avatar_from_post_to_succeeded(void **state)
{
    (void)state;
    static char events[1 << 20];
    json_t *gen = run_generation("{\"kind\":\"avatar\",\"prompt\":\"a watercolor fox\","
                                 "\"count\":2,\"width\":512,\"height\":512,"
                                 "\"exports\":[\"instagram_story\"]}",
                                 events, sizeof(events));
    assert_non_null(strstr(events, "event: queued\n"));
    assert_non_null(strstr(events, "event: started\n"));
    assert_non_null(strstr(events, "event: image\n"));
    check_image_event(events);
    assert_non_null(strstr(events, "event: succeeded\n"));
    assert_string_equal(json_string_value(json_object_get(gen, "status")), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(gen, "charged")), 20);
    assert_int_equal(json_integer_value(json_object_get(gen, "released")), 0);
    check_outputs(gen, 2 * 5); /* full, 512, 256, thumb, instagram_story per image */
    /* Two GETs in a row give the same signed URLs: a polling page keeps its cached images. */
    char url[256], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/generations/%s", au_base,
             json_string_value(json_object_get(gen, "id")));
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, NULL};
    ts_http_t a = ts_http("GET", url, h, NULL, 0), b = ts_http("GET", url, h, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_non_null(strstr(a.body, "sig="));
    assert_string_equal(a.body, b.body);
    ts_http_dispose(&a);
    ts_http_dispose(&b);
    json_decref(gen);
}

static void test_pose_two_poses_times_two(void **state)
{
    (void)state;
    static char events[1 << 20];
    json_t *gen = run_generation(
        "{\"kind\":\"pose\",\"prompt\":\"a dancer\",\"count\":2,\"width\":256,\"height\":256,"
        "\"poses\":[{\"preset\":\"standing-arms-crossed\"},{\"preset\":\"standing-wave\"}]}",
        events, sizeof(events));
    assert_string_equal(json_string_value(json_object_get(gen, "status")), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(gen, "images_done")), 4);
    assert_int_equal(json_integer_value(json_object_get(gen, "charged")), 4 * 30);
    check_outputs(gen, 4 * 4);
    json_decref(gen);
}

/* The value of a series on a worker's /metrics (0 when absent). */
static double worker_metric(int i, const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port[i]);
    return au_metric(url, series, 0);
}
/* The workers count what they settled: 2 avatars and 4 pose images, all captured. */
static void test_workers_count_generations_and_images(void **state)
{
    (void)state;
    double captured = 0, released = 0, succeeded = 0;
    for (int i = 0; i < 2; i++) {
        captured += worker_metric(i, "farm_worker_images_total{outcome=\"captured\"} ");
        released += worker_metric(i, "farm_worker_images_total{outcome=\"released\"} ");
        succeeded += worker_metric(i, "farm_worker_generations_total{status=\"succeeded\"} ");
    }
    assert_int_equal((int)captured, 6);
    assert_int_equal((int)released, 0);
    assert_int_equal((int)succeeded, 2);
}

/* By kind: one avatar and one pose generation finished, each waited in the queue
 * and took some time from its acceptance to its finish (at least its queue wait). */
static void test_workers_time_generations_by_kind(void **state)
{
    (void)state;
    const char *kinds[] = {"avatar", "pose"};
    for (int k = 0; k < 2; k++) {
        char series[160];
        double outcomes = 0, failed = 0, waits = 0, wait_s = 0, runs = 0, run_s = 0;
        for (int i = 0; i < 2; i++) {
#define KIND_SERIES(fmt) (snprintf(series, sizeof(series), fmt, kinds[k]), series)
            outcomes += worker_metric(
                i, KIND_SERIES("farm_generation_outcomes_total{kind=\"%s\",status=\"succeeded\","
                               "code=\"none\"} "));
            failed += worker_metric(
                i, KIND_SERIES("farm_generation_outcomes_total{kind=\"%s\",status=\"failed\""));
            waits += worker_metric(
                i, KIND_SERIES("farm_generation_queue_wait_seconds_count{kind=\"%s\"} "));
            wait_s += worker_metric(
                i, KIND_SERIES("farm_generation_queue_wait_seconds_sum{kind=\"%s\"} "));
            runs += worker_metric(
                i, KIND_SERIES("farm_generation_duration_seconds_count{kind=\"%s\"} "));
            run_s +=
                worker_metric(i, KIND_SERIES("farm_generation_duration_seconds_sum{kind=\"%s\"} "));
#undef KIND_SERIES
        }
        assert_int_equal((int)outcomes, 1);
        assert_int_equal((int)failed, 0);
        assert_int_equal((int)waits, 1);
        assert_int_equal((int)runs, 1);
        assert_true(wait_s >= 0);
        assert_true(run_s > 0);
        assert_true(run_s >= wait_s);
        assert_true(run_s < 600); /* seconds, not milliseconds */
    }
}

/* A series summed over both workers. */
static double workers_metric(const char *series)
{
    return worker_metric(0, series) + worker_metric(1, series);
}

/* The pool's and Redis's timings move with the work: one more generation means more
 * statements sent (each waited for a connection, if only a little) and more claims,
 * heartbeats or finishes answered by Redis; the pool's size is FARM_DB_POOL_SIZE. */
static void test_workers_time_postgres_and_redis(void **state)
{
    (void)state;
    assert_true(worker_metric(0, "\nfarm_pg_pool_connections ") >= 1);
    assert_int_equal((int)worker_metric(1, "\nfarm_worker_concurrency "), 64); /* the default */
    const char *pg = "farm_pg_pool_wait_seconds_count ";
    const char *fin = "farm_redis_command_seconds_count{op=\"finish\"} ";
    const char *claim = "farm_redis_command_seconds_count{op=\"claim\"} ";
    double pg0 = workers_metric(pg), fin0 = workers_metric(fin), claim0 = workers_metric(claim);
    double avatars0 = workers_metric(
        "farm_generation_outcomes_total{kind=\"avatar\",status=\"succeeded\",code=\"none\"} ");
    assert_true(pg0 > 0);
    assert_true(fin0 >= 1);
    static char events[1 << 20];
    json_t *gen = run_generation(
        "{\"kind\":\"avatar\",\"prompt\":\"a fox again\",\"width\":256,\"height\":256,"
        "\"count\":2}",
        events, sizeof(events));
    assert_string_equal(json_string_value(json_object_get(gen, "status")), "succeeded");
    json_decref(gen);
    /* The finish reaches Redis after Postgres recorded it: wait for the count to move. */
    double fin1 = fin0;
    for (int i = 0; i < 100 && fin1 == fin0; i++) {
        fin1 = workers_metric(fin);
        if (fin1 == fin0)
            usleep(50 * 1000);
    }
    assert_true(fin1 > fin0);
    /* start, the first image, the last image with the finish (one call) at least */
    assert_true(workers_metric(pg) >= pg0 + 3);
    assert_true(workers_metric(claim) > claim0);
    assert_int_equal((int)(workers_metric("farm_generation_outcomes_total{kind=\"avatar\","
                                          "status=\"succeeded\",code=\"none\"} ") -
                           avatars0),
                     1);
}

/* One number of a psql query. */
static long long psql_num(const char *sql)
{
    long long v = -1;
    assert_int_equal(ts_sh_number(&v, "psql -X -At \"$FARM_DATABASE_URL\" -c \"%s\"", sql), 0);
    return v;
}

/* A series of the api's /metrics (-1 when absent). */
static double api_metric(const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", au_base);
    return au_metric(url, series, -1);
}
/* The api counts the farm's captured credits (the accounts' running totals), equal to the
 * ledger's captures; the workers show their breakers closed. */
static void test_credits_captured_on_metrics(void **state)
{
    (void)state;
    long long want = psql_num("SELECT coalesce(sum(amount), 0) FROM credit_ledger "
                              "WHERE kind = 'capture'");
    assert_true(want > 0);
    double got = -1;
    for (double end = ts_now() + 25; got != (double)want && ts_now() < end; usleep(200 * 1000))
        got = api_metric("\nfarm_credits_captured_total ");
    assert_true(got == (double)want);
    assert_true(api_metric("\nfarm_credits_released_total ") == 0);
    for (int i = 0; i < 2; i++) {
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port[i]);
        ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
        assert_non_null(strstr(r.body, "\nfarm_provider_breaker_open{provider=\"local\"} 0\n"));
        ts_http_dispose(&r);
    }
}

/* The workers' sweeper checks the ledger every FARM_RECONCILE_INTERVAL_S (1 s here): a hand
 * edit shows as one violation, and its undoing brings the gauge back to 0. */
static void test_sweeper_exports_reconcile_violations(void **state)
{
    (void)state;
    const char *v = "\nfarm_reconcile_violations ";
    const char *ran = "\nfarm_reconcile_last_run_timestamp_seconds ";
    int ok = 0;
    for (double end = ts_now() + 30; !ok && ts_now() < end; usleep(200 * 1000))
        ok = worker_metric(0, ran) + worker_metric(1, ran) > 0 && workers_metric(v) == 0;
    assert_true(ok);
    const char *user = "(SELECT user_id FROM credit_accounts ORDER BY user_id LIMIT 1)";
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE credit_accounts SET captured = captured + 1 WHERE user_id = %s", user);
    assert_int_equal(ts_sh("psql -X -q \"$FARM_DATABASE_URL\" -c \"%s\"", sql), 0);
    ok = 0;
    for (double end = ts_now() + 30; !ok && ts_now() < end; usleep(200 * 1000))
        ok = worker_metric(0, v) == 1 || worker_metric(1, v) == 1;
    snprintf(sql, sizeof(sql),
             "UPDATE credit_accounts SET captured = captured - 1 WHERE user_id = %s", user);
    assert_int_equal(ts_sh("psql -X -q \"$FARM_DATABASE_URL\" -c \"%s\"", sql), 0);
    assert_true(ok);
    ok = 0;
    for (double end = ts_now() + 30; !ok && ts_now() < end; usleep(200 * 1000))
        ok = workers_metric(v) == 0;
    assert_true(ok);
}

static void test_ledger_reconciles(void **state)
{
    (void)state;
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_avatar_from_post_to_succeeded),
        cmocka_unit_test(test_pose_two_poses_times_two),
        cmocka_unit_test(test_workers_count_generations_and_images),
        cmocka_unit_test(test_workers_time_generations_by_kind),
        cmocka_unit_test(test_workers_time_postgres_and_redis),
        cmocka_unit_test(test_credits_captured_on_metrics),
        cmocka_unit_test(test_sweeper_exports_reconcile_violations),
        cmocka_unit_test(test_ledger_reconciles),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    img_shutdown();
    return rc;
}
