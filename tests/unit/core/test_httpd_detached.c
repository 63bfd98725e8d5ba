/*
 * tests/unit/core/test_httpd_detached.c - requests that no connection
 * carries (httpd__req_detached, httpd__req_run): the fake provider's HTTP/2
 * streams reach core/httpd's routes through them. No socket: the server is
 * never listening, answers go to a sink the test reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpd_int.h"

typedef struct {
    int calls;
    int status;
    char ctype[64];
    char body[256];
    size_t len;
    char headers[512];
    char id[129];
} sink_t;

static void on_sink(gf_http_req_t *r, int status, const char *ctype, const char *body, size_t len,
                    void *data)
{
    sink_t *s = data;
    s->calls++;
    s->status = status;
    snprintf(s->ctype, sizeof(s->ctype), "%s", ctype ? ctype : "");
    snprintf(s->body, sizeof(s->body), "%.*s", (int)len, body ? body : "");
    s->len = len;
    snprintf(s->headers, sizeof(s->headers), "%.*s", (int)r->out_headers.len,
             r->out_headers.p ? r->out_headers.p : "");
    snprintf(s->id, sizeof(s->id), "%s", r->id);
}

static gf_http_req_t *held; /* a request the "later" route keeps unanswered */

static void on_echo(gf_http_req_t *r, void *data)
{
    (void)data;
    size_t n;
    const char *b = gf_http_req_body(r, &n);
    char out[256];
    int len = snprintf(out, sizeof(out), "%s %s q=%s h=%s body=%.*s", gf_http_req_method(r),
                       gf_http_req_param(r, "id"), gf_http_req_query(r, "q"),
                       gf_http_req_header(r, "x-thing"), (int)n, b);
    gf_http_set_header(r, "X-Echo", "yes");
    gf_http_respond(r, 201, "text/plain", out, (size_t)len);
}

static void on_later(gf_http_req_t *r, void *data)
{
    (void)data;
    held = r;
}

static gf_httpd_t *server(void)
{
    gf_httpd_opts_t o;
    gf_httpd_opts_default(&o);
    o.name = "test";
    o.max_body_bytes = 16;
    gf_err_t err = {0};
    gf_httpd_t *h = gf_httpd_new(uv_default_loop(), &o, &err);
    assert_non_null(h);
    assert_int_equal(gf_httpd_route(h, "POST", "/things/:id", 0, on_echo, NULL), 0);
    assert_int_equal(gf_httpd_route(h, "GET", "/things/:id", 0, on_echo, NULL), 0);
    assert_int_equal(gf_httpd_route(h, "GET", "/later", 0, on_later, NULL), 0);
    return h;
}

static void run(gf_httpd_t *h, const char *method, const char *target, const char *body, sink_t *s)
{
    gf_http_req_t *r = httpd__req_detached(h, method, target, on_sink, s);
    httpd__kv_add(&r->headers, "x-thing", 7, "t1", 2);
    httpd__kv_add(&r->headers, "x-request-id", 12, "req-42", 6);
    if (body)
        gf_buf_append(&r->body, body, strlen(body));
    httpd__req_run(r);
}

static void test_a_route_answers_to_the_sink(void **state)
{
    (void)state;
    gf_httpd_t *h = server();
    sink_t s = {0};
    run(h, "POST", "/things/a%20b?q=x+y", "hello", &s);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 201);
    assert_string_equal(s.ctype, "text/plain");
    assert_string_equal(s.body, "POST a b q=x y h=t1 body=hello");
    assert_non_null(strstr(s.headers, "X-Echo: yes\r\n"));
    assert_string_equal(s.id, "req-42");
    gf_httpd_free(h);
}

static void test_the_server_answers_what_it_would_on_a_connection(void **state)
{
    (void)state;
    gf_httpd_t *h = server();
    sink_t s = {0};
    run(h, "GET", "/nowhere", NULL, &s);
    assert_int_equal(s.status, 404);
    assert_non_null(strstr(s.body, "\"not_found\""));
    memset(&s, 0, sizeof(s));
    run(h, "DELETE", "/things/1", NULL, &s);
    assert_int_equal(s.status, 405);
    assert_non_null(strstr(s.headers, "Allow: POST, GET, HEAD\r\n"));
    memset(&s, 0, sizeof(s));
    run(h, "POST", "/things/1", "a body longer than sixteen bytes", &s);
    assert_int_equal(s.status, 413);
    memset(&s, 0, sizeof(s));
    run(h, "HEAD", "/things/1", NULL, &s); /* the head of GET's answer, no body */
    assert_int_equal(s.status, 201);
    assert_int_equal(s.len, 0);
    memset(&s, 0, sizeof(s));
    run(h, "GET", "no-slash", NULL, &s);
    assert_int_equal(s.status, 400);
    gf_httpd_free(h);
}

static void test_an_answer_after_the_peer_left_is_dropped(void **state)
{
    (void)state;
    gf_httpd_t *h = server();
    sink_t s = {0};
    run(h, "GET", "/later", NULL, &s);
    assert_non_null(held);
    assert_int_equal(s.calls, 0); /* not answered yet */
    held->sink = NULL;            /* the stream was reset */
    gf_http_respond(held, 200, "text/plain", "late", 4);
    held = NULL;
    assert_int_equal(s.calls, 0);
    /* Answered later while the peer is there: the sink gets it then. */
    run(h, "GET", "/later", NULL, &s);
    gf_http_respond(held, 202, "text/plain", "now", 3);
    held = NULL;
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 202);
    assert_string_equal(s.body, "now");
    gf_httpd_free(h);
}

static void test_a_stream_is_not_served_and_the_sink_is_told(void **state)
{
    (void)state;
    gf_httpd_t *h = server();
    sink_t s = {0};
    run(h, "GET", "/later", NULL, &s);
    assert_int_equal(gf_http_stream_start(held, 200, "text/event-stream"), GF_ECANCELED);
    gf_http_stream_end(held);
    held = NULL;
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 0);
    gf_httpd_free(h);
}

static void on_check(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_http_req_proceed(r);
}

static void test_a_server_with_a_check_hook_answers_501(void **state)
{
    (void)state;
    gf_httpd_t *h = server();
    gf_httpd_set_check(h, on_check, NULL);
    sink_t s = {0};
    run(h, "GET", "/things/1", NULL, &s);
    assert_int_equal(s.status, 501);
    gf_httpd_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_route_answers_to_the_sink),
        cmocka_unit_test(test_the_server_answers_what_it_would_on_a_connection),
        cmocka_unit_test(test_an_answer_after_the_peer_left_is_dropped),
        cmocka_unit_test(test_a_stream_is_not_served_and_the_sink_is_told),
        cmocka_unit_test(test_a_server_with_a_check_hook_answers_501),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_loop_close(uv_default_loop());
    return rc;
}
