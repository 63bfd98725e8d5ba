/*
 * tests/unit/core/test_config_parse.c - core/config_parse.c: the settings
 * read beyond their table row (tier and plan lists, the queue's name and
 * Redis database, the provider chain, FARM_CORS_ORIGINS) and the settings
 * that must agree with each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config_util.h"

/* --- structured values ------------------------------------------------------------ */

static void test_tiers_are_parsed_exactly(void **state)
{
    (void)state;
    gf_err_t err = {0};
    gf_config_t *cfg = cu_load_one("FARM_QUEUE_TIERS=pro:4:10,free_2:1:3,b-x:1000:1000000", &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_tiers, 3);
    assert_string_equal(cfg->tiers[1].name, "free_2");
    assert_int_equal(cfg->tiers[2].weight, 1000);
    assert_int_equal(cfg->tiers[2].cap, 1000000);
    gf_cfg_free(cfg);
    static const char *const bad[] = {
        "FARM_QUEUE_TIERS=",
        "FARM_QUEUE_TIERS=pro:4",
        "FARM_QUEUE_TIERS=pro:0:10",
        "FARM_QUEUE_TIERS=pro:4:x",
        "FARM_QUEUE_TIERS=:1:1",
        "FARM_QUEUE_TIERS=pro:4:10,",
        "FARM_QUEUE_TIERS=pro: 4: +10",
        "FARM_QUEUE_TIERS=pro:4:10;free:1:3",
        "FARM_QUEUE_TIERS=pro:1001:1",
        "FARM_QUEUE_TIERS=pro:1:1000001",
        "FARM_QUEUE_TIERS=pro:99999999999999999999:1",
        "FARM_QUEUE_TIERS=a:1:1,b:1:1,c:1:1,d:1:1,e:1:1,f:1:1,g:1:1,h:1:1,i:1:1",
        "FARM_QUEUE_TIERS=abcdefghijklmnopqrstuvwxyz0123456:1:1", /* 33 characters */
        "FARM_QUEUE_TIERS=p'r:1:1",
        "FARM_QUEUE_TIERS=Pro:4:10,free:1:3", /* no token's plan is ever "Pro" */
    };
    ALL_REFUSED(bad, "FARM_QUEUE_TIERS");
    /* A tier named twice would get the second's cap and both weights. */
    cu_refused("FARM_QUEUE_TIERS=pro:4:10,pro:1:1", "tier pro is named twice");
}

/* Settings in range each but contradicting each other are refused, naming both. */
static void test_contradicting_settings_are_refused(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"FARM_PROVIDER_BACKOFF_BASE_MS=5000", "FARM_PROVIDER_BACKOFF_CAP_MS=1000",
         "FARM_PROVIDER_BACKOFF_CAP_MS"},
        {"FARM_PROVIDER_POLL_MIN_MS=6000", "FARM_PROVIDER_POLL_MAX_MS=5000",
         "FARM_PROVIDER_POLL_MAX_MS"},
        {"FARM_UPLOAD_MAX_BYTES=268435456", "FARM_UPLOAD_MAX_INFLIGHT_BYTES=1048576",
         "FARM_UPLOAD_MAX_INFLIGHT_BYTES"},
        {"FARM_UPLOAD_MAX_BYTES=8388608", "FARM_STORAGE_MAX_OBJECT_BYTES=4194304",
         "FARM_STORAGE_MAX_OBJECT_BYTES"},
        {"FARM_API_PROCESSES=4", "FARM_API_PORT=0", "FARM_API_PORT"},
        /* Two settings of one limit: the list's would win, the other be dropped in silence. */
        {"FARM_RATE_LIMIT_PER_MIN=5", "FARM_RATE_LIMITS=generations=600/100", "FARM_RATE_LIMITS"},
        {"FARM_RATE_LIMIT_BURST=5", "FARM_RATE_LIMITS=uploads=30/10,generations=600/100",
         "generations="},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *envp[] = {(char *)cases[i][0], (char *)cases[i][1], NULL};
        gf_err_t err = cu_load_refused(envp);
        char first[64];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(cases[i][0], "="), cases[i][0]);
        if (strstr(err.msg, first) == NULL || strstr(err.msg, cases[i][2]) == NULL)
            fail_msg("%s %s: refused with \"%s\"", cases[i][0], cases[i][1], err.msg);
    }
    /* Equal is fine; so is one process on any port. */
    char *equal[] = {"FARM_PROVIDER_POLL_MIN_MS=5000", "FARM_PROVIDER_POLL_MAX_MS=5000",
                     "FARM_API_PROCESSES=1", "FARM_API_PORT=0", NULL};
    gf_config_t *cfg = gf_cfg_load(equal, NULL);
    assert_non_null(cfg);
    gf_cfg_free(cfg);
    /* The generations limit of one plan in the list, the variables for the others: both
     * act. */
    char *one_plan[] = {"FARM_RATE_LIMIT_PER_MIN=5", "FARM_RATE_LIMITS=pro.generations=600/100",
                        NULL};
    cfg = gf_cfg_load(one_plan, NULL);
    assert_non_null(cfg);
    gf_cfg_free(cfg);
}

/* CORS origins are compared with the browser's Origin as they are: one that could never
 * match is refused. */
static void test_cors_origins_are_origins(void **state)
{
    (void)state;
    static const char *const good[] = {
        "FARM_CORS_ORIGINS=",
        "FARM_CORS_ORIGINS=*",
        "FARM_CORS_ORIGINS=https://app.example.com",
        "FARM_CORS_ORIGINS=https://app.example.com, http://localhost:5173,http://[::1]:8080",
        "FARM_CORS_ORIGINS=http://127.0.0.1:3000",
        "FARM_CORS_ORIGINS=capacitor://localhost,chrome-extension://abcdef,null",
        "FARM_CORS_ORIGINS=https://my_app.example.com,",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        gf_err_t err = {0};
        gf_config_t *cfg = cu_load_one(good[i], &err);
        if (cfg == NULL)
            fail_msg("%s: %s", good[i], err.msg);
        gf_cfg_free(cfg);
    }
    static const char *const bad[] = {"FARM_CORS_ORIGINS=https://app.example.com/",
                                      "FARM_CORS_ORIGINS=app.example.com",
                                      "FARM_CORS_ORIGINS=https://App.example.com",
                                      "FARM_CORS_ORIGINS=https://a.com, *",
                                      "FARM_CORS_ORIGINS=https://*.example.com",
                                      "FARM_CORS_ORIGINS=https://a.com/app",
                                      "FARM_CORS_ORIGINS=HTTPS://a.com",
                                      "FARM_CORS_ORIGINS=1http://a.com",
                                      "FARM_CORS_ORIGINS=Null",
                                      "FARM_CORS_ORIGINS=https://a.com:",
                                      "FARM_CORS_ORIGINS=https://a.com:123456",
                                      "FARM_CORS_ORIGINS=https://[::1",
                                      "FARM_CORS_ORIGINS=https://"};
    ALL_REFUSED(bad, "FARM_CORS_ORIGINS");
}

static void test_upload_quotas_per_plan(void **state)
{
    (void)state;
    gf_err_t err = {0};
    long long count, bytes;
    /* the default: 500 uploads and 1 GiB for every plan */
    gf_config_t *cfg = cu_load_one("FARM_LOG_LEVEL=info", &err);
    assert_non_null(cfg);
    gf_cfg_upload_quota(cfg, "pro", &count, &bytes);
    assert_int_equal(count, 500);
    assert_int_equal(bytes, 1073741824LL);
    gf_cfg_free(cfg);
    cfg = cu_load_one(
        "FARM_UPLOAD_QUOTAS=count=20,bytes=1000,pro.count=0,pro.bytes=999999999999999", &err);
    assert_non_null(cfg);
    gf_cfg_upload_quota(cfg, "free", &count, &bytes);
    assert_int_equal(count, 20);
    assert_int_equal(bytes, 1000);
    gf_cfg_upload_quota(cfg, "pro", &count, &bytes); /* 0 lifts the quota for the plan */
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 999999999999999LL);
    gf_cfg_free(cfg);
    cfg = cu_load_one("FARM_UPLOAD_QUOTAS=pro.count=3", &err); /* axes not listed: no quota */
    assert_non_null(cfg);
    gf_cfg_upload_quota(cfg, "free", &count, &bytes);
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 0);
    gf_cfg_upload_quota(cfg, "pro", &count, &bytes);
    assert_int_equal(count, 3);
    gf_cfg_free(cfg);
    static const char *const bad[] = {
        "FARM_UPLOAD_QUOTAS=count",           "FARM_UPLOAD_QUOTAS=count=",
        "FARM_UPLOAD_QUOTAS=count=-1",        "FARM_UPLOAD_QUOTAS=bytes=1G",
        "FARM_UPLOAD_QUOTAS=files=2",         "FARM_UPLOAD_QUOTAS=count=1,",
        "FARM_UPLOAD_QUOTAS=gold.count=1",    "FARM_UPLOAD_QUOTAS=count=1000000000000000",
        "FARM_UPLOAD_QUOTAS=count=1;bytes=1",
    };
    ALL_REFUSED(bad, "FARM_UPLOAD_QUOTAS");
    cu_refused("FARM_UPLOAD_QUOTAS=pro.bytes=1,pro.bytes=2", "pro.bytes is named twice");
}

static void test_queue_name_is_a_plain_name(void **state)
{
    (void)state;
    cu_accepted("FARM_QUEUE_NAME=farm.prod-1_a");
    static const char *const bad[] = {
        "FARM_QUEUE_NAME=", "FARM_QUEUE_NAME=bad{name}", "FARM_QUEUE_NAME=a:b",
        "FARM_QUEUE_NAME=a b",
        "FARM_QUEUE_NAME="
        "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq" /* 65 */};
    ALL_REFUSED(bad, "FARM_QUEUE_NAME");
}

static void test_redis_database_is_0_to_15(void **state)
{
    (void)state;
    static const struct {
        const char *var;
        int db;
    } ok[] = {{"FARM_REDIS_URL=redis://h:1/15", 15},
              {"FARM_REDIS_URL=redis://h:1/", 0},
              {"FARM_REDIS_URL=redis://h:1", 0},
              {"FARM_REDIS_URL=redis://h/3", 3}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        gf_err_t err = {0};
        gf_config_t *cfg = cu_load_one(ok[i].var, &err);
        assert_non_null(cfg);
        assert_int_equal(cfg->redis_db, ok[i].db);
        gf_cfg_free(cfg);
    }
    static const char *const bad[] = {
        "FARM_REDIS_URL=redis://h/abc", "FARM_REDIS_URL=redis://h/-1",
        "FARM_REDIS_URL=redis://h/3x",  "FARM_REDIS_URL=redis://h/1?x",
        "FARM_REDIS_URL=redis://h/16",  "FARM_REDIS_URL=redis://h/99999999999"};
    ALL_REFUSED(bad, "database number");
}

static void test_provider_fallback_names_known_providers_once(void **state)
{
    (void)state;
    cu_accepted("FARM_PROVIDER_FALLBACK=bfl,local");
    static const char *const bad[] = {
        "FARM_PROVIDER_FALLBACK=hf,fool", "FARM_PROVIDER_FALLBACK=hf, fal",
        "FARM_PROVIDER_FALLBACK=hf,hf", "FARM_PROVIDER_FALLBACK=", "FARM_PROVIDER_FALLBACK=hf,"};
    ALL_REFUSED(bad, "FARM_PROVIDER_FALLBACK");
    /* Only auto and fake read the list: beside a single provider it would be dropped. */
    char *with_auto[] = {"FARM_PROVIDER=auto", "FARM_PROVIDER_FALLBACK=fal,hf", NULL};
    char *with_fake[] = {"FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=fal,hf", NULL};
    char *alone[] = {"FARM_PROVIDER=hf", NULL};
    char *const *fine[] = {with_auto, with_fake, alone};
    for (size_t i = 0; i < 3; i++) {
        gf_config_t *cfg = gf_cfg_load(fine[i], NULL);
        assert_non_null(cfg);
        gf_cfg_free(cfg);
    }
    static const char *const single[] = {"hf", "fal", "bfl", "replicate", "local"};
    for (size_t i = 0; i < 5; i++) {
        char provider[64];
        snprintf(provider, sizeof(provider), "FARM_PROVIDER=%s", single[i]);
        char *envp[] = {provider, "FARM_PROVIDER_FALLBACK=fal,hf", NULL};
        gf_err_t err = cu_load_refused(envp);
        if (strstr(err.msg, "FARM_PROVIDER_FALLBACK") == NULL || strstr(err.msg, single[i]) == NULL)
            fail_msg("%s: refused with \"%s\"", provider, err.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiers_are_parsed_exactly),
        cmocka_unit_test_teardown(test_contradicting_settings_are_refused, cu_teardown),
        cmocka_unit_test_teardown(test_cors_origins_are_origins, cu_teardown),
        cmocka_unit_test(test_upload_quotas_per_plan),
        cmocka_unit_test(test_queue_name_is_a_plain_name),
        cmocka_unit_test(test_redis_database_is_0_to_15),
        cmocka_unit_test(test_provider_fallback_names_known_providers_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
