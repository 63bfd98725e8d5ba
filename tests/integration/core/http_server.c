/*
 * tests/integration/core/http_server.c - core/httpd serving requests over real
 * loopback sockets: routing, keep-alive, request ids, bodies, HEAD, metrics,
 * 1,000 concurrent connections, pipelining and streams.
 *
 * Each test starts its own server (tests/support/http_harness.c: a libuv
 * loop on its own thread) and talks to it from the test thread with libcurl,
 * or with raw sockets where libcurl cannot say it (http_client.c). Teardown
 * stops the server and requires uv_loop_close() == 0.
 *
 * Timing: waits are bounded generously (seconds) and only ever assert an
 * upper bound on something that should happen, or a lower bound that a
 * timer guarantees, so a loaded 2-core machine cannot make them flake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http_harness.h"

static void test_route_sees_decoded_params_query_and_headers(void **state)
{
    srv_t *srv = *state;
    struct curl_slist *h = curl_slist_append(NULL, "X-Test: hello there");
    cresp_t r;
    assert_int_equal(curl_get(srv, "/echo/a%20b?q=x+y%26z&other=1", h, &r), 200);
    assert_string_equal(r.body.p, "id=a b\nq=x y&z\nh=hello there\nmethod=GET\npath=/echo/a b\n"
                                  "route=/echo/:id\n");
    char ct[128];
    assert_string_equal(cresp_header(&r, "Content-Type", ct, sizeof(ct)), "text/plain");
    cresp_dispose(&r);
    curl_slist_free_all(h);

    assert_int_equal(curl_get(srv, "/echo/7", NULL, &r), 200);
    assert_string_equal(r.body.p, "id=7\nq=-\nh=-\nmethod=GET\npath=/echo/7\nroute=/echo/:id\n");
    cresp_dispose(&r);
}

/*
 * A query string that cannot be read as sent is refused, 400, before any route sees it: a
 * parameter without a name, a '%' without two hex digits, or one that decodes to NUL (which
 * a route would otherwise never see, acting as if the parameter was not sent), or a name
 * given twice, however spelled (a route reads one value; the other would be dropped), or
 * more than 64 parameters.
 * Empty parameters name nothing and are fine; "%25" is a '%'.
 */
static void test_a_query_that_cannot_be_read_as_sent_is_refused(void **state)
{
    srv_t *srv = *state;
    static const char *const bad[] = {"/echo/1?q=a%00b", "/echo/1?=x",        "/echo/1?q=%zz",
                                      "/echo/1?q=1%2",   "/echo/1?%00=1",     "/echo/1?q=1&=",
                                      "/echo/1?q=1&q=2", "/echo/1?q=1&%71=1", NULL};
    cresp_t r;
    for (int i = 0; bad[i]; i++) {
        long status = curl_get(srv, bad[i], NULL, &r);
        if (status != 400)
            fail_msg("%s: %ld %s", bad[i], status, r.body.p);
        assert_json_error(r.body.p, r.body.len, "invalid_request");
        assert_non_null(strstr(r.body.p, "malformed query string"));
        cresp_dispose(&r);
    }
    assert_int_equal(curl_get(srv, "/echo/1?&other=1&&q=100%25&", NULL, &r), 200);
    assert_non_null(strstr(r.body.p, "q=100%\n"));
    cresp_dispose(&r);
    /* 64 parameters are read; a 65th is refused (no route reads that many). */
    char many[1024] = "/echo/1?";
    for (int i = 0; i < 65; i++) {
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sp%d=1", i ? "&" : "", i);
        if (i == 63) {
            assert_int_equal(curl_get(srv, many, NULL, &r), 200);
            cresp_dispose(&r);
        }
    }
    assert_int_equal(curl_get(srv, many, NULL, &r), 400);
    assert_non_null(strstr(r.body.p, "malformed query string"));
    cresp_dispose(&r);
}

static void test_unknown_path_is_404_and_wrong_method_405_in_json(void **state)
{
    srv_t *srv = *state;
    cresp_t r;
    char v[128];
    assert_int_equal(curl_get(srv, "/nope", NULL, &r), 404);
    assert_json_error(r.body.p, r.body.len, "not_found");
    assert_non_null(cresp_header(&r, "X-Request-Id", v, sizeof(v)));
    cresp_dispose(&r);

    assert_int_equal(curl_get(srv, "/echo", NULL, &r), 404); /* a missing segment is no match */
    cresp_dispose(&r);
    assert_int_equal(curl_get(srv, "/echo/1/extra", NULL, &r), 404);
    cresp_dispose(&r);
    assert_int_equal(curl_get(srv, "/echo/1/", NULL, &r), 404); /* one path, one resource */
    cresp_dispose(&r);

    CURL *e = curl_easy_init();
    curl_setup(e, srv, "/echo/1", &r, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "x");
    curl_run(e, &r);
    assert_int_equal(r.status, 405);
    assert_json_error(r.body.p, r.body.len, "method_not_allowed");
    /* It says what is allowed (RFC 9110): /echo/:id is a GET route, so HEAD too. */
    assert_non_null(cresp_header(&r, "Allow", v, sizeof(v)));
    assert_string_equal(v, "GET, HEAD");
    cresp_dispose(&r);
    curl_easy_cleanup(e);
}

static void test_keep_alive_reuses_one_connection(void **state)
{
    srv_t *srv = *state;
    CURL *e = curl_easy_init();
    cresp_t r;
    long connects;
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/echo/%d", i);
        curl_setup(e, srv, path, &r, NULL);
        curl_run(e, &r);
        assert_int_equal(r.status, 200);
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
        assert_int_equal(connects, i == 0 ? 1 : 0); /* the 2nd and 3rd reuse the 1st */
        cresp_dispose(&r);
    }
    assert_int_equal(srv_connections(srv), 1);

    /* "Connection: close" is honoured: the server closes, the next request reconnects. */
    struct curl_slist *h = curl_slist_append(NULL, "Connection: close");
    curl_setup(e, srv, "/echo/x", &r, h);
    curl_run(e, &r);
    char v[64];
    assert_string_equal(cresp_header(&r, "Connection", v, sizeof(v)), "close");
    cresp_dispose(&r);
    curl_slist_free_all(h);
    curl_setup(e, srv, "/echo/y", &r, NULL);
    curl_run(e, &r);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal(connects, 1);
    cresp_dispose(&r);
    curl_easy_cleanup(e);
}

static void test_idle_keep_alive_connection_is_closed(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.idle_timeout_ms = 300;
    srv_t *srv = srv_start_in(state, &o, 0);
    CURL *e = curl_easy_init();
    cresp_t r;
    curl_setup(e, srv, "/healthz", &r, NULL);
    curl_run(e, &r);
    assert_int_equal(r.status, 200);
    cresp_dispose(&r);
    WAIT_UNTIL(srv_connections(srv) == 0, WAIT_MS);
    assert_int_equal(srv_connections(srv), 0);
    curl_easy_cleanup(e);
}

static void test_request_id_is_echoed_when_sane_else_generated(void **state)
{
    srv_t *srv = *state;
    cresp_t r;
    char v[256];

    struct curl_slist *h = curl_slist_append(NULL, "X-Request-Id: abc-123.XYz:9");
    assert_int_equal(curl_get(srv, "/echo/1", h, &r), 200);
    assert_string_equal(cresp_header(&r, "X-Request-Id", v, sizeof(v)), "abc-123.XYz:9");
    cresp_dispose(&r);
    curl_slist_free_all(h);

    h = curl_slist_append(NULL, "X-Request-Id: abc-123");
    assert_int_equal(curl_get(srv, "/missing", h, &r), 404); /* error answers carry it too */
    assert_string_equal(cresp_header(&r, "X-Request-Id", v, sizeof(v)), "abc-123");
    cresp_dispose(&r);
    curl_slist_free_all(h);

    assert_int_equal(curl_get(srv, "/echo/1", NULL, &r), 200);
    assert_true(is_uuid4(cresp_header(&r, "X-Request-Id", v, sizeof(v))));
    cresp_dispose(&r);

    char longid[160] = "X-Request-Id: ";
    memset(longid + strlen(longid), 'a', 129); /* one over the 128 limit */
    const char *const insane[] = {"X-Request-Id: has space", "X-Request-Id: semi;colon", longid};
    for (size_t i = 0; i < sizeof(insane) / sizeof(insane[0]); i++) {
        h = curl_slist_append(NULL, insane[i]);
        assert_int_equal(curl_get(srv, "/echo/1", h, &r), 200);
        assert_true(is_uuid4(cresp_header(&r, "X-Request-Id", v, sizeof(v))));
        cresp_dispose(&r);
        curl_slist_free_all(h);
    }
}

static void test_post_body_is_echoed_up_to_its_route_limit(void **state)
{
    srv_t *srv = *state;
    char body[1025];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)('a' + i % 26);
    CURL *e = curl_easy_init();
    cresp_t r;
    curl_setup(e, srv, "/body", &r, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 1024L); /* exactly the route's limit */
    curl_run(e, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 1024);
    assert_memory_equal(r.body.p, body, 1024);
    cresp_dispose(&r);

    /* A client that asks first is told to go on before it sends the body. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect: 100-continue");
    curl_setup(e, srv, "/body", &r, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 10L);
    curl_run(e, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.saw_continue);
    assert_string_equal(r.body.p, "abcdefghij");
    cresp_dispose(&r);
    curl_slist_free_all(h);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL); /* the list is freed: forget it */

    curl_setup(e, srv, "/body", &r, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 1025L);
    curl_run(e, &r);
    assert_int_equal(r.status, 413);
    assert_json_error(r.body.p, r.body.len, "payload_too_large");
    cresp_dispose(&r);
    curl_easy_cleanup(e);
}

static void test_head_is_answered_by_the_get_route_without_a_body(void **state)
{
    srv_t *srv = *state;
    CURL *e = curl_easy_init();
    cresp_t r;
    curl_setup(e, srv, "/echo/1", &r, NULL);
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_run(e, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    char v[32];
    const char *get_body = "id=1\nq=-\nh=-\nmethod=HEAD\npath=/echo/1\nroute=/echo/:id\n";
    assert_int_equal(atoi(cresp_header(&r, "Content-Length", v, sizeof(v))), strlen(get_body));
    cresp_dispose(&r);
    curl_easy_cleanup(e);

    /* No body bytes follow the head: the next answer on the connection starts right after it. */
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&c, "HEAD /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "GET /echo/2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                     0);
    http_resp_t head, get;
    assert_int_equal(rawc_head(&c, &head, WAIT_MS), 0);
    assert_int_equal(head.status, 200);
    assert_int_equal(atoi(resp_header(&head, "Content-Length")), strlen(get_body));
    resp_dispose(&head);
    assert_int_equal(rawc_response(&c, &get, WAIT_MS), 0);
    assert_int_equal(get.status, 200);
    assert_string_equal(get.body.p, "id=2\nq=-\nh=-\nmethod=GET\npath=/echo/2\nroute=/echo/:id\n");
    resp_dispose(&get);
    rawc_close(&c);

    /* The same for a stream: its head, and the stream ends there (no chunk, no last chunk). */
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&c, "HEAD /stream?every=10 HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "GET /echo/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                     0);
    assert_int_equal(rawc_head(&c, &head, WAIT_MS), 0);
    assert_int_equal(head.status, 200);
    assert_string_equal(resp_header(&head, "Content-Type"), "text/event-stream");
    resp_dispose(&head);
    assert_int_equal(rawc_response(&c, &get, WAIT_MS), 0);
    assert_int_equal(get.status, 200);
    assert_string_equal(get.body.p, "id=3\nq=-\nh=-\nmethod=GET\npath=/echo/3\nroute=/echo/:id\n");
    resp_dispose(&get);
    rawc_close(&c);
}

static void test_requests_are_counted_by_route_method_and_status(void **state)
{
    gf_metrics_t *m = gf_metrics_new();
    gf_httpd_opts_t o = srv_opts();
    o.metrics = m;
    srv_t *srv = srv_start_in(state, &o, 0);
    cresp_t r;
    assert_int_equal(curl_get(srv, "/echo/1", NULL, &r), 200);
    cresp_dispose(&r);
    assert_int_equal(curl_get(srv, "/echo/2", NULL, &r), 200);
    cresp_dispose(&r);
    assert_int_equal(curl_get(srv, "/nope", NULL, &r), 404);
    cresp_dispose(&r);
    /* The registry belongs to the loop thread: read it once the server is gone. */
    srv_t *s = srv;
    *state = NULL; /* joined here, not by the teardown */
    srv_stop(s);
    assert_int_equal(srv_join(s, 30000, NULL), 0);
    char *text = gf_metrics_render(m);
    static const char *const want[] = {
        "# TYPE farm_http_requests_total counter\n",
        "\nfarm_http_requests_total{route=\"/echo/:id\",method=\"GET\",status=\"200\"} 2\n",
        "\nfarm_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
        "\n# TYPE farm_http_request_duration_seconds histogram\n",
        "\nfarm_http_request_duration_seconds_count{route=\"/echo/:id\",method=\"GET\","
        "class=\"2xx\"} 2\n",
        "\nfarm_http_request_duration_seconds_count{route=\"unmatched\",method=\"GET\","
        "class=\"4xx\"} 1\n",
        "\nfarm_http_connections 0\n",
        "\nfarm_http_streams 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(text, want[i]) == NULL)
            fail_msg("metrics lack \"%s\" in:\n%s", want[i], text);
    free(text);
    gf_metrics_free(m);
}

static void test_thousand_concurrent_connections_are_all_answered(void **state)
{
    enum { N = 1000 };
    /* The gate answers nobody until all N requests are parked at once. */
    srv_t *srv = srv_start_in(state, NULL, N);
    CURLM *m = curl_multi_init();
    CURL **easy = calloc(N, sizeof(*easy));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/gate", srv_port(srv));
    static gf_buf_t sink[N];
    for (int i = 0; i < N; i++) {
        easy[i] = curl_easy_init();
        gf_buf_puts(&sink[i], "");
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, curl_buf_write);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &sink[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, easy[i]);
    }
    int running = 1, ok = 0, failed = 0;
    while (running > 0) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        if (running > 0)
            assert_int_equal(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status == 200)
                ok++;
            else if (failed++ == 0)
                fprintf(stderr, "first failure: %s, status %ld\n",
                        curl_easy_strerror(msg->data.result), status);
        }
    }
    int all_body_ok = 1;
    for (int i = 0; i < N; i++) {
        all_body_ok &= strcmp(sink[i].p, "gate\n") == 0;
        gf_buf_dispose(&sink[i]);
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_multi_cleanup(m);
    assert_int_equal(failed, 0);
    assert_int_equal(ok, N);
    assert_true(all_body_ok);
    assert_int_equal(atomic_load(&srv_stats(srv)->gate_max), N); /* all N were open at once */
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    srv_t *srv = *state;
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    /* The first one is slow: the two behind it must wait for it, not overtake it. */
    assert_int_equal(rawc_sends(&c,
                                "GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\nX-Request-Id: p1\r\n\r\n"
                                "GET /echo/2 HTTP/1.1\r\nHost: t\r\nX-Request-Id: p2\r\n\r\n"
                                "GET /echo/3 HTTP/1.1\r\nHost: t\r\nX-Request-Id: p3\r\n"
                                "Connection: close\r\n\r\n"),
                     0);
    static const char *const ids[] = {"p1", "p2", "p3"};
    static const char *const bodies[] = {"slow\n", "id=2\n", "id=3\n"};
    for (int i = 0; i < 3; i++) {
        http_resp_t r;
        assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(resp_header(&r, "X-Request-Id"), ids[i]);
        assert_memory_equal(r.body.p, bodies[i], strlen(bodies[i]));
        resp_dispose(&r);
    }
    assert_true(rawc_wait_eof(&c, WAIT_MS)); /* the third asked to close */
    rawc_close(&c);
}

/* Sends `bytes` on `c` and shuts its sending side down: the end of its input. */
static void send_then_half_close(rawc_t *c, const char *bytes)
{
    assert_int_equal(rawc_sends(c, bytes), 0);
    assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
}

/* Reads a 200 with a body of `len` bytes on `c`, then the server's close. */
static void expect_whole_then_close(rawc_t *c, size_t len)
{
    http_resp_t r;
    assert_int_equal(rawc_response(c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, len);
    resp_dispose(&r);
    assert_true(rawc_wait_eof(c, WAIT_MS));
}

/*
 * A client that half-closes after its requests still gets every answer, then
 * the close: a large answer the socket takes in many writes (this client
 * reads slowly), pipelined requests still buffered when the end of its
 * input arrives, and one a handler answers later.
 */
static void test_a_client_that_half_closes_gets_every_answer(void **state)
{
    srv_t *srv = *state;
    enum { BIG = 4 << 20, PIPELINED = 12 };
    rawc_t a, b, c;
    assert_int_equal(rawc_connect(&a, srv_port(srv), 4096), 0);
    assert_int_equal(rawc_connect(&b, srv_port(srv), 0), 0);
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    char req[64];
    snprintf(req, sizeof(req), "GET /big?bytes=%d HTTP/1.1\r\nHost: t\r\n\r\n", BIG);
    send_then_half_close(&a, req);
    gf_buf_t many = {0};
    for (int i = 0; i < PIPELINED; i++)
        gf_buf_printf(&many, "GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    send_then_half_close(&b, many.p);
    gf_buf_dispose(&many);
    send_then_half_close(&c, "GET /slow?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n");
    sleep_ms(200); /* the server has seen every end of input before this client reads */

    expect_whole_then_close(&a, BIG);
    http_resp_t r;
    for (int i = 0; i < PIPELINED; i++) {
        char want[16];
        snprintf(want, sizeof(want), "id=%d\n", i);
        assert_int_equal(rawc_response(&b, &r, WAIT_MS), 0);
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body.p, want, strlen(want));
        resp_dispose(&r);
    }
    assert_true(rawc_wait_eof(&b, WAIT_MS));
    expect_whole_then_close(&c, 5); /* "slow\n", closed once answered, not when idle */
    rawc_close(&a);
    rawc_close(&b);
    rawc_close(&c);
}

/*
 * A large answer still being written, then a request the client's end of
 * input cut short: the answer arrives whole, the cut request gets none.
 * (Room for the whole answer in the client's queue, so the cut request is
 * parsed, not held behind it.)
 */
static void test_a_request_cut_short_by_half_close_drops_only_itself(void **state)
{
    enum { BIG = 4 << 20 };
    gf_httpd_opts_t o = srv_opts();
    o.max_queued_bytes = 64 << 20;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t d;
    assert_int_equal(rawc_connect(&d, srv_port(srv), 4096), 0);
    char req[128];
    snprintf(req, sizeof(req),
             "GET /big?bytes=%d HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/1 HTTP/1.1\r\n", BIG);
    send_then_half_close(&d, req);
    sleep_ms(200); /* the server has seen the end of input before this client reads */
    expect_whole_then_close(&d, BIG);
    assert_int_equal(d.in.len, 0); /* nothing for the request cut short */
    rawc_close(&d);
}

/*
 * A check hook that decides later (farm-api's rate limit asks Redis): bytes
 * that arrive while it decides - the body, a pipelined request, the client's
 * half-close - wait in the socket and are all read once it has decided.
 * Three clients: the body in the same write as the headers, the body sent
 * during the check with a second request behind it, and a request whose
 * client shuts its side down during the check.
 */
static void test_bytes_sent_while_the_check_hook_decides_wait_for_it(void **state)
{
    srv_t *srv = *state;
    srv_check_after(srv, 500);
    rawc_t a, b, c;
    assert_int_equal(rawc_connect(&a, srv_port(srv), 0), 0);
    assert_int_equal(rawc_connect(&b, srv_port(srv), 0), 0);
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&a, "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                                    "first"),
                     0);
    assert_int_equal(rawc_sends(&b, "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"),
                     0);
    assert_int_equal(rawc_sends(&c, "GET /echo/9 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    sleep_ms(50); /* the hook is deciding (most likely: no assertion rests on it) */
    assert_int_equal(rawc_sends(&b, "0123456789"
                                    "GET /echo/2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                     0);
    assert_int_equal(shutdown(c.fd, SHUT_WR), 0);

    http_resp_t r;
    assert_int_equal(rawc_response(&a, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body.p, "first", 5);
    resp_dispose(&r);
    assert_int_equal(rawc_response(&b, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 10);
    assert_memory_equal(r.body.p, "0123456789", 10);
    resp_dispose(&r);
    assert_int_equal(rawc_response(&b, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body.p, "id=2\n", 5);
    resp_dispose(&r);
    assert_true(rawc_wait_eof(&b, WAIT_MS)); /* the second asked to close */
    /* A client may half-close after its request and still read the answer. */
    assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body.p, "id=9\n", 5);
    resp_dispose(&r);
    assert_int_equal(atomic_load(&srv_stats(srv)->checked), 4);
    rawc_close(&a);
    rawc_close(&b);
    rawc_close(&c);
}

/*
 * One frame after another to 200 streams at once, each fan-out shared with
 * two write threads: every client gets every frame, whole and in order,
 * chunked for HTTP/1.1 and bare for HTTP/1.0, while it reads half a frame
 * between two fan-outs (so each fan-out meets sockets still holding unread
 * bytes). (On loopback the kernel takes these sends whole; the queueing of
 * what a socket does not take is the single-stream path's, which the
 * stream tests above exercise.)
 */
static void test_fanout_shared_with_threads_arrives_whole_and_in_order(void **state)
{
    enum { N = 200, FRAMES = 20, SIZE = 4000 };
    gf_httpd_opts_t o = srv_opts();
    o.write_threads = 2;
    o.stream_max_queued_bytes = 4 << 20;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t *c = gf_xcalloc(N, sizeof(*c));
    for (int i = 0; i < N; i++) {
        assert_int_equal(rawc_connect(&c[i], srv_port(srv), 4096), 0);
        assert_int_equal(rawc_sends(&c[i], i == 0 ? "GET /fanout HTTP/1.0\r\n\r\n"
                                                  : "GET /fanout HTTP/1.1\r\nHost: t\r\n\r\n"),
                         0);
    }
    WAIT_UNTIL(atomic_load(&srv_stats(srv)->fan_open) == N, WAIT_MS);
    assert_int_equal(atomic_load(&srv_stats(srv)->fan_open), N);
    for (int f = 0; f < FRAMES; f++) {
        srv_fanout(srv, f, 1, SIZE);
        for (int i = 0; i < N; i++) { /* less than a frame: the clients fall behind */
            static char part[SIZE / 2];
            ssize_t n = recv(c[i].fd, part, sizeof(part), MSG_DONTWAIT);
            if (n > 0)
                gf_buf_append(&c[i].in, part, (size_t)n);
        }
    }
    assert_int_equal(atomic_load(&srv_stats(srv)->fan_failed), 0);
    /* What each client must read after the head: HTTP/1.1 chunks, HTTP/1.0 the data alone. */
    gf_buf_t chunked = {0}, bare = {0};
    static char data[SIZE + 1];
    for (int f = 0; f < FRAMES; f++) {
        size_t n = srv_fan_data(f, SIZE, data);
        gf_buf_printf(&chunked, "%zx\r\n", n);
        gf_buf_append(&chunked, data, n);
        gf_buf_append(&chunked, "\r\n", 2);
        gf_buf_append(&bare, data, n);
    }
    for (int i = 0; i < N; i++) {
        http_resp_t r;
        assert_int_equal(rawc_head(&c[i], &r, WAIT_MS), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.chunked, i != 0);
        const gf_buf_t *want = i == 0 ? &bare : &chunked;
        long long end = now_ms() + WAIT_MS;
        while (c[i].in.len < want->len && now_ms() < end && rawc_fill(&c[i], WAIT_MS) > 0)
            ;
        assert_int_equal(c[i].in.len, want->len);
        assert_memory_equal(c[i].in.p, want->p, want->len);
        resp_dispose(&r);
        rawc_close(&c[i]);
    }
    WAIT_UNTIL(atomic_load(&srv_stats(srv)->fan_open) == 0, WAIT_MS);
    assert_int_equal(atomic_load(&srv_stats(srv)->fan_open), 0);
    gf_buf_dispose(&chunked);
    gf_buf_dispose(&bare);
    free(c);
}

static void test_stream_handler_is_told_when_the_client_leaves(void **state)
{
    srv_t *srv = *state;
    srv_stats_t *st = srv_stats(srv);
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&c, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_resp_t r;
    assert_int_equal(rawc_head(&c, &r, WAIT_MS), 0);
    for (int i = 0; i < 3; i++) {
        r.body.len = 0;
        long n = rawc_chunk(&c, &r, WAIT_MS);
        assert_true(n > 0);
        char want[32];
        snprintf(want, sizeof(want), "data: tick %d\n\n", i);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(r.body.p, want, (size_t)n);
    }
    resp_dispose(&r);
    rawc_close(&c);
    WAIT_UNTIL(atomic_load(&st->streams_open) == 0, WAIT_MS);
    assert_int_equal(atomic_load(&st->streams_open), 0);
    /* Told by on_close, or by a failing write if that came first. */
    assert_true(atomic_load(&st->stream_on_close) + atomic_load(&st->stream_canceled) >= 1);
    assert_int_equal(atomic_load(&st->stream_toobig), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_sees_decoded_params_query_and_headers, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_a_query_that_cannot_be_read_as_sent_is_refused,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_path_is_404_and_wrong_method_405_in_json,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_reuses_one_connection, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_teardown(test_idle_keep_alive_connection_is_closed, srv_teardown),
        cmocka_unit_test_setup_teardown(test_request_id_is_echoed_when_sane_else_generated,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_post_body_is_echoed_up_to_its_route_limit, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_head_is_answered_by_the_get_route_without_a_body,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_teardown(test_requests_are_counted_by_route_method_and_status,
                                  srv_teardown),
        cmocka_unit_test_teardown(test_thousand_concurrent_connections_are_all_answered,
                                  srv_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests_are_answered_in_order, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_a_client_that_half_closes_gets_every_answer, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_teardown(test_a_request_cut_short_by_half_close_drops_only_itself,
                                  srv_teardown),
        cmocka_unit_test_setup_teardown(test_bytes_sent_while_the_check_hook_decides_wait_for_it,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_stream_handler_is_told_when_the_client_leaves,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_teardown(test_fanout_shared_with_threads_arrives_whole_and_in_order,
                                  srv_teardown),
    };
    return http_run_tests(tests);
}
