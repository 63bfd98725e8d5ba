/*
 * tests/support/worker_farm.c - the farm the worker integration tests run
 * against (worker_farm.h): the fake provider (slow on purpose), a real
 * farm-api and a farm-worker over real HTTP, a funded pro user, and the
 * calls those tests share: create, poll, upload, read the fake's log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "farm_fixture.h"
#include "worker_farm.h"

char wf_fake_env[128], wf_storage_env[600];
pid_t wf_api_pid, wf_fake_pid, wf_worker_pid;
char *wf_tok;
char wf_user[37];

/*
 * A worker on the fake provider; `fallback` orders its adapters (NULL: hf
 * first); `more` is one more setting or NULL.
 */
pid_t wf_start_worker_more(const char *name, const char *fallback, const char *more,
                           const char *more2)
{
    const char *const more_list[] = {more, more2, NULL};
    return wf_start_worker_env(name, fallback, more_list);
}

pid_t wf_start_worker_env(const char *name, const char *fallback, const char *const more[])
{
    char *extra[32] = {
        wf_fake_env, wf_storage_env, AU_FILE_SECRET_ENV, "FARM_PROVIDER=fake",
        "FARM_WORKER_METRICS_PORT=0", "FARM_QUEUE_LEASE_S=2",
        "FARM_QUEUE_TIERS=pro:4:1000,free:1:3", "FARM_SWEEP_INTERVAL_S=1", "FARM_SWEEP_STALE_S=3",
        /* The fault tests hold a known set at once (a worker killed holding them
         * all, Postgres stopped under every one): up to the ceiling, as before
         * claims by capacity (tests/integration/worker/claim.c tests those). */
        "FARM_WORKER_CLAIM=ceiling",
        (char *)(fallback ? fallback : "FARM_PROVIDER_FALLBACK=hf,fal,bfl,replicate"), NULL};
    size_t n = 0;
    while (extra[n] != NULL)
        n++;
    for (size_t i = 0; more[i] != NULL && n + 1 < sizeof(extra) / sizeof(extra[0]); i++)
        extra[n++] = (char *)more[i];
    return ts_spawn_farm("FARM_TEST_WORKER_BIN", extra, "%s.log", name);
}

pid_t wf_start_worker_with(const char *name, const char *fallback)
{
    return wf_start_worker_more(name, fallback, NULL, NULL);
}

pid_t wf_start_worker(const char *name)
{
    return wf_start_worker_with(name, NULL);
}

int wf_setup(void **state)
{
    (void)state;
    if (VIPS_INIT("worker_farm"))
        return -1;
    wf_fake_pid = ts_fake_start(WF_LATENCY_MS, wf_fake_env);
    if (wf_fake_env[0] == '\0')
        return -1;
    snprintf(wf_storage_env, sizeof(wf_storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    const char *api_extra[] = {wf_storage_env, /* uploads land where the workers read them */
                               "FARM_QUEUE_LEASE_S=2", "FARM_QUEUE_TIERS=pro:4:1000,free:1:3",
                               "FARM_RATE_LIMIT_BURST=1000",
                               /* configured as the workers are: it checks a request's provider */
                               "FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=hf,fal,bfl,replicate",
                               NULL};
    wf_api_pid = au_api_start(api_extra);
    wf_worker_pid = wf_start_worker("worker1");
    wf_tok = au_token(NULL, "pro", NULL, wf_user);
    if (wf_api_pid < 0)
        return -1;
    return au_grant(wf_user, 10000, "workers") == 0 ? 0 : -1;
}

int wf_teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(wf_worker_pid, wf_api_pid, wf_fake_pid);
    free(wf_tok);
    vips_shutdown();
    return bad ? -1 : 0;
}

ts_http_t wf_api(const char *method, const char *path, const char *body)
{
    return au_call(method, path, wf_tok, body, NULL);
}

/* On a failure, the processes' own words are what explains it: print their logs' tails. */
void wf_dump_logs(void)
{
    ts_sh("for f in \"$FARM_TEST_TMPDIR\"/*.log; do echo \"== $f\"; tail -n 15 \"$f\"; done >&2");
}

void wf_create(const char *body, char id[37])
{
    au_create(wf_tok, body, id);
}

/* Polls GET until the generation's status is one of `want` ("a|b"); returns it, or NULL. */
json_t *wf_wait_status(const char *id, const char *want, double timeout_s)
{
    return au_wait_status(wf_tok, id, want, timeout_s);
}

void wf_expect_status(const char *id, const char *want, double timeout_s)
{
    json_t *g = wf_wait_status(id, want, timeout_s);
    if (g == NULL) {
        wf_dump_logs();
        fail_msg("generation %s: not %s within %.0f s", id, want, timeout_s);
    }
    json_decref(g);
}

json_t *wf_wait_end(const char *id, double timeout_s)
{
    json_t *g = wf_wait_status(id, "succeeded|partial|failed", timeout_s);
    wf_assert_found(g);
    return g;
}

json_t *wf_create_ended(const char *body, char id[37], double timeout_s)
{
    wf_create(body, id);
    return wf_wait_end(id, timeout_s);
}

json_t *wf_identity_avatar(const char *prompt, int count, const char *upload)
{
    char body[512], images[32] = "", id[37];
    if (count > 0)
        snprintf(images, sizeof(images), "\"count\":%d,", count);
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"%s\",%s\"width\":256,\"height\":256,"
             "\"identity\":{\"upload_id\":\"%s\"}}",
             prompt, images, upload);
    return wf_create_ended(body, id, 30);
}

void wf_upload_png(int w, int h, char upload[37])
{
    ff_upload_png(wf_tok, w, h, upload);
}

/* The fake's count of requests to `endpoint` ("bfl.submit"). */
long wf_fake_count(const char *endpoint)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/log", strchr(wf_fake_env, '=') + 1);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    json_t *log = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    long n = (long)json_integer_value(json_object_get(json_object_get(log, "counts"), endpoint));
    json_decref(log);
    return n;
}

/* The fake's log entries for `endpoint` (hf.submit...), oldest first. */
json_t *wf_fake_requests(const char *endpoint)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/log", strchr(wf_fake_env, '=') + 1);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    json_t *log = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    json_t *out = json_array(), *e;
    size_t i;
    json_array_foreach(json_object_get(log, "requests"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "endpoint")), endpoint) == 0)
            json_array_append(out, e);
    }
    json_decref(log);
    return out;
}
