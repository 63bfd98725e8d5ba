/*
 * tests/integration/worker/stages.c - what a client sees of a running
 * generation's stage (API.md): a real farm-api and farm-worker on the fake
 * provider, slow on purpose. GET says `generating` while the provider call
 * runs; the event stream says starting, generating, postprocessing and
 * storing, in that order, before the image and the terminal event.
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

#define LATENCY_MS 3000

static pid_t api_pid, fake_pid, worker_pid;
static char *tok;

static int setup(void **state)
{
    (void)state;
    static char fake_env[128], storage_env[600];
    char log_path[600];
    fake_pid = ts_fake_start(LATENCY_MS, fake_env);
    if (fake_env[0] == '\0')
        return -1;
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    const char *api_extra[] = {storage_env, "FARM_PROVIDER=fake", NULL};
    api_pid = au_api_start(api_extra);
    snprintf(log_path, sizeof(log_path), "%s/worker.log", ts_env("FARM_TEST_TMPDIR"));
    char *worker_argv[] = {(char *)ts_env("FARM_TEST_WORKER_BIN"), NULL};
    char *worker_extra[] = {fake_env,
                            storage_env,
                            "FARM_PROVIDER=fake",
                            "FARM_PROVIDER_FALLBACK=hf",
                            "FARM_WORKER_METRICS_PORT=0",
                            NULL};
    worker_pid = ts_spawn(worker_argv, worker_extra, log_path);
    tok = au_token(NULL, "pro", NULL, NULL);
    return api_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(worker_pid, api_pid, fake_pid);
    free(tok);
    return bad ? -1 : 0;
}

static ts_http_t api(const char *method, const char *path, const char *body)
{
    return au_call(method, path, tok, body, NULL);
}

/* Where `needle` first occurs in `hay` at or after `from`; fails the test when it does not. */
static const char *after(const char *hay, const char *from, const char *needle)
{
    const char *at = strstr(from, needle);
    if (at == NULL)
        fail_msg("no %s after offset %ld in:\n%s", needle, (long)(from - hay), hay);
    return at + strlen(needle);
}

static void test_client_sees_every_stage(void **state)
{
    (void)state;
    ts_http_t r =
        api("POST", "/v1/generations",
            "{\"kind\":\"avatar\",\"prompt\":\"a slow fox\",\"width\":256,\"height\":256}");
    assert_int_equal(r.status, 202);
    json_t *created = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    char path[128], events[160];
    snprintf(path, sizeof(path), "/v1/generations/%s",
             json_string_value(json_object_get(created, "id")));
    snprintf(events, sizeof(events), "%s",
             json_string_value(json_object_get(created, "events_url")));
    json_decref(created);

    /* GET while the provider call runs (LATENCY_MS): running, stage generating. */
    int seen_generating = 0;
    for (double end = ts_now() + 20; !seen_generating && ts_now() < end; usleep(50000)) {
        r = api("GET", path, NULL);
        assert_int_equal(r.status, 200);
        json_t *g = json_loads(r.body, 0, NULL);
        ts_http_dispose(&r);
        const char *status = json_string_value(json_object_get(g, "status"));
        const char *stage = json_string_value(json_object_get(g, "stage"));
        seen_generating =
            status && strcmp(status, "running") == 0 && stage && strcmp(stage, "generating") == 0;
        int finished = status && strcmp(status, "queued") != 0 && strcmp(status, "running") != 0;
        json_decref(g);
        if (finished)
            break;
    }
    assert_true(seen_generating);

    /* The stream, replayed from its first event to its end. */
    r = api("GET", events, NULL);
    assert_int_equal(r.status, 200);
    const char *b = r.body, *p = b;
    p = after(b, p, "event: queued\n");
    p = after(b, p, "event: started\ndata: ");
    p = after(b, p, "\"stage\":\"starting\"");
    p = after(b, p, "event: progress\ndata: ");
    p = after(b, p, "\"stage\":\"generating\"");
    p = after(b, p, "event: progress\ndata: ");
    p = after(b, p, "\"stage\":\"postprocessing\"");
    p = after(b, p, "event: progress\ndata: ");
    p = after(b, p, "\"stage\":\"storing\"");
    p = after(b, p, "event: image\n");
    after(b, p, "event: succeeded\n");
    ts_http_dispose(&r);

    /* Finished: no stage any more. */
    r = api("GET", path, NULL);
    json_t *g = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    assert_true(json_is_null(json_object_get(g, "stage")));
    json_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_sees_every_stage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
