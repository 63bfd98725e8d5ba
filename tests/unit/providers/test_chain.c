/*
 * tests/unit/providers/test_chain.c - providers/chain.c: which adapters
 * FARM_PROVIDER and FARM_PROVIDER_FALLBACK put in a chain, in which order,
 * and the one answer the api and the worker read from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider_int.h"

/* A configuration from "NAME=value" lines (NULL-terminated); aborts the test if refused. */
static gf_config_t *config(const char *const *env)
{
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load((char *const *)env, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err.msg);
    return cfg;
}

/* The plan of `mode` as "a,b,c" into `out`. */
static int plan_names(const gf_config_t *cfg, const char *mode, char *out, size_t n,
                      provider_chain_plan_t *plan)
{
    gf_err_t err = {0};
    int rc = provider__chain_plan(cfg, mode, plan, &err);
    out[0] = '\0';
    for (int i = 0; rc == 0 && i < plan->n; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", plan->names[i]);
    return rc;
}

static void test_auto_keeps_the_fallback_order_of_providers_with_a_token(void **state)
{
    (void)state;
    gf_config_t *cfg = config((const char *const[]){
        "FARM_BFL_KEY=b", "FARM_HF_TOKEN=h", "FARM_PROVIDER_FALLBACK=bfl,fal,local,hf", NULL});
    provider_chain_plan_t plan;
    char names[64];
    assert_int_equal(plan_names(cfg, "auto", names, sizeof(names), &plan), 0);
    assert_string_equal(names, "bfl,local,hf");
    assert_false(plan.local_alone);
    assert_true(provider_chain_has(cfg, NULL, "bfl"));
    assert_true(provider_chain_has(cfg, NULL, "local"));
    assert_false(provider_chain_has(cfg, NULL, "fal")); /* no token */
    gf_cfg_free(cfg);
}

static void test_auto_without_a_token_is_local_alone(void **state)
{
    (void)state;
    gf_config_t *cfg = config((const char *const[]){"FARM_PROVIDER_FALLBACK=hf,fal", NULL});
    provider_chain_plan_t plan;
    char names[64];
    assert_int_equal(plan_names(cfg, "auto", names, sizeof(names), &plan), 0);
    assert_string_equal(names, "local");
    assert_true(plan.local_alone);
    assert_true(provider_chain_has(cfg, NULL, "local"));
    assert_false(provider_chain_has(cfg, NULL, "hf"));
    gf_cfg_free(cfg);
}

static void test_auto_with_tokens_none_listed_is_refused(void **state)
{
    (void)state;
    gf_config_t *cfg =
        config((const char *const[]){"FARM_HF_TOKEN=h", "FARM_PROVIDER_FALLBACK=fal", NULL});
    provider_chain_plan_t plan;
    gf_err_t err = {0};
    assert_int_equal(provider__chain_plan(cfg, "auto", &plan, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "FARM_PROVIDER_FALLBACK"));
    gf_cfg_free(cfg);
}

static void test_fake_takes_the_remote_ones_of_the_list(void **state)
{
    (void)state;
    gf_config_t *cfg = config(
        (const char *const[]){"FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=local,fal,hf", NULL});
    provider_chain_plan_t plan;
    char names[64];
    assert_int_equal(plan_names(cfg, "fake", names, sizeof(names), &plan), 0);
    assert_string_equal(names, "fal,hf");
    assert_true(plan.fake);
    assert_false(provider_chain_has(cfg, NULL, "local"));
    assert_false(provider_chain_has(cfg, NULL, "bfl"));
    assert_true(provider_chain_has(cfg, NULL, "hf"));
    gf_cfg_free(cfg);
}

static void test_a_named_provider_is_alone(void **state)
{
    (void)state;
    gf_config_t *cfg = config((const char *const[]){"FARM_PROVIDER=bfl", NULL});
    provider_chain_plan_t plan;
    char names[64];
    assert_int_equal(plan_names(cfg, "bfl", names, sizeof(names), &plan), 0);
    assert_string_equal(names, "bfl");
    assert_true(provider_chain_has(cfg, NULL, "bfl"));
    assert_false(provider_chain_has(cfg, NULL, "local"));
    assert_true(provider_chain_has(cfg, "hf", "hf")); /* another mode than the configured one */
    gf_cfg_free(cfg);
}

/* Replicate is a provider like the others: in the chain with its token, its models' caps. */
/* FLUX.1 on BFL takes sizes in steps of 32 (providers.md 2), FLUX.2 in steps of 16: a
 * 1040 px side the api accepts is for FLUX.2 only, refused for FLUX.1 naming it. */
static void test_bfl_flux1_takes_steps_of_32(void **state)
{
    (void)state;
    gf_config_t *cfg = config((const char *const[]){"FARM_BFL_KEY=b", "FARM_PROVIDER=bfl",
                                                    "FARM_BFL_MODEL=flux-dev", NULL});
    const char *field = NULL;
    provider_needs_t odd = {.width = 1040, .height = 1024}, tall = {.width = 1024, .height = 1040},
                     even = {.width = 1024, .height = 992};
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &odd, &field), 0);
    assert_string_equal(field, "width");
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &tall, &field), 0);
    assert_string_equal(field, "height");
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &even, &field), 1);
    gf_cfg_free(cfg);
    cfg = config((const char *const[]){"FARM_BFL_KEY=b", "FARM_PROVIDER=bfl",
                                       "FARM_BFL_MODEL=flux-2-pro", NULL});
    assert_int_equal(provider_chain_can(cfg, NULL, "bfl", &odd, &field), 1);
    gf_cfg_free(cfg);
}

static void test_replicate_joins_the_chain_with_its_token(void **state)
{
    (void)state;
    gf_config_t *cfg = config((const char *const[]){"FARM_REPLICATE_TOKEN=r8_x", NULL});
    provider_chain_plan_t plan;
    char names[64];
    assert_int_equal(plan_names(cfg, "auto", names, sizeof(names), &plan), 0);
    assert_string_equal(names, "replicate"); /* the default list, those with a token */
    assert_true(provider_chain_has(cfg, NULL, "replicate"));
    /* The placeholder is no fallback of a farm with a provider: it would be charged. */
    assert_false(provider_chain_has(cfg, NULL, "local"));
    provider_caps_t text, pose;
    provider_caps(cfg, "replicate", 0, &text);
    provider_caps(cfg, "replicate", 1, &pose);
    assert_string_equal(text.model, "black-forest-labs/flux-schnell");
    /* schnell makes only its aspect ratios' sizes: the chain offers it no other. */
    assert_true(text.ratio_sizes);
    const char *field = NULL;
    provider_needs_t small = {.width = 256, .height = 256};
    assert_int_equal(provider_chain_can(cfg, NULL, "replicate", &small, &field), 0);
    assert_string_equal(field, "width");
    provider_needs_t square = {.width = 1024, .height = 1024},
                     wide = {.width = 1344, .height = 768};
    assert_int_equal(provider_chain_can(cfg, NULL, "replicate", &square, &field), 1);
    assert_int_equal(provider_chain_can(cfg, NULL, "replicate", &wide, &field), 1);
    const char *ratio = NULL, *mp = NULL;
    assert_int_equal(provider_ratio_size(1344, 768, &ratio, &mp), 1);
    assert_string_equal(ratio, "16:9");
    assert_string_equal(mp, "1");
    assert_int_equal(provider_ratio_size(512, 512, &ratio, &mp), 1);
    assert_string_equal(ratio, "1:1");
    assert_string_equal(mp, "0.25");
    assert_int_equal(provider_ratio_size(768, 768, &ratio, &mp), 0);
    assert_int_equal(text.refs, 0);
    assert_string_equal(pose.model, "black-forest-labs/flux-2-dev");
    assert_true(pose.refs >= 2);
    provider_needs_t both = {.identity = 1, .pose = 1, .width = 1024, .height = 1024};
    assert_int_equal(provider_chain_can(cfg, NULL, "replicate", &both, &field), 1);
    gf_cfg_free(cfg);
    /* Kontext takes one reference: the pose, but not the person too. */
    cfg = config((const char *const[]){
        "FARM_REPLICATE_TOKEN=r8_x", "FARM_PROVIDER=replicate",
        "FARM_REPLICATE_POSE_MODEL=black-forest-labs/flux-kontext-dev", NULL});
    assert_int_equal(provider_chain_can(cfg, NULL, NULL, &both, &field), 0);
    assert_string_equal(field, "identity");
    gf_cfg_free(cfg);
    /* A list naming an unknown provider is refused. */
    gf_err_t err = {0};
    assert_null(gf_cfg_load((char *const[]){"FARM_PROVIDER_FALLBACK=hf,replicat", NULL}, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_keeps_the_fallback_order_of_providers_with_a_token),
        cmocka_unit_test(test_auto_without_a_token_is_local_alone),
        cmocka_unit_test(test_auto_with_tokens_none_listed_is_refused),
        cmocka_unit_test(test_fake_takes_the_remote_ones_of_the_list),
        cmocka_unit_test(test_a_named_provider_is_alone),
        cmocka_unit_test(test_bfl_flux1_takes_steps_of_32),
        cmocka_unit_test(test_replicate_joins_the_chain_with_its_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
