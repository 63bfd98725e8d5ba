/*
 * tests/support/webhooks_harness.c - see webhooks_harness.h.
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
#include "webhooks_harness.h"

char wh_fake_env[128], wh_storage_env[600], wh_hook_base[64];
pid_t wh_api_pid, wh_fake_pid, wh_receiver_pid, wh_worker_pid, wh_lenient_api_pid;
char *wh_tok;

/* A worker with the settings every one here has (2 s timeouts, 10 s leases), then `more`
 * (NULL-terminated; a setting there overrides the same one before it). */
pid_t wh_start_worker_env(const char *name, const char *const more[])
{
    char log_path[600];
    snprintf(log_path, sizeof(log_path), "%s/%s.log", ts_env("FARM_TEST_TMPDIR"), name);
    char *argv[] = {(char *)ts_env("FARM_TEST_WORKER_BIN"), NULL};
    char *extra[32] = {wh_fake_env, FARM_ENV, "FARM_WORKER_METRICS_PORT=0",
                       "FARM_WEBHOOK_TIMEOUT_S=2", "FARM_WEBHOOK_LEASE_S=10"};
    size_t n = 0;
    while (extra[n])
        n++;
    for (size_t i = 0; more[i] && n + 1 < sizeof(extra) / sizeof(extra[0]); i++)
        extra[n++] = (char *)more[i];
    return ts_spawn(argv, extra, log_path);
}

/* A worker with `allow_private` (NULL: none): strict, or lenient as FARM_WEBHOOK_ALLOW_PRIVATE=1.
 */
pid_t wh_start_worker(const char *name, const char *allow_private)
{
    return wh_start_worker_env(name, (const char *[]){allow_private, NULL});
}

int wh_setup(void **state)
{
    (void)state;
    wh_fake_pid = ts_fake_start(LATENCY_MS, wh_fake_env);
    snprintf(wh_storage_env, sizeof(wh_storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    char port_file[600], log_path[600], node_path[700];
    snprintf(port_file, sizeof(port_file), "%s/receiver.port", ts_env("FARM_TEST_TMPDIR"));
    snprintf(log_path, sizeof(log_path), "%s/receiver.log", ts_env("FARM_TEST_TMPDIR"));
    snprintf(node_path, sizeof(node_path), "%s/tests/webhooks/receiver.js",
             ts_env("FARM_TEST_SOURCE_DIR"));
    char *argv[] = {"/usr/bin/env", "node", node_path, port_file, NULL}; /* node from PATH */
    char *extra[] = {"WH_SECRET=" SECRET, NULL};
    wh_receiver_pid = ts_spawn(argv, extra, log_path);
    int port = ts_wait_port_file(port_file, 20);
    if (port <= 0 || wh_fake_env[0] == '\0')
        return -1;
    snprintf(wh_hook_base, sizeof(wh_hook_base), "http://127.0.0.1:%d", port);
    const char *api_extra[] = {FARM_ENV, ALLOW_PRIVATE, NULL};
    wh_api_pid = au_api_start(api_extra);
    wh_worker_pid = wh_start_worker("worker1", ALLOW_PRIVATE);
    char user[37];
    wh_tok = au_token(NULL, "pro", NULL, user);
    if (wh_api_pid < 0)
        return -1;
    return au_grant(user, 100000, "webhooks") == 0 ? 0 : -1;
}

int wh_teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(wh_worker_pid, wh_api_pid, wh_fake_pid);
    if (wh_lenient_api_pid > 0 && ts_stop(wh_lenient_api_pid, SIGTERM, 15) != 0)
        bad = 1;
    ts_stop(wh_receiver_pid, SIGTERM, 10);
    free(wh_tok);
    return bad ? -1 : 0;
}

void wh_dump_logs(void)
{
    ts_sh("for f in \"$FARM_TEST_TMPDIR\"/*.log; do echo \"== $f\"; tail -n 20 \"$f\"; done >&2");
}

/* POSTs an avatar generation whose webhook goes to the receiver's /hook/<script>?t=<tag>. */
void wh_create(const char *script, const char *tag, const char *more, char id[37])
{
    char body[1024];
    snprintf(body, sizeof(body), AVATAR "\"webhook_url\":\"%s/hook/%s?t=%s\"%s}", wh_hook_base,
             script, tag, more ? more : "");
    au_create(wh_tok, body, id);
}

json_t *wh_get_generation(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    return au_get_json(wh_tok, path);
}

/* Polls GET until its webhook's status is `want` with at least `attempts`; the generation. */
json_t *wh_wait_webhook(const char *id, const char *want, int attempts, double timeout_s)
{
    double end = ts_now() + timeout_s;
    json_t *g = NULL;
    do {
        json_decref(g);
        g = wh_get_generation(id);
        json_t *w = json_object_get(g, "webhook");
        if (strcmp(json_string_value(json_object_get(w, "status")) ?: "", want) == 0 &&
            json_integer_value(json_object_get(w, "attempts")) >= attempts)
            return g;
        usleep(100000);
    } while (ts_now() < end);
    char *text = json_dumps(json_object_get(g, "webhook"), 0);
    wh_dump_logs();
    fail_msg("generation %s: webhook %s, not %s after %d attempts", id, text, want, attempts);
    return NULL;
}

/* What the receiver got for `tag` (every request whose path ends in ?t=<tag>), oldest first. */
json_t *wh_received(const char *tag)
{
    char url[128], suffix[128];
    snprintf(url, sizeof(url), "%s/received", wh_hook_base);
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

json_t *wh_wait_received(const char *tag, size_t n, double timeout_s)
{
    double end = ts_now() + timeout_s;
    json_t *got = NULL;
    do {
        json_decref(got);
        got = wh_received(tag);
        if (json_array_size(got) >= n)
            return got;
        usleep(100000);
    } while (ts_now() < end);
    wh_dump_logs();
    fail_msg("%s: %zu requests received, not %zu", tag, json_array_size(got), n);
    return NULL;
}

/* Runs SQL against the fixture's Postgres; 0 on success. */
int wh_sql(const char *statement)
{
    return ts_sh("psql -X -q -v ON_ERROR_STOP=1 \"$FARM_DATABASE_URL\" -c \"%s\" >/dev/null",
                 statement);
}

const char *wh_str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Fails unless the delivery row of generation `id` satisfies `cond` (an SQL condition). */
void wh_assert_delivery(const char *id, const char *cond)
{
    char q[512];
    snprintf(q, sizeof(q),
             "DO \\$\\$ BEGIN IF NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE "
             "generation_id = '%s' AND %s) THEN RAISE 'no such delivery'; END IF; END \\$\\$",
             id, cond);
    if (wh_sql(q) != 0)
        fail_msg("the delivery of %s does not satisfy: %s", id, cond);
}

/* Sets `set` (an SQL SET list) on the delivery row of generation `id`. */
void wh_update_delivery(const char *id, const char *set)
{
    char q[512];
    snprintf(q, sizeof(q), "UPDATE webhook_deliveries SET %s WHERE generation_id = '%s'", set, id);
    if (wh_sql(q) != 0)
        fail_msg("the delivery of %s was not updated: %s", id, set);
}

/* Asserts the webhook GET shows in `g`: `attempts` made, the last answered `status`. */
void wh_assert_webhook(json_t *g, long attempts, long status)
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

void wh_assert_signed(json_t *req)
{
    assert_true(json_is_true(json_object_get(req, "verified")));
    assert_true(json_is_false(json_object_get(req, "tampered_verified")));
}
