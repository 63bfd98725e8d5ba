/*
 * tests/integration/api/access_log.c - farm-api's access log
 * (docs/operations.md, "Access log"): one JSON line per request with the
 * route pattern (never the path with its ids), status, body bytes,
 * duration, user and request id, read back from the api's own log and
 * parsed with jansson; sampling leaves 2xx-4xx out but never a 5xx; off
 * writes nothing.
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_harness.h"
#include "core.h"

static char log_path[600];

/* Starts the api with `extra` on an empty log. */
static pid_t start(const char *const *extra)
{
    snprintf(log_path, sizeof(log_path), "%s/api.log", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh(": > '%s'", log_path), 0);
    pid_t pid = au_api_start(extra);
    assert_true(pid > 0);
    return pid;
}

/* Stops the api and returns its access lines (msg "request"), parsed: a new array. */
static json_t *stop_and_read(pid_t pid)
{
    assert_int_equal(ts_stop(pid, SIGTERM, 15), 0);
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    json_t *lines = json_array();
    char buf[16384];
    while (fgets(buf, sizeof(buf), f)) {
        json_error_t jerr;
        json_t *o = json_loads(buf, 0, &jerr);
        if (o == NULL)
            fail_msg("a log line that is not JSON (%s): %s", jerr.text, buf);
        const char *msg = json_string_value(json_object_get(o, "msg"));
        if (msg && strcmp(msg, "request") == 0)
            json_array_append(lines, o);
        json_decref(o);
    }
    fclose(f);
    return lines;
}

/* The access line with this request id, or NULL. */
static json_t *line_of(json_t *lines, const char *req_id)
{
    size_t i;
    json_t *o;
    json_array_foreach(lines, i, o)
    {
        const char *id = json_string_value(json_object_get(o, "request_id"));
        if (id && strcmp(id, req_id) == 0)
            return o;
    }
    return NULL;
}

static long long num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void test_one_line_per_request_with_its_route_pattern(void **state)
{
    (void)state;
    pid_t pid = start(NULL);
    char user[37], gen[37], path[96];
    char *t = au_token(NULL, NULL, NULL, user);
    gf_uuid4(gen);
    snprintf(path, sizeof(path), "/v1/generations/%s", gen);
    ts_http_t r404 = au_call("GET", path, t, NULL, "X-Request-Id: al-404");
    assert_int_equal(r404.status, 404);
    ts_http_t r200 = au_call("GET", "/v1/credits", t, NULL, "X-Request-Id: al-200");
    assert_int_equal(r200.status, 200);
    ts_http_t r401 = au_call("GET", "/v1/credits", NULL, NULL, "X-Request-Id: al-401");
    assert_int_equal(r401.status, 401);
    ts_http_t rnone = au_call("GET", "/v1/nothing/here", NULL, NULL, "X-Request-Id: al-none");
    assert_int_equal(rnone.status, 404);
    json_t *lines = stop_and_read(pid);

    json_t *l = line_of(lines, "al-404");
    assert_non_null(l);
    assert_string_equal(au_str(l, "level"), "info");
    assert_string_equal(au_str(l, "component"), "api");
    assert_string_equal(au_str(l, "method"), "GET");
    assert_string_equal(au_str(l, "route"), "/v1/generations/:id");
    assert_int_equal(num(l, "status"), 404);
    assert_int_equal(num(l, "bytes"), (long long)r404.body_len);
    assert_string_equal(au_str(l, "user_id"), user);
    json_t *d = json_object_get(l, "duration_ms");
    assert_true(json_is_number(d) && json_number_value(d) >= 0 && json_number_value(d) < 60000);

    l = line_of(lines, "al-200");
    assert_non_null(l);
    assert_string_equal(au_str(l, "route"), "/v1/credits");
    assert_int_equal(num(l, "status"), 200);
    assert_int_equal(num(l, "bytes"), (long long)r200.body_len);
    assert_string_equal(au_str(l, "user_id"), user);

    l = line_of(lines, "al-401"); /* no valid token: no user */
    assert_non_null(l);
    assert_int_equal(num(l, "status"), 401);
    assert_null(json_object_get(l, "user_id"));

    l = line_of(lines, "al-none"); /* a path no route knows is not echoed */
    assert_non_null(l);
    assert_string_equal(au_str(l, "route"), "unmatched");

    /* The raw path with its id is on no access line. */
    char *all = json_dumps(lines, 0);
    assert_null(strstr(all, gen));
    assert_null(strstr(all, "/v1/nothing/here"));
    free(all);
    json_decref(lines);
    ts_http_dispose(&r404);
    ts_http_dispose(&r200);
    ts_http_dispose(&r401);
    ts_http_dispose(&rnone);
    free(t);
}

static void test_sampling_keeps_every_5xx(void **state)
{
    (void)state;
    static const char *const none[] = {"FARM_ACCESS_LOG_SAMPLE_PCT=0", NULL};
    pid_t pid = start(none);
    char *t = au_token(NULL, NULL, NULL, NULL);
    for (int i = 0; i < 10; i++) {
        ts_http_t r = au_call("GET", "/v1/credits", t, NULL, NULL);
        au_expect(&r, 200, NULL);
    }
    /* Postgres away: GET /v1/credits is 503, and its line is written (at warn). */
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    ts_http_t r = au_call("GET", "/v1/credits", t, NULL, "X-Request-Id: al-503");
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    assert_int_equal(r.status, 503);
    ts_http_dispose(&r);
    json_t *lines = stop_and_read(pid);
    /* The 503's line, and no other but a 503 of /readyz while the api was
     * starting (every 5xx is kept: a slow start may answer one). */
    size_t i, n = 0;
    json_t *o;
    json_array_foreach(lines, i, o)
    {
        if (line_of(lines, "al-503") == o)
            continue;
        assert_string_equal(au_str(o, "route"), "/readyz");
        assert_int_equal(num(o, "status"), 503);
    }
    json_t *l = line_of(lines, "al-503");
    assert_non_null(l);
    assert_string_equal(au_str(l, "level"), "warn");
    assert_int_equal(num(l, "status"), 503);
    json_decref(lines);

    /* Half: of 200 answers, about 100 lines (a binomial draw: 60..140 is > 8 sigma wide). */
    static const char *const half[] = {"FARM_ACCESS_LOG_SAMPLE_PCT=50", NULL};
    pid = start(half);
    for (int i = 0; i < 200; i++) {
        r = au_call("GET", "/v1/credits", t, NULL, "X-Request-Id: al-half");
        au_expect(&r, 200, NULL);
    }
    lines = stop_and_read(pid);
    json_array_foreach(lines, i, o) n += strcmp(au_str(o, "request_id"), "al-half") == 0;
    assert_true(n >= 60 && n <= 140);
    json_decref(lines);
    free(t);
}

/* A TCP connection to the api started last (au_base). */
static int connect_api(void)
{
    int port = atoi(strrchr(au_base, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/*
 * A connection over FARM_HTTP_MAX_CONNECTIONS is answered 503 and counted in
 * farm_http_connections_rejected_total, but it is not a request: no access
 * line and no farm_http_requests_total sample, so a flood of them neither
 * writes a log line each nor moves the 5xx ratio of the requests served.
 */
static void test_a_connection_refused_at_the_cap_is_not_a_request(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_HTTP_MAX_CONNECTIONS=1", "FARM_API_PROCESSES=1",
                                        NULL};
    pid_t pid = start(extra);
    usleep(300 * 1000); /* the readiness check's connection is closed */
    int held = connect_api();
    usleep(300 * 1000);
    int over = connect_api();
    const char *get = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_true(send(over, get, strlen(get), MSG_NOSIGNAL) == (ssize_t)strlen(get));
    char buf[4096];
    size_t got = 0;
    for (ssize_t n;
         got + 1 < sizeof(buf) && (n = recv(over, buf + got, sizeof(buf) - 1 - got, 0)) > 0;)
        got += (size_t)n;
    buf[got] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    close(over);
    close(held);
    usleep(300 * 1000);
    ts_http_t m = au_call("GET", "/metrics", NULL, NULL, NULL);
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.body, "\nfarm_http_connections_rejected_total 1\n"));
    assert_null(strstr(m.body, "status=\"503\""));
    ts_http_dispose(&m);
    json_t *lines = stop_and_read(pid);
    size_t i;
    json_t *o;
    json_array_foreach(lines, i, o)
    {
        if (json_integer_value(json_object_get(o, "status")) == 503)
            fail_msg("an access line for the refused connection: %s",
                     json_string_value(json_object_get(o, "route")));
    }
    json_decref(lines);
}

static void test_off_writes_nothing(void **state)
{
    (void)state;
    static const char *const off[] = {"FARM_ACCESS_LOG=off", NULL};
    pid_t pid = start(off);
    char *t = au_token(NULL, NULL, NULL, NULL);
    ts_http_t r = au_call("GET", "/v1/credits", t, NULL, NULL);
    au_expect(&r, 200, NULL);
    json_t *lines = stop_and_read(pid);
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_request_with_its_route_pattern),
        cmocka_unit_test(test_sampling_keeps_every_5xx),
        cmocka_unit_test(test_off_writes_nothing),
        cmocka_unit_test(test_a_connection_refused_at_the_cap_is_not_a_request),
    };
    return ts_run_tests_with_curl(tests, NULL, NULL);
}
