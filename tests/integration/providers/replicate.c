/*
 * tests/integration/providers/replicate.c - the replicate adapter against
 * farm-fake-provider: a prediction answered within `Prefer: wait`, one polled
 * through urls.get when the wait runs out, a pinned version, every fault row
 * of providers.md section 4 (NSFW failure, Cancel-After abort, the
 * `processing` + output quirk, problem+json 401/402/404/422/429, removed
 * outputs, expired files, poll failures), cancel (the fake's prediction ends
 * `canceled`), and resuming a prediction from its token without a second one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "providers_util.h"
#include "support.h"

static int reset(void **state)
{
    return pt_suite_reset(state, "{\"cdn_ttl_s\":600,\"polls\":2,\"latency_ms\":0}");
}

static const char *const no_breaker[] = {"FARM_PROVIDER_BREAKER_FAILURES=1000", NULL};

static void run_cfg(const char *const *extra, const char *prompt, uint64_t deadline_ms,
                    pt_result_t *r)
{
    provider_req_t q = pt_req(prompt, 96, 64);
    q.deadline_ms = deadline_ms;
    pt_run_one("replicate", extra ? extra : no_breaker, &q, r);
}

static void run1(const char *prompt, uint64_t deadline_ms, pt_result_t *r)
{
    run_cfg(NULL, prompt, deadline_ms, r);
}

/* The fake's log entries of `endpoint` (a new array). */
static json_t *entries(const char *endpoint)
{
    char *s = pt_fake_log(&fake);
    json_t *root = json_loads(s, 0, NULL);
    free(s);
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(root, "requests"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "endpoint")), endpoint) == 0)
            json_array_append(out, e);
    }
    json_decref(root);
    return out;
}

static void assert_png(const pt_result_t *r, int w, int h)
{
    int gw, gh;
    pt_png_size(r->img, r->len, &gw, &gh);
    assert_int_equal(gw, w);
    assert_int_equal(gh, h);
}

static void test_a_prediction_done_within_the_wait_needs_no_poll(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("a violet owl", 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "replicate");
    assert_png(&r, 96, 64);
    assert_string_equal(r.resume_provider, "replicate");
    assert_non_null(strstr(r.resume, "/replicate/v1/predictions/"));
    assert_true(strlen(r.accepted_id) > 0);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "replicate.poll"), 0);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 1);
    json_t *subs = entries("replicate.submit");
    json_t *e = json_array_get(subs, 0);
    assert_string_equal(json_string_value(json_object_get(e, "path")),
                        "/replicate/v1/models/black-forest-labs/flux-1.1-pro/predictions");
    /* Cancel-After is what is left of the 30 s deadline. */
    const char *ca = json_string_value(json_object_get(e, "cancel_after"));
    assert_non_null(ca);
    int secs = atoi(ca);
    assert_true(secs >= 28 && secs <= 30);
    assert_string_equal(ca + strlen(ca) - 1, "s");
    json_decref(subs);
    char *log = pt_fake_log(&fake);
    assert_null(strstr(log, "r8_test_token_123")); /* the token is masked */
    free(log);
    pt_result_dispose(&r);
}

static void test_a_prediction_past_the_wait_is_polled_through_urls_get(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("a slow owl [[sync_timeout]]", 0, &r);
    assert_int_equal(r.status, 0);
    assert_png(&r, 96, 64);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "replicate.poll"), 2);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 1);
    assert_true(r.progress_calls > 0);
    pt_result_dispose(&r);
}

/* The submit's `Prefer: wait` is silence until the prediction is done or the
 * wait runs out: longer than the low-speed window (2 s in these tests; curl
 * averages over 5 s, so the request's own bytes carry it about that long),
 * it is no stall, and the prediction is paid for once. */
static void test_a_silent_wait_longer_than_the_low_speed_window_is_no_stall(void **state)
{
    (void)state;
    pt_result_t r = {0};
    double t0 = ts_now();
    run1("a patient owl [[sync_timeout:10]]", 0, &r);
    assert_int_equal(r.status, 0);
    assert_true(ts_now() - t0 >= 10.0);
    assert_png(&r, 96, 64);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "replicate.poll"), 2);
    pt_result_dispose(&r);
}

/* A 201 is a prediction made, however long its JSON: one above the bound is
 * too big, and the POST is not sent (and paid for) again. */
static void test_a_created_prediction_above_the_bound_is_not_sent_again(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("a verbose owl [[huge_json_201]]", 0, &r);
    assert_true(r.status < 0);
    assert_int_equal(r.err.fault, PROVIDER_F_TOO_BIG);
    assert_int_equal(r.err.retryable, 0);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 1);
    pt_result_dispose(&r);
    /* Nor does another provider make (and charge for) the image again. */
    r = (pt_result_t){0};
    provider_req_t q = pt_req("a verbose owl [[huge_json_201]]", 96, 64);
    pt_run_one("auto", (const char *const[]){"FARM_PROVIDER_FALLBACK=replicate,fal", NULL}, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_TOO_BIG);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 2);
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 0);
    pt_result_dispose(&r);
}

static void test_a_pinned_version_goes_to_v1_predictions(void **state)
{
    (void)state;
    static const char *const pinned[] = {
        "FARM_REPLICATE_MODEL=black-forest-labs/flux-schnell:"
        "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637",
        NULL};
    pt_result_t r = {0};
    provider_req_t q = pt_req("a pinned owl", 1024, 1024); /* schnell's 1:1 */
    pt_run_one("replicate", pinned, &q, &r);
    assert_int_equal(r.status, 0);
    json_t *subs = entries("replicate.submit");
    assert_string_equal(json_string_value(json_object_get(json_array_get(subs, 0), "path")),
                        "/replicate/v1/predictions");
    json_decref(subs);
    pt_result_dispose(&r);
}

/* The recorded quirk: `processing` with the output already there is done. */
static void test_processing_with_output_is_taken(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("a quick owl [[processing_with_output]]", 0, &r);
    assert_int_equal(r.status, 0);
    assert_png(&r, 96, 64);
    assert_int_equal(pt_fake_count(&fake, "replicate.poll"), 0);
    pt_result_dispose(&r);
}

typedef struct {
    const char *marker;
    provider_error_code code;
    provider_fault fault;
    int retryable;
    long submits; /* POSTs the fake must see */
} row_t;

/* FARM_PROVIDER_MAX_RETRIES=3 in pt_config: a 429 (no prediction made) is sent 1 + 3 times. */
static const row_t rows[] = {
    {"prediction_failed_nsfw", PROVIDER_E_CONTENT_REJECTED, PROVIDER_F_MODERATION_OUTPUT, 1, 1},
    {"aborted_deadline", PROVIDER_E_TIMEOUT, PROVIDER_F_DEADLINE, 1, 1},
    {"credits_402", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_CREDITS, 0, 1},
    {"auth_401", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_AUTH, 0, 1},
    {"forbidden_403", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_AUTH, 0, 1},
    {"not_found_404", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_MODEL_UNAVAILABLE, 0, 1},
    {"validation_422", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_BAD_INPUT, 0, 1},
    {"rate_limit:0", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_RATE_LIMIT, 1, 4},
    {"server_500", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1, 2},
    {"expired_url", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_URL_EXPIRED, 1, 1},
    {"corrupt_image", PROVIDER_E_INVALID_OUTPUT, PROVIDER_F_BAD_BODY, 1, 1},
    {"sync_timeout]] [[server_500@replicate.poll", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1,
     1},
};

static void test_fault_rows_map_to_typed_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        pt_fake_post(&fake, "reset", "{}");
        char prompt[128];
        snprintf(prompt, sizeof(prompt), "an owl [[%s]]", rows[i].marker);
        pt_result_t r = {0};
        run1(prompt, 0, &r);
        print_message("%s: %s/%s retry %d http %ld: %s\n", rows[i].marker,
                      provider_error_code_name(r.err.code), provider_fault_name(r.err.fault),
                      r.err.retryable, r.err.http_status, r.err.err.msg);
        assert_true(r.status < 0);
        assert_int_equal(r.err.code, rows[i].code);
        assert_int_equal(r.err.fault, rows[i].fault);
        assert_int_equal(r.err.retryable, rows[i].retryable);
        assert_int_equal(r.err.new_seed, rows[i].fault == PROVIDER_F_MODERATION_OUTPUT);
        assert_int_equal(pt_fake_count(&fake, "replicate.submit"), rows[i].submits);
        assert_string_equal(r.err.provider, "replicate");
        pt_result_dispose(&r);
    }
}

/* problem+json's `detail` is what the error says. */
static void test_problem_json_detail_reaches_the_error(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("a poor owl [[credits_402]]", 0, &r);
    assert_int_equal(r.err.http_status, 402);
    assert_non_null(strstr(r.err.err.msg, "insufficient credit"));
    pt_result_dispose(&r);
}

/* A 429 honours Retry-After and the next POST makes the prediction. */
static void test_a_throttled_submit_is_sent_again(void **state)
{
    (void)state;
    pt_fake_post(
        &fake, "faults",
        "[{\"match\":\"replicate.submit\",\"mode\":\"rate_limit\",\"arg\":\"0\","
        "\"times\":1},{\"match\":\"replicate.poll\",\"mode\":\"server_500\",\"times\":1}]");
    pt_result_t r = {0};
    run1("a patient owl [[sync_timeout]]", 0, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 2);
    assert_int_equal(pt_fake_count(&fake, "replicate.poll"), 3); /* one 500, then 2 */
    pt_result_dispose(&r);
}

/* After the files' TTL the prediction shows data_removed and no output: resubmit. */
static void test_removed_output_is_an_expired_result(void **state)
{
    (void)state;
    pt_fake_post(&fake, "config", "{\"cdn_ttl_s\":-1}");
    pt_result_t r = {0};
    run1("an old owl [[sync_timeout]]", 0, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_URL_EXPIRED);
    assert_int_equal(r.err.retryable, 1);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 0);
    pt_result_dispose(&r);
}

/*
 * FLUX.1 schnell (the default model) takes no width or height, only an aspect
 * ratio and megapixels (providers.md 4; the fake refuses "custom" for it as
 * Cog refuses a value off its choices): the adapter asks the ratio that
 * makes the size, and gets that size.
 */
static void test_schnell_is_asked_by_aspect_ratio(void **state)
{
    (void)state;
    static const char *const schnell[] = {"FARM_REPLICATE_MODEL=black-forest-labs/flux-schnell",
                                          NULL};
    const int sizes[][2] = {{1344, 768}, {832, 1216}, {512, 512}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        pt_result_t r = {0};
        provider_req_t q = pt_req("a schnell owl", sizes[i][0], sizes[i][1]);
        pt_run_one("replicate", schnell, &q, &r);
        if (r.status != 0)
            fail_msg("%dx%d: %s", sizes[i][0], sizes[i][1], r.err.err.msg);
        assert_png(&r, sizes[i][0], sizes[i][1]);
        pt_result_dispose(&r);
    }
    /* A size none of its ratios makes is refused before anything is sent, naming it. */
    gf_config_t *cfg = pt_config(&fake, "replicate", schnell);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    provider_req_t q = pt_req("a schnell owl", 96, 64);
    pt_result_t r = {0};
    gf_err_t err = {0};
    assert_int_equal(pt_try_submit(p, &q, &r, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "width"));
    pt_close(&loop, p, cfg);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 3);
}

/* A prediction that never finishes: the deadline, and Replicate is told to cancel. */
static void test_pending_forever_hits_the_deadline_and_cancels(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "replicate", no_breaker);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r = {0};
    provider_req_t q = pt_req("a stuck owl [[sync_timeout]] [[pending_forever]]", 64, 64);
    q.deadline_ms = 3000;
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.code, PROVIDER_E_TIMEOUT);
    assert_int_equal(r.err.fault, PROVIDER_F_DEADLINE);
    assert_true(pt_fake_count(&fake, "replicate.poll") >= 1);
    /* The POST cancel outlives the call on the engine (closing it would abort it). */
    assert_int_equal(pt_fake_wait_one("replicate.cancel"), 1);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/*
 * A worker closes its provider as soon as its last call ends (a drain, a cancel
 * at shutdown): the fire-and-forget POST cancel of that call is still sent, and
 * the close waits for it, instead of freeing it unsent while the prediction runs
 * on and is billed. The fake closes the connection after the create ([[close]]):
 * the cancel needs a connection of its own, not open yet when the close comes
 * (the window a real TLS connect leaves).
 */
static void test_a_cancel_outlives_the_providers_close(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "replicate", no_breaker);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    /* Closed in the loop turn of the cancel. */
    pt_result_t r = {.cancel_on_accept = 1, .close_after_cancel = p};
    provider_req_t q = pt_req("an owl canceled at shutdown [[close]]", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.code, PROVIDER_E_CANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.closed, 1);
    gf_cfg_free(cfg);
    assert_int_equal(pt_fake_wait_one("replicate.cancel"), 1);
    pt_result_dispose(&r);
}

/* GET of a prediction URL straight from the fake (the state it holds). */
static json_t *fake_prediction(const char *get_url)
{
    static const char *const h[] = {"Authorization: Bearer r8_test_token_123", NULL};
    ts_http_t g = ts_http("GET", get_url, h, NULL, 0);
    assert_int_equal(g.status, 200);
    json_t *p = json_loads(g.body, 0, NULL);
    ts_http_dispose(&g);
    assert_non_null(p);
    return p;
}

static void test_cancel_mid_flight_cancels_the_prediction(void **state)
{
    (void)state;
    pt_result_t r;
    /* Replicate cancels with a POST to the prediction's cancel URL. */
    pt_cancel_mid_flight("replicate", "an owl to cancel [[sync_timeout]] [[pending_forever]]",
                         "replicate.cancel", &r);
    char get[512];
    assert_int_equal(sscanf(r.resume, "%511s", get), 1);
    json_t *pred = fake_prediction(get);
    assert_string_equal(json_string_value(json_object_get(pred, "status")), "canceled");
    json_decref(pred);
    pt_result_dispose(&r);
}

/*
 * A prediction made before a crash (here straight over HTTP, as the farm's
 * first process would have): the token of its urls resumes it, polled to
 * its image, with no second prediction.
 */
static void test_resume_polls_without_a_second_prediction(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof(url), "%s/replicate/v1/models/black-forest-labs/flux-1.1-pro/predictions",
             fake.base);
    static const char *const h[] = {"Authorization: Bearer r8_test_token_123",
                                    "Content-Type: application/json", NULL};
    /* output_format png, as the adapter asks (Replicate's default is webp). */
    const char *body = "{\"input\":{\"prompt\":\"a resumed owl\",\"aspect_ratio\":\"custom\","
                       "\"width\":64,\"height\":64,\"output_format\":\"png\"}}";
    ts_http_t c = ts_http("POST", url, h, body, strlen(body));
    assert_int_equal(c.status, 201);
    json_t *pred = json_loads(c.body, 0, NULL);
    ts_http_dispose(&c);
    assert_string_equal(json_string_value(json_object_get(pred, "status")), "starting");
    json_t *urls = json_object_get(pred, "urls");
    char tok[1024];
    snprintf(tok, sizeof(tok), "%s %s", json_string_value(json_object_get(urls, "get")),
             json_string_value(json_object_get(urls, "cancel")));
    json_decref(pred);
    gf_config_t *cfg = pt_config(&fake, "replicate", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r;
    pt_run_resumed(p, "a resumed owl", tok, "replicate", &r);
    assert_int_equal(r.status, 0);
    assert_png(&r, 64, 64);
    assert_int_equal(pt_fake_count(&fake, "replicate.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "replicate.poll"), 2);
    pt_result_dispose(&r);
    /* An unknown prediction is a lost job (resubmit at most once). */
    snprintf(tok, sizeof(tok), "%s/replicate/v1/predictions/nope -", fake.base);
    pt_run_resumed(p, "a resumed owl", tok, "replicate", &r);
    assert_int_equal(r.err.fault, PROVIDER_F_LOST_JOB);
    assert_int_equal(r.err.retryable, 1);
    pt_result_dispose(&r);
    /* A token naming another host is refused before the key goes there. */
    pt_run_resumed(p, "a resumed owl", "http://127.0.0.2:9/replicate/v1/predictions/x -",
                   "replicate", &r);
    assert_int_equal(r.err.fault, PROVIDER_F_PROTOCOL);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_prediction_done_within_the_wait_needs_no_poll, reset),
        cmocka_unit_test_setup(test_a_prediction_past_the_wait_is_polled_through_urls_get, reset),
        cmocka_unit_test_setup(test_a_silent_wait_longer_than_the_low_speed_window_is_no_stall,
                               reset),
        cmocka_unit_test_setup(test_a_created_prediction_above_the_bound_is_not_sent_again, reset),
        cmocka_unit_test_setup(test_a_pinned_version_goes_to_v1_predictions, reset),
        cmocka_unit_test_setup(test_schnell_is_asked_by_aspect_ratio, reset),
        cmocka_unit_test_setup(test_processing_with_output_is_taken, reset),
        cmocka_unit_test_setup(test_fault_rows_map_to_typed_errors, reset),
        cmocka_unit_test_setup(test_problem_json_detail_reaches_the_error, reset),
        cmocka_unit_test_setup(test_a_throttled_submit_is_sent_again, reset),
        cmocka_unit_test_setup(test_removed_output_is_an_expired_result, reset),
        cmocka_unit_test_setup(test_pending_forever_hits_the_deadline_and_cancels, reset),
        cmocka_unit_test_setup(test_cancel_mid_flight_cancels_the_prediction, reset),
        cmocka_unit_test_setup(test_a_cancel_outlives_the_providers_close, reset),
        cmocka_unit_test_setup(test_resume_polls_without_a_second_prediction, reset),
    };
    return cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
}
