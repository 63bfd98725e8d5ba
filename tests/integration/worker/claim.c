/*
 * tests/integration/worker/claim.c - a worker claims what it can finish
 * (issue #22, docs/queue.md "Claiming by capacity"): a real farm-api and
 * farm-worker on the fixture's Redis and Postgres and the fake provider.
 *
 * The worker post-processes one image at a time (a thread pool of one) and
 * may hold 64 generations (the default ceiling; the provider would take 100
 * calls at once). A free-tier user's backlog of 40 avatars stays visible in
 * the Redis queue (/v1/admin/stats) while the worker holds a bounded few,
 * never the whole backlog, and its farm_worker_claim_limit says why; a pro
 * user's generation created while the backlog waits starts before the
 * backlog's generations still queued then (the tiers' weighted round robin
 * sees it because the backlog is still in the queue).
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

#include "api_harness.h"
#include "support.h"

#define BACKLOG 40
#define CEILING 64

static pid_t api_pid, fake_pid, worker_pid;
static char *free_tok, *pro_tok, *admin_tok;
static int metrics_port;

static int setup(void **state)
{
    (void)state;
    static char fake_env[128], storage_env[600], metrics_env[64];
    fake_pid = ts_fake_start(300, fake_env);
    if (fake_env[0] == '\0')
        return -1;
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    /* Every process of a farm alike: the tiers are compiled into the queue's functions. */
    const char *tiers = "FARM_QUEUE_TIERS=pro:4:100,free:1:100";
    const char *api_extra[] = {storage_env,
                               "FARM_PROVIDER=fake",
                               tiers,
                               "FARM_RATE_LIMIT_BURST=1000",
                               "FARM_RATE_LIMIT_PER_MIN=100000",
                               "FARM_RATE_LIMITS=reads=1000000/1000000",
                               NULL};
    api_pid = au_api_start(api_extra);
    metrics_port = ts_free_port();
    snprintf(metrics_env, sizeof(metrics_env), "FARM_WORKER_METRICS_PORT=%d", metrics_port);
    char *worker_extra[] = {fake_env,
                            AU_FILE_SECRET_ENV,
                            storage_env,
                            "FARM_PROVIDER=fake",
                            "FARM_PROVIDER_FALLBACK=hf",
                            (char *)tiers,
                            metrics_env,
                            "UV_THREADPOOL_SIZE=1",
                            "FARM_PROVIDER_CONCURRENCY=100",
                            "FARM_WORKER_CLAIM_POLL_MS=50",
                            NULL};
    worker_pid = ts_spawn_farm("FARM_TEST_WORKER_BIN", worker_extra, "worker.log");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", metrics_port);
    if (api_pid < 0 || !ts_wait_http(url, 200, NULL, 30))
        return -1;
    char free_user[37], pro_user[37];
    free_tok = au_token(NULL, "free", NULL, free_user);
    pro_tok = au_token(NULL, "pro", NULL, pro_user);
    admin_tok = au_token(NULL, "pro", "admin", NULL);
    return au_grant(free_user, 100000, "claim") == 0 && au_grant(pro_user, 1000, "claim") == 0 ? 0
                                                                                               : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(worker_pid, api_pid, fake_pid);
    free(free_tok);
    free(pro_tok);
    free(admin_tok);
    return bad ? -1 : 0;
}

/* The value of a series on the worker's /metrics; -1 when absent. */
static double worker_metric(const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    return au_metric(url, series, -1);
}
/* /v1/admin/stats: the free tier's ready jobs and the jobs running, from Redis. */
static void queue_stats(long *free_depth, long *in_flight)
{
    ts_http_t r = au_call("GET", "/v1/admin/stats", admin_tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *s = json_loads(r.body, 0, NULL);
    assert_non_null(s);
    *free_depth =
        (long)json_integer_value(json_object_get(json_object_get(s, "queued_by_tier"), "free"));
    *in_flight = (long)json_integer_value(json_object_get(s, "in_flight"));
    json_decref(s);
    ts_http_dispose(&r);
}

/* GET of a generation as `tok` (decref it). */
static json_t *generation(const char *tok, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/generations/%.36s", id);
    return au_get_json(tok, path);
}

static const char *field(json_t *g, const char *name)
{
    const char *v = json_string_value(json_object_get(g, name));
    return v ? v : "";
}

static void test_a_backlog_waits_in_the_queue_and_a_later_pro_job_goes_first(void **state)
{
    (void)state;
    static char ids[BACKLOG][37];
    char pro[37] = "";
    const char *body = "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":512,\"height\":512}";
    for (int i = 0; i < BACKLOG; i++)
        au_create(free_tok, body, ids[i]);
    long max_in_flight = 0, max_limit = 0, min_limit = CEILING + 1;
    int seen_backlog_waiting = 0, finished = 0;
    double end = ts_now() + 300;
    while (finished < BACKLOG + 1 && ts_now() < end) {
        long depth, in_flight;
        queue_stats(&depth, &in_flight);
        long limit = (long)worker_metric("\nfarm_worker_claim_limit ");
        if (in_flight > max_in_flight)
            max_in_flight = in_flight;
        if (limit > max_limit)
            max_limit = limit;
        if (limit >= 0 && limit < min_limit)
            min_limit = limit;
        /* The backlog in the queue, where the tiers and the autoscaler see it, while the
         * worker runs some of it. */
        if (depth >= BACKLOG / 2 && in_flight >= 1)
            seen_backlog_waiting = 1;
        /* The pro job, once the worker has finished a first generation (it has measured). */
        if (pro[0] == '\0') {
            json_t *g = generation(free_tok, ids[0]);
            if (strcmp(field(g, "status"), "succeeded") == 0)
                au_create(pro_tok, body, pro);
            json_decref(g);
        }
        finished = 0;
        for (int i = 0; i < BACKLOG; i++) {
            json_t *g = generation(free_tok, ids[i]);
            finished += strcmp(field(g, "status"), "succeeded") == 0;
            json_decref(g);
        }
        if (pro[0]) {
            json_t *g = generation(pro_tok, pro);
            finished += strcmp(field(g, "status"), "succeeded") == 0;
            json_decref(g);
        }
        usleep(100 * 1000);
    }
    print_message("claim: max in flight %ld, claim limit %ld..%ld, backlog seen waiting %d\n",
                  max_in_flight, min_limit, max_limit, seen_backlog_waiting);
    assert_int_equal(finished, BACKLOG + 1);
    /* Bounded by what it can finish, not by its ceiling nor by the backlog. */
    assert_true(max_limit >= 1);
    assert_true(max_limit < CEILING);
    assert_true(max_in_flight >= 1);
    assert_true(max_in_flight < BACKLOG / 2);
    assert_true(seen_backlog_waiting);
    /* The pro job started before the backlog still queued when it came: of the free
     * generations that started after it was created, at most the two the weighted round
     * robin and one claim's batch may let through started before it. */
    assert_true(pro[0] != '\0');
    json_t *p = generation(pro_tok, pro);
    char created[40], started[40];
    snprintf(created, sizeof(created), "%s", field(p, "created_at"));
    snprintf(started, sizeof(started), "%s", field(p, "started_at"));
    json_decref(p);
    assert_true(created[0] && started[0]);
    int queued_then = 0, before_pro = 0;
    for (int i = 0; i < BACKLOG; i++) {
        json_t *g = generation(free_tok, ids[i]);
        const char *s = field(g, "started_at");
        if (strcmp(s, created) > 0) {
            queued_then++;
            before_pro += strcmp(s, started) < 0;
        }
        json_decref(g);
    }
    print_message("claim: %d free generations queued when the pro one came, %d started before it\n",
                  queued_then, before_pro);
    assert_true(queued_then >= 10);
    assert_true(before_pro <= 2);
}

static void test_the_claim_limit_is_a_metric(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE farm_worker_claim_limit gauge"));
    ts_http_dispose(&r);
    double limit = worker_metric("\nfarm_worker_claim_limit ");
    assert_true(limit >= 1 && limit <= CEILING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_backlog_waits_in_the_queue_and_a_later_pro_job_goes_first),
        cmocka_unit_test(test_the_claim_limit_is_a_metric),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
