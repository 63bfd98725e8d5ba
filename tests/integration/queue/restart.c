/*
 * tests/integration/queue/restart.c - durability: Redis is killed (SIGKILL,
 * no shutdown save) and restarted from its AOF in the middle of a run; every
 * job whose enqueue was acknowledged is still there, in its state, and the
 * run finishes with each job completed once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_util.h"
#include "support.h"

enum { N = 300 };

static const char *const env[] = {"FARM_QUEUE_TIERS=pro:4:1000,free:1:1000", "FARM_QUEUE_LEASE_S=2",
                                  NULL};

static void test_killed_redis_keeps_every_accepted_job(void **state)
{
    qt_sync_fx_t *fx = *state;
    queue_sync_t *qs = fx->qs;
    static char gens[N][64];
    for (int i = 0; i < N; i++)
        qt_enqueue(qs, qt_id(gens[i], sizeof(gens[i]), "durable"), i % 2 ? "ua" : "ub",
                   i % 3 ? "free" : "pro");
    /* Some are running when Redis dies. */
    queue_claim_t held;
    assert_int_equal(queue_sync_claim(qs, "w1", 50, &held, NULL), 0);
    assert_int_equal(held.n_jobs, 50);

    /* The server's pid, from the server itself. */
    long long pid = -1;
    assert_int_equal(
        ts_sh_number(&pid,
                     "redis-cli -p %s info server | sed -n 's/^process_id:\\([0-9]*\\).*/\\1/p'",
                     ts_env("FARM_TEST_REDIS_PORT")),
        0);
    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    qt_sleep_ms(300);
    qt_redis_start();

    /* The first call notices the dead connection; the next one reconnects. */
    queue_result_t res;
    (void)queue_sync_position(qs, gens[0], &res, NULL); /* may be GF_EUNAVAIL: dropped socket */
    int queued = 0, running = 0;
    for (int i = 0; i < N; i++) {
        gf_err_t err = {0};
        assert_int_equal(queue_sync_position(qs, gens[i], &res, &err), 0);
        queued += strcmp(res.state, "queued") == 0;
        running += strcmp(res.state, "running") == 0;
    }
    assert_int_equal(queued, N - 50);
    assert_int_equal(running, 50);

    /* The held leases still work after the restart, and the rest drains. */
    int done = 0;
    for (size_t i = 0; i < held.n_jobs; i++) {
        assert_int_equal(queue_sync_finish(qs, held.jobs[i].gen_id, held.jobs[i].token, QUEUE_DONE,
                                           NULL, &res, NULL),
                         0);
        done++;
    }
    queue_claim_dispose(&held);
    for (;;) {
        queue_claim_t c;
        assert_int_equal(queue_sync_claim(qs, "w2", 64, &c, NULL), 0);
        if (c.n_jobs == 0) {
            queue_claim_dispose(&c);
            break;
        }
        for (size_t i = 0; i < c.n_jobs; i++) {
            assert_int_equal(c.jobs[i].attempt, 1);
            assert_int_equal(queue_sync_finish(qs, c.jobs[i].gen_id, c.jobs[i].token, QUEUE_DONE,
                                               NULL, &res, NULL),
                             0);
            done++;
        }
        queue_claim_dispose(&c);
    }
    assert_int_equal(done, N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_killed_redis_keeps_every_accepted_job,
                                                 qt_sync_setup, qt_sync_teardown, (void *)env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
