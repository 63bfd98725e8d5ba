/*
 * tests/integration/webhooks/delivery.c - webhooks end to end (API.md,
 * Webhooks; docs/webhooks.md): a real farm-api and farm-workers on the fake
 * provider, the fixture's Redis and Postgres, and a receiver in node
 * (tests/webhooks/receiver.js) over real HTTP on loopback, which checks every
 * signature with the `standardwebhooks` package and a tampered copy of every
 * body (which must fail). FARM_WEBHOOK_ALLOW_PRIVATE=1 lets the farm reach
 * it, except in the SSRF test, which runs a farm without it.
 *
 * Where the schedule waits minutes or hours, the test moves the delivery's
 * own clock in Postgres (next_attempt_at, first_attempt_at) instead of
 * waiting: the schedule itself is asserted where it is set.
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
#include <sys/wait.h>
#include <unistd.h>

#include "api_harness.h"
#include "support.h"

#define SECRET     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define AVATAR     "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256,"
#define LATENCY_MS 100

#define ALLOW_PRIVATE "FARM_WEBHOOK_ALLOW_PRIVATE=1"

static char fake_env[128], storage_env[600], hook_base[64];
static pid_t api_pid, fake_pid, receiver_pid, worker_pid, lenient_api_pid;
static char *tok;

/* The settings every farm process here shares (NULL-terminated). */
#define FARM_ENV                                                                                   \
    storage_env, "FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=hf,fal,bfl",                        \
        "FARM_WEBHOOK_SECRET=" SECRET, "FARM_FILE_SECRET=test-file-secret",                        \
        "FARM_RATE_LIMIT_BURST=100000", "FARM_RATE_LIMIT_PER_MIN=1000000",                         \
        "FARM_QUEUE_TIERS=pro:4:100000,free:1:3", "FARM_QUEUE_LEASE_S=2"

/* A worker with the settings every one here has (2 s timeouts, 10 s leases), then `more`
 * (NULL-terminated; a setting there overrides the same one before it). */
static pid_t start_worker_env(const char *name, const char *const more[])
{
    char log_path[600];
    snprintf(log_path, sizeof(log_path), "%s/%s.log", ts_env("FARM_TEST_TMPDIR"), name);
    char *argv[] = {(char *)ts_env("FARM_TEST_WORKER_BIN"), NULL};
    char *extra[32] = {fake_env, FARM_ENV, "FARM_WORKER_METRICS_PORT=0", "FARM_WEBHOOK_TIMEOUT_S=2",
                       "FARM_WEBHOOK_LEASE_S=10"};
    size_t n = 0;
    while (extra[n])
        n++;
    for (size_t i = 0; more[i] && n + 1 < sizeof(extra) / sizeof(extra[0]); i++)
        extra[n++] = (char *)more[i];
    return ts_spawn(argv, extra, log_path);
}

/* A worker with `allow_private` (NULL: none): strict, or lenient as FARM_WEBHOOK_ALLOW_PRIVATE=1.
 */
static pid_t start_worker(const char *name, const char *allow_private)
{
    return start_worker_env(name, (const char *[]){allow_private, NULL});
}

static int setup(void **state)
{
    (void)state;
    fake_pid = ts_fake_start(LATENCY_MS, fake_env);
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    char port_file[600], log_path[600], node_path[700];
    snprintf(port_file, sizeof(port_file), "%s/receiver.port", ts_env("FARM_TEST_TMPDIR"));
    snprintf(log_path, sizeof(log_path), "%s/receiver.log", ts_env("FARM_TEST_TMPDIR"));
    snprintf(node_path, sizeof(node_path), "%s/tests/webhooks/receiver.js",
             ts_env("FARM_TEST_SOURCE_DIR"));
    char *argv[] = {"/usr/bin/env", "node", node_path, port_file, NULL}; /* node from PATH */
    char *extra[] = {"WH_SECRET=" SECRET, NULL};
    receiver_pid = ts_spawn(argv, extra, log_path);
    int port = ts_wait_port_file(port_file, 20);
    if (port <= 0 || fake_env[0] == '\0')
        return -1;
    snprintf(hook_base, sizeof(hook_base), "http://127.0.0.1:%d", port);
    const char *api_extra[] = {FARM_ENV, ALLOW_PRIVATE, NULL};
    api_pid = au_api_start(api_extra);
    worker_pid = start_worker("worker1", ALLOW_PRIVATE);
    char user[37];
    tok = au_token(NULL, "pro", NULL, user);
    if (api_pid < 0)
        return -1;
    return au_grant(user, 100000, "webhooks") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(worker_pid, api_pid, fake_pid);
    if (lenient_api_pid > 0 && ts_stop(lenient_api_pid, SIGTERM, 15) != 0)
        bad = 1;
    ts_stop(receiver_pid, SIGTERM, 10);
    free(tok);
    return bad ? -1 : 0;
}

static void dump_logs(void)
{
    ts_sh("for f in \"$FARM_TEST_TMPDIR\"/*.log; do echo \"== $f\"; tail -n 20 \"$f\"; done >&2");
}

/* POSTs an avatar generation whose webhook goes to the receiver's /hook/<script>?t=<tag>. */
static void create(const char *script, const char *tag, const char *more, char id[37])
{
    char body[1024];
    snprintf(body, sizeof(body), AVATAR "\"webhook_url\":\"%s/hook/%s?t=%s\"%s}", hook_base, script,
             tag, more ? more : "");
    au_create(tok, body, id);
}

static json_t *get_generation(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    return au_get_json(tok, path);
}

/* Polls GET until its webhook's status is `want` with at least `attempts`; the generation. */
static json_t *wait_webhook(const char *id, const char *want, int attempts, double timeout_s)
{
    double end = ts_now() + timeout_s;
    json_t *g = NULL;
    do {
        json_decref(g);
        g = get_generation(id);
        json_t *w = json_object_get(g, "webhook");
        if (strcmp(json_string_value(json_object_get(w, "status")) ?: "", want) == 0 &&
            json_integer_value(json_object_get(w, "attempts")) >= attempts)
            return g;
        usleep(100000);
    } while (ts_now() < end);
    char *text = json_dumps(json_object_get(g, "webhook"), 0);
    dump_logs();
    fail_msg("generation %s: webhook %s, not %s after %d attempts", id, text, want, attempts);
    return NULL;
}

/* What the receiver got for `tag` (every request whose path ends in ?t=<tag>), oldest first. */
static json_t *received(const char *tag)
{
    char url[128], suffix[128];
    snprintf(url, sizeof(url), "%s/received", hook_base);
    snprintf(suffix, sizeof(suffix), "?t=%s", tag);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    json_t *all = json_loads(r.body, 0, NULL), *out = json_array(), *e;
    ts_http_dispose(&r);
    size_t i;
    json_array_foreach(all, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "path"));
        if (strlen(p) >= strlen(suffix) && strcmp(p + strlen(p) - strlen(suffix), suffix) == 0)
            json_array_append(out, e);
    }
    json_decref(all);
    return out;
}

static json_t *wait_received(const char *tag, size_t n, double timeout_s)
{
    double end = ts_now() + timeout_s;
    json_t *got = NULL;
    do {
        json_decref(got);
        got = received(tag);
        if (json_array_size(got) >= n)
            return got;
        usleep(100000);
    } while (ts_now() < end);
    dump_logs();
    fail_msg("%s: %zu requests received, not %zu", tag, json_array_size(got), n);
    return NULL;
}

/* Runs SQL against the fixture's Postgres; 0 on success. */
static int sql(const char *statement)
{
    return ts_sh("psql -X -q -v ON_ERROR_STOP=1 \"$FARM_DATABASE_URL\" -c \"%s\" >/dev/null",
                 statement);
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Fails unless the delivery row of generation `id` satisfies `cond` (an SQL condition). */
static void assert_delivery(const char *id, const char *cond)
{
    char q[512];
    snprintf(q, sizeof(q),
             "DO \\$\\$ BEGIN IF NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE "
             "generation_id = '%s' AND %s) THEN RAISE 'no such delivery'; END IF; END \\$\\$",
             id, cond);
    if (sql(q) != 0)
        fail_msg("the delivery of %s does not satisfy: %s", id, cond);
}

/* Sets `set` (an SQL SET list) on the delivery row of generation `id`. */
static void update_delivery(const char *id, const char *set)
{
    char q[512];
    snprintf(q, sizeof(q), "UPDATE webhook_deliveries SET %s WHERE generation_id = '%s'", set, id);
    if (sql(q) != 0)
        fail_msg("the delivery of %s was not updated: %s", id, set);
}

/* Asserts the webhook GET shows in `g`: `attempts` made, the last answered `status`. */
static void assert_webhook(json_t *g, long attempts, long status)
{
    json_t *w = json_object_get(g, "webhook");
    if (json_integer_value(json_object_get(w, "attempts")) != attempts ||
        json_integer_value(json_object_get(w, "last_status_code")) != status) {
        char *text = json_dumps(w, 0), seen[512];
        snprintf(seen, sizeof(seen), "%s", text ? text : "null");
        free(text);
        fail_msg("webhook %s, not %ld attempts the last answered %ld", seen, attempts, status);
    }
}

static void assert_signed(json_t *req)
{
    assert_true(json_is_true(json_object_get(req, "verified")));
    assert_true(json_is_false(json_object_get(req, "tampered_verified")));
}

/* The terminal event of an avatar: signed (checked by standardwebhooks), the generation as GET
 * shows it, its output's signed URL serving the image. */
static void test_terminal_event_delivered_and_verified(void **state)
{
    (void)state;
    char id[37];
    create("200", "basic", NULL, id);
    json_t *g = wait_webhook(id, "delivered", 1, 60);
    assert_webhook(g, 1, 200);
    assert_true(json_is_null(json_object_get(json_object_get(g, "webhook"), "next_attempt_at")));
    json_t *got = wait_received("basic", 1, 10);
    assert_int_equal(json_array_size(got), 1);
    json_t *req = json_array_get(got, 0);
    assert_signed(req);
    assert_string_equal(str(req, "method"), "POST");
    assert_string_equal(str(req, "content_type"), "application/json");
    assert_non_null(strstr(str(req, "user_agent"), "genfarm"));
    assert_int_equal(strlen(str(req, "id")), 36);
    json_t *body = json_object_get(req, "body");
    assert_string_equal(str(body, "type"), "succeeded");
    assert_non_null(str(body, "timestamp"));
    json_t *data = json_object_get(body, "data");
    assert_string_equal(str(data, "id"), id);
    assert_string_equal(str(data, "status"), "succeeded");
    assert_string_equal(str(data, "finished_at"), str(g, "finished_at"));
    json_t *out = json_array_get(json_object_get(data, "outputs"), 0);
    assert_null(json_object_get(out, "storage_key"));
    const char *url = str(out, "url");
    assert_non_null(url);
    assert_true(strncmp(url, "/v1/files/", 10) == 0);
    char full[1500];
    snprintf(full, sizeof(full), "%s%s", au_base, url);
    ts_http_t f = ts_http("GET", full, NULL, NULL, 0);
    assert_int_equal(f.status, 200); /* the URL in the webhook is as good as GET's */
    ts_http_dispose(&f);
    json_decref(got);
    json_decref(g);
}

/* The values api/openapi/openapi.json allows for a schema's property (its items' for an
 * array); a new reference. */
static json_t *openapi_enum(const char *schema, const char *property)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/api/openapi/openapi.json", ts_env("FARM_TEST_SOURCE_DIR"));
    json_t *doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_t *p = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), schema),
            "properties"),
        property);
    if (json_object_get(p, "items") != NULL)
        p = json_object_get(p, "items");
    json_t *values = json_incref(json_object_get(p, "enum"));
    json_decref(doc);
    assert_true(json_array_size(values) > 0);
    return values;
}

static int in_enum(const json_t *values, const char *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(values, i, e)
    {
        if (strcmp(json_string_value(e), v) == 0)
            return 1;
    }
    return 0;
}

/* What the document offers for webhook_events the api takes, and nothing else. */
static void test_the_documents_webhook_events_are_taken(void **state)
{
    (void)state;
    json_t *values = openapi_enum("GenerationRequest", "webhook_events");
    static const char *const asked[] = {"started", "image", "queued", "progress", "succeeded"};
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 AVATAR "\"webhook_url\":\"%s/hook/200?t=doc\",\"webhook_events\":[\"%s\"]}",
                 hook_base, asked[i]);
        ts_http_t r = au_call("POST", "/v1/generations", tok, body, NULL);
        int offered = in_enum(values, asked[i]);
        if (r.status != (offered ? 202 : 400))
            fprintf(stderr, "webhook_events [%s]: %ld %s\n", asked[i], r.status, r.body);
        assert_int_equal(r.status, offered ? 202 : 400);
        if (!offered)
            assert_non_null(strstr(r.body, "\"field\":\"webhook_events\""));
        ts_http_dispose(&r);
    }
    assert_true(in_enum(values, "started") && in_enum(values, "image"));
    json_decref(values);
}

/* webhook_events: started and image too, each its own webhook-id; the terminal one last. */
static void test_started_and_image_events(void **state)
{
    (void)state;
    char id[37];
    create("200", "events", ",\"count\":2,\"webhook_events\":[\"started\",\"image\"]", id);
    json_t *g = wait_webhook(id, "delivered", 1, 60);
    /* GET's params are the request's as accepted, the webhook's among them. */
    json_t *params = json_object_get(g, "params");
    char want[256];
    snprintf(want, sizeof(want), "%s/hook/200?t=events", hook_base);
    assert_string_equal(str(params, "webhook_url"), want);
    json_t *events = json_pack("[s, s]", "started", "image");
    assert_true(json_equal(json_object_get(params, "webhook_events"), events));
    json_decref(events);
    json_decref(g);
    json_t *got = wait_received("events", 4, 20);
    assert_int_equal(json_array_size(got), 4);
    int started = 0, image = 0, terminal = 0;
    size_t i;
    json_t *e, *types = openapi_enum("WebhookPayload", "type");
    json_array_foreach(got, i, e)
    {
        assert_signed(e);
        json_t *body = json_object_get(e, "body");
        const char *type = str(body, "type");
        assert_true(in_enum(types, type)); /* a type the document names */
        json_t *data = json_object_get(body, "data");
        assert_string_equal(str(data, "id"), id);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(str(json_array_get(got, k), "id"), str(e, "id"));
        /* The data of the event as the event stream has it (API.md). */
        if (strcmp(type, "started") == 0) {
            started++;
            assert_string_equal(str(data, "stage"), "starting");
            assert_true(json_is_integer(json_object_get(data, "progress")));
        } else if (strcmp(type, "image") == 0) {
            image++;
            json_t *o = json_array_get(json_object_get(data, "outputs"), 0);
            assert_true(strncmp(str(o, "url"), "/v1/files/", 10) == 0);
            assert_true(json_is_integer(json_object_get(data, "index")));
            assert_int_equal(json_integer_value(json_object_get(data, "pose")), 0);
            json_int_t progress = json_integer_value(json_object_get(data, "progress"));
            assert_true(progress == 50 || progress == 100);
        } else if (strcmp(type, "succeeded") == 0)
            terminal++;
    }
    assert_int_equal(started, 1);
    assert_int_equal(image, 2);
    assert_int_equal(terminal, 1);
    json_decref(types);
    json_decref(got);
}

/* 500, 500, 200: delivered on the third attempt, one webhook-id throughout. */
static void test_retried_until_delivered(void **state)
{
    (void)state;
    char id[37];
    create("500,500,200", "retry", NULL, id);
    /* The first failure: again in about 5 s. */
    json_t *g = wait_webhook(id, "pending", 1, 60);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(g, "webhook"), "last_status_code")),
        500);
    assert_non_null(str(json_object_get(g, "webhook"), "next_attempt_at"));
    json_decref(g);
    /* The second, 5 s later: then about 5 min. */
    g = wait_webhook(id, "pending", 2, 30);
    json_decref(g);
    assert_delivery(id, "next_attempt_at BETWEEN now() + interval '280 s' AND now() + interval "
                        "'300 s'");
    /* Skip the 5 minutes: the third attempt is due now. */
    update_delivery(id, "next_attempt_at = now()");
    g = wait_webhook(id, "delivered", 3, 30);
    assert_webhook(g, 3, 200);
    json_decref(g);
    json_t *got = received("retry");
    assert_int_equal(json_array_size(got), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_signed(json_array_get(got, i));
        assert_string_equal(str(json_array_get(got, i), "id"), str(json_array_get(got, 0), "id"));
    }
    json_decref(got);
}

/* 410: failed at once, never asked again. */
static void test_gone_stops_at_once(void **state)
{
    (void)state;
    char id[37], body[1024];
    /* With credentials in the URL, which the CLI below must not print. */
    snprintf(body, sizeof(body),
             AVATAR "\"webhook_url\":\"http://hookuser:hookpass@%s/hook/410?t=gone\"}",
             hook_base + strlen("http://"));
    au_create(tok, body, id);
    json_t *g = wait_webhook(id, "failed", 1, 60);
    assert_webhook(g, 1, 410);
    json_decref(g);
    sleep(6); /* past the first retry's time: none comes */
    json_t *got = received("gone");
    assert_int_equal(json_array_size(got), 1);
    /* On-call's view and retry (docs/operations.md): the CLI lists it, puts it back, and it is
     * sent again with its webhook-id. */
    const char *wid = str(json_array_get(got, 0), "id");
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks list --failed --generation %s | grep -q "
                           "'^%s gen=%s event=succeeded status=failed attempts=1 last_status=410'",
                           id, wid, id),
                     0);
    assert_int_equal(ts_sh("out=$(\"$FARM_TEST_CLI\" webhooks list --generation %s) && "
                           "echo \"$out\" | grep -q ' url=%s/hook/410' && "
                           "! echo \"$out\" | grep -q 'hook[up]'",
                           id, hook_base),
                     0);
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry %s | grep -q '^1 failed delivery "
                           "pending again'",
                           wid),
                     0);
    json_t *again = wait_received("gone", 2, 30);
    assert_string_equal(str(json_array_get(again, 1), "id"), wid);
    json_decref(wait_webhook(id, "failed", 2, 30));
    assert_int_not_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry %s >/dev/null 2>&1", id), 0);
    json_decref(again);
    json_decref(got);
}

/* A delivery that failed after a day of attempts, put back by `farm webhooks retry`: its
 * retries start again at 5 s, not at the 10 h its attempt count had reached. */
static void test_retry_starts_the_backoff_again(void **state)
{
    (void)state;
    char id[37];
    create("410,503,200", "again", NULL, id);
    json_decref(wait_webhook(id, "failed", 1, 60));
    update_delivery(id, "attempts = 9"); /* as after 24 h of a receiver down */
    json_t *got = received("again");
    const char *wid = str(json_array_get(got, 0), "id");
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry %s | grep -q '^1 failed delivery "
                           "pending again'",
                           wid),
                     0);
    json_t *g = wait_webhook(id, "delivered", 11, 30); /* 503, then 200 about 5 s later */
    assert_webhook(g, 11, 200);
    json_decref(g);
    json_t *all = wait_received("again", 3, 5);
    assert_string_equal(str(json_array_get(all, 2), "id"), wid);
    json_decref(all);
    json_decref(got);
}

/* A worker without the api's FARM_FILE_SECRET would sign every file URL it sends in a webhook
 * with a key the api refuses: it does not start (status 2, naming the setting). */
static void test_a_worker_without_the_file_secret_does_not_start(void **state)
{
    (void)state;
    pid_t p =
        start_worker_env("worker-no-file-secret", (const char *[]){"FARM_FILE_SECRET=short", NULL});
    assert_int_equal(ts_stop(p, 0, 20), 2);
    assert_int_equal(ts_sh("grep -q 'FARM_FILE_SECRET must be set' "
                           "\"$FARM_TEST_TMPDIR/worker-no-file-secret.log\""),
                     0);
}

/* A receiver that never answers: each attempt times out (2 s here) and is retried. */
static void test_timeouts_retried(void **state)
{
    (void)state;
    char id[37];
    create("hang", "hang", NULL, id);
    json_t *g = wait_webhook(id, "pending", 2, 60);
    json_t *w = json_object_get(g, "webhook");
    assert_true(json_is_null(json_object_get(w, "last_status_code")));
    json_decref(g);
    json_t *got = received("hang");
    assert_true(json_array_size(got) >= 2);
    assert_string_equal(str(json_array_get(got, 0), "id"), str(json_array_get(got, 1), "id"));
    json_decref(got);
    assert_delivery(id, "last_error LIKE '%timeout%'");
    /* Its retries end here, so they cannot reach the tests that follow. */
    update_delivery(id, "status = 'failed'");
}

/* 24 h after the first attempt (the delivery's clock moved back 25 h): the next failure is the
 * last. */
static void test_window_exhausted(void **state)
{
    (void)state;
    char id[37];
    create("500", "window", NULL, id);
    json_decref(wait_webhook(id, "pending", 1, 60));
    update_delivery(id, "first_attempt_at = first_attempt_at - interval '25 h', "
                        "created_at = created_at - interval '25 h', next_attempt_at = now()");
    json_t *g = wait_webhook(id, "failed", 2, 30);
    json_decref(g);
    assert_delivery(id, "last_error LIKE '%24 h%'");
}

/* Redis flushed after the terminal status: the outbox is in Postgres, the webhook still goes. */
static void test_redis_flushed(void **state)
{
    (void)state;
    char id[37];
    create("500,200", "flush", NULL, id);
    json_decref(wait_webhook(id, "pending", 1, 60)); /* terminal, first attempt failed */
    assert_int_equal(ts_sh("redis-cli -p %s flushall >/dev/null", ts_env("FARM_TEST_REDIS_PORT")),
                     0);
    json_t *g = wait_webhook(id, "delivered", 2, 30);
    json_decref(g);
    json_t *got = received("flush");
    assert_int_equal(json_array_size(got), 2);
    assert_signed(json_array_get(got, 1));
    json_decref(got);
}

/* Many generations: as many distinct webhook-ids, each delivered once (no crash here). */
static void test_many_distinct_ids(void **state)
{
    (void)state;
    const char *n_env = getenv("FARM_TEST_WEBHOOK_MANY");
    int n = n_env ? atoi(n_env) : 200;
    char(*ids)[37] = calloc((size_t)n, 37);
    for (int i = 0; i < n; i++)
        create("200", "many", NULL, ids[i]);
    json_t *got = wait_received("many", (size_t)n, 600);
    sleep(1);
    json_decref(got);
    got = received("many");
    assert_int_equal(json_array_size(got), n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(got, (size_t)i);
        assert_signed(e);
        for (int k = 0; k < i; k++)
            if (strcmp(str(json_array_get(got, (size_t)k), "id"), str(e, "id")) == 0)
                fail_msg("webhook-id %s delivered twice", str(e, "id"));
    }
    for (int i = 0; i < n; i++) { /* each generation's terminal event is among them */
        int found = 0;
        for (size_t k = 0; k < json_array_size(got) && !found; k++)
            found =
                strcmp(str(json_object_get(json_object_get(json_array_get(got, k), "body"), "data"),
                           "id"),
                       ids[i]) == 0;
        assert_true(found);
    }
    json_decref(got);
    free(ids);
}

/* The most of `reqs` (the receiver's entries) that were open at once: each from at_ms to
 * closed_ms (still open: to the end), less `slack_ms` at its end, as a request that follows
 * a closed one may be read before that close is. */
static int most_open_at_once(json_t *reqs, double slack_ms)
{
    int most = 0;
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(reqs, i, a)
    {
        double at = json_number_value(json_object_get(a, "at_ms"));
        int open = 0;
        json_array_foreach(reqs, j, b)
        {
            double from = json_number_value(json_object_get(b, "at_ms"));
            json_t *closed = json_object_get(b, "closed_ms");
            if (from <= at && (json_is_null(closed) || json_number_value(closed) - slack_ms > at))
                open++;
        }
        most = open > most ? open : most;
    }
    return most;
}

/*
 * Per-host fairness: a receiver host that hangs (every request left unanswered until the
 * worker's 2 s timeout) has a backlog of 60 due deliveries, older than one to another host.
 * That delivery, due after all of them, still goes at once. The farm leases at most
 * FARM_WEBHOOK_PER_HOST of one host's deliveries at once (2 here, of each worker's 8 slots),
 * whichever worker claims them: with two workers polling every 50 ms the hanging host has
 * two requests open at a time, as the receiver sees them, not two per worker, and not every
 * slot for the minute its backlog takes to pass through them.
 */
static void test_a_hanging_receiver_holds_up_no_other_host(void **state)
{
    (void)state;
    char id[37], q[1024];
    create("200", "fair-base", NULL, id);
    json_decref(wait_webhook(id, "delivered", 1, 60));
    assert_int_equal(ts_stop(worker_pid, SIGTERM, 30), 0);
    /* 60 image events to the hanging host (`localhost`), oldest first, then one to
     * `127.0.0.1`: the same receiver, another host. */
    snprintf(q, sizeof(q),
             "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data, "
             "next_attempt_at) SELECT gen_random_uuid(), '%s', 'image', s, 'image', "
             "CASE WHEN s <= 60 THEN 'http://localhost:%s/hook/hang?t=fair-hang' "
             "ELSE '%s/hook/200?t=fair-ok' END, '{}', now() - make_interval(secs => 100 - s) "
             "FROM generate_series(1, 61) s",
             id, strrchr(hook_base, ':') + 1, hook_base);
    assert_int_equal(sql(q), 0);
    const char *const env[] = {ALLOW_PRIVATE, "FARM_WEBHOOK_CONCURRENCY=8",
                               "FARM_WEBHOOK_PER_HOST=2", NULL};
    worker_pid = start_worker_env("worker-fair", env);
    pid_t second = start_worker_env("worker-fair-2", env);
    double t0 = ts_now();
    json_decref(wait_received("fair-ok", 1, 60));
    double waited = ts_now() - t0;
    /* 70 polls of each worker, past the first requests' 2 s timeouts: long enough for a
     * worker slow to start (nothing says when its first poll is) to have claimed. */
    usleep(3500000);
    json_t *hung = received("fair-hang");
    size_t n_hung = json_array_size(hung);
    int most = most_open_at_once(hung, 100);
    json_decref(hung);
    int rc = ts_stop(second, SIGTERM, 30);
    /* Its backlog ends here, so it cannot reach the tests that follow. */
    assert_int_equal(sql("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL "
                         "WHERE url LIKE '%fair-hang'"),
                     0);
    assert_int_equal(rc, 0);
    /* Before the bound: 2 s timeouts, 2 at a time through 60 rows, about 60 s. */
    if (waited > 10)
        fail_msg("the other host's delivery waited %.1f s behind the hanging host", waited);
    /* Per worker instead of per farm: 4 open at once. */
    if (n_hung < 1 || most > 2)
        fail_msg("the hanging host got %zu requests, %d open at once (bound: 2)", n_hung, most);
}

/*
 * The worker that finishes a generation sends its terminal webhook itself, leased in the
 * finish's transaction: it arrives though that worker's next poll is a minute away. The
 * lease fences it as a claim's does: another worker, polling every 50 ms, does not send
 * the same attempt while it is held; the attempt is recorded once, by its holder.
 */
static void test_finishing_worker_sends_its_own(void **state)
{
    (void)state;
    char id[37];
    assert_int_equal(ts_stop(worker_pid, SIGTERM, 30), 0);
    /* A lease must outlast a request and the poll that records it: 2 s + 60 s + 5 s. */
    worker_pid = start_worker_env("worker-slow-poll",
                                  (const char *[]){ALLOW_PRIVATE, "FARM_WEBHOOK_POLL_MS=60000",
                                                   "FARM_WEBHOOK_LEASE_S=70", NULL});
    create("200", "own", NULL, id);
    json_decref(wait_received("own", 1, 30)); /* no poll took it: its poll is 60 s away */
    pid_t other = start_worker("worker-polling", ALLOW_PRIVATE);
    usleep(3000000); /* 60 polls of the other worker, all within the holder's 70 s lease */
    json_t *got = received("own");
    assert_int_equal(json_array_size(got), 1);
    json_decref(got);
    /* The holder records what it delivered as it stops (no poll of its own came). */
    int rc = ts_stop(worker_pid, SIGTERM, 30);
    worker_pid = other;
    assert_int_equal(rc, 0);
    json_t *g = wait_webhook(id, "delivered", 1, 10);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(g, "webhook"), "attempts")),
                     1);
    json_decref(g);
    got = received("own");
    assert_int_equal(json_array_size(got), 1);
    assert_signed(json_array_get(got, 0));
    json_decref(got);
}

/*
 * An attempt is recorded at the poll after its answer, inside its lease: a lease that cannot
 * cover a request (2 s) and a poll (60 s) plus 5 s stops the worker at start, exit 2, saying
 * so. It would let another worker send an attempt again while its holder still waits to
 * record it.
 */
static void test_a_lease_shorter_than_request_and_poll_is_refused(void **state)
{
    (void)state;
    pid_t p = start_worker_env("worker-short-lease",
                               (const char *[]){ALLOW_PRIVATE, "FARM_WEBHOOK_POLL_MS=60000", NULL});
    int status = 0;
    pid_t got = 0;
    double end = ts_now() + 20;
    while (ts_now() < end && (got = waitpid(p, &status, WNOHANG)) == 0)
        usleep(100 * 1000);
    if (got == 0)
        ts_stop(p, SIGKILL, 5);
    assert_int_equal(got, p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_int_equal(ts_sh("grep -q 'FARM_WEBHOOK_LEASE_S=10 must exceed "
                           "FARM_WEBHOOK_TIMEOUT_S=2 plus FARM_WEBHOOK_POLL_MS=60000' '%s/%s.log'",
                           ts_env("FARM_TEST_TMPDIR"), "worker-short-lease"),
                     0);
}

/* kill -9 of the worker whose request is in flight: another worker delivers, same webhook-id. */
static void test_worker_killed_mid_request(void **state)
{
    (void)state;
    char id[37];
    create("hang,200", "kill", NULL, id);
    json_decref(wait_received("kill", 1, 60)); /* worker1's request hangs at the receiver */
    kill(worker_pid, SIGKILL);
    ts_stop(worker_pid, SIGKILL, 10);
    worker_pid = start_worker("worker2", ALLOW_PRIVATE);
    json_t *g = wait_webhook(id, "delivered", 1, 60); /* after worker1's lease (10 s) ran out */
    json_decref(g);
    json_t *got = received("kill");
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(str(json_array_get(got, 0), "id"), str(json_array_get(got, 1), "id"));
    assert_signed(json_array_get(got, 1));
    json_decref(got);
}

/*
 * SSRF, on a farm without FARM_WEBHOOK_ALLOW_PRIVATE: what is knowable at submit is a 400
 * naming webhook_url; a name that resolves to loopback fails at connect with the reason
 * recorded, and nothing reaches the receiver.
 */
static void test_ssrf_refused(void **state)
{
    (void)state;
    /* Only strict processes from here on: the lenient worker would deliver to loopback. */
    assert_int_equal(ts_stop(worker_pid, SIGTERM, 40), 0);
    worker_pid = start_worker("strict-worker", NULL);
    lenient_api_pid = api_pid;
    const char *api_extra[] = {FARM_ENV, NULL};
    api_pid = au_api_start(api_extra);
    assert_true(api_pid > 0);
    static const char *const refused[] = {
        "http://example.com/hook",   "https://127.0.0.1/hook",
        "https://[::1]/hook",        "https://10.0.0.1/hook",
        "https://169.254.169.254/x", "https://[::ffff:127.0.0.1]/x",
        "https://192.168.0.10/hook", NULL};
    for (int i = 0; refused[i]; i++) {
        char body[512];
        snprintf(body, sizeof(body), AVATAR "\"webhook_url\":\"%s\"}", refused[i]);
        ts_http_t r = au_call("POST", "/v1/generations", tok, body, NULL);
        if (r.status != 400)
            fail_msg("%s: %ld %s", refused[i], r.status, r.body);
        json_t *e = json_loads(r.body, 0, NULL);
        assert_string_equal(str(json_object_get(e, "error"), "field"), "webhook_url");
        json_decref(e);
        ts_http_dispose(&r);
    }
    /* localhost resolves to loopback: accepted, then refused at connect. */
    char body[512], id[37];
    snprintf(body, sizeof(body), AVATAR "\"webhook_url\":\"https://localhost:%s/hook/200?t=ssrf\"}",
             strrchr(hook_base, ':') + 1);
    au_create(tok, body, id);
    json_t *g = wait_webhook(id, "failed", 1, 60);
    json_decref(g);
    assert_delivery(id, "last_error LIKE '%not a public address%'");
    json_t *got = received("ssrf");
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
    assert_int_equal(ts_stop(lenient_api_pid, SIGTERM, 15), 0);
    lenient_api_pid = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terminal_event_delivered_and_verified),
        cmocka_unit_test(test_started_and_image_events),
        cmocka_unit_test(test_the_documents_webhook_events_are_taken),
        cmocka_unit_test(test_retried_until_delivered),
        cmocka_unit_test(test_gone_stops_at_once),
        cmocka_unit_test(test_retry_starts_the_backoff_again),
        cmocka_unit_test(test_timeouts_retried),
        cmocka_unit_test(test_window_exhausted),
        cmocka_unit_test(test_redis_flushed),
        cmocka_unit_test(test_many_distinct_ids),
        cmocka_unit_test(test_a_hanging_receiver_holds_up_no_other_host),
        cmocka_unit_test(test_finishing_worker_sends_its_own),
        cmocka_unit_test(test_a_lease_shorter_than_request_and_poll_is_refused),
        cmocka_unit_test(test_worker_killed_mid_request),
        cmocka_unit_test(test_ssrf_refused),
        cmocka_unit_test(test_a_worker_without_the_file_secret_does_not_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
