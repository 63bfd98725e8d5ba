/*
 * tests/integration/providers/async.c - the bfl and fal adapters against
 * farm-fake-provider: success through returned URLs (BFL's regional polling
 * host, fal's URLs without the endpoint subpath), moderation, lost jobs,
 * failed results, expired CDN URLs, deadlines, cancel (fal sees the PUT) and
 * resuming from a persisted token without a second submit.
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
    return pt_suite_reset(state, "{\"cdn_ttl_s\":600,\"polls\":2}");
}

static const char *const no_breaker[] = {"FARM_PROVIDER_BREAKER_FAILURES=1000", NULL};

/* One call on a fresh provider `name`. */
static void run1(const char *name, const char *prompt, uint64_t deadline_ms, pt_result_t *r)
{
    provider_req_t q = pt_req(prompt, 96, 64);
    q.deadline_ms = deadline_ms;
    pt_run_one(name, no_breaker, &q, r);
}

static void test_bfl_success_follows_the_regional_polling_url(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("bfl", "a blue owl [[regional_404]]", 0, &r);
    assert_int_equal(r.status, 0);
    int w, h;
    pt_png_size(r.img, r.len, &w, &h);
    assert_int_equal(w, 96);
    assert_int_equal(h, 64);
    assert_non_null(strstr(r.resume, "/bfl-region/v1/get_result?id="));
    assert_string_equal(r.resume_provider, "bfl");
    assert_true(strlen(r.accepted_id) > 0);
    assert_true(r.progress_calls > 0);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "bfl.poll"), 2);
    assert_int_equal(pt_fake_count(&fake, "bfl.poll_global"), 0);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 1);
    pt_result_dispose(&r);
}

typedef struct {
    const char *provider, *marker;
    provider_error_code code;
    provider_fault fault;
    int retryable;
} row_t;

static const row_t rows[] = {
    {"bfl", "content_moderated", PROVIDER_E_CONTENT_REJECTED, PROVIDER_F_MODERATION_OUTPUT, 1},
    {"bfl", "request_moderated", PROVIDER_E_CONTENT_REJECTED, PROVIDER_F_MODERATION_INPUT, 0},
    {"bfl", "bfl_error", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1},
    {"bfl", "task_not_found", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_LOST_JOB, 1},
    {"bfl", "task_not_found:404", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_LOST_JOB, 1},
    {"bfl", "expired_url", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_URL_EXPIRED, 1},
    {"bfl", "credits_402", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_CREDITS, 0},
    {"bfl", "validation_422", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_BAD_INPUT, 0},
    {"bfl", "corrupt_image", PROVIDER_E_INVALID_OUTPUT, PROVIDER_F_BAD_BODY, 1},
    {"bfl", "truncated", PROVIDER_E_INVALID_OUTPUT, PROVIDER_F_BAD_BODY, 1},
    {"fal", "nsfw_flag", PROVIDER_E_CONTENT_REJECTED, PROVIDER_F_MODERATION_OUTPUT, 1},
    {"fal", "fal_failed_result", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_BAD_INPUT, 0},
    {"fal", "fal_failed_result:500", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1},
    {"fal", "expired_url", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_URL_EXPIRED, 1},
    {"fal", "auth_401", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_AUTH, 0},
    {"fal", "server_500@fal.status", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_SERVER, 1},
    {"fal", "not_found_404@fal.result", PROVIDER_E_PROVIDER_ERROR, PROVIDER_F_LOST_JOB, 1},
};

static void test_async_fault_rows_map_to_typed_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        pt_fake_post(&fake, "reset", "{}");
        char prompt[128];
        snprintf(prompt, sizeof(prompt), "a fox [[%s]]", rows[i].marker);
        pt_result_t r = {0};
        run1(rows[i].provider, prompt, 0, &r);
        print_message("%s %s: %s/%s retry %d http %ld\n", rows[i].provider, rows[i].marker,
                      provider_error_code_name(r.err.code), provider_fault_name(r.err.fault),
                      r.err.retryable, r.err.http_status);
        assert_true(r.status < 0);
        assert_int_equal(r.err.code, rows[i].code);
        assert_int_equal(r.err.fault, rows[i].fault);
        assert_int_equal(r.err.retryable, rows[i].retryable);
        assert_int_equal(r.err.new_seed, rows[i].fault == PROVIDER_F_MODERATION_OUTPUT);
        pt_result_dispose(&r);
    }
}

/* A polling URL off the provider's hosts is refused before the key goes anywhere. */
static void test_bfl_polling_url_elsewhere_gets_no_key(void **state)
{
    (void)state;
    pt_fake_post(&fake, "reset", "{}");
    pt_result_t r = {0};
    run1("bfl", "a fox [[polling_elsewhere]]", 0, &r);
    assert_true(r.status < 0);
    assert_int_equal(r.err.fault, PROVIDER_F_PROTOCOL);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "bfl.poll"), 0);
    pt_result_dispose(&r);
    /* BFL took the task (and may charge for it): neither another provider nor
     * a run of the job again may pay for the image a second time. */
    r = (pt_result_t){0};
    provider_req_t q = pt_req("a fox [[polling_elsewhere]]", 96, 64);
    pt_run_one("auto", (const char *const[]){"FARM_PROVIDER_FALLBACK=bfl,fal", NULL}, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_PROTOCOL);
    assert_int_equal(r.err.retryable, 0);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 2);
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 0);
    pt_result_dispose(&r);
}

static void test_bfl_expired_url_is_not_polled_again(void **state)
{
    (void)state;
    pt_fake_post(&fake, "config", "{\"cdn_ttl_s\":-1}");
    pt_result_t r = {0};
    run1("bfl", "an old owl", 0, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_URL_EXPIRED);
    assert_int_equal(r.err.http_status, 403);
    assert_int_equal(pt_fake_count(&fake, "bfl.poll"), 2);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 1);
    pt_result_dispose(&r);
}

static void test_transient_poll_and_cdn_faults_are_retried(void **state)
{
    (void)state;
    pt_fake_post(&fake, "faults",
                 "[{\"match\":\"bfl.poll\",\"mode\":\"poll_422_with_task\",\"times\":1},"
                 "{\"match\":\"bfl.poll\",\"mode\":\"rate_limit\",\"arg\":\"0\",\"times\":1},"
                 "{\"match\":\"cdn\",\"mode\":\"server_500\",\"times\":2},"
                 "{\"match\":\"bfl.submit\",\"mode\":\"rate_limit\",\"arg\":\"0\",\"times\":1}]");
    pt_result_t r = {0};
    run1("bfl", "a patient owl", 0, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 2);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 3);
    pt_result_dispose(&r);
}

static void test_pending_forever_hits_the_deadline(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("bfl", "a stuck owl [[pending_forever]]", 1500, &r);
    assert_int_equal(r.err.code, PROVIDER_E_TIMEOUT);
    assert_int_equal(r.err.fault, PROVIDER_F_DEADLINE);
    pt_result_dispose(&r);
    /* fal: the abandoned job is canceled at its deadline. */
    r = (pt_result_t){0};
    run1("fal", "a stuck fox [[pending_forever]]", 1500, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_DEADLINE);
    pt_result_dispose(&r);
}

static void test_fal_success_uses_urls_without_subpath(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run1("fal", "a green fox", 0, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.resume, "/fal/fal-ai/flux/requests/"));
    assert_null(strstr(r.resume, "/flux/dev/requests"));
    char *log = pt_fake_log(&fake);
    assert_non_null(strstr(log, "\"path\":\"/fal/fal-ai/flux/dev\""));
    free(log);
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "fal.status"), 2);
    assert_int_equal(pt_fake_count(&fake, "fal.result"), 1);
    assert_int_equal(pt_fake_count(&fake, "cdn"), 1);
    pt_result_dispose(&r);
}

static void test_fal_cancel_mid_flight_sends_put_cancel(void **state)
{
    (void)state;
    pt_result_t r;
    /* fal cancels with a PUT. */
    pt_cancel_mid_flight("fal", "a fox to cancel [[pending_forever]]", "fal.cancel", &r);
    pt_result_dispose(&r);
}

static void test_resume_polls_without_a_second_submit(void **state)
{
    (void)state;
    const char *names[] = {"bfl", "fal"};
    for (int i = 0; i < 2; i++) {
        pt_fake_post(&fake, "reset", "{}");
        gf_config_t *cfg = pt_config(&fake, names[i], NULL);
        provider_t *p = provider_new(&loop, cfg, NULL, NULL);
        pt_result_t first;
        provider_req_t q = pt_req("a resumed fox", 64, 64);
        pt_run_to_acceptance(p, &q, 0, &first);
        pt_result_t r = {0};
        /* With a negative prompt (neither sends one; the request was made before a deploy
         * that refuses it for them): a resume only polls, so it resumes all the same. */
        q.negative_prompt = "blurry";
        pt_run(&loop, p, &q, &r);
        assert_int_equal(r.status, 0);
        char ep[32];
        snprintf(ep, sizeof(ep), "%s.submit", names[i]);
        assert_int_equal(pt_fake_count(&fake, ep), 1);
        pt_result_dispose(&first);
        pt_result_dispose(&r);
        pt_close(&loop, p, cfg);
    }
}

static void test_fal_unknown_request_is_a_lost_job(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "fal", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    char tok[512];
    snprintf(tok, sizeof(tok),
             "%s/fal/fal-ai/flux/requests/nope/status %s/fal/fal-ai/flux/"
             "requests/nope -",
             fake.base, fake.base);
    pt_result_t r;
    pt_run_resumed(p, "a lost fox", tok, "fal", &r);
    assert_int_equal(r.err.fault, PROVIDER_F_LOST_JOB);
    assert_int_equal(r.err.retryable, 1);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* A job resumed by another call (a worker that took over) and never finishing is
 * canceled at the deadline like the one that submitted it (providers.md 5, "Job never
 * finishes"): the resume token carries the cancel URL. */
static void test_a_resumed_job_is_canceled_at_its_deadline(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "fal", no_breaker);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t first;
    provider_req_t q = pt_req("a stuck fox [[pending_forever]]", 64, 64);
    pt_run_to_acceptance(p, &q, 1, &first);
    pt_result_t r = {0};
    q.deadline_ms = 1500;
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_DEADLINE);
    assert_int_equal(pt_fake_wait_one("fal.cancel"), 1); /* the abandon sent none */
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 1);
    pt_result_dispose(&first);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bfl_success_follows_the_regional_polling_url, reset),
        cmocka_unit_test_setup(test_async_fault_rows_map_to_typed_errors, reset),
        cmocka_unit_test_setup(test_bfl_polling_url_elsewhere_gets_no_key, reset),
        cmocka_unit_test_setup(test_bfl_expired_url_is_not_polled_again, reset),
        cmocka_unit_test_setup(test_transient_poll_and_cdn_faults_are_retried, reset),
        cmocka_unit_test_setup(test_pending_forever_hits_the_deadline, reset),
        cmocka_unit_test_setup(test_fal_success_uses_urls_without_subpath, reset),
        cmocka_unit_test_setup(test_fal_cancel_mid_flight_sends_put_cancel, reset),
        cmocka_unit_test_setup(test_resume_polls_without_a_second_submit, reset),
        cmocka_unit_test_setup(test_fal_unknown_request_is_a_lost_job, reset),
        cmocka_unit_test_setup(test_a_resumed_job_is_canceled_at_its_deadline, reset),
    };
    return cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
}
