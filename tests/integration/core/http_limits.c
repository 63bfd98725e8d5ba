/*
 * tests/integration/core/http_limits.c - core/httpd's bounds, enforced before any
 * handler runs, over real loopback sockets: garbage (400), headers (431),
 * bodies by Content-Length and chunked (413), HTTP/2 request lines (505),
 * slowloris (408), a streaming client that stops reading (dropped) and the
 * connection cap. Every refusal is the JSON error shape and closes, and
 * other clients are served while a bad one is being dealt with.
 *
 * Timing: waits are bounded generously (seconds) and only ever assert an
 * upper bound on something that should happen, or a lower bound that a
 * timer guarantees, so a loaded 2-core machine cannot make them flake.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_harness.h"

static void test_garbage_gets_400_json_and_close(void **state)
{
    srv_t *srv = *state;
    static const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n";
    assert_refused(srv, garbage, sizeof(garbage) - 1, 400, "invalid_request");
    const char *no_colon = "GET /echo/1 HTTP/1.1\r\nHost t\r\n\r\n";
    assert_refused(srv, no_colon, strlen(no_colon), 400, "invalid_request");
    /* The server is still fine for others. */
    cresp_t r;
    assert_int_equal(curl_get(srv, "/healthz", NULL, &r), 200);
    cresp_dispose(&r);
}

static void test_huge_headers_get_431(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.max_header_bytes = 4096;
    srv_t *srv = srv_start_in(state, &o, 0);
    gf_buf_t req = {0};
    gf_buf_puts(&req, "GET /echo/1 HTTP/1.1\r\nHost: t\r\nX-Big: ");
    for (int i = 0; i < 6000; i++)
        gf_buf_puts(&req, "a");
    gf_buf_puts(&req, "\r\n\r\n");
    assert_refused(srv, req.p, req.len, 431, "headers_too_large");
    gf_buf_dispose(&req);

    /* Many small headers count too, with their framing: 1,000 x "X: y" is 6 kB on the wire. */
    gf_buf_puts(&req, "GET /echo/1 HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 1000; i++)
        gf_buf_printf(&req, "X-H%d: v\r\n", i);
    gf_buf_puts(&req, "\r\n");
    assert_refused(srv, req.p, req.len, 431, "headers_too_large");
    gf_buf_dispose(&req);
    gf_buf_puts(&req, "GET /echo/1 HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 1000; i++)
        gf_buf_puts(&req, "X: y\r\n");
    gf_buf_puts(&req, "\r\n");
    assert_refused(srv, req.p, req.len, 431, "headers_too_large");
    gf_buf_dispose(&req);

    /* Just under the limit is fine. */
    gf_buf_puts(&req, "GET /echo/1 HTTP/1.1\r\nHost: t\r\nX-Big: ");
    for (int i = 0; i < 3000; i++)
        gf_buf_puts(&req, "a");
    gf_buf_puts(&req, "\r\nConnection: close\r\n\r\n");
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_send(&c, req.p, req.len), 0);
    http_resp_t r;
    assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    rawc_close(&c);
    gf_buf_dispose(&req);
}

static void test_oversized_content_length_gets_413_before_the_body(void **state)
{
    srv_t *srv = *state;
    /* Only the head is sent: the refusal must come from Content-Length alone. */
    const char *req = "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n";
    assert_refused(srv, req, strlen(req), 413, "payload_too_large");

    /* The server-wide default applies to routes without their own limit. */
    gf_httpd_opts_t o = srv_opts();
    o.max_body_bytes = 10;
    *state = NULL;
    srv_shutdown(srv);
    srv = srv_start_in(state, &o, 0);
    req = "GET /echo/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n";
    assert_refused(srv, req, strlen(req), 413, "payload_too_large");
}

/*
 * A client that sends its whole oversized body without waiting for an answer
 * (no Expect: 100-continue, as browsers upload) still gets to read the 413,
 * sent as soon as Content-Length is known, although the server never reads
 * the body and closes.
 */
static void test_413_reaches_a_client_still_sending_its_body(void **state)
{
    srv_t *srv = *state;
    enum { BODY = 8 << 20, PIECE = 64 << 10 };
    for (int round = 0; round < 3; round++) {
        rawc_t c;
        assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
        char head[128];
        snprintf(head, sizeof(head), "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
                 BODY);
        assert_int_equal(rawc_sends(&c, head), 0);
        static char piece[PIECE];
        memset(piece, 'b', sizeof(piece));
        for (int sent = 0; sent < BODY; sent += PIECE)
            if (rawc_send(&c, piece, sizeof(piece)) < 0)
                break; /* the server may stop reading in the end: that is fine */
        http_resp_t r;
        assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
        assert_int_equal(r.status, 413);
        resp_dispose(&r);
        rawc_close(&c);
    }
}

static void test_oversized_chunked_body_gets_413(void **state)
{
    srv_t *srv = *state;
    gf_buf_t req = {0};
    gf_buf_puts(&req, "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) { /* 3 x 400 bytes: over the route's 1024 */
        gf_buf_puts(&req, "190\r\n");
        for (int k = 0; k < 400; k++)
            gf_buf_puts(&req, "b");
        gf_buf_puts(&req, "\r\n");
    }
    gf_buf_puts(&req, "0\r\n\r\n");
    assert_refused(srv, req.p, req.len, 413, "payload_too_large");
    gf_buf_dispose(&req);

    /* A chunked body under the limit is reassembled. */
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&c,
                                "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                "\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
                     0);
    http_resp_t r;
    assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 11);
    assert_memory_equal(r.body.p, "hello world", 11);
    resp_dispose(&r);
    rawc_close(&c);
}

static void test_http2_request_line_gets_505(void **state)
{
    srv_t *srv = *state;
    const char *req = "GET / HTTP/2.0\r\nHost: t\r\n\r\n";
    assert_refused(srv, req, strlen(req), 505, "http_version_not_supported");
}

static void test_slowloris_gets_408_while_others_are_served(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.header_timeout_ms = 1000;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t c;
    long long t0 = now_ms();
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    /*
     * The request line and a header name at once, then a header value one byte
     * every 200 ms: each byte reaches the parser, so a timeout that restarted
     * on every byte would never fire.
     */
    assert_int_equal(rawc_sends(&c, "GET /echo/1 HTTP/1.1\r\nHost: t\r\nX-Pad: "), 0);
    int served = 0, answered = 0;
    for (int i = 0; i < 40 && now_ms() - t0 < 8000; i++) {
        if (rawc_send(&c, "a", 1) < 0) {
            answered = 1; /* closed under us: read what it said */
            break;
        }
        cresp_t r;
        assert_int_equal(curl_get(srv, "/healthz", NULL, &r),
                         200); /* others are served meanwhile */
        cresp_dispose(&r);
        served++;
        struct pollfd p = {.fd = c.fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            answered = 1;
            break;
        }
    }
    long long elapsed = now_ms() - t0;
    assert_true(answered);
    assert_true(served >= 1);
    http_resp_t r;
    if (rawc_response(&c, &r, WAIT_MS) == 0) {
        assert_int_equal(r.status, 408);
        assert_json_error(r.body.p, r.body.len, "request_timeout");
        resp_dispose(&r);
    }
    assert_true(rawc_wait_eof(&c, WAIT_MS));
    /* Counted from the first byte and not reset by each one: well before the head was done. */
    assert_true(elapsed < 8000);
    assert_true(elapsed >= 900); /* and not before the timeout */
    rawc_close(&c);
}

/* One event larger than the cap still reaches a client that reads. */
static void test_an_event_larger_than_the_cap_reaches_a_reading_client(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.stream_max_queued_bytes = 4096;
    srv_t *srv = srv_start_in(state, &o, 0);
    srv_stats_t *st = srv_stats(srv);
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(
        rawc_sends(&c, "GET /stream?size=65536&every=50&burst=1 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_resp_t r;
    assert_int_equal(rawc_head(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rawc_chunk(&c, &r, WAIT_MS), 65536);
    assert_int_equal(atomic_load(&st->stream_toobig), 0);
    resp_dispose(&r);
    rawc_close(&c);
    WAIT_UNTIL(atomic_load(&st->streams_open) == 0, WAIT_MS);
    assert_int_equal(atomic_load(&st->streams_open), 0);
}

static void test_stalled_stream_is_dropped_while_others_are_served(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.stream_max_queued_bytes = 64 * 1024;
    srv_t *srv = srv_start_in(state, &o, 0);
    srv_stats_t *st = srv_stats(srv);
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 4096), 0);
    assert_int_equal(
        rawc_sends(&c, "GET /stream?size=16384&every=1&burst=4 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_resp_t r;
    assert_int_equal(rawc_head(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.chunked);
    assert_string_equal(resp_header(&r, "Content-Type"), "text/event-stream");
    resp_dispose(&r);
    /* Stop reading. The server fills the socket, then its queue, then gives up. */
    int served = 0;
    long long end = now_ms() + 30000;
    while (atomic_load(&st->stream_toobig) == 0 && now_ms() < end) {
        cresp_t cr;
        assert_int_equal(curl_get(srv, "/echo/9", NULL, &cr), 200);
        cresp_dispose(&cr);
        served++;
        sleep_ms(20);
    }
    assert_int_equal(atomic_load(&st->stream_toobig), 1);
    assert_true(served >= 1);
    WAIT_UNTIL(atomic_load(&st->streams_open) == 0, WAIT_MS);
    assert_int_equal(atomic_load(&st->streams_open), 0);
    WAIT_UNTIL(srv_connections(srv) == 0, WAIT_MS);
    assert_int_equal(srv_connections(srv), 0);
    /* The dropped client reads what was sent and then finds the connection closed. */
    assert_true(rawc_wait_eof(&c, 30000));
    rawc_close(&c);
    cresp_t cr;
    assert_int_equal(curl_get(srv, "/echo/10", NULL, &cr), 200);
    cresp_dispose(&cr);
}

/*
 * The answers queued to all clients are bounded (max_queued_total): past it,
 * a fresh connection's request waits until clients drain, rather than
 * adding one more whole answer per connection that never reads.
 */
static void test_past_the_total_output_bound_a_fresh_connection_waits(void **state)
{
    enum { BIG = 4 << 20, SMALL = 256 << 10 };
    gf_httpd_opts_t o = srv_opts();
    o.max_queued_total = 1 << 20;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t a, b;
    assert_int_equal(rawc_connect(&a, srv_port(srv), 4096), 0);
    char req[96];
    snprintf(req, sizeof(req), "GET /big?bytes=%d HTTP/1.1\r\nHost: t\r\n\r\n", BIG);
    assert_int_equal(rawc_sends(&a, req), 0);
    sleep_ms(300); /* a's answer is queued: past the bound, a does not read */
    assert_int_equal(rawc_connect(&b, srv_port(srv), 4096), 0);
    snprintf(req, sizeof(req), "GET /big?bytes=%d HTTP/1.1\r\nHost: t\r\n\r\n", SMALL);
    assert_int_equal(rawc_sends(&b, req), 0);
    http_resp_t r;
    assert_int_equal(rawc_head(&b, &r, 500), -1); /* held */
    assert_int_equal(rawc_response(&a, &r, WAIT_MS), 0);
    assert_int_equal(r.body.len, BIG);
    resp_dispose(&r);
    assert_int_equal(rawc_response(&b, &r, WAIT_MS), 0); /* and served once a drained */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, SMALL);
    resp_dispose(&r);
    rawc_close(&a);
    rawc_close(&b);
}

/*
 * Bytes queued to a stream whose client stopped reading have the stream's own
 * bound; they do not count toward the total, so fresh connections are served
 * while such a stream holds more than the total bound.
 */
static void test_a_stalled_stream_does_not_hold_other_clients(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.max_queued_total = 64 << 10;
    o.stream_max_queued_bytes = 64 << 20;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(srv), 4096), 0);
    assert_int_equal(
        rawc_sends(&c, "GET /stream?size=16384&every=20&burst=4 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_resp_t r;
    assert_int_equal(rawc_head(&c, &r, WAIT_MS), 0);
    resp_dispose(&r);
    sleep_ms(1000); /* c reads nothing: some 3 MiB are queued to it by now */
    for (int i = 0; i < 3; i++) {
        cresp_t cr;
        long long t0 = now_ms();
        assert_int_equal(curl_get(srv, "/echo/7", NULL, &cr), 200);
        cresp_dispose(&cr);
        /* at once, not when the stream is dropped at its own bound (seconds later) */
        assert_true(now_ms() - t0 < 1000);
    }
    rawc_close(&c);
}

/*
 * Requests parsed before the bound was reached and answered after it (a file
 * read from storage): the first answer is queued, the next read gets 503
 * with Retry-After, so the total passes the bound by at most one answer.
 */
static void test_a_read_answered_past_the_total_output_bound_gets_503(void **state)
{
    enum { BIG = 4 << 20 };
    gf_httpd_opts_t o = srv_opts();
    o.max_queued_total = 1 << 20;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t c[2];
    char req[96];
    snprintf(req, sizeof(req), "GET /slow?ms=300&bytes=%d HTTP/1.1\r\nHost: t\r\n\r\n", BIG);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rawc_connect(&c[i], srv_port(srv), 4096), 0);
        assert_int_equal(rawc_sends(&c[i], req), 0);
    }
    WAIT_UNTIL(atomic_load(&srv_stats(srv)->slow_answered) == 2, WAIT_MS);
    assert_int_equal(atomic_load(&srv_stats(srv)->slow_answered), 2);
    int whole = 0, refused = 0;
    for (int i = 0; i < 2; i++) {
        http_resp_t r;
        assert_int_equal(rawc_response(&c[i], &r, WAIT_MS), 0);
        if (r.status == 200) {
            assert_int_equal(r.body.len, BIG);
            whole++;
        } else {
            assert_int_equal(r.status, 503);
            assert_string_equal(resp_header(&r, "Retry-After"), "1");
            assert_non_null(strstr(r.body.p, "\"code\":\"unavailable\""));
            refused++;
        }
        resp_dispose(&r);
        rawc_close(&c[i]);
    }
    assert_int_equal(whole, 1);
    assert_int_equal(refused, 1);
}

/* A connection over the cap: 503 unavailable with Retry-After, then the close. */
static void expect_refused_at_accept(rawc_t *c)
{
    http_resp_t r;
    assert_int_equal(rawc_response(c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(resp_header(&r, "Retry-After"), "1");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_non_null(strstr(r.body.p, "\"code\":\"unavailable\""));
    resp_dispose(&r);
}

#define REFUSING_MAX 128 /* HTTPD_REFUSING_MAX */

static void test_connections_over_the_limit_get_503(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.max_connections = 2;
    o.linger_ms = 60000; /* answered connections stay until their client closes */
    /* and a and b, which send nothing for a while, stay open however slow this machine is */
    o.header_timeout_ms = o.idle_timeout_ms = 600000;
    srv_t *srv = srv_start_in(state, &o, 0);
    rawc_t a, b, c;
    assert_int_equal(rawc_connect(&a, srv_port(srv), 0), 0);
    assert_int_equal(rawc_connect(&b, srv_port(srv), 0), 0);
    WAIT_UNTIL(srv_connections(srv) == 2, WAIT_MS);
    assert_int_equal(srv_connections(srv), 2);
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    expect_refused_at_accept(&c);
    rawc_close(&c); /* the server closes its side at this EOF */
    assert_int_equal(rawc_sends(&a, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_resp_t r;
    assert_int_equal(rawc_response(&a, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);

    /* Refusals still going out are bounded: past REFUSING_MAX clients that keep their
     * connection open, a new one is closed without an answer, and is answered again once
     * one of them leaves. */
    WAIT_UNTIL(srv_connections(srv) == 2, WAIT_MS);
    static rawc_t held[REFUSING_MAX];
    for (int i = 0; i < REFUSING_MAX; i++) {
        assert_int_equal(rawc_connect(&held[i], srv_port(srv), 0), 0);
        expect_refused_at_accept(&held[i]);
    }
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    assert_int_equal(rawc_fill(&c, WAIT_MS), 0); /* the close, with no byte before it */
    assert_int_equal(c.in.len, 0);
    rawc_close(&c);
    rawc_close(&held[0]);
    WAIT_UNTIL(srv_connections(srv) == 2 + REFUSING_MAX - 1, WAIT_MS);
    assert_int_equal(rawc_connect(&c, srv_port(srv), 0), 0);
    expect_refused_at_accept(&c);
    rawc_close(&c);
    for (int i = 1; i < REFUSING_MAX; i++)
        rawc_close(&held[i]);
    rawc_close(&a);
    rawc_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_garbage_gets_400_json_and_close, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_teardown(test_huge_headers_get_431, srv_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_content_length_gets_413_before_the_body,
                                        srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_chunked_body_gets_413, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_413_reaches_a_client_still_sending_its_body, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_http2_request_line_gets_505, srv_setup, srv_teardown),
        cmocka_unit_test_teardown(test_slowloris_gets_408_while_others_are_served, srv_teardown),
        cmocka_unit_test_teardown(test_stalled_stream_is_dropped_while_others_are_served,
                                  srv_teardown),
        cmocka_unit_test_teardown(test_an_event_larger_than_the_cap_reaches_a_reading_client,
                                  srv_teardown),
        cmocka_unit_test_teardown(test_past_the_total_output_bound_a_fresh_connection_waits,
                                  srv_teardown),
        cmocka_unit_test_teardown(test_a_read_answered_past_the_total_output_bound_gets_503,
                                  srv_teardown),
        cmocka_unit_test_teardown(test_a_stalled_stream_does_not_hold_other_clients, srv_teardown),
        cmocka_unit_test_teardown(test_connections_over_the_limit_get_503, srv_teardown),
    };
    return http_run_tests(tests);
}
