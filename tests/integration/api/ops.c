/*
 * tests/integration/api/ops.c - farm-api as an operator sees it, as a real
 * process against the fixture's real Redis and Postgres: /healthz, /readyz
 * following each dependency down and back up, /metrics, a bad configuration
 * refused at start, and a clean exit on SIGTERM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "support.h"

static char base[64];
static pid_t api_pid;
static char log_path[512];

static int start_api(void **state)
{
    (void)state;
    static char port_env[64];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(log_path, sizeof(log_path), "%s/api.log", ts_env("FARM_TEST_TMPDIR"));
    char *argv[] = {(char *)ts_env("FARM_TEST_API_BIN"), NULL};
    char *extra[] = {port_env,
                     "FARM_READYZ_TIMEOUT_MS=500",
                     "FARM_REDIS_CONNECT_TIMEOUT_MS=300",
                     "FARM_JWT_SECRET=ops-secret-0123456789",
                     "FARM_FILE_SECRET=ops-file-secret-0123456789",
                     NULL};
    api_pid = ts_spawn(argv, extra, log_path);
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", base);
    return ts_wait_http(url, 200, "ok", 20) ? 0 : -1;
}

static int stop_api(void **state)
{
    (void)state;
    if (api_pid > 0)
        ts_stop(api_pid, SIGKILL, 5);
    return 0;
}

static void get(const char *path, ts_http_t *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    *r = ts_http("GET", url, NULL, NULL, 0);
}

static int wait_ready(long status, const char *needle, double timeout_s)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", base);
    return ts_wait_http(url, status, needle, timeout_s);
}

static void test_healthz_answers_ok_with_a_request_id(void **state)
{
    (void)state;
    ts_http_t r;
    get("/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    assert_non_null(strcasestr(r.headers, "X-Request-Id: "));
    ts_http_dispose(&r);
}

static void test_readyz_ready_when_both_answer(void **state)
{
    (void)state;
    assert_true(wait_ready(200, "\"redis\":\"ok\",\"postgres\":\"ok\"", 20));
}

static void test_readyz_follows_redis_down_and_back(void **state)
{
    (void)state;
    int port = atoi(ts_env("FARM_TEST_REDIS_PORT"));
    assert_int_equal(ts_sh("redis-cli -p %d shutdown nosave >/dev/null 2>&1 || true", port), 0);
    assert_true(wait_ready(503, "\"redis\":\"unavailable\",\"postgres\":\"ok\"", 10));
    ts_http_t r;
    get("/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"unavailable\""));
    ts_http_dispose(&r);
    assert_int_equal(ts_sh("redis-server '%s' >/dev/null", ts_env("FARM_TEST_REDIS_CONF")), 0);
    assert_true(wait_ready(200, NULL, 20));
}

/* POST /v1/generations with `body` as a new pro user. */
static ts_http_t post_generation(const char *body)
{
    char user[37], url[128], auth[1024];
    gf_uuid4(user);
    api_claims_t c = {.sub = user, .plan = "pro", .ttl_s = 600};
    char *tok = api_token_issue("ops-secret-0123456789", &c, NULL);
    snprintf(url, sizeof(url), "%s/v1/generations", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    ts_http_t r = ts_http("POST", url, h, body, strlen(body));
    free(tok);
    return r;
}

/* A generation asked for while Postgres is down: 503, nothing held. */
static void expect_post_unavailable(void)
{
    ts_http_t r = post_generation("{\"kind\":\"avatar\",\"prompt\":\"a fox\"}");
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"unavailable\""));
    ts_http_dispose(&r);
}

static void test_readyz_follows_postgres_down_and_back(void **state)
{
    (void)state;
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    assert_true(wait_ready(503, "\"postgres\":\"unavailable\"", 10));
    expect_post_unavailable();
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    assert_true(wait_ready(200, NULL, 20));
}

static void test_metrics_count_requests_by_route_and_status(void **state)
{
    (void)state;
    ts_http_t r;
    get("/nope", &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"code\":\"not_found\""));
    ts_http_dispose(&r);
    get("/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE farm_http_requests_total counter"));
    assert_non_null(strstr(
        r.body, "farm_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"503\"}"));
    assert_non_null(strstr(
        r.body, "farm_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"));
    assert_non_null(strstr(r.body, "farm_http_request_duration_seconds_bucket{route=\"/"
                                   "healthz\",method=\"GET\",class=\"2xx\""));
    assert_non_null(strstr(r.body, "farm_http_request_duration_seconds_count{route=\"/readyz\","
                                   "method=\"GET\",class=\"5xx\"} "));
    ts_http_dispose(&r);
}

/* The farm's state (API.md: queue depth by priority, in-flight jobs, credits held) is on
 * /metrics too, read from the queue and Postgres every 10 s. */
static void test_metrics_show_the_queue_and_the_credits(void **state)
{
    (void)state;
    ts_http_t r = post_generation("{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"count\":2}");
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    /* No worker runs here: the job stays queued and its 2 x 10 credits held. */
    int seen = 0;
    for (double end = ts_now() + 25; !seen && ts_now() < end; usleep(200 * 1000)) {
        get("/metrics", &r);
        seen = strstr(r.body, "farm_queue_depth{tier=\"pro\"} 1\n") != NULL &&
               strstr(r.body, "farm_credits_held 20\n") != NULL &&
               strstr(r.body, "farm_queue_in_flight 0\n") != NULL &&
               strstr(r.body, "farm_gauges_stale{source=\"queue\"} 0\n") != NULL &&
               strstr(r.body, "farm_gauges_stale{source=\"postgres\"} 0\n") != NULL;
        if (!seen && ts_now() >= end)
            fprintf(stderr, "%s", r.body);
        ts_http_dispose(&r);
    }
    assert_true(seen); /* This process held the 20 credits, sent statements to Postgres (each timed
                        * from its wait for a connection) and the enqueue to Redis. */
    get("/metrics", &r);
    assert_non_null(strstr(r.body, "\nfarm_credits_held_total 20\n"));
    assert_non_null(strstr(r.body, "\nfarm_redis_command_seconds_count{op=\"enqueue\"} 1\n"));
    const char *waits = strstr(r.body, "\nfarm_pg_pool_wait_seconds_count ");
    assert_non_null(waits);
    assert_true(strtod(waits + strlen("\nfarm_pg_pool_wait_seconds_count "), NULL) >= 2);
    assert_non_null(strstr(r.body, "\nfarm_pg_pool_connections "));
    assert_non_null(strstr(r.body, "\nfarm_pg_pool_waiting 0\n"));
    ts_http_dispose(&r);
}

/* The file at `path` into `out`, runs of spaces squeezed to one: -1 when it cannot be read. */
static int read_squeezed(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = 0;
    for (int ch, sp = 0; (ch = fgetc(f)) != EOF && n + 1 < cap;) {
        if (ch == ' ' && sp)
            continue;
        sp = ch == ' ';
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    fclose(f);
    return 0;
}

/* Runs `farm <args>` (env before it), its output squeezed (runs of spaces to one) into
 * `out`; returns its exit status. */
static int farm_cli(const char *env, const char *args, char *out, size_t cap)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/farm-stats.out", ts_env("FARM_TEST_TMPDIR"));
    int rc = ts_sh("%s '%s' %s > '%s' 2>&1", env, ts_env("FARM_TEST_CLI"), args, path);
    assert_int_equal(read_squeezed(path, out, cap), 0);
    return rc;
}

/* Waits up to 30 s for the watch's output at `path` to hold `want` after its `after`-th
 * byte; the offset just past it, or -1. */
static long watch_shows(const char *path, long after, const char *want, char *out, size_t cap)
{
    for (double end = ts_now() + 30; ts_now() < end; usleep(100 * 1000)) {
        if (read_squeezed(path, out, cap) < 0 || (long)strlen(out) <= after)
            continue;
        const char *at = strstr(out + after, want);
        if (at != NULL)
            return (long)(at - out) + (long)strlen(want);
    }
    return -1;
}

static void redis_on(int port, const char *dir)
{
    assert_int_equal(ts_sh("redis-server --port %d --bind 127.0.0.1 --daemonize yes --save '' "
                           "--appendonly no --dir '%s' --pidfile '%s/watch-redis.pid' >/dev/null",
                           port, dir, dir),
                     0);
}

static void redis_off(const char *dir)
{
    ts_sh("kill $(cat '%s/watch-redis.pid'); for i in $(seq 50); do kill -0 $(cat "
          "'%s/watch-redis.pid') 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
          dir, dir);
}

/* A watch begun while Redis is down shows the queue once Redis is up, and again after a
 * restart: it connects anew instead of showing "unavailable" until interrupted. */
static void watch_reconnects_to_redis(char *out, size_t cap)
{
    const char *dir = ts_env("FARM_TEST_TMPDIR");
    int port = ts_free_port();
    char path[600], cmd[1400];
    snprintf(path, sizeof(path), "%s/farm-watch-redis.out", dir);
    snprintf(cmd, sizeof(cmd),
             "FARM_REDIS_URL=redis://127.0.0.1:%d FARM_REDIS_CONNECT_TIMEOUT_MS=300 exec '%s' "
             "stats --watch 1 > '%s' 2>&1",
             port, ts_env("FARM_TEST_CLI"), path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t watch = ts_spawn(argv, NULL, NULL);
    long at = watch_shows(path, 0, "queue unavailable", out, cap);
    redis_on(port, dir);
    if (at >= 0)
        at = watch_shows(path, at, " in flight 0\n", out, cap);
    redis_off(dir);
    if (at >= 0)
        at = watch_shows(path, at, "queue unavailable", out, cap);
    redis_on(port, dir);
    if (at >= 0)
        at = watch_shows(path, at, " in flight 0\n", out, cap);
    redis_off(dir);
    int st = ts_stop(watch, SIGINT, 30);
    if (at < 0 || st != 0)
        fail_msg("farm stats --watch across Redis down, up, restarted: exit %d, output:\n%s", st,
                 out);
}

/* `farm stats` shows the state the test before left: one avatar of 2 images queued in
 * the pro tier (the test user's plan), nothing else, no worker, 20 credits held. */
static void test_farm_stats_shows_the_farm(void **state)
{
    (void)state;
    static char out[1 << 16];
    assert_int_equal(farm_cli("", "stats", out, sizeof(out)), 0);
    const char *want[] = {" ready pro 1\n",    " delayed (backoff) 0\n",          " in flight 0\n",
                          " dead letters 0\n", " dead-lettered, last minute 0\n", "WORKERS 0\n",
                          "CREDITS HELD 20\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(out, want[i]) == NULL)
            fail_msg("farm stats lacks \"%s\" in:\n%s", want[i], out);
    /* Redis unreachable: the queue is shown unavailable (not as zeros), exit 1. */
    assert_int_equal(
        farm_cli("FARM_REDIS_URL=redis://127.0.0.1:1 FARM_REDIS_CONNECT_TIMEOUT_MS=300", "stats",
                 out, sizeof(out)),
        1);
    assert_non_null(strstr(out, "queue unavailable"));
    assert_null(strstr(out, "ready pro"));
    assert_non_null(strstr(out, "CREDITS HELD 20\n"));
    /* --watch redraws until interrupted, then exits 0. The SIGINT goes once two frames are
     * out, so a start slowed by a loaded machine cannot make it arrive before the handler. */
    char path[600], cmd[1400];
    snprintf(path, sizeof(path), "%s/farm-watch.out", ts_env("FARM_TEST_TMPDIR"));
    snprintf(cmd, sizeof(cmd), "exec '%s' stats --watch 1 > '%s' 2>&1", ts_env("FARM_TEST_CLI"),
             path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t watch = ts_spawn(argv, NULL, NULL);
    int frames = 0;
    for (double end = ts_now() + 60; frames < 2 && ts_now() < end; usleep(100 * 1000)) {
        if (read_squeezed(path, out, sizeof(out)) < 0)
            continue;
        frames = 0;
        for (const char *at = out; (at = strstr(at, "CREDITS HELD 20\n")) != NULL; at++)
            frames++;
    }
    int st = ts_stop(watch, SIGINT, 30);
    if (frames < 2 || st != 0)
        fail_msg("farm stats --watch 1: %d frames, exit %d, output:\n%s", frames, st, out);
    assert_int_equal(farm_cli("", "stats --watch 0", out, sizeof(out)), 2);
    watch_reconnects_to_redis(out, sizeof(out));
}

/* The farm's settled credits are counters on /metrics: a queued generation canceled gives its
 * 2 x 10 credits back, and farm_credits_released_total moves by 20 (nothing was captured). */
static void test_metrics_count_credits_released(void **state)
{
    (void)state;
    char user[37], url[160], auth[1024], id[37];
    gf_uuid4(user);
    api_claims_t c = {.sub = user, .plan = "pro", .ttl_s = 600};
    char *tok = api_token_issue("ops-secret-0123456789", &c, NULL);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    const char *body = "{\"kind\":\"avatar\",\"prompt\":\"a hare\",\"count\":2}";
    snprintf(url, sizeof(url), "%s/v1/generations", base);
    ts_http_t r = ts_http("POST", url, h, body, strlen(body));
    assert_int_equal(r.status, 202);
    const char *at = strstr(r.body, "\"id\":\"");
    assert_non_null(at);
    snprintf(id, sizeof(id), "%.36s", at + 6);
    ts_http_dispose(&r);
    int seen = 0;
    for (double end = ts_now() + 25; !seen && ts_now() < end; usleep(200 * 1000)) {
        get("/metrics", &r);
        /* The generation of the test before is still queued: it is the oldest, seconds old. */
        const char *old = strstr(r.body, "\nfarm_generations_oldest_queued_seconds ");
        seen = strstr(r.body, "\nfarm_credits_released_total 0\n") != NULL &&
               strstr(r.body, "\nfarm_credits_captured_total 0\n") != NULL && old != NULL &&
               strtod(old + strlen("\nfarm_generations_oldest_queued_seconds "), NULL) >= 1;
        ts_http_dispose(&r);
    }
    assert_true(seen);
    snprintf(url, sizeof(url), "%s/v1/generations/%s/cancel", base, id);
    r = ts_http("POST", url, h, NULL, 0);
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    seen = 0;
    for (double end = ts_now() + 25; !seen && ts_now() < end; usleep(200 * 1000)) {
        get("/metrics", &r);
        seen = strstr(r.body, "\n# TYPE farm_credits_released_total counter\n") != NULL &&
               strstr(r.body, "\nfarm_credits_released_total 20\n") != NULL &&
               strstr(r.body, "\nfarm_credits_captured_total 0\n") != NULL;
        ts_http_dispose(&r);
    }
    assert_true(seen);
    free(tok);
}

static void test_sigterm_exits_zero(void **state)
{
    (void)state;
    int status = ts_stop(api_pid, SIGTERM, 15);
    api_pid = 0;
    assert_int_equal(status, 0);
    /* Every line it logged is JSON: one object per line. */
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    char line[8192];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        assert_true(line[0] == '{' && strstr(line, "\"ts\":") != NULL);
        lines++;
    }
    fclose(f);
    assert_true(lines > 0);
}

/* Runs argv with env's three settings (NULL ends them early): it exits 2, and its output
 * names `needle` (env[3]). */
static void expect_exit_2_naming(char **argv, const char *const env4[4], const char *log, size_t i)
{
    char out[512];
    char *env[] = {(char *)env4[0], (char *)env4[1], (char *)env4[2], NULL};
    snprintf(out, sizeof(out), "%s/%s-%zu.log", ts_env("FARM_TEST_TMPDIR"), log, i);
    pid_t pid = ts_spawn(argv, env, out);
    assert_int_equal(ts_stop(pid, 0, 10), 2);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    /* the whole log: the configuration line alone is longer than 4 KiB */
    static char all[65536];
    size_t n = fread(all, 1, sizeof(all) - 1, f);
    all[n] = '\0';
    fclose(f);
    if (strstr(all, env4[3]) == NULL)
        fprintf(stderr, "%s %s: %s", argv[0], env4[1], all);
    assert_non_null(strstr(all, env4[3]));
}

static void test_bad_config_stops_at_start_naming_the_variable(void **state)
{
    (void)state;
    char out[512];
    snprintf(out, sizeof(out), "%s/badcfg.log", ts_env("FARM_TEST_TMPDIR"));
    char *argv[] = {(char *)ts_env("FARM_TEST_API_BIN"), NULL};
    char *extra[] = {"FARM_HTTP_HEADER_TIMEOUT_S=soon", NULL};
    pid_t pid = ts_spawn(argv, extra, out);
    assert_int_equal(ts_stop(pid, 0, 10), 2);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char line[1024] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_non_null(strstr(line, "FARM_HTTP_HEADER_TIMEOUT_S=soon"));
    assert_non_null(strstr(line, "1..600"));
    /* Refused at start too, not by each api process in turn (its supervisor restarted a
     * process that failed with anything but 2, once a second, for ever): a malformed tier
     * list, and the secrets left unset. */
#define OPS_SECRETS                                                                                \
    "FARM_JWT_SECRET=ops-secret-0123456789", "FARM_FILE_SECRET=ops-file-secret-0123456789"
    static const char *const cases[][4] = {
        {"FARM_QUEUE_TIERS=pro:4", "FARM_API_PROCESSES=2", NULL, "FARM_QUEUE_TIERS"},
        {"FARM_JWT_SECRET=ops-secret-0123456789", "FARM_FILE_SECRET=", NULL, "FARM_FILE_SECRET"},
        {"FARM_JWT_SECRET=short", "FARM_FILE_SECRET=ops-file-secret-0123456789", NULL,
         "FARM_JWT_SECRET"},
        /* libpq refuses these only when it connects: every connection failed, for ever. */
        {OPS_SECRETS, "FARM_DATABASE_URL=postgresql://farm@127.0.0.1:1/farm?sslmode=bogus",
         "sslmode must be one of"},
        {OPS_SECRETS,
         "FARM_DATABASE_URL=postgresql://farm@127.0.0.1:1/farm?target_session_attrs=bogus",
         "target_session_attrs must be one of"},
        {OPS_SECRETS, "FARM_DATABASE_URL=postgresql://farm@127.0.0.1:1/farm?colour=red",
         "FARM_DATABASE_URL: invalid URI query parameter"},
        /* No worker could sign with it: webhook_url would be taken and never sent. */
        {OPS_SECRETS, "FARM_WEBHOOK_SECRET=whsec_!!not-base64", "FARM_WEBHOOK_SECRET"},
        /* A key anyone could guess: receivers would take forged events for the farm's. */
        {OPS_SECRETS, "FARM_WEBHOOK_SECRET=whsec_YWJjZA==", "fewer than 16"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_exit_2_naming(argv, cases[i], "badcfg", i);
    /* `farm config` refuses each of them as well, and what only farm-worker refuses at
     * start: the deploy check (tests/deploy/k8s-validate.mjs) runs it on the manifests. */
    char *cli[] = {(char *)ts_env("FARM_TEST_CLI"), "config", NULL};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_exit_2_naming(cli, cases[i], "badcli", i);
    static const char *const worker_cases[][4] = {
        /* libcurl 7.88 fails h2c on every reused connection */
        {OPS_SECRETS, "FARM_PROVIDER_HTTP2=prior-knowledge", "FARM_PROVIDER_HTTP2"},
        {OPS_SECRETS, "FARM_PROVIDER_CA_FILE=/nonexistent/ca.pem", "FARM_PROVIDER_CA_FILE"},
        {OPS_SECRETS, "FARM_S3_BUCKET=farm", "FARM_S3_BUCKET is set but FARM_STORAGE=local"},
        {OPS_SECRETS, "FARM_PRESETS_DIR=/nonexistent", "FARM_PRESETS_DIR"}};
    for (size_t i = 0; i < sizeof(worker_cases) / sizeof(worker_cases[0]); i++)
        expect_exit_2_naming(cli, worker_cases[i], "badcli-worker", i);
    /* and a good configuration is printed, exit 0 */
    char *good[] = {OPS_SECRETS, NULL};
    snprintf(out, sizeof(out), "%s/goodcli.log", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_stop(ts_spawn(cli, good, out), 0, 10), 0);
}

static void test_several_processes_share_the_port_and_stop_together(void **state)
{
    (void)state;
    static char port_env[64];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    char *extra[] = {port_env, "FARM_API_PROCESSES=2", "FARM_JWT_SECRET=ops-secret-0123456789",
                     "FARM_FILE_SECRET=ops-file-secret-0123456789", NULL};
    pid_t pid = ts_spawn_farm("FARM_TEST_API_BIN", extra, "multi.log");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
    assert_true(ts_wait_http(url, 200, "ok", 20));
    /* Two children serve the port; the parent only supervises. */
    assert_int_equal(ts_sh("test \"$(pgrep -c -P %d)\" -eq 2", (int)pid), 0);
    for (int i = 0; i < 20; i++)
        assert_true(ts_wait_http(url, 200, "ok", 5));
    assert_int_equal(ts_stop(pid, SIGTERM, 20), 0);
    assert_int_equal(ts_sh("! pgrep -P %d >/dev/null", (int)pid), 0);
}

/*
 * One stop that reaches every process at once (systemd's KillMode=control-group,
 * a terminal's Ctrl-C to the process group): each child has it directly and
 * again from the supervisor, in either order, and still stops gracefully: the
 * supervisor's is never a "second signal" that exits now.
 */
static void test_a_stop_sent_to_every_process_is_one_graceful_stop(void **state)
{
    (void)state;
    static char port_env[64];
    char *extra[] = {port_env, "FARM_API_PROCESSES=2", "FARM_JWT_SECRET=ops-secret-0123456789",
                     "FARM_FILE_SECRET=ops-file-secret-0123456789", NULL};
    /* The children first, then the parent; then the parent first. */
    const char *orders[] = {
        "k=$(pgrep -P %1$d); kill -TERM $k; kill -TERM %1$d",
        "k=$(pgrep -P %1$d); kill -TERM %1$d; kill -TERM $k 2>/dev/null; exit 0"};
    for (int round = 0; round < 2; round++) {
        int port = ts_free_port();
        snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
        pid_t pid = ts_spawn_farm("FARM_TEST_API_BIN", extra, "group-stop-%d.log", round);
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
        assert_true(ts_wait_http(url, 200, "ok", 20));
        assert_int_equal(ts_sh("for i in $(seq 200); do [ \"$(pgrep -c -P %d)\" -eq 2 ] && exit 0; "
                               "sleep 0.01; done; exit 1",
                               (int)pid),
                         0);
        assert_int_equal(ts_sh(orders[round], (int)pid), 0);
        assert_int_equal(ts_stop(pid, 0, 20), 0);
        assert_int_equal(ts_sh("! grep -q 'second signal' '%s/group-stop-%d.log'",
                               ts_env("FARM_TEST_TMPDIR"), round),
                         0);
    }
}

/*
 * SIGTERM while the children are still starting (the supervisor forwards it
 * at once): each child stops gracefully once its handlers exist, instead of
 * dying half-started with 143, and the parent exits 0.
 */
static void test_sigterm_while_starting_stops_gracefully(void **state)
{
    (void)state;
    static char port_env[64];
    char *extra[] = {port_env, "FARM_API_PROCESSES=2", "FARM_JWT_SECRET=ops-secret-0123456789",
                     "FARM_FILE_SECRET=ops-file-secret-0123456789", NULL};
    for (int round = 0; round < 5; round++) {
        snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", ts_free_port());
        pid_t pid = ts_spawn_farm("FARM_TEST_API_BIN", extra, "early-term.log");
        /* As soon as both children exist, before they serve. */
        assert_int_equal(ts_sh("for i in $(seq 200); do [ \"$(pgrep -c -P %d)\" -eq 2 ] && exit 0; "
                               "sleep 0.01; done; exit 1",
                               (int)pid),
                         0);
        assert_int_equal(ts_stop(pid, SIGTERM, 20), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz_answers_ok_with_a_request_id),
        cmocka_unit_test(test_readyz_ready_when_both_answer),
        cmocka_unit_test(test_readyz_follows_redis_down_and_back),
        cmocka_unit_test(test_readyz_follows_postgres_down_and_back),
        cmocka_unit_test(test_metrics_count_requests_by_route_and_status),
        cmocka_unit_test(test_metrics_show_the_queue_and_the_credits),
        cmocka_unit_test(test_farm_stats_shows_the_farm),
        cmocka_unit_test(test_metrics_count_credits_released),
        cmocka_unit_test(test_sigterm_exits_zero),
        cmocka_unit_test(test_bad_config_stops_at_start_naming_the_variable),
        cmocka_unit_test(test_several_processes_share_the_port_and_stop_together),
        cmocka_unit_test(test_sigterm_while_starting_stops_gracefully),
        cmocka_unit_test(test_a_stop_sent_to_every_process_is_one_graceful_stop),
    };
    return cmocka_run_group_tests(tests, start_api, stop_api);
}
