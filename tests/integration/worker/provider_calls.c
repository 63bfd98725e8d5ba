/*
 * worker_provider_calls: farm_worker_provider_calls_total counts the
 * provider calls per delivered image (issue #17, docs/providers.md). A
 * farm-api and one farm-worker on the fake provider, the async fal path
 * first in the chain:
 * - a generation of 2 images: 2 new (resumed="false") fal calls, 2 images
 *   captured; the fake's own log counts 2 fal submits;
 * - a generation of 1 image whose first request the provider forgets (its
 *   status answers 404 once: the call fails as a lost job, retryable, and
 *   the worker calls again): 2 new fal calls for 1 image captured; the
 *   fake counts 2 submits.
 * The metric is read from the worker's /metrics, the submits from the
 * fake's /__fake/log (a count that is not the farm's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "farm_fixture.h"

#define CALLS    "farm_worker_provider_calls_total{provider=\"fal\",resumed=\"false\"} "
#define CAPTURED "farm_worker_images_total{outcome=\"captured\"} "
#define RESUMED  "farm_worker_provider_calls_total{provider=\"fal\",resumed=\"true\"} "

static const char *fake_url; /* in ff_fake_env, after '=' */

static const char *const both_env[] = {"FARM_PROVIDER=fake",
                                       "FARM_PROVIDER_FALLBACK=fal,bfl,replicate,hf", NULL};
static const char *const worker_env[] = {
    "FARM_PROVIDER_POLL_MIN_MS=100", "FARM_PROVIDER_MAX_RETRIES=1",
    "FARM_PROVIDER_BACKOFF_BASE_MS=50", "FARM_PROVIDER_BACKOFF_CAP_MS=100", NULL};
static const ff_farm_t farm = {.reason = "provider-calls",
                               .fake_latency_ms = 200,
                               .s3_prefix = "calls/",
                               .metrics = 1,
                               .both = both_env,
                               .worker = worker_env};

static int setup(void **state)
{
    (void)state;
    if (ff_setup(&farm) < 0)
        return -1;
    fake_url = strchr(ff_fake_env, '=') + 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return ff_teardown();
}

/* The fake's count of requests to `endpoint` ("fal.submit"). */
static long long fake_count(const char *endpoint)
{
    char url[200];
    snprintf(url, sizeof(url), "%s/__fake/log", fake_url);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    assert_non_null(j);
    long long n = json_integer_value(json_object_get(json_object_get(j, "counts"), endpoint));
    json_decref(j);
    return n;
}

/* Creates an avatar of `count` images and waits for it to succeed. */
static void generation_succeeds(int count)
{
    char body[300], id[37];
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"provider calls\",\"count\":%d,\"width\":256,"
             "\"height\":256}",
             count);
    au_create(ff_tok, body, id);
    json_t *g = au_wait_status(ff_tok, id, AU_ENDED, 60);
    const char *st = json_string_value(json_object_get(g, "status"));
    if (st == NULL || strcmp(st, "succeeded") != 0)
        ff_dump_logs(30);
    assert_non_null(st);
    assert_string_equal(st, "succeeded");
    assert_int_equal(json_integer_value(json_object_get(g, "images_done")), count);
    json_decref(g);
}

/* The metric is counted when the call ends, before the image settles: wait for it. */
static double metric_reaches(const char *series, double want)
{
    double v, end = ts_now() + 5;
    while ((v = ff_worker_metric(series)) < want && ts_now() < end)
        usleep(100000);
    return v;
}

static void test_one_call_per_image(void **state)
{
    (void)state;
    double calls0 = ff_worker_metric(CALLS), captured0 = ff_worker_metric(CAPTURED);
    long long submits0 = fake_count("fal.submit");
    generation_succeeds(2);
    assert_int_equal((int)metric_reaches(CAPTURED, captured0 + 2), (int)captured0 + 2);
    assert_int_equal((int)ff_worker_metric(CALLS), (int)calls0 + 2);
    assert_int_equal(fake_count("fal.submit"), submits0 + 2);
}

/* Sets the fake's faults (a JSON array). */
static void fake_faults(const char *fault)
{
    char url[200];
    snprintf(url, sizeof(url), "%s/__fake/faults", fake_url);
    const char *h[] = {"Content-Type: application/json", NULL};
    ts_http_t r = ts_http("POST", url, h, fault, strlen(fault));
    assert_int_equal(r.status, 200);
    ts_http_dispose(&r);
}

static void test_a_forced_retry_is_another_call(void **state)
{
    (void)state;
    double calls0 = ff_worker_metric(CALLS), captured0 = ff_worker_metric(CAPTURED);
    long long submits0 = fake_count("fal.submit");
    fake_faults("[{\"match\":\"fal.status\",\"mode\":\"not_found_404\",\"times\":1}]");
    generation_succeeds(1);
    assert_int_equal((int)metric_reaches(CAPTURED, captured0 + 1), (int)captured0 + 1);
    /* the lost request and the one that delivered: 2 calls for 1 image */
    assert_int_equal((int)ff_worker_metric(CALLS), (int)calls0 + 2);
    assert_int_equal(fake_count("fal.submit"), submits0 + 2);
}

/*
 * fal took the job, then its status URL failed past the poll retries (502
 * twice, FARM_PROVIDER_MAX_RETRIES=1): the job is still fal's, so the
 * worker's next attempt resumes it (resumed="true") rather than buying the
 * image again from fal or from bfl, the next provider of the chain.
 */
static void test_a_job_whose_polls_fail_is_resumed_not_bought_again(void **state)
{
    (void)state;
    double resumed0 = ff_worker_metric(RESUMED), captured0 = ff_worker_metric(CAPTURED);
    long long fal0 = fake_count("fal.submit"), bfl0 = fake_count("bfl.submit");
    fake_faults("[{\"match\":\"fal.status\",\"mode\":\"bad_gateway_502\",\"times\":2}]");
    generation_succeeds(1);
    assert_int_equal((int)metric_reaches(CAPTURED, captured0 + 1), (int)captured0 + 1);
    assert_int_equal(fake_count("fal.submit"), fal0 + 1);
    assert_int_equal(fake_count("bfl.submit"), bfl0);
    assert_int_equal((int)ff_worker_metric(RESUMED), (int)resumed0 + 1);
}

/* providers.md 5: an image the provider's output moderation refused is tried once
 * more with a new seed, then fails: 2 fal jobs, not one per attempt (3). */
static void test_an_output_moderation_is_retried_once(void **state)
{
    (void)state;
    long long submits0 = fake_count("fal.submit");
    fake_faults("[{\"match\":\"fal.result\",\"mode\":\"nsfw_flag\",\"times\":3}]");
    char id[37];
    au_create(ff_tok, "{\"kind\":\"avatar\",\"prompt\":\"moderated\",\"width\":256,\"height\":256}",
              id);
    json_t *g = au_wait_status(ff_tok, id, AU_ENDED, 60);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    json_t *e = json_object_get(g, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "content_rejected");
    json_decref(g);
    assert_int_equal(fake_count("fal.submit"), submits0 + 2);
    fake_faults("[]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_call_per_image),
        cmocka_unit_test(test_a_forced_retry_is_another_call),
        cmocka_unit_test(test_a_job_whose_polls_fail_is_resumed_not_bought_again),
        cmocka_unit_test(test_an_output_moderation_is_retried_once),
    };
    return cmocka_run_group_tests_name("worker_provider_calls", tests, setup, teardown);
}
