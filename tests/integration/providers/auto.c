/*
 * tests/integration/providers/auto.c - auto's fallback, the circuit breaker
 * (opens, fails fast, one probe, recovers), the local renderer, and 300
 * concurrent calls through one multi handle.
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
    return pt_suite_reset(state, "{\"latency_ms\":0}");
}

static void test_auto_falls_back_to_the_next_provider(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(
        &fake, "auto", (const char *const[]){"FARM_PROVIDER_FALLBACK=hf,bfl,local", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    assert_string_equal(provider_chain(p), "hf,bfl,local");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a fox [[credits_402@hf.submit]]", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "bfl");
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 1);
    /* A 402 opens hf's breaker for the long credits cool-down. */
    assert_string_equal(provider_breaker_state(p, "hf"), "open");
    pt_result_dispose(&r);
    /* The caller's bad input does not fail over. */
    pt_fake_post(&fake, "reset", "{}");
    r = (pt_result_t){0};
    q = pt_req("a fox [[validation_422@bfl.submit]]", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_BAD_INPUT);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 0); /* skipped: breaker open */
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* hf,bfl: hf's submit answered as `marker` says (a fault of the fake) is served by bfl,
 * hf asked once. */
static void hf_fault_served_by_bfl(const char *marker)
{
    gf_config_t *cfg =
        pt_config(&fake, "auto", (const char *const[]){"FARM_PROVIDER_FALLBACK=hf,bfl", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r = {0};
    char prompt[96];
    snprintf(prompt, sizeof(prompt), "a fox [[%s@hf.submit]]", marker);
    provider_req_t q = pt_req(prompt, 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "bfl");
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 1);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* A submit redirected (never followed): nothing was taken, the next provider serves. */
static void test_a_redirected_submit_fails_over(void **state)
{
    (void)state;
    hf_fault_served_by_bfl("moved_301");
}

/* HF's router answers 400 for a model it does not serve on the route: the next one may. */
static void test_a_model_hf_does_not_serve_fails_over(void **state)
{
    (void)state;
    hf_fault_served_by_bfl("not_supported_400");
}

static void test_breaker_opens_fails_fast_and_recovers_after_probe(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf",
                                 (const char *const[]){"FARM_PROVIDER_BREAKER_FAILURES=3",
                                                       "FARM_PROVIDER_BREAKER_COOLDOWN_S=1", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(provider_breaker_state(p, "hf"), "closed");
        pt_result_t r = {0};
        provider_req_t q = pt_req("a fox [[server_500]]", 64, 64);
        pt_run(&loop, p, &q, &r);
        assert_int_equal(r.err.fault, PROVIDER_F_SERVER);
        pt_result_dispose(&r);
    }
    assert_string_equal(provider_breaker_state(p, "hf"), "open");
    long posts = pt_fake_count(&fake, "hf.submit");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a healthy fox", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_BREAKER_OPEN);
    assert_int_equal(r.err.retryable, 1);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), posts); /* failed fast */
    pt_result_dispose(&r);
    pt_spin(&loop, 1100);
    assert_string_equal(provider_breaker_state(p, "hf"), "half_open");
    /* The probe fails: open again. */
    r = (pt_result_t){0};
    q = pt_req("a fox [[server_500]]", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.err.fault, PROVIDER_F_SERVER);
    assert_string_equal(provider_breaker_state(p, "hf"), "open");
    pt_result_dispose(&r);
    pt_spin(&loop, 1100);
    r = (pt_result_t){0};
    q = pt_req("a healthy fox", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(provider_breaker_state(p, "hf"), "closed");
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

static void test_auto_without_tokens_is_local(void **state)
{
    (void)state;
    gf_config_t *cfg =
        pt_config(NULL, "auto",
                  (const char *const[]){"FARM_HF_TOKEN=", "FARM_FAL_KEY=", "FARM_BFL_KEY=",
                                        "FARM_REPLICATE_TOKEN=", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    assert_non_null(p);
    assert_string_equal(provider_chain(p), "local");
    pt_close(&loop, p, cfg);
}

static void render(provider_t *p, const char *prompt, int64_t seed, int w, int h, pt_result_t *r)
{
    provider_req_t q = pt_req(prompt, w, h);
    q.seed = seed;
    pt_run(&loop, p, &q, r);
    assert_int_equal(r->status, 0);
    int rw, rh;
    pt_png_size(r->img, r->len, &rw, &rh);
    assert_int_equal(rw, w);
    assert_int_equal(rh, h);
}

static void test_local_renders_deterministic_distinct_images(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(NULL, "local", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t a = {0}, b = {0}, c = {0}, d = {0};
    render(p, "a castle", 1, 320, 200, &a);
    render(p, "a castle", 1, 320, 200, &b);
    render(p, "a castle", 2, 320, 200, &c);
    render(p, "a dragon", 1, 320, 200, &d);
    assert_string_equal(a.provider, "local");
    assert_true(a.len == b.len && memcmp(a.img, b.img, a.len) == 0);
    assert_true(a.len != c.len || memcmp(a.img, c.img, a.len) != 0);
    assert_true(a.len != d.len || memcmp(a.img, d.img, a.len) != 0);
    pt_result_dispose(&a);
    pt_result_dispose(&b);
    pt_result_dispose(&c);
    pt_result_dispose(&d);
    pt_close(&loop, p, cfg);
}

static void test_300_concurrent_calls_through_one_multi(void **state)
{
    (void)state;
    enum { N = 300 };
    gf_config_t *cfg =
        pt_config(&fake, "hf", (const char *const[]){"FARM_PROVIDER_CONCURRENCY=1000", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_fake_post(&fake, "config", "{\"latency_ms\":500}");
    pt_result_t *r = calloc(N, sizeof(*r));
    char prompt[64];
    for (int i = 0; i < N; i++) {
        snprintf(prompt, sizeof(prompt), "fox number %d", i);
        provider_req_t q = pt_req(prompt, 64, 64);
        pt_submit(p, &q, &r[i]);
    }
    assert_int_equal(provider_inflight(p), N);
    int done = 0;
    double until = ts_now() + 90;
    while (done < N && ts_now() < until) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += r[i].done;
    }
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].status, 0);
        pt_result_dispose(&r[i]);
    }
    free(r);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), N);
    pt_close(&loop, p, cfg);
}

static void test_concurrency_limit_queues_calls(void **state)
{
    (void)state;
    enum { N = 12 };
    gf_config_t *cfg =
        pt_config(&fake, "hf", (const char *const[]){"FARM_PROVIDER_CONCURRENCY=4", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_fake_post(&fake, "config", "{\"latency_ms\":300}");
    pt_result_t r[N] = {0};
    for (int i = 0; i < N; i++) {
        provider_req_t q = pt_req("a queued fox", 64, 64);
        pt_submit(p, &q, &r[i]);
    }
    pt_spin(&loop, 150);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 4);
    /* Cancel one that waits for a slot: it ends without reaching the fake. */
    provider_cancel(r[N - 1].call);
    int done = 0;
    while (done < N) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += r[i].done;
    }
    for (int i = 0; i < N - 1; i++)
        assert_int_equal(r[i].status, 0);
    assert_int_equal(r[N - 1].status, GF_ECANCELED);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), N - 1);
    for (int i = 0; i < N; i++)
        pt_result_dispose(&r[i]);
    pt_close(&loop, p, cfg);
}

/* A call waiting for a slot still ends at its deadline, never sent, and the
 * provider's breaker does not count the wait against it. */
static void test_a_call_waiting_for_a_slot_ends_at_its_deadline(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf",
                                 (const char *const[]){"FARM_PROVIDER_CONCURRENCY=1",
                                                       "FARM_PROVIDER_BREAKER_FAILURES=1", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_fake_post(&fake, "config", "{\"latency_ms\":4000}");
    pt_result_t a = {0}, b = {0};
    provider_req_t qa = pt_req("a slow fox", 64, 64);
    pt_submit(p, &qa, &a);
    pt_spin(&loop, 100);
    provider_req_t qb = pt_req("a hurried fox", 64, 64);
    qb.deadline_ms = 1000;
    double t0 = ts_now();
    pt_submit(p, &qb, &b);
    while (!b.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(ts_now() - t0 < 2.0);
    assert_int_equal(b.err.fault, PROVIDER_F_DEADLINE);
    assert_int_equal(b.err.code, PROVIDER_E_TIMEOUT);
    assert_int_equal(a.done, 0);
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 1);
    assert_string_equal(provider_breaker_state(p, "hf"), "closed");
    provider_cancel(a.call);
    while (!a.done)
        uv_run(&loop, UV_RUN_ONCE);
    pt_result_dispose(&a);
    pt_result_dispose(&b);
    pt_close(&loop, p, cfg);
}

static void test_close_cancels_calls_in_flight(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(&fake, "hf", NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_fake_post(&fake, "config", "{\"latency_ms\":5000}");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a fox at shutdown", 64, 64);
    pt_submit(p, &q, &r);
    pt_spin(&loop, 100);
    pt_close(&loop, p, cfg);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.status, GF_ECANCELED);
    pt_result_dispose(&r);
}

/* Two small PNGs to carry as references (the fake reads their headers). */
static unsigned char *ref_png(int w, int h, size_t *len)
{
    /* The local provider's own output is a valid PNG of the asked size. */
    pt_result_t r = {0};
    provider_req_t q = pt_req("a reference", w, h);
    pt_run_one("local", NULL, &q, &r);
    assert_int_equal(r.status, 0);
    unsigned char *b = r.img;
    *len = r.len;
    r.img = NULL;
    pt_result_dispose(&r);
    return b;
}

/* auto with hf (a text-only model for every call) first and fal (FLUX.2
 * edit) second: a pose with an identity goes to fal, a plain avatar to hf,
 * and nothing of the first reaches hf. */
static void test_auto_routes_by_what_the_model_takes(void **state)
{
    (void)state;
    size_t id_len, pose_len;
    unsigned char *id = ref_png(96, 72, &id_len), *pose = ref_png(64, 64, &pose_len);
    gf_config_t *cfg =
        pt_config(&fake, "auto",
                  (const char *const[]){"FARM_PROVIDER_FALLBACK=hf,fal",
                                        "FARM_HF_MODEL=black-forest-labs/FLUX.1-dev",
                                        "FARM_HF_POSE_MODEL=black-forest-labs/FLUX.1-dev",
                                        "FARM_FAL_POSE_MODEL=fal-ai/flux-2/edit", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r = {0};
    provider_req_t q = pt_req("this person, in this pose", 64, 64);
    q.identity_image = id;
    q.identity_len = id_len;
    q.pose_image = pose;
    q.pose_len = pose_len;
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "fal");
    assert_int_equal(pt_fake_count(&fake, "hf.submit"), 0);
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 1);
    pt_result_dispose(&r);
    r = (pt_result_t){0};
    q = pt_req("a plain avatar", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "hf");
    pt_result_dispose(&r);
    /* Asked of hf alone, the pose with an identity is refused at once, no callback. */
    q = pt_req("this person, in this pose", 64, 64);
    q.identity_image = id;
    q.identity_len = id_len;
    q.pose_image = pose;
    q.pose_len = pose_len;
    q.only_provider = "hf";
    gf_err_t err = {0};
    r = (pt_result_t){0};
    assert_int_equal(pt_try_submit(p, &q, &r, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "poses"));
    pt_spin(&loop, 50);
    assert_int_equal(r.done, 0);
    pt_close(&loop, p, cfg);
    free(id);
    free(pose);
}

/* The last `endpoint` request the fake recorded: what it "received" (a new reference). */
static json_t *last_received(const char *endpoint)
{
    char *text = pt_fake_log(&fake);
    json_t *root = json_loads(text, 0, NULL), *got = NULL, *e;
    free(text);
    size_t i;
    json_array_foreach(json_object_get(root, "requests"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "endpoint")), endpoint) == 0)
            got = json_object_get(e, "received");
    }
    json_incref(got);
    json_decref(root);
    return got;
}

/* A negative prompt goes only where the provider's API takes one (hf): auto with fal first
 * passes fal over for such a call, and hf gets the negative prompt; a call without one goes
 * to fal; asked of fal alone, it is refused at once, naming the field. */
static void test_a_negative_prompt_goes_only_where_it_is_sent(void **state)
{
    (void)state;
    gf_config_t *cfg =
        pt_config(&fake, "auto", (const char *const[]){"FARM_PROVIDER_FALLBACK=fal,hf", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t r = {0};
    provider_req_t q = pt_req("a fox", 64, 64);
    q.negative_prompt = "blurry";
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "hf");
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 0);
    json_t *got = last_received("hf.submit");
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "negative_prompt")), "blurry");
    json_decref(got);
    pt_result_dispose(&r);
    r = (pt_result_t){0};
    q = pt_req("a fox", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "fal");
    pt_result_dispose(&r);
    q.negative_prompt = "blurry";
    q.only_provider = "fal";
    gf_err_t err = {0};
    r = (pt_result_t){0};
    assert_int_equal(pt_try_submit(p, &q, &r, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "negative_prompt"));
    pt_spin(&loop, 50);
    assert_int_equal(r.done, 0);
    pt_close(&loop, p, cfg);
}

/* Once a provider has taken the job (fal answered its submit), a run of failing polls
 * does not move the call to the next provider, which would make a second, paid job:
 * the call fails as resumable, and a resume of its token collects the image. */
static void test_a_job_the_provider_took_is_not_bought_elsewhere(void **state)
{
    (void)state;
    gf_config_t *cfg = pt_config(
        &fake, "auto",
        (const char *const[]){"FARM_PROVIDER_FALLBACK=fal,bfl", "FARM_PROVIDER_MAX_RETRIES=1",
                              "FARM_PROVIDER_BACKOFF_BASE_MS=20", "FARM_PROVIDER_BACKOFF_CAP_MS=50",
                              "FARM_PROVIDER_BREAKER_FAILURES=1000", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_fake_post(&fake, "faults",
                 "[{\"match\":\"fal.status\",\"mode\":\"bad_gateway_502\",\"times\":2}]");
    pt_result_t r = {0};
    provider_req_t q = pt_req("a fox behind a bad gateway", 64, 64);
    pt_run(&loop, p, &q, &r);
    assert_int_not_equal(r.status, 0);
    assert_int_equal(r.err.fault, PROVIDER_F_SERVER);
    assert_string_equal(r.err.provider, "fal");
    assert_int_equal(r.err.retryable, 1);
    assert_int_equal(r.err.resumable, 1);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 0);
    assert_true(r.resume[0] != '\0');
    pt_result_t again = {0};
    q.resume = r.resume;
    q.resume_provider = r.resume_provider;
    pt_run(&loop, p, &q, &again);
    assert_int_equal(again.status, 0);
    assert_string_equal(again.provider, "fal");
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), 1);
    assert_int_equal(pt_fake_count(&fake, "bfl.submit"), 0);
    pt_result_dispose(&r);
    pt_result_dispose(&again);
    pt_close(&loop, p, cfg);
}

/* A resume polls a job that is paid for: fal's breaker, opened by a failing submit,
 * does not stop it (the alternative is a new job somewhere). */
static void test_a_resume_passes_an_open_breaker(void **state)
{
    (void)state;
    gf_config_t *cfg =
        pt_config(&fake, "auto",
                  (const char *const[]){"FARM_PROVIDER_FALLBACK=fal", "FARM_PROVIDER_MAX_RETRIES=0",
                                        "FARM_PROVIDER_BREAKER_FAILURES=1",
                                        "FARM_PROVIDER_BREAKER_COOLDOWN_S=600", NULL});
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    pt_result_t first;
    provider_req_t q = pt_req("a fox paid for", 64, 64);
    pt_run_to_acceptance(p, &q, 1, &first);
    pt_fake_post(&fake, "faults",
                 "[{\"match\":\"fal.submit\",\"mode\":\"server_500\",\"times\":5}]");
    pt_result_t bad = {0};
    provider_req_t q2 = pt_req("a fox that opens the breaker", 64, 64);
    pt_run(&loop, p, &q2, &bad);
    assert_int_equal(bad.err.fault, PROVIDER_F_SERVER);
    pt_result_t open = {0};
    pt_run(&loop, p, &q2, &open);
    assert_int_equal(open.err.fault, PROVIDER_F_BREAKER_OPEN); /* the breaker is open */
    long submits = pt_fake_count(&fake, "fal.submit");
    pt_result_t r = {0};
    pt_run(&loop, p, &q, &r); /* q resumes first's job */
    assert_int_equal(r.status, 0);
    assert_string_equal(r.provider, "fal");
    assert_int_equal(pt_fake_count(&fake, "fal.submit"), submits);
    pt_result_dispose(&first);
    pt_result_dispose(&bad);
    pt_result_dispose(&open);
    pt_result_dispose(&r);
    pt_close(&loop, p, cfg);
}

/* What the chain can honour, as the api asks it before any hold. */
static void test_chain_can_names_the_field_it_cannot_honour(void **state)
{
    (void)state;
    gf_config_t *cfg =
        pt_config(&fake, "fake",
                  (const char *const[]){"FARM_PROVIDER_FALLBACK=hf,bfl",
                                        "FARM_HF_POSE_MODEL=black-forest-labs/FLUX.1-Kontext-dev",
                                        "FARM_BFL_POSE_MODEL=flux-dev", NULL});
    const char *field = NULL;
    provider_needs_t both = {.identity = 1, .pose = 1, .width = 1024, .height = 1024};
    assert_int_equal(provider_chain_can(cfg, NULL, NULL, &both, &field), 0);
    assert_string_equal(field, "identity"); /* Kontext takes the pose, not the person too */
    provider_needs_t pose = {.pose = 1, .width = 1024, .height = 1024};
    assert_int_equal(provider_chain_can(cfg, NULL, NULL, &pose, &field), 1);
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &pose, &field), 0);
    assert_string_equal(field, "poses");
    provider_needs_t big = {.width = 1536, .height = 1024};
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &big, &field), 0);
    assert_string_equal(field, "width");
    provider_needs_t negative = {.width = 1024, .height = 1024, .negative = 1};
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &negative, &field), 0);
    assert_string_equal(field, "negative_prompt");
    assert_int_equal(provider_chain_can(cfg, NULL, NULL, &negative, &field), 1); /* hf */
    gf_cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_auto_falls_back_to_the_next_provider, reset),
        cmocka_unit_test_setup(test_a_redirected_submit_fails_over, reset),
        cmocka_unit_test_setup(test_a_model_hf_does_not_serve_fails_over, reset),
        cmocka_unit_test_setup(test_breaker_opens_fails_fast_and_recovers_after_probe, reset),
        cmocka_unit_test_setup(test_auto_without_tokens_is_local, reset),
        cmocka_unit_test_setup(test_local_renders_deterministic_distinct_images, reset),
        cmocka_unit_test_setup(test_300_concurrent_calls_through_one_multi, reset),
        cmocka_unit_test_setup(test_concurrency_limit_queues_calls, reset),
        cmocka_unit_test_setup(test_a_call_waiting_for_a_slot_ends_at_its_deadline, reset),
        cmocka_unit_test_setup(test_close_cancels_calls_in_flight, reset),
        cmocka_unit_test_setup(test_auto_routes_by_what_the_model_takes, reset),
        cmocka_unit_test_setup(test_a_negative_prompt_goes_only_where_it_is_sent, reset),
        cmocka_unit_test_setup(test_chain_can_names_the_field_it_cannot_honour, reset),
        cmocka_unit_test_setup(test_a_job_the_provider_took_is_not_bought_elsewhere, reset),
        cmocka_unit_test_setup(test_a_resume_passes_an_open_breaker, reset),
    };
    return cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
}
