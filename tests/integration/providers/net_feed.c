/*
 * tests/integration/providers/net_feed.c - net/'s feeder when curl refuses a
 * transfer: curl_multi_add_handle() fails only on memory exhaustion or a
 * multi marked dead, which a test cannot cause, so this binary is linked
 * with -Wl,--wrap=curl_multi_add_handle and fails the calls it is told to
 * (fail_from .. fail_to, counted from 1); every other call goes to libcurl.
 * Everything else is real: net/ on a loop, transfers over HTTP to
 * farm-fake-provider, and the hf adapter on top.
 *
 * What a user of net/ would check: the refused transfer ends with an error
 * that names the cause, its callback runs once and never inside net_start(),
 * the transfers around it still complete against the fake, and the fake never
 * sees the refused one. Through the hf adapter: the call ends with an error
 * (a gf_err_t), not a hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "net.h"
#include "providers_util.h"
#include "support.h"

static int add_calls, fail_from, fail_to;

CURLMcode __real_curl_multi_add_handle(CURLM *multi, CURL *easy);
CURLMcode __wrap_curl_multi_add_handle(CURLM *multi, CURL *easy);

CURLMcode __wrap_curl_multi_add_handle(CURLM *multi, CURL *easy)
{
    add_calls++;
    if (add_calls >= fail_from && add_calls <= fail_to)
        return CURLM_OUT_OF_MEMORY;
    return __real_curl_multi_add_handle(multi, easy);
}

static int reset(void **state)
{
    add_calls = 0;
    fail_from = fail_to = 0;
    /* The checks read a PNG: the fake's hf answers one instead of HF's JPEG. */
    return pt_suite_reset(state, "{\"latency_ms\":0,\"hf_format\":\"png\"}");
}

typedef struct {
    int done;
    int curl_code;
    long status;
    char msg[256];
    int png;
} xfer_result_t;

static int in_start; /* set while net_start() runs */

static void on_xfer(net_resp_t *resp, void *data)
{
    xfer_result_t *r = data;
    assert_false(in_start);
    r->done++;
    r->curl_code = resp->curl_code;
    r->status = resp->status;
    snprintf(r->msg, sizeof(r->msg), "%s", resp->curl_msg);
    r->png = resp->len > 8 && memcmp(resp->body, "\x89PNG", 4) == 0;
}

static void on_net_closed(void *data)
{
    *(int *)data = 1;
}

/* An hf submit of a 32x16 image to the fake, as the hf adapter sends it. */
static char hf_url[256];
static const char hf_body[] = "{\"inputs\":\"a fox\",\"parameters\":{\"width\":32,\"height\":16}}";
static const char *hf_headers[] = {"Authorization: Bearer hf_test",
                                   "Content-Type: application/json", NULL};

static net_req_t hf_submit_req(void)
{
    snprintf(hf_url, sizeof(hf_url), "%s/hf/models/org/model", fake.base);
    return (net_req_t){.method = "POST",
                       .url = hf_url,
                       .headers = hf_headers,
                       .body = hf_body,
                       .body_len = strlen(hf_body),
                       .timeout_ms = 10000,
                       .connect_timeout_ms = 5000};
}

static void test_refused_transfer_ends_with_an_error_and_the_others_complete(void **state)
{
    (void)state;
    fail_from = fail_to = 2; /* the second of three */
    gf_err_t err = {0};
    net_t *h = net_new(&loop, &err);
    assert_non_null(h);
    net_req_t req = hf_submit_req();
    xfer_result_t r[3] = {0};
    for (int i = 0; i < 3; i++) {
        in_start = 1;
        assert_non_null(net_start(h, &req, on_xfer, &r[i]));
        in_start = 0;
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].done, 0);
    /* At most 10 s: a transfer that never ends fails here, not by hanging. */
    for (int spins = 0; spins < 100 && r[0].done + r[1].done + r[2].done < 3; spins++)
        pt_spin(&loop, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].done, 1);
    assert_int_equal(add_calls, 3);
    /* The refused one: an error naming curl_multi_add_handle, no response. */
    assert_int_equal(r[1].curl_code, CURLE_FAILED_INIT);
    assert_int_equal(r[1].status, 0);
    assert_non_null(strstr(r[1].msg, "curl_multi_add_handle"));
    /* The two around it reached the fake and got its image. */
    for (int i = 0; i < 3; i += 2) {
        assert_int_equal(r[i].curl_code, 0);
        assert_int_equal(r[i].status, 200);
        assert_true(r[i].png);
    }
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 2);
    int closed = 0;
    net_close(h, on_net_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

static void test_hf_call_whose_transfers_are_refused_fails(void **state)
{
    (void)state;
    fail_from = 1;
    fail_to = 1000000; /* every transfer, retries included */
    const char *const extra[] = {"FARM_PROVIDER_BREAKER_FAILURES=1000", NULL};
    gf_config_t *cfg = pt_config(&fake, "hf", extra);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    assert_non_null(p);
    pt_result_t r = {0};
    provider_req_t q = pt_req("a red fox", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.done, 1);
    assert_true(r.status < 0);
    assert_int_equal(r.err.fault, PROVIDER_F_NETWORK);
    assert_non_null(strstr(r.err.err.msg, "curl_multi_add_handle"));
    assert_true(add_calls >= 1);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 0);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* A completion that closes net/ from its callback (a process that stops once its last call has
 * ended). */
static net_t *closing_h;
static int closed_in_cb, after_close;

static void on_xfer_close(net_resp_t *resp, void *data)
{
    (void)resp;
    (void)data;
    if (closed_in_cb) {
        after_close++;
        return;
    }
    closed_in_cb = 1;
    net_close(closing_h, on_net_closed, data);
}

/*
 * net_close() from inside a completion's callback: the transfer being
 * completed and the others still running are freed once (ASan would name
 * a double free), no callback runs after the close, and the close
 * completes.
 */
static void test_a_callback_may_close_net(void **state)
{
    (void)state;
    gf_err_t err = {0};
    closing_h = net_new(&loop, &err);
    assert_non_null(closing_h);
    closed_in_cb = after_close = 0;
    net_req_t req = hf_submit_req();
    int closed = 0;
    for (int i = 0; i < 8; i++)
        assert_non_null(net_start(closing_h, &req, on_xfer_close, &closed));
    for (int spins = 0; spins < 100 && !closed; spins++)
        pt_spin(&loop, 100);
    assert_int_equal(closed_in_cb, 1);
    assert_int_equal(closed, 1);
    assert_int_equal(after_close, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_refused_transfer_ends_with_an_error_and_the_others_complete,
                               reset),
        cmocka_unit_test_setup(test_hf_call_whose_transfers_are_refused_fails, reset),
        cmocka_unit_test_setup(test_a_callback_may_close_net, reset),
    };
    return cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
}
