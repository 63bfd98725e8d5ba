/*
 * tests/integration/providers/net_reuse.c - net/ reuses the easy handles of
 * finished transfers (net.c, easy_take/easy_give). A reused handle must
 * start as a new one does: nothing of the transfer before it (method, body,
 * headers, a HEAD's "no body", a body limit, the public-address check) may
 * reach the next one. Transfers run one after the other on one engine, so
 * each reuses the handle of the one before it; against farm-fake-provider
 * over real HTTP, the fake's log says what each request carried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "net.h"
#include "providers_util.h"
#include "support.h"

static int reset(void **state)
{
    return pt_suite_reset(state, "{\"latency_ms\":0,\"hf_format\":\"png\"}");
}

typedef struct {
    int done, curl_code, too_big, refused;
    long status;
    size_t len;
    char head[8];
} result_t;

static void on_xfer(net_resp_t *resp, void *data)
{
    result_t *r = data;
    r->done++;
    r->curl_code = resp->curl_code;
    r->status = resp->status;
    r->too_big = resp->too_big;
    r->refused = resp->refused;
    r->len = resp->len;
    memcpy(r->head, resp->body ? resp->body : "", resp->len < 8 ? resp->len : 8);
}

/* Runs one transfer to its end (at most 10 s). */
static result_t run_one(net_t *h, const net_req_t *req)
{
    result_t r = {0};
    assert_non_null(net_start(h, req, on_xfer, &r));
    for (int spins = 0; spins < 100 && !r.done; spins++)
        pt_spin(&loop, 100);
    assert_int_equal(r.done, 1);
    return r;
}

/* The fake's last logged request. */
static json_t *last_request(void)
{
    char *text = pt_fake_log(&fake);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(root);
    json_t *reqs = json_object_get(root, "requests");
    json_t *last = json_incref(json_array_get(reqs, json_array_size(reqs) - 1));
    json_decref(root);
    assert_non_null(last);
    return last;
}

static void on_net_closed(void *data)
{
    *(int *)data = 1;
}

static void test_a_reused_handle_carries_nothing_of_the_transfer_before(void **state)
{
    (void)state;
    gf_err_t err = {0};
    net_t *h = net_new(&loop, &err);
    assert_non_null(h);
    char submit_url[256], hub_url[256];
    snprintf(submit_url, sizeof(submit_url), "%s/hf/models/org/model", fake.base);
    snprintf(hub_url, sizeof(hub_url), "%s/hf-hub/api/models/org/model", fake.base);
    static const char body[] = "{\"inputs\":\"a fox\",\"parameters\":{\"width\":64,\"height\":64}}";
    static const char *const headers[] = {"Authorization: Bearer hf_secret",
                                          "Content-Type: application/json", NULL};
    const net_req_t post = {.method = "POST",
                            .url = submit_url,
                            .headers = headers,
                            .body = body,
                            .body_len = strlen(body),
                            .timeout_ms = 10000};
    const net_req_t get = {.method = "GET", .url = hub_url, .timeout_ms = 10000};

    /* A POST with a body and a token, then a plain GET: a GET without either. */
    result_t r = run_one(h, &post);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.head, "\x89PNG", 4);
    json_t *e = last_request();
    assert_string_equal(json_string_value(json_object_get(e, "method")), "POST");
    assert_non_null(json_string_value(json_object_get(e, "authorization")));
    json_decref(e);
    r = run_one(h, &get);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.head[0], '{');
    e = last_request();
    assert_string_equal(json_string_value(json_object_get(e, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(e, "endpoint")), "hf.hub");
    assert_null(json_string_value(json_object_get(e, "authorization")));
    assert_null(json_string_value(json_object_get(e, "body_hash")));
    json_decref(e);

    /* A HEAD (no body read), then a GET: the GET gets its body. */
    net_req_t head = get;
    head.method = "HEAD";
    r = run_one(h, &head);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    r = run_one(h, &get);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 20);

    /* A body limit the answer passes, then none: the whole answer. */
    net_req_t small = get;
    small.max_bytes = 10;
    r = run_one(h, &small);
    assert_true(r.too_big);
    r = run_one(h, &get);
    assert_false(r.too_big);
    assert_int_equal(r.curl_code, 0);
    assert_true(r.len > 20);

    /* public_only refuses the fake's loopback address; the next transfer may dial it. Both
     * name the fake "localhost": a host with no connection yet, so each dials (the ones
     * above, to 127.0.0.1, left one open that a transfer would reuse without dialing). */
    char local_url[256];
    snprintf(local_url, sizeof(local_url), "http://localhost:%d/hf-hub/api/models/org/model",
             fake.port);
    net_req_t pub = get;
    pub.url = local_url;
    pub.public_only = 1;
    r = run_one(h, &pub);
    assert_true(r.refused);
    assert_int_equal(r.status, 0);
    net_req_t local = get;
    local.url = local_url;
    r = run_one(h, &local);
    assert_false(r.refused);
    assert_int_equal(r.status, 200);

    /* The POST again, after all that: the fake sees the same request as the first. */
    r = run_one(h, &post);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.head, "\x89PNG", 4);
    e = last_request();
    assert_string_equal(json_string_value(json_object_get(e, "method")), "POST");
    assert_int_equal(json_integer_value(json_object_get(e, "submits_same_body")), 2);
    json_decref(e);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 2);
    assert_int_equal(pt_fake_count(&fake, "hf.hub"), 6);

    int closed = 0;
    net_close(h, on_net_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

/* Many transfers at once, then again: the second round reuses the first round's handles. */
static void test_rounds_of_concurrent_transfers_all_complete(void **state)
{
    (void)state;
    gf_err_t err = {0};
    net_t *h = net_new(&loop, &err);
    assert_non_null(h);
    char url[256];
    snprintf(url, sizeof(url), "%s/hf-hub/api/models/org/model", fake.base);
    const net_req_t get = {.method = "GET", .url = url, .timeout_ms = 10000};
    enum { N = 300 };
    static result_t r[N];
    for (int round = 0; round < 3; round++) {
        memset(r, 0, sizeof(r));
        for (int i = 0; i < N; i++)
            assert_non_null(net_start(h, &get, on_xfer, &r[i]));
        int done = 0;
        for (int spins = 0; spins < 300 && done < N; spins++) {
            pt_spin(&loop, 100);
            done = 0;
            for (int i = 0; i < N; i++)
                done += r[i].done;
        }
        for (int i = 0; i < N; i++) {
            assert_int_equal(r[i].done, 1);
            assert_int_equal(r[i].status, 200);
            assert_int_equal(r[i].head[0], '{');
        }
    }
    assert_int_equal(pt_fake_count(&fake, "hf.hub"), 3 * N);
    int closed = 0;
    net_close(h, on_net_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_reused_handle_carries_nothing_of_the_transfer_before, reset),
        cmocka_unit_test_setup(test_rounds_of_concurrent_transfers_all_complete, reset),
    };
    return cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
}
