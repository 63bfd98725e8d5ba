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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_keeps_the_fallback_order_of_providers_with_a_token),
        cmocka_unit_test(test_auto_without_a_token_is_local_alone),
        cmocka_unit_test(test_auto_with_tokens_none_listed_is_refused),
        cmocka_unit_test(test_fake_takes_the_remote_ones_of_the_list),
        cmocka_unit_test(test_a_named_provider_is_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
