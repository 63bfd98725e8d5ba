/*
 * tests/integration/api_events_input.c - the event routes under hostile
 * input, against a real farm-api process: a Last-Event-ID that is not one of
 * ours is a 400 and costs Redis nothing (one such id used to keep Redis busy
 * for good), and a terminal event larger than a stream's send-queue cap
 * still reaches a client that reads (it was refused, and the refusal was a
 * use-after-free). Found by fuzzing farm-api.
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

#define SECRET "events-input-jwt-secret-0123456789"

static pid_t api_pid;
static char base[64];
static char *tok;

static int setup(void **state)
{
    (void)state;
    static char port_env[64];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    char log_path[600];
    snprintf(log_path, sizeof(log_path), "%s/api.log", ts_env("FARM_TEST_TMPDIR"));
    char *argv[] = {(char *)ts_env("FARM_TEST_API_BIN"), NULL};
    /* The smallest send queue a stream may have, so a big terminal event overflows it. */
    char *extra[] = {port_env, "FARM_JWT_SECRET=" SECRET, "FARM_RATE_LIMIT_BURST=1000",
                     "FARM_HTTP_STREAM_MAX_QUEUED_BYTES=4096", NULL};
    api_pid = ts_spawn(argv, extra, log_path);
    char user[37];
    gf_uuid4(user);
    api_claims_t c = {.sub = user, .plan = "pro", .ttl_s = 3600};
    tok = api_token_issue(SECRET, &c, NULL);
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", base);
    return tok && ts_wait_http(url, 200, NULL, 20) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(tok);
    /* It exits 0: no sanitizer report, no crash along the way. */
    return ts_stop(api_pid, SIGTERM, 10) == 0 ? 0 : -1;
}

static ts_http_t call(const char *method, const char *path, const char *body, const char *header)
{
    char url[512], auth[1024];
    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *headers[] = {auth, "Content-Type: application/json", header ? header : "X-None: 1",
                             NULL};
    return ts_http(method, url, headers, body, body ? strlen(body) : 0);
}

static void create(const char *body, char id[37])
{
    ts_http_t r = call("POST", "/v1/generations", body, NULL);
    assert_int_equal(r.status, 202);
    const char *p = strstr(r.body, "\"id\":\"");
    assert_non_null(p);
    snprintf(id, 37, "%s", p + 6);
    ts_http_dispose(&r);
}

/* A generation that is finished already: created, then canceled while queued. */
static void create_canceled(const char *body, char id[37])
{
    create(body, id);
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    ts_http_t r = call("POST", path, NULL, NULL);
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
}

static void test_a_foreign_last_event_id_is_400_and_redis_stays_free(void **state)
{
    (void)state;
    char id[37], path[128], header[128];
    create("{\"kind\":\"avatar\",\"prompt\":\"a fox\"}", id);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    /* 18428729675200069632 became -2^54 in Lua, where after + 1 == after: an endless loop. */
    static const char *const gen_ids[] = {
        "18428729675200069632", "18446744073709551615", "-1", "+5", "1e3", "9999999999999999"};
    for (size_t i = 0; i < sizeof(gen_ids) / sizeof(gen_ids[0]); i++) {
        snprintf(header, sizeof(header), "Last-Event-ID: %s", gen_ids[i]);
        ts_http_t r = call("GET", path, NULL, header);
        if (r.status != 400)
            fprintf(stderr, "Last-Event-ID '%s': %ld\n", gen_ids[i], r.status);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"field\":\"Last-Event-ID\""));
        ts_http_dispose(&r);
    }
    /* A Redis stream refuses these as a cursor: the stream used to stay open and silent. */
    static const char *const user_ids[] = {"garbage", "-", "1-1-1", "5", "1-", "-1"};
    for (size_t i = 0; i < sizeof(user_ids) / sizeof(user_ids[0]); i++) {
        snprintf(header, sizeof(header), "Last-Event-ID: %s", user_ids[i]);
        ts_http_t r = call("GET", "/v1/events", NULL, header);
        if (r.status != 400)
            fprintf(stderr, "/v1/events Last-Event-ID '%s': %ld\n", user_ids[i], r.status);
        assert_int_equal(r.status, 400);
        ts_http_dispose(&r);
    }
    /* Redis still answers at once, and a new generation is queued (it has a position). */
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", base);
    assert_true(ts_wait_http(url, 200, NULL, 2));
    ts_http_t r =
        call("POST", "/v1/generations", "{\"kind\":\"avatar\",\"prompt\":\"a cat\"}", NULL);
    assert_int_equal(r.status, 202);
    assert_null(strstr(r.body, "\"queue_position\":null"));
    assert_non_null(strstr(r.body, "\"queue_position\":"));
    ts_http_dispose(&r);
}

static void test_a_terminal_event_larger_than_the_cap_is_delivered(void **state)
{
    (void)state;
    /* A generation whose record (the terminal event's data) is over 4 KiB. */
    char body[8192], prompt[2001], meta[2001], id[37], path[128];
    memset(prompt, 'p', 2000);
    prompt[2000] = '\0';
    memset(meta, 'm', 2000);
    meta[2000] = '\0';
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"%s\",\"negative_prompt\":\"%.1000s\","
             "\"metadata\":{\"m\":\"%s\"}}",
             prompt, prompt, meta);
    create_canceled(body, id);
    /* The replay of a finished generation: its events, then the terminal one (over the cap). */
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    ts_http_t r = call("GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "event: queued\n"));
    const char *term = strstr(r.body, "event: canceled\ndata: {");
    assert_non_null(term);
    assert_non_null(strstr(term, meta)); /* the whole record */
    ts_http_dispose(&r);
    /* The process is fine and keeps serving (teardown checks it exits 0). */
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = call("GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"canceled\""));
    ts_http_dispose(&r);
}

/*
 * A client that saw the terminal event and reconnects with its id (an
 * EventSource does, 2 s after every end) gets nothing more: it used to get
 * the terminal event again under a new id, every time.
 */
static void test_resuming_after_the_terminal_event_gets_nothing_more(void **state)
{
    (void)state;
    char id[37], path[128], header[64];
    create_canceled("{\"kind\":\"avatar\",\"prompt\":\"a fox\"}", id);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    ts_http_t r = call("GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *term = strstr(r.body, "\nevent: canceled\n");
    assert_non_null(term);
    const char *idline = term;
    while (idline > r.body && strncmp(idline, "id: ", 4) != 0)
        idline--;
    long last = strtol(idline + 4, NULL, 10);
    assert_true(last >= 2);
    ts_http_dispose(&r);

    snprintf(header, sizeof(header), "Last-Event-ID: %ld", last);
    r = call("GET", path, NULL, header);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "event: "));
    ts_http_dispose(&r);
    /* One before it: the terminal event once, under its own id. */
    snprintf(header, sizeof(header), "Last-Event-ID: %ld", last - 1);
    r = call("GET", path, NULL, header);
    assert_int_equal(r.status, 200);
    char want[64];
    snprintf(want, sizeof(want), "id: %ld\nevent: canceled\n", last);
    assert_non_null(strstr(r.body, want));
    assert_null(strstr(strstr(r.body, want) + strlen(want), "event: "));
    ts_http_dispose(&r);
}

/*
 * With Postgres down, a generation stream's owner check fails inside the
 * store call itself: the stream was answered 503 and freed there, and the
 * caller then wrote into it (ASan: heap-use-after-free; the second such
 * request crashed the api). Found by a review of the callback paths.
 */
static void test_event_streams_while_postgres_is_down_are_503(void **state)
{
    (void)state;
    char id[37], path[128];
    create_canceled("{\"kind\":\"avatar\",\"prompt\":\"a fox\"}", id);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    for (int i = 0; i < 3; i++) {
        ts_http_t r = call("GET", path, NULL, NULL);
        assert_int_equal(r.status, 503);
        ts_http_dispose(&r);
    }
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    /* Back: the same stream replays and ends with the terminal event. */
    double end = ts_now() + 20;
    long status = 0;
    while (status != 200 && ts_now() < end) {
        ts_http_t r = call("GET", path, NULL, NULL);
        status = r.status;
        if (status == 200)
            assert_non_null(strstr(r.body, "event: canceled\n"));
        ts_http_dispose(&r);
        if (status != 200)
            usleep(200000);
    }
    assert_int_equal(status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_foreign_last_event_id_is_400_and_redis_stays_free),
        cmocka_unit_test(test_a_terminal_event_larger_than_the_cap_is_delivered),
        cmocka_unit_test(test_resuming_after_the_terminal_event_gets_nothing_more),
        cmocka_unit_test(test_event_streams_while_postgres_is_down_are_503),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
