/*
 * tests/unit/queue/test_script.c - queue/script.c: the tiers of plans, the
 * function library with the settings compiled in, and the argv of a call.
 * (FARM_QUEUE_TIERS and FARM_QUEUE_NAME are checked by the config loader:
 * tests/unit/core/test_config.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script.h"

static gf_config_t *cfg_with(const char *tiers, const char *name)
{
    char t[256], n[128];
    snprintf(t, sizeof(t), "FARM_QUEUE_TIERS=%s", tiers);
    snprintf(n, sizeof(n), "FARM_QUEUE_NAME=%s", name);
    char *env[] = {t, n, NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(env, &err);
    assert_non_null(cfg);
    return cfg;
}

static void test_script_argv_layout(void **state)
{
    (void)state;
    gf_config_t *cfg = cfg_with("pro:4:10,free:1:3", "farm");
    queue__conf_t c;
    assert_int_equal(queue__conf_init(&c, cfg, NULL), 0);
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &c, QS_CANCEL);
    queue__cmd_str(&cmd, "gen-1");
    /* FCALL this library's function, 1 key (the tag), then the op's own arguments. */
    assert_string_equal(cmd.argv[0], "FCALL");
    assert_string_equal(cmd.argv[1], c.fname[QS_CANCEL]);
    assert_string_equal(cmd.argv[2], "1");
    assert_string_equal(cmd.argv[3], "{farm}");
    assert_string_equal(cmd.argv[4], "gen-1");
    assert_int_equal(cmd.argc, 5);
    /* The library is named for its text and registers every operation under that name. */
    assert_int_equal(strncmp(c.lib, "#!lua name=", 11), 0);
    assert_int_equal(strncmp(c.lib + 11, c.lib_name, strlen(c.lib_name)), 0);
    char reg[128];
    snprintf(reg, sizeof(reg), "redis.register_function{function_name = '%s_cancel',", c.lib_name);
    const char *at = strstr(c.lib, reg);
    assert_non_null(at);
    /* A write is not flagged no-writes; the reads are. */
    const char *end = strstr(at, "end}");
    assert_non_null(end);
    assert_int_equal(strncmp(end, "end}\n", 5), 0);
    snprintf(reg, sizeof(reg), "redis.register_function{function_name = '%s_events',", c.lib_name);
    at = strstr(c.lib, reg);
    assert_non_null(at);
    assert_non_null(strstr(at, "flags = {'no-writes'}}"));
    assert_non_null(strstr(c.lib, queue__lua_body[QS_CANCEL]));
    assert_non_null(strstr(c.lib, queue__lua_common));
    /* The settings are compiled into the text. */
    assert_non_null(strstr(c.lib, "= 30000, 3, 1000\n"));
    assert_non_null(strstr(c.lib, "{name = 'pro', weight = 4, cap = 10}"));
    /* Other settings are another library, with other function names. */
    gf_config_t *cfg2 = cfg_with("pro:4:11,free:1:3", "farm");
    queue__conf_t c2;
    assert_int_equal(queue__conf_init(&c2, cfg2, NULL), 0);
    assert_string_not_equal(c.lib_name, c2.lib_name);
    assert_string_not_equal(c.fname[QS_CANCEL], c2.fname[QS_CANCEL]);
    queue__conf_dispose(&c2);
    gf_cfg_free(cfg2);
    queue__conf_dispose(&c);
    gf_cfg_free(cfg);
}

static void test_enqueue_refuses_ids_that_would_break_keys(void **state)
{
    (void)state;
    gf_config_t *cfg = cfg_with("pro:4:10", "farm");
    queue__conf_t c;
    assert_int_equal(queue__conf_init(&c, cfg, NULL), 0);
    queue__cmd_t cmd;
    gf_buf_t d = {0};
    queue_enqueue_req_t req = {.gen_id = "g 1", .user_id = "u", .tier = "pro"};
    assert_int_equal(queue__cmd_enqueue(&cmd, &c, &req, &d, NULL), GF_EINVAL);
    req.gen_id = "g{1}";
    assert_int_equal(queue__cmd_enqueue(&cmd, &c, &req, &d, NULL), GF_EINVAL);
    req.gen_id = "0b7e1c1e-8f7a-4c1e-9d0e-2f0c3f1a7b21";
    req.deadline_ms = -1;
    assert_int_equal(queue__cmd_enqueue(&cmd, &c, &req, &d, NULL), GF_EINVAL);
    req.deadline_ms = 0;
    assert_int_equal(queue__cmd_enqueue(&cmd, &c, &req, &d, NULL), 0);
    /* Arguments: id, user, tier, the job's data packed as the queue stores
     * it (user, tier, deadline, creation time (now, this clock), payload), and
     * the token floor (0: a new generation). */
    assert_int_equal(cmd.argc, QUEUE_CMD_HEAD + 5);
    assert_string_equal(cmd.argv[QUEUE_CMD_HEAD + 4], "0");
    assert_string_equal(cmd.argv[QUEUE_CMD_HEAD + 1], "u");
    const char *jd = cmd.argv[QUEUE_CMD_HEAD + 3];
    assert_int_equal(strncmp(jd, "u\npro\n0\n", 8), 0);
    char *end = NULL;
    long long created = strtoll(jd + 8, &end, 10);
    assert_true(created > 1700000000000LL && created < 4102444800000LL);
    assert_string_equal(end, "\n{}");
    assert_int_equal(cmd.len[QUEUE_CMD_HEAD + 3], strlen(jd));
    req.deadline_ms = 1700000000123LL;
    req.payload = "{\"prompt\":\"a\nb\"}";
    assert_int_equal(queue__cmd_enqueue(&cmd, &c, &req, &d, NULL), 0);
    jd = cmd.argv[QUEUE_CMD_HEAD + 3];
    assert_int_equal(strncmp(jd, "u\npro\n1700000000123\n", 20), 0);
    end = strchr(jd + 20, '\n');
    assert_non_null(end);
    assert_string_equal(end, "\n{\"prompt\":\"a\nb\"}");
    req.token_floor = 7; /* the sweeper's, for a job the queue lost: Postgres's fence */
    assert_int_equal(queue__cmd_enqueue(&cmd, &c, &req, &d, NULL), 0);
    assert_string_equal(cmd.argv[QUEUE_CMD_HEAD + 4], "7");
    gf_buf_dispose(&d);
    assert_true(queue_state_is_terminal("dead"));
    assert_false(queue_state_is_terminal("running"));
    queue__conf_dispose(&c);
    gf_cfg_free(cfg);
}

static void test_unknown_plans_fall_back_to_the_free_tier(void **state)
{
    (void)state;
    gf_config_t *cfg = cfg_with("pro:4:10,free:1:3", "farm");
    assert_string_equal(queue_tier_of(cfg, "pro"), "pro");
    assert_string_equal(queue_tier_of(cfg, "free"), "free");
    assert_string_equal(queue_tier_of(cfg, "enterprise"), "free");
    assert_string_equal(queue_tier_of(cfg, "pr"), "free"); /* a prefix is not a tier */
    assert_string_equal(queue_tier_of(cfg, "pro:4"), "free");
    assert_string_equal(queue_tier_of(cfg, NULL), "free");
    gf_cfg_free(cfg);
    /* Without a free tier, the last one: a job must never be left without a tier. */
    cfg = cfg_with("gold:4:10,silver:1:3", "farm");
    assert_string_equal(queue_tier_of(cfg, "gold"), "gold");
    assert_string_equal(queue_tier_of(cfg, "free"), "silver");
    assert_string_equal(queue_tier_of(cfg, NULL), "silver");
    gf_cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_plans_fall_back_to_the_free_tier),
        cmocka_unit_test(test_script_argv_layout),
        cmocka_unit_test(test_enqueue_refuses_ids_that_would_break_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
