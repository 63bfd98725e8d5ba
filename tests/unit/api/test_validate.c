/*
 * tests/unit/api/test_validate.c - api/validate.c: what a request gets
 * beyond imaging's parameter checks (tests/unit/imaging/test_params.c):
 * only a provider of the configured chain may be named, a seed is drawn
 * when none is given (and kept when one is), the unit cost of its kind,
 * the payload the queue and Postgres receive, and an error naming its field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "validate.h"
#include "presets_util.h"

/* FARM_PROVIDER=provider alone: a single provider reads no fallback list (it is refused). */
static gf_config_t *config(const char *provider)
{
    char p[64];
    snprintf(p, sizeof(p), "FARM_PROVIDER=%s", provider);
    char *env[] = {p, "FARM_COST_AVATAR=7", "FARM_COST_POSE=19", NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(env, &err);
    if (cfg == NULL)
        fail_msg("config refused: %s", err.msg);
    return cfg;
}

static int validate(const gf_config_t *cfg, const char *body, api_gen_req_t *g)
{
    return api_gen_validate(body, strlen(body), cfg, pu_presets, g);
}

static void test_a_provider_outside_the_chain_is_refused(void **state)
{
    (void)state;
    gf_config_t *cfg = config("local");
    api_gen_req_t g;
    assert_int_equal(
        validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"provider\":\"hf\"}", &g),
        GF_EINVAL);
    assert_string_equal(g.field, "provider");
    assert_null(g.payload);
    api_gen_req_dispose(&g);
    assert_int_equal(
        validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"provider\":\"local\"}", &g), 0);
    api_gen_req_dispose(&g);
    assert_int_equal(
        validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"provider\":\"auto\"}", &g), 0);
    api_gen_req_dispose(&g);
    gf_cfg_free(cfg);
}

/*
 * A webhook_url on a farm that cannot sign webhooks (no FARM_WEBHOOK_SECRET) is
 * a valid input the farm cannot honour: 400 unsupported naming it, not
 * invalid_request, which tells the client to fix its input. A URL that is
 * not acceptable is invalid_request either way.
 */
static void test_a_webhook_url_without_a_secret_is_unsupported(void **state)
{
    (void)state;
    gf_config_t *cfg = config("local");
    api_gen_req_t g;
    assert_int_equal(validate(cfg,
                              "{\"kind\":\"avatar\",\"prompt\":\"a cat\","
                              "\"webhook_url\":\"https://hooks.example.com/genfarm\"}",
                              &g),
                     GF_EINVAL);
    assert_string_equal(g.field, "webhook_url");
    assert_true(g.unsupported);
    assert_null(g.payload);
    api_gen_req_dispose(&g);
    /* A URL the farm refuses anyway is invalid_request, secret or none. */
    const char *bad[] = {"https://", "https://10.0.0.1/hook", "http://hooks.example.com/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[160];
        snprintf(body, sizeof(body),
                 "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"webhook_url\":\"%s\"}", bad[i]);
        assert_int_equal(validate(cfg, body, &g), GF_EINVAL);
        assert_string_equal(g.field, "webhook_url");
        assert_false(g.unsupported);
        api_gen_req_dispose(&g);
    }
    gf_cfg_free(cfg);
    char *env[] = {"FARM_PROVIDER=local",
                   "FARM_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL};
    gf_err_t err = {0};
    cfg = gf_cfg_load(env, &err);
    assert_non_null(cfg);
    assert_int_equal(validate(cfg,
                              "{\"kind\":\"avatar\",\"prompt\":\"a cat\","
                              "\"webhook_url\":\"http://hooks.example.com/genfarm\"}",
                              &g),
                     GF_EINVAL);
    assert_string_equal(g.field, "webhook_url");
    assert_false(g.unsupported);
    api_gen_req_dispose(&g);
    assert_int_equal(validate(cfg,
                              "{\"kind\":\"avatar\",\"prompt\":\"a cat\","
                              "\"webhook_url\":\"https://hooks.example.com/genfarm\"}",
                              &g),
                     0);
    api_gen_req_dispose(&g);
    gf_cfg_free(cfg);
}

static void test_a_seed_is_drawn_when_none_is_given_and_kept_when_one_is(void **state)
{
    (void)state;
    gf_config_t *cfg = config("local");
    api_gen_req_t g;
    assert_int_equal(validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"a cat\"}", &g), 0);
    assert_true(g.params.seed >= 0 && g.params.seed <= 4294967295LL);
    /* The drawn seed is the one the worker will read back from the payload. */
    json_t *payload = json_loads(g.payload, 0, NULL);
    assert_non_null(payload);
    assert_int_equal(json_integer_value(json_object_get(payload, "seed")), g.params.seed);
    json_decref(payload);
    api_gen_req_dispose(&g);

    assert_int_equal(validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"seed\":42}", &g),
                     0);
    assert_int_equal(g.params.seed, 42);
    api_gen_req_dispose(&g);
    gf_cfg_free(cfg);
}

static void test_the_unit_cost_is_the_kinds(void **state)
{
    (void)state;
    gf_config_t *cfg = config("local");
    api_gen_req_t g;
    assert_int_equal(validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"count\":3}", &g),
                     0);
    assert_int_equal(g.unit_cost, 7);
    assert_int_equal(g.params.images, 3);
    api_gen_req_dispose(&g);
    const img_pose_preset *pose = img_presets_pose(pu_presets, 0);
    assert_non_null(pose);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"a cat\",\"poses\":[{\"preset\":\"%s\"}]}",
             pose->name);
    assert_int_equal(validate(cfg, body, &g), 0);
    assert_int_equal(g.unit_cost, 19);
    api_gen_req_dispose(&g);
    gf_cfg_free(cfg);
}

static void test_a_refused_body_names_its_field_and_builds_nothing(void **state)
{
    (void)state;
    gf_config_t *cfg = config("local");
    api_gen_req_t g;
    assert_int_equal(validate(cfg, "{\"kind\":\"avatar\",\"prompt\":\"\"}", &g), GF_EINVAL);
    assert_string_equal(g.field, "prompt");
    assert_true(strlen(g.message) > 0);
    assert_null(g.payload);
    api_gen_req_dispose(&g);
    assert_int_equal(validate(cfg, "not json", &g), GF_EINVAL);
    assert_string_equal(g.field, "");
    api_gen_req_dispose(&g);
    gf_cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_provider_outside_the_chain_is_refused),
        cmocka_unit_test(test_a_webhook_url_without_a_secret_is_unsupported),
        cmocka_unit_test(test_a_seed_is_drawn_when_none_is_given_and_kept_when_one_is),
        cmocka_unit_test(test_the_unit_cost_is_the_kinds),
        cmocka_unit_test(test_a_refused_body_names_its_field_and_builds_nothing),
    };
    return cmocka_run_group_tests(tests, pu_presets_setup, pu_presets_teardown);
}
