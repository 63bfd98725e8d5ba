/*
 * tests/integration/queue/foreign.c - the queue against what this version of
 * its functions did not write, on the fixture's real Redis: jobs of the
 * previous version (both run side by side during a rolling deploy), function
 * libraries of other versions, and keys deleted by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "queue_util.h"
#include "support.h"

typedef qt_sync_fx_t fx_t;

/* An integer command on one key, e.g. "LLEN", "{farm}:t:pro:ring". */
static long long redis_int_key(const char *cmd, const char *key)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s %s", cmd, key);
    return qt_redis_int(buf);
}

/*
 * Jobs written by the previous version of the queue's functions: no 'u' and
 * 't' fields, user and tier in 'd' only. During a rolling deploy both
 * versions share the jobs, so this version must run them to the end.
 */
static void old_job(const char *tag, const char *gen, const char *state, int ready)
{
    char jk[128], qk[128], rk[128], ak[128];
    snprintf(jk, sizeof(jk), "%s:j:%s", tag, gen);
    snprintf(qk, sizeof(qk), "%s:t:pro:u:old-user", tag);
    snprintf(rk, sizeof(rk), "%s:t:pro:ring", tag);
    snprintf(ak, sizeof(ak), "%s:a:old-user", tag);
    const char *hset[] = {
        "HSET", jk,
        "s",    state,
        "d",    "old-user\npro\n0\n1700000000000\n{\"prompt\":\"from before\"}",
        "n",    "1",
        "1",    "queued\n1700000000000\n{\"status\":\"queued\",\"queue_position\":0}",
        NULL};
    assert_true(qt_redis_argv(hset));
    if (ready) {
        const char *push[] = {"RPUSH", qk, gen, NULL};
        const char *depth[] = {"HINCRBY", NULL, "pro", "1", NULL};
        char dk[128];
        snprintf(dk, sizeof(dk), "%s:depth", tag);
        depth[1] = dk;
        assert_true(qt_redis_argv(push));
        assert_true(qt_redis_argv(depth));
        if (redis_int_key("LLEN", rk) == 0) {
            const char *ring[] = {"RPUSH", rk, "old-user", NULL};
            assert_true(qt_redis_argv(ring));
        }
    }
    const char *active[] = {"INCRBY", ak, "1", NULL};
    assert_true(qt_redis_argv(active));
}

static void test_jobs_from_the_previous_version_still_run(void **state)
{
    fx_t *fx = *state;
    char tag[80], a[64], b[64], dead[64], ak[128];
    snprintf(tag, sizeof(tag), "{%s}", fx->cfg->queue_name);
    snprintf(ak, sizeof(ak), "%s:a:old-user", tag);
    old_job(tag, qt_id(a, sizeof(a), "old"), "queued", 1);
    old_job(tag, qt_id(b, sizeof(b), "old"), "queued", 1);
    queue_result_t res;
    assert_int_equal(queue_sync_position(fx->qs, b, &res, NULL), 0);
    assert_int_equal(res.position, 1);
    /* A repeated enqueue reports it as it is. */
    queue_enqueue_req_t req = {.gen_id = b, .user_id = "old-user", .tier = "pro"};
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    assert_false(res.created);
    assert_int_equal(res.position, 1);

    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    assert_string_equal(c.jobs[0].gen_id, a);
    assert_string_equal(c.jobs[0].user_id, "old-user");
    assert_string_equal(c.jobs[0].tier, "pro");
    assert_string_equal(c.jobs[0].payload, "{\"prompt\":\"from before\"}");
    assert_int_equal(c.jobs[0].deadline_ms, 0);
    assert_int_equal(
        queue_sync_event_append(fx->qs, a, c.jobs[0].token, "progress", "{}", &res, NULL), 0);
    assert_int_equal(queue_sync_finish(fx->qs, a, c.jobs[0].token, QUEUE_DONE, NULL, &res, NULL),
                     0);
    assert_string_equal(res.state, "done");
    queue_claim_dispose(&c);
    /* Its events went to its user's stream; the active count went down. */
    queue_events_t ev;
    assert_int_equal(queue_sync_user_events_read(fx->qs, "old-user", "0", 10, &ev, NULL), 0);
    assert_int_equal(ev.n, 2); /* progress, done (the old 'queued' was written by hand) */
    queue_events_dispose(&ev);
    assert_int_equal(redis_int_key("EXISTS", ak), 1);
    char incr0[160];
    snprintf(incr0, sizeof(incr0), "INCRBY %s 0", ak);
    assert_int_equal(qt_redis_int(incr0), 1); /* b is still active */

    assert_int_equal(queue_sync_cancel(fx->qs, b, &res, NULL), 0);
    assert_string_equal(res.state, "canceled");
    assert_int_equal(redis_int_key("EXISTS", ak), 0);

    /* A dead letter of the old version lists with its user and tier. */
    old_job(tag, qt_id(dead, sizeof(dead), "old"), "dead", 0);
    const char *zadd[] = {"ZADD", NULL, "9999999999999", dead, NULL};
    char dk[128];
    snprintf(dk, sizeof(dk), "%s:dead", tag);
    zadd[1] = dk;
    assert_true(qt_redis_argv(zadd));
    queue_dead_list_t dl;
    assert_int_equal(queue_sync_dead_list(fx->qs, 10, &dl, NULL), 0);
    assert_int_equal(dl.n, 1);
    assert_string_equal(dl.items[0].gen_id, dead);
    assert_string_equal(dl.items[0].user_id, "old-user");
    assert_string_equal(dl.items[0].tier, "pro");
    queue_dead_list_dispose(&dl);
}

/* A job hash deleted by hand (an operator's redis-cli) does not break claims. */
static void test_a_job_deleted_by_hand_is_skipped(void **state)
{
    fx_t *fx = *state;
    char tag[80], gone[64], leased[64], next[64], key[160];
    snprintf(tag, sizeof(tag), "{%s}", fx->cfg->queue_name);
    qt_enqueue(fx->qs, qt_id(leased, sizeof(leased), "byhand"), "hand-user", "pro");
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    queue_claim_dispose(&c);
    qt_enqueue(fx->qs, qt_id(gone, sizeof(gone), "byhand"), "hand-user", "pro");
    qt_enqueue(fx->qs, qt_id(next, sizeof(next), "byhand"), "hand-user", "pro");
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof(key), "DEL %s:j:%s", tag, i == 0 ? leased : gone);
        assert_int_equal(qt_redis_int(key), 1);
    }
    /* And a user ahead in the ring whose whole queue was deleted. */
    char lost[64];
    qt_enqueue(fx->qs, qt_id(lost, sizeof(lost), "byhand"), "hand-lost", "pro");
    snprintf(key, sizeof(key), "DEL %s:t:pro:u:hand-lost", tag);
    assert_int_equal(qt_redis_int(key), 1);
    qt_sleep_ms(1200); /* the lease (1 s) runs out */
    assert_int_equal(queue_sync_claim(fx->qs, "w", 4, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    assert_string_equal(c.jobs[0].gen_id, next);
    queue_claim_dispose(&c);
    snprintf(key, sizeof(key), "ZRANK %s:leases %s", tag, next);
    assert_true(qt_redis_int(key) >= 0); /* a lease is found this way... */
    snprintf(key, sizeof(key), "ZRANK %s:leases %s", tag, leased);
    assert_int_equal(qt_redis_int(key), -1); /* ...and the orphan's is gone (nil) */
    snprintf(key, sizeof(key), "EXISTS %s:j:%s", tag, leased);
    assert_int_equal(qt_redis_int(key), 0); /* with nothing left behind */
    snprintf(key, sizeof(key), "LPOS %s:t:pro:ring hand-lost", tag);
    assert_int_equal(qt_redis_int(key), -1); /* the user without a queue left the ring */
}

/*
 * A tier removed from FARM_QUEUE_TIERS (free, here renamed basic) while it still had a job: the
 * processes on the new settings answer that job's position and a repeated enqueue (they used to
 * fail on the unknown tier), and their claims serve it, at weight 1 against pro's 4.
 */
static void test_a_tier_no_longer_configured_is_answered_and_served(void **state)
{
    fx_t *fx = *state;
    char tag[80], gen[64], pro[64], cmd[160];
    snprintf(tag, sizeof(tag), "{%s}", fx->cfg->queue_name);
    assert_int_equal(qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "gone-tier"), "tier-a", "free"), 0);
    static const char *const other_env[] = {"FARM_QUEUE_TIERS=pro:4:10,basic:1:3", NULL};
    gf_config_t *cfg2 = qt_cfg(other_env);
    gf_err_t err = {0};
    queue_sync_t *qs2 = queue_sync_new(cfg2, &err);
    assert_non_null(qs2);
    qt_enqueue(qs2, qt_id(pro, sizeof(pro), "gone-tier"), "tier-b", "pro");

    /* One pro job goes first (pro's 4 per free's 1, counted at weight 1). */
    queue_result_t res;
    assert_int_equal(queue_sync_position(qs2, gen, &res, &err), 0);
    assert_string_equal(res.state, "queued");
    assert_int_equal(res.position, 1);
    queue_positions_t ps;
    const char *ids[] = {gen};
    assert_int_equal(queue_sync_positions(qs2, ids, 1, &ps, &err), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(ps.items[0].state, "queued");
    assert_int_equal(ps.items[0].position, 1);
    queue_positions_dispose(&ps);
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = "tier-a", .tier = "free"};
    assert_int_equal(queue_sync_enqueue(qs2, &req, &res, &err), 0);
    assert_false(res.created);
    assert_string_equal(res.state, "queued");
    assert_int_equal(res.position, 1);
    /* A new job of the unknown tier is still refused. */
    char other[64];
    req.gen_id = qt_id(other, sizeof(other), "gone-tier");
    assert_int_equal(queue_sync_enqueue(qs2, &req, &res, &err), GF_EINVAL);
    /* The stats (the depth gauges, the autoscaler's signal) count its job after the
     * configured tiers, and count it gone once claimed. */
    queue_stats_t st;
    assert_int_equal(queue_sync_stats(qs2, &st, &err), 0);
    assert_int_equal(st.n_tiers, 3);
    assert_string_equal(st.tiers[0].name, "pro");
    assert_int_equal(st.tiers[0].depth, 1);
    assert_string_equal(st.tiers[1].name, "basic");
    assert_int_equal(st.tiers[1].depth, 0);
    assert_string_equal(st.tiers[2].name, "free");
    assert_int_equal(st.tiers[2].depth, 1);
    queue_stats_dispose(&st);

    queue_claim_t c;
    assert_int_equal(queue_sync_claim(qs2, "w", 10, &c, &err), 0);
    assert_int_equal(c.n_jobs, 2);
    assert_string_equal(c.jobs[0].gen_id, pro);
    assert_string_equal(c.jobs[1].gen_id, gen);
    assert_string_equal(c.jobs[1].tier, "free");
    queue_claim_dispose(&c);
    snprintf(cmd, sizeof(cmd), "HINCRBY %s:depth free 0", tag);
    assert_int_equal(qt_redis_int(cmd), 0);
    assert_int_equal(queue_sync_stats(qs2, &st, &err), 0);
    assert_int_equal(st.n_tiers, 3);
    assert_string_equal(st.tiers[2].name, "free");
    assert_int_equal(st.tiers[2].depth, 0);
    queue_stats_dispose(&st);
    snprintf(cmd, sizeof(cmd), "EXISTS %s:t:free:ring", tag);
    assert_int_equal(qt_redis_int(cmd), 0);
    queue_sync_free(qs2);
    gf_cfg_free(cfg2);
}

/*
 * A delayed job whose hash was deleted by hand (or evicted): the claim that finds its backoff over
 * drops it and serves the others, the reclaim before it included; it used to fail half-way, after
 * making a hash without an expiry for the deleted job and leaving the reclaim without its lease.
 */
static void test_a_delayed_job_deleted_by_hand_is_dropped(void **state)
{
    fx_t *fx = *state;
    char tag[80], gone[64], stalled[64], ready[64], key[160];
    snprintf(tag, sizeof(tag), "{%s}", fx->cfg->queue_name);
    queue_claim_t c;
    queue_result_t res;
    qt_enqueue(fx->qs, qt_id(gone, sizeof(gone), "delgone"), "delgone-a", "pro");
    assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    assert_int_equal(
        queue_sync_finish(fx->qs, gone, c.jobs[0].token, QUEUE_HANDBACK, "worker stopping", &res, NULL),
        0);
    assert_string_equal(res.state, "delayed");
    queue_claim_dispose(&c);
    qt_enqueue(fx->qs, qt_id(stalled, sizeof(stalled), "delgone"), "delgone-b", "pro");
    assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    assert_string_equal(c.jobs[0].gen_id, stalled);
    queue_claim_dispose(&c);
    qt_enqueue(fx->qs, qt_id(ready, sizeof(ready), "delgone"), "delgone-c", "pro");
    snprintf(key, sizeof(key), "DEL %s:j:%s", tag, gone);
    assert_int_equal(qt_redis_int(key), 1);
    qt_sleep_ms(1200); /* the lease (1 s) and the backoff (under 200 ms) run out */

    gf_err_t err = {0};
    if (queue_sync_claim(fx->qs, "w2", 10, &c, &err) != 0)
        fail_msg("claim: %s", err.msg);
    assert_int_equal(c.n_jobs, 2);
    assert_string_equal(c.jobs[0].gen_id, stalled); /* reclaimed */
    assert_string_equal(c.jobs[1].gen_id, ready);
    queue_claim_dispose(&c);
    snprintf(key, sizeof(key), "ZRANK %s:leases %s", tag, stalled);
    assert_true(qt_redis_int(key) >= 0);
    snprintf(key, sizeof(key), "EXISTS %s:j:%s", tag, gone);
    assert_int_equal(qt_redis_int(key), 0);
    snprintf(key, sizeof(key), "ZCARD %s:delayed", tag);
    assert_int_equal(qt_redis_int(key), 0);
    snprintf(key, sizeof(key), "LLEN %s:t:pro:u:delgone-a", tag);
    assert_int_equal(qt_redis_int(key), 0);
}

static int has_name(char **names, const char *want)
{
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(names[i], want) == 0)
            return 1;
    return 0;
}

static void free_names(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

static void test_old_function_libraries_are_listed_and_pruned(void **state)
{
    fx_t *fx = *state;
    /* Another configuration (a new cap) is another library, loaded by its first call. */
    static const char *const other_env[] = {"FARM_QUEUE_TIERS=pro:4:11,free:1:3", NULL};
    gf_config_t *cfg2 = qt_cfg(other_env);
    gf_err_t err = {0};
    queue_sync_t *qs2 = queue_sync_new(cfg2, &err);
    assert_non_null(qs2);
    char gen[64];
    qt_enqueue(qs2, qt_id(gen, sizeof(gen), "lib"), "ulib", "pro");
    const char *mine = queue_sync_library(fx->qs), *theirs = queue_sync_library(qs2);
    assert_string_not_equal(mine, theirs);

    char **names = NULL;
    assert_true(queue_sync_old_libraries(fx->qs, 0, &names, &err) >= 1);
    assert_true(has_name(names, theirs));
    assert_false(has_name(names, mine));
    free_names(names);
    assert_true(queue_sync_old_libraries(fx->qs, 1, &names, &err) >= 1); /* prune */
    assert_true(has_name(names, theirs));
    free_names(names);
    assert_int_equal(queue_sync_old_libraries(fx->qs, 0, &names, &err), 0);
    free_names(names);
    /* The process whose library went loads it again on its next call. */
    queue_result_t res;
    assert_int_equal(queue_sync_position(qs2, gen, &res, &err), 0);
    assert_string_equal(res.state, "queued");
    queue_sync_free(qs2);
    gf_cfg_free(cfg2);

    char out[4096];
    assert_int_equal(qt_farm_cli(out, sizeof(out), "queue-libraries"), 0);
    assert_non_null(strstr(out, "current\tfarm_"));
    assert_int_equal(qt_farm_cli(out, sizeof(out), "queue-libraries --bogus"), 2);
}

/* A Redis ACL user with a %-escaped password: both clients log in as that user. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_jobs_from_the_previous_version_still_run,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_old_function_libraries_are_listed_and_pruned,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_a_job_deleted_by_hand_is_skipped, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_a_tier_no_longer_configured_is_answered_and_served,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_a_delayed_job_deleted_by_hand_is_dropped,
                                        qt_sync_setup, qt_sync_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
