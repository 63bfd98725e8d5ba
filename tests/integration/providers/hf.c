/*
 * tests/integration/providers/hf.c - the hf adapter against farm-fake-provider:
 * success, every fault row of providers.md section 5 that a synchronous POST
 * can meet (typed error, retry decision, how many POSTs reached the fake),
 * model loading, rate limits, cancel mid-flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers_util.h"
#include "support.h"

static int reset(void **state)
{
    return pt_suite_reset(state, "{\"latency_ms\":0,\"hf_format\":\"jpeg\"}");
}

/* HF answers JPEG; these tests read the PNG answer some of its backends send. */
static int reset_png(void **state)
{
    return pt_suite_reset(state, "{\"latency_ms\":0,\"hf_format\":\"png\"}");
}

static void test_hf_success_returns_png_of_requested_size(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    assert_non_null(p);
    assert_string_equal(provider_chain(p), "hf");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a red fox", 160, 96);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.mime, "image/png");
    int w, h;
    pt_png_size(r.img, r.len, &w, &h);
    assert_int_equal(w, 160);
    assert_int_equal(h, 96);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1);
    /* The token never reaches the fake's log in the clear. */
    char *log = pt_fake_log(&fake);
    assert_null(strstr(log, "hf_test_token_123"));
    free(log);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

typedef struct {
    const char *marker;
    provider_error_code code;
    provider_fault fault;
    int retryable;
    long http;
    long posts; /* POSTs the fake must see */
} fault_row_t;

/* FARM_PROVIDER_MAX_RETRIES=3 in pt_config: "no job created" faults are sent 1 + 3 times. */
static const fault_row_t hf_rows[] = {
    {"auth_401", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_AUTH, 0, 401, 1},
    {"forbidden_403", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_AUTH, 0, 403, 1},
    {"credits_402", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_CREDITS, 0, 402, 1},
    {"validation_400", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_BAD_INPUT, 0, 400, 1},
    {"validation_422", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_BAD_INPUT, 0, 422, 1},
    {"not_found_404", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_MODEL_UNAVAILABLE, 0, 404, 1},
    {"gone_410", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_MODEL_UNAVAILABLE, 0, 410, 1},
    /* Redirects are not followed: the endpoint is not where it is configured. */
    {"moved_301", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_MODEL_UNAVAILABLE, 0, 301, 1},
    /* The router's "model not supported by provider": the route's fault, not the input's. */
    {"not_supported_400", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_MODEL_UNAVAILABLE, 0, 400, 1},
    {"server_500", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1, 500, 2},
    {"bad_gateway_502", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1, 502, 2},
    {"gateway_timeout_504", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1, 504, 2},
    {"unavailable_503", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1, 503, 4},
    {"rate_limit:0", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_RATE_LIMIT, 1, 429, 4},
    /* libcurl itself resends once when a reused connection dies before any byte: >= 2. */
    {"reset", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_NETWORK, 1, 0, -2},
    {"truncated", PROVIDER_E_INVALID_OUTPUT, PROVIDER_F_BAD_BODY, 1, 200, 2},
    {"chunked_abort", PROVIDER_E_INVALID_OUTPUT, PROVIDER_F_BAD_BODY, 1, 200, 2},
    {"corrupt_image", PROVIDER_E_INVALID_OUTPUT, PROVIDER_F_BAD_BODY, 1, 200, 2},
    {"json_on_200", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1, 200, 1},
};

static void test_hf_fault_rows_map_to_typed_errors(void **state)
{
    (void)state;
    /* The breaker is kept out of the way: this test checks the mapping. */
    gf_config_t *cfg =
        pt_config(&fake, "hf",
                  (const char *const[]){"FARM_PROVIDER_BREAKER_FAILURES=1000",
                                        "FARM_PROVIDER_BREAKER_CREDITS_COOLDOWN_S=0", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    for (size_t i = 0; i < sizeof(hf_rows) / sizeof(hf_rows[0]); i++) {
        const fault_row_t *row = &hf_rows[i];
        pt_fake_post(&fake, "reset", "{}");
        char prompt[128];
        snprintf(prompt, sizeof(prompt), "a cat [[%s]]", row->marker);
        pt_result_t r = {0};
        provider_req_t q = pt_req(prompt, 64, 64);
        pt_run(&loop, p, &q, &r);
        print_message("row %s: status %d code %s fault %s http %ld posts %ld\n", row->marker,
                      r.status, provider_error_code_name(r.err.code),
                      provider_fault_name(r.err.fault), r.err.http_status,
                      pt_fake_count(&fake, "hf.submit"));
        assert_true(r.status < 0);
        assert_int_equal(r.err.code, row->code);
        assert_int_equal(r.err.fault, row->fault);
        assert_int_equal(r.err.retryable, row->retryable);
        assert_int_equal(r.err.http_status, row->http);
        assert_string_equal(r.err.provider, "hf");
        if (row->posts > 0)
            assert_int_equal(pt_fake_count(&fake, "hf.submit"), row->posts);
        else
            assert_true(pt_fake_count(&fake, "hf.submit") >= -row->posts);
        assert_null(strstr(r.err.err.msg, "hf_test_token_123"));
        pt_result_dispose(&r);
    }
    pt_close(&loop, p, cfg);
}

/*
 * The reply's bound (FARM_PROVIDER_MAX_IMAGE_BYTES) is exact whether or not
 * net/ sizes the body from Content-Length: an image of exactly the bound
 * arrives whole, one byte more is too_big. The size is learnt from the fake
 * (same prompt and seed: the same image) rather than assumed.
 */
static void test_hf_reply_bound_is_exact(void **state)
{
    (void)state;
    pt_result_t probe = {0};
    provider_req_t q = pt_req("a bounded fox", 512, 512);
    pt_run_one("hf", NULL, &q, &probe);
    assert_int_equal(probe.status, 0);
    assert_true(probe.len > 1024);

    char at[64], below[64];
    snprintf(at, sizeof(at), "FARM_PROVIDER_MAX_IMAGE_BYTES=%zu", probe.len);
    snprintf(below, sizeof(below), "FARM_PROVIDER_MAX_IMAGE_BYTES=%zu", probe.len - 1);
    pt_result_t r = {0};
    pt_run_one("hf", (const char *const[]){at, NULL}, &q, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, probe.len);
    assert_memory_equal(r.img, probe.img, probe.len);
    pt_result_dispose(&r);

    memset(&r, 0, sizeof(r));
    pt_run_one("hf", (const char *const[]){below, "FARM_PROVIDER_BREAKER_FAILURES=1000", NULL}, &q,
               &r);
    assert_true(r.status < 0);
    assert_int_equal(r.err.code, PROVIDER_E_INVALID_OUTPUT);
    assert_int_equal(r.err.fault, PROVIDER_F_TOO_BIG);
    assert_int_equal(r.err.http_status, 200);
    pt_result_dispose(&r);
    pt_result_dispose(&probe);
}

static void test_hf_content_type_mismatch_is_sniffed(void **state)
{
    (void)state;
    pt_result_t r = {0};
    provider_req_t q = pt_req("a cat [[content_type_mismatch]]", 64, 64);
    pt_run_one("hf", NULL, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.mime, "image/png"); /* labelled image/jpeg by the fake */
    pt_result_dispose(&r);
}

/*
 * HF's {"data":[{"b64_json": ...}]} answer is an image: decoded, the same PNG
 * the fake draws for the prompt (its bytes are a deterministic function of
 * prompt, seed and size), at a size whose base64 is far above the 256 KiB of
 * an ordinary JSON reply.
 */
static void test_hf_b64_json_reply_is_the_image(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t inline_r = {0}, raw_r = {0};
    provider_req_t q = pt_req("a cat in base64", 1024, 768);
    pt_fake_post(&fake, "faults", "[{\"match\":\"hf.submit\",\"mode\":\"b64_json\"}]");
    pt_run(&loop, p, &q, &inline_r);
    assert_int_equal(inline_r.status, 0);
    assert_string_equal(inline_r.mime, "image/png");
    int w, h;
    pt_png_size(inline_r.img, inline_r.len, &w, &h);
    assert_int_equal(w, 1024);
    assert_int_equal(h, 768);
    assert_true(inline_r.len > 256 * 1024);
    pt_run(&loop, p, &q, &raw_r); /* the same call answered with the raw bytes */
    assert_int_equal(raw_r.status, 0);
    assert_int_equal(raw_r.len, inline_r.len);
    assert_memory_equal(raw_r.img, inline_r.img, raw_r.len);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 2);
    pt_result_dispose(&inline_r);
    pt_result_dispose(&raw_r);
    /* b64_json that is not base64 is a bad body, not an image. */
    pt_fake_post(&fake, "reset", "{}");
    pt_result_t bad = {0};
    q = pt_req("a cat [[b64_json:garbage]]", 64, 64);
    pt_run(&loop, p, &q, &bad);
    assert_int_equal(bad.err.fault, PROVIDER_F_BAD_BODY);
    assert_int_equal(bad.err.code, PROVIDER_E_INVALID_OUTPUT);
    pt_result_dispose(&bad);
    pt_close(&loop, p, cfg);
}

static void test_hf_model_loading_waits_then_resends_with_wait_header(void **state)
{
    (void)state;
    pt_fake_post(&fake, "faults",
                 "[{\"match\":\"hf.submit\",\"mode\":\"model_loading\",\"arg\":\"20.0\"}]");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a loading cat", 64, 64);
    pt_run_one("hf", NULL, &q, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 2);
    char *log = pt_fake_log(&fake);
    /* First POST without x-wait-for-model, the resend with it. */
    char *first = strstr(log, "\"wait_for_model\":false");
    char *second = strstr(log, "\"wait_for_model\":true");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    free(log);
    pt_result_dispose(&r);
}

static void test_hf_model_loading_past_deadline_is_a_timeout(void **state)
{
    (void)state;
    pt_result_t r = {0};
    provider_req_t q = pt_req("a cat [[model_loading:600]]", 64, 64);
    q.deadline_ms = 3000;
    pt_run_one("hf", (const char *const[]){"FARM_PROVIDER_LOADING_WAIT_CAP_MS=30000", NULL}, &q,
               &r);
    assert_int_equal(r.status, GF_ETIMEDOUT);
    assert_int_equal(r.err.code, PROVIDER_E_TIMEOUT);
    assert_int_equal(r.err.fault, PROVIDER_F_MODEL_LOADING);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1); /* never spins */
    pt_result_dispose(&r);
}

static void test_hf_rate_limit_is_retried_then_succeeds(void **state)
{
    (void)state;
    pt_fake_post(&fake, "faults",
                 "[{\"match\":\"hf.submit\",\"mode\":\"rate_limit\","
                 "\"arg\":\"0\",\"times\":2}]");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a throttled cat", 64, 64);
    pt_run_one("hf", NULL, &q, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 3);
    pt_result_dispose(&r);
}

static void test_hf_stalled_body_is_a_provider_timeout(void **state)
{
    (void)state;
    /* The phase timeout bounds each attempt (the low-speed check needs curl's 5 s window). */
    gf_config_t *cfg =
        pt_config(&fake, "hf", (const char *const[]){"FARM_PROVIDER_SYNC_TIMEOUT_S=2", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r = {0};
    provider_req_t q = pt_req("a cat [[stall_body:100]]", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.code, PROVIDER_E_TIMEOUT);
    assert_int_equal(r.err.fault, PROVIDER_F_STALLED);
    assert_int_equal(r.err.retryable, 1);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 2);
    pt_result_dispose(&r);
    r = (pt_result_t){0};
    q = pt_req("a cat [[slow_headers:30]]", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_STALLED);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* HF's answer is the image: the POST is silent while the model works, here
 * 8 s against a low-speed window of 2 s (curl averages over 5 s, so the
 * request's own bytes carry it about that long). That is no stall: one
 * request, paid once, and the image. */
static void test_hf_a_generation_longer_than_the_low_speed_window_is_no_stall(void **state)
{
    (void)state;
    pt_fake_post(&fake, "config", "{\"latency_ms\":8000}");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a slow cat", 64, 64);
    pt_run_one("hf", NULL, &q, &r);
    assert_int_equal(r.status, 0);
    int w, h;
    pt_png_size(r.img, r.len, &w, &h);
    assert_int_equal(w, 64);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1);
    pt_result_dispose(&r);
}

static void test_hf_cancel_mid_flight_aborts_the_transfer(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_fake_post(&fake, "config", "{\"latency_ms\":5000}");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a slow cat", 64, 64);
    pt_submit(p, &q, &r);
    pt_spin(&loop, 300);
    assert_int_equal(r.done, 0);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1);
    double t0 = ts_now();
    provider_cancel(r.call);
    while (!r.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(ts_now() - t0 < 2.0);
    assert_int_equal(r.status, GF_ECANCELED);
    assert_int_equal(r.err.code, PROVIDER_E_CANCELED);
    assert_int_equal(provider_inflight(p), 0);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* The async contract: no callback inside submit or cancel; a refused submit never calls back. */
static void test_hf_callbacks_never_run_inside_submit_or_cancel(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r = {0};
    provider_req_t q = pt_req("a quick cat", 64, 64);
    pt_submit(p, &q, &r);
    assert_int_equal(r.done, 0);
    provider_cancel(r.call);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.progress_calls, 0);
    while (!r.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(r.status, GF_ECANCELED);
    pt_result_t refused = {0};
    gf_err_t err = {0};
    q = pt_req("a tiny cat", 8, 8);
    assert_int_equal(pt_try_submit(p, &q, &refused, &err), GF_EINVAL);
    assert_int_equal(err.code, GF_EINVAL);
    pt_spin(&loop, 50);
    assert_int_equal(refused.done, 0);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hf_success_returns_png_of_requested_size, reset_png),
        cmocka_unit_test_setup(test_hf_fault_rows_map_to_typed_errors, reset),
        cmocka_unit_test_setup(test_hf_reply_bound_is_exact, reset),
        cmocka_unit_test_setup(test_hf_content_type_mismatch_is_sniffed, reset),
        cmocka_unit_test_setup(test_hf_b64_json_reply_is_the_image, reset_png),
        cmocka_unit_test_setup(test_hf_model_loading_waits_then_resends_with_wait_header, reset),
        cmocka_unit_test_setup(test_hf_model_loading_past_deadline_is_a_timeout, reset),
        cmocka_unit_test_setup(test_hf_rate_limit_is_retried_then_succeeds, reset),
        cmocka_unit_test_setup(test_hf_stalled_body_is_a_provider_timeout, reset),
        cmocka_unit_test_setup(test_hf_a_generation_longer_than_the_low_speed_window_is_no_stall,
                               reset_png),
        cmocka_unit_test_setup(test_hf_cancel_mid_flight_aborts_the_transfer, reset),
        cmocka_unit_test_setup(test_hf_callbacks_never_run_inside_submit_or_cancel, reset),
    };
    return cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
}
