/*
 * tests/integration/queue/fair.c - fairness and priority against the
 * fixture's real Redis: one user's flood does not delay another user's
 * single job by more than a turn, and weighted tiers share claims in their
 * configured ratio without starving the lower tier.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_util.h"
#include "support.h"

static const char *const env[] = {"FARM_QUEUE_TIERS=pro:4:1000,free:1:1000", NULL};

static void test_one_users_flood_does_not_delay_another_user(void **state)
{
    (void)state;
    qt_flush();
    gf_config_t *cfg = qt_cfg(env);
    queue_sync_t *claimers[4];
    for (int i = 0; i < 4; i++) {
        claimers[i] = queue_sync_new(cfg, NULL);
        assert_non_null(claimers[i]);
    }
    char gen[64], b_gen[64];
    for (int i = 0; i < 500; i++)
        qt_enqueue(claimers[0], qt_id(gen, sizeof(gen), "flood"), "user-a", "free");
    int64_t pos = qt_enqueue(claimers[0], qt_id(b_gen, sizeof(b_gen), "single"), "user-b", "free");
    assert_true(pos <= 1); /* reported honestly: one turn of user-a at most */

    /* Four claimers, two jobs each, taking turns: B's job is among the first eight. */
    int found = 0;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 4; i++) {
            queue_claim_t c;
            char wid[16];
            snprintf(wid, sizeof(wid), "w%d", i);
            assert_int_equal(queue_sync_claim(claimers[i], wid, 1, &c, NULL), 0);
            assert_int_equal(c.n_jobs, 1);
            found |= strcmp(c.jobs[0].gen_id, b_gen) == 0;
            queue_claim_dispose(&c);
        }
    assert_true(found);
    for (int i = 0; i < 4; i++)
        queue_sync_free(claimers[i]);
    gf_cfg_free(cfg);
}

static void test_tiers_share_claims_by_weight(void **state)
{
    qt_sync_fx_t *fx = *state;
    queue_sync_t *qs = fx->qs;
    char gen[64], user[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "pro-%d", i % 50);
        qt_enqueue(qs, qt_id(gen, sizeof(gen), "p"), user, "pro");
        snprintf(user, sizeof(user), "free-%d", i % 50);
        qt_enqueue(qs, qt_id(gen, sizeof(gen), "f"), user, "free");
    }
    int pro = 0, free_ = 0, first_free = -1, claimed = 0;
    while (claimed < 1000) {
        queue_claim_t c;
        assert_int_equal(queue_sync_claim(qs, "w", 10, &c, NULL), 0);
        assert_int_equal(c.n_jobs, 10);
        for (size_t i = 0; i < c.n_jobs; i++) {
            if (strcmp(c.jobs[i].tier, "pro") == 0) {
                pro++;
            } else {
                free_++;
                if (first_free < 0)
                    first_free = claimed;
            }
            claimed++;
        }
        queue_claim_dispose(&c);
    }
    /* 4:1 configured: 800:200 expected, within 10 %. */
    double ratio = (double)pro / (double)free_;
    print_message("pro %d free %d ratio %.3f first free at %d\n", pro, free_, ratio, first_free);
    assert_true(ratio >= 3.6 && ratio <= 4.4);
    assert_true(first_free >= 0 && first_free < 5); /* the lower tier never waits long */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_users_flood_does_not_delay_another_user),
        cmocka_unit_test_prestate_setup_teardown(test_tiers_share_claims_by_weight, qt_sync_setup,
                                                 qt_sync_teardown, (void *)env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
