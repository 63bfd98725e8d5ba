/*
 * tests/integration/queue/memory.c - memory stays bounded: after a run of
 * 10,000 jobs (with progress events, retries and dead letters) and the
 * retention time, Redis holds no more keys than before the run and about
 * the same memory; the per-minute counters keep about an hour's fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue_util.h"
#include "support.h"

static const char *const env[] = {"FARM_QUEUE_TIERS=pro:4:100000,free:1:100000",
                                  "FARM_EVENTS_RETENTION_S=2",
                                  "FARM_EVENTS_USER_MAX_AGE_S=2",
                                  "FARM_QUEUE_DEAD_RETENTION_S=2",
                                  "FARM_QUEUE_RETRY_BASE_MS=1",
                                  "FARM_QUEUE_HANDBACK_CAP_MS=100",
                                  NULL};

static long long used_memory(void)
{
    long long v = -1;
    assert_int_equal(
        ts_sh_number(&v,
                     "redis-cli -p %s info memory | sed -n 's/^used_memory:\\([0-9]*\\).*/\\1/p'",
                     ts_env("FARM_TEST_REDIS_PORT")),
        0);
    return v;
}

/* Runs `n` jobs through the queue: 1 in 10 retried once, 1 in 100 dead-lettered. */
static void run_jobs(queue_sync_t *qs, int n)
{
    char gen[64], user[32];
    for (int i = 0; i < n; i++) {
        snprintf(user, sizeof(user), "mem-user-%d", i % 100);
        int64_t pos = qt_enqueue(qs, qt_id(gen, sizeof(gen), "mem"), user, i % 5 ? "free" : "pro");
        if (i % 997 == 0 || (pos >= 1000 && pos % 1000 < 10)) {
            /* The 'queued' event says the same position, in full (the queue
             * writes numbers of four digits and more in groups of three). */
            queue_events_t ev;
            char want[64];
            assert_int_equal(queue_sync_events_read(qs, gen, 0, 1, &ev, NULL), 0);
            assert_int_equal(ev.n, 1);
            snprintf(want, sizeof(want), "\"queue_position\":%lld}", (long long)pos);
            assert_non_null(strstr(ev.ev[0].data, want));
            queue_events_dispose(&ev);
        }
    }
    int finished = 0;
    double end = ts_now() + 120;
    while (finished < n && ts_now() < end) {
        queue_claim_t c;
        assert_int_equal(queue_sync_claim(qs, "mem-worker", 64, &c, NULL), 0);
        for (size_t i = 0; i < c.n_jobs; i++) {
            queue_job_t *j = &c.jobs[i];
            queue_result_t res;
            assert_int_equal(queue_sync_event_append(qs, j->gen_id, j->token, "progress",
                                                     "{\"pct\":50}", &res, NULL),
                             0);
            unsigned h = (unsigned)strlen(j->gen_id) + (unsigned)j->gen_id[strlen(j->gen_id) - 1];
            queue_outcome_t o = QUEUE_DONE;
            if (j->token == 1 && h % 10 == 0) /* once: a hand-back gives its attempt back */
                o = QUEUE_HANDBACK;
            else if (h % 100 == 1)
                o = QUEUE_FATAL;
            assert_int_equal(queue_sync_finish(qs, j->gen_id, j->token, o, NULL, &res, NULL), 0);
            if (o != QUEUE_HANDBACK)
                finished++;
        }
        if (c.n_jobs == 0)
            qt_sleep_ms(5);
        queue_claim_dispose(&c);
    }
    assert_int_equal(finished, n);
}

static void test_memory_is_bounded_after_10000_jobs(void **state)
{
    qt_sync_fx_t *fx = *state;
    queue_sync_t *qs = fx->qs;

    /* Warm up: the few fixed keys (sequence, WRR state, workers, stats) exist from now on. */
    run_jobs(qs, 200);
    qt_sleep_ms(2500);
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(qs, "mem-worker", 1, &c, NULL),
                     0); /* prunes the dead index */
    queue_claim_dispose(&c);
    double end = ts_now() + 30;
    while (qt_redis_int("DBSIZE") > 5 && ts_now() < end)
        qt_sleep_ms(100);
    long long keys0 = qt_redis_int("DBSIZE");
    long long mem0 = used_memory();
    print_message("before: %lld keys, %lld bytes\n", keys0, mem0);

    run_jobs(qs, 10000);
    long long keys_peak = qt_redis_int("DBSIZE");
    print_message("after the run: %lld keys, %lld bytes\n", keys_peak, used_memory());
    assert_true(keys_peak > keys0);

    qt_sleep_ms(2500); /* the retention */
    assert_int_equal(queue_sync_claim(qs, "mem-worker", 1, &c, NULL), 0);
    queue_claim_dispose(&c);
    end = ts_now() + 60;
    while (qt_redis_int("DBSIZE") > keys0 && ts_now() < end)
        qt_sleep_ms(100);
    long long keys1 = qt_redis_int("DBSIZE");
    long long mem1 = used_memory();
    print_message("after the retention: %lld keys, %lld bytes\n", keys1, mem1);
    assert_true(keys1 <= keys0);
    /* 10,000 leaked jobs would be megabytes; allow allocator noise. */
    assert_true(mem1 < mem0 + 1024 * 1024);
}

/*
 * The per-minute counters do not pile up: a minute's first outcome drops every field older than
 * 61 minutes, of either kind and however old (failures may stop for hours; fields were dropped
 * only when the same kind counted again exactly 61 minutes later). 9,000 of them, more than one
 * Lua unpack takes.
 */
static void test_old_per_minute_counters_are_dropped(void **state)
{
    qt_sync_fx_t *fx = *state;
    enum { OLD = 9000 };
    char key[128], cmd[192], recent[32];
    snprintf(key, sizeof(key), "{%s}:stats", fx->cfg->queue_name);
    long m = (long)(time(NULL) / 60);
    /* HSET key f:1 1 ... f:9000 1, then d:<m-62> and f:<m-5>, which stays. */
    const char **argv = calloc(2 + 2 * (OLD + 2) + 1, sizeof(*argv));
    char(*names)[24] = calloc(OLD + 1, sizeof(*names));
    assert_non_null(argv);
    assert_non_null(names);
    int n = 0;
    argv[n++] = "HSET";
    argv[n++] = key;
    for (int i = 0; i < OLD; i++) {
        snprintf(names[i], sizeof(names[i]), "f:%d", i + 1);
        argv[n++] = names[i];
        argv[n++] = "1";
    }
    snprintf(names[OLD], sizeof(names[OLD]), "d:%ld", m - 62);
    argv[n++] = names[OLD];
    argv[n++] = "1";
    snprintf(recent, sizeof(recent), "f:%ld", m - 5);
    argv[n++] = recent;
    argv[n++] = "1";
    assert_true(qt_redis_argv(argv));
    free(argv);
    free(names);

    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "stats"), "stats-user", "pro");
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    queue_result_t res;
    assert_int_equal(queue_sync_finish(fx->qs, gen, c.jobs[0].token, QUEUE_DONE, "{}", &res, NULL),
                     0);
    queue_claim_dispose(&c);
    snprintf(cmd, sizeof(cmd), "HEXISTS %s %s", key, recent);
    assert_int_equal(qt_redis_int(cmd), 1);
    snprintf(cmd, sizeof(cmd), "HLEN %s", key);
    assert_int_equal(qt_redis_int(cmd), 2); /* f:<m-5> and this minute's d */
    queue_stats_t st;
    assert_int_equal(queue_sync_stats(fx->qs, &st, NULL), 0);
    assert_int_equal(st.done_this_min + st.done_last_min, 1);
    queue_stats_dispose(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_memory_is_bounded_after_10000_jobs,
                                                 qt_sync_setup, qt_sync_teardown, (void *)env),
        cmocka_unit_test_setup_teardown(test_old_per_minute_counters_are_dropped, qt_sync_setup,
                                        qt_sync_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
