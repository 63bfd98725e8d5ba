/*
 * tests/unit/worker/test_claim.c - the capacity controller of the claims
 * (worker/claim.c): the limit before any sample, Little's law on the
 * measured times, its bounds (ceiling, the provider's calls, at least one),
 * its growth as a slow start, the pacing bucket, the congestion window on the
 * claim-to-end delay, and FARM_WORKER_CLAIM=ceiling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "claim.h"

#define MS 1000000ULL /* ns */

/* A controller that has seen the same job `n` times: each image `post_s` on its thread,
 * each job held `hold_s` for `images` images. */
static void settle(claim_ctl_t *c, double post_s, double hold_s, int images, int n, uint64_t *now)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < images; k++)
            claim_ctl_post(c, post_s, *now);
        claim_ctl_job(c, hold_s, images, *now);
        *now += 10 * MS;
    }
}

static void test_before_any_sample_it_claims_one_pool_unpaced(void **state)
{
    (void)state;
    claim_ctl_t c;
    claim_ctl_init(&c, 64, 1, 4, 32);
    assert_int_equal(claim_ctl_limit(&c), 4);
    uint64_t retry = 777;
    assert_int_equal(claim_ctl_room(&c, 0, 1 * MS, &retry), 4);
    claim_ctl_took(&c, 4);
    assert_int_equal(claim_ctl_room(&c, 1, 2 * MS, &retry), 3); /* no bucket yet */
    assert_int_equal(claim_ctl_room(&c, 4, 3 * MS, &retry), 0);
    assert_int_equal(retry, 777); /* at the limit: a job's end is the next chance */
    /* A small ceiling is still the ceiling. */
    claim_ctl_init(&c, 3, 1, 4, 32);
    assert_int_equal(claim_ctl_limit(&c), 3);
    claim_ctl_init(&c, 0, 1, 4, 32);
    assert_int_equal(claim_ctl_limit(&c), 0);
    assert_int_equal(claim_ctl_room(&c, 0, 1 * MS, NULL), 0);
}

static void test_the_limit_is_littles_law_on_the_measured_times(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    claim_ctl_init(&c, 64, 1, 4, 32);
    /* 4 threads, 0.4 s an image: 10 jobs/s; each held 2.5 s: 25 in the worker. */
    settle(&c, 0.4, 2.5, 1, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 25);
    /* Post-processing twice as slow: half the jobs keep it busy (hold barely moves). */
    settle(&c, 0.8, 2.5, 1, 80, &now);
    assert_int_equal(claim_ctl_limit(&c), 13);
    /* Faster again: the mean comes down slowly (images measured on idle cores are not
     * what they take once the claims come back), then all the way. */
    settle(&c, 0.4, 2.5, 1, 10, &now);
    assert_in_range(claim_ctl_limit(&c), 13, 16);
    settle(&c, 0.4, 2.5, 1, 1000, &now);
    assert_int_equal(claim_ctl_limit(&c), 25);
    /* Two images a job: half the jobs per second. */
    claim_ctl_init(&c, 64, 1, 4, 32);
    settle(&c, 0.4, 2.5, 2, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 13); /* ceil(5/s x 2.5 s) */
    /* A wider pool finishes more at once. */
    claim_ctl_init(&c, 64, 1, 8, 100);
    settle(&c, 0.4, 2.5, 1, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 50);
}

static void test_the_limit_grows_at_most_fourfold_per_hold(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    claim_ctl_init(&c, 64, 1, 4, 32);
    /* The first job ended after 2 s: Little says 20 (4 / 0.4 s x 2 s), but one job ended
     * in that hold: 4 at most (and never below the start, 4). */
    claim_ctl_post(&c, 0.4, now);
    claim_ctl_job(&c, 2.0, 1, now);
    assert_int_equal(c.model, 20);
    assert_int_equal(claim_ctl_limit(&c), 4);
    /* Three more end at once: about 4 ended in one hold, 16 at most. */
    for (int i = 0; i < 3; i++) {
        claim_ctl_post(&c, 0.4, now);
        claim_ctl_job(&c, 2.0, 1, now);
    }
    assert_int_equal(claim_ctl_limit(&c), 16);
    assert_int_equal(claim_ctl_room(&c, 0, now, NULL), 4); /* and paced (the bucket) */
    /* Eight more a hold later: the limit reaches Little's. */
    now += 2000 * MS;
    for (int i = 0; i < 8; i++) {
        claim_ctl_post(&c, 0.4, now);
        claim_ctl_job(&c, 2.0, 1, now);
    }
    assert_int_equal(claim_ctl_limit(&c), 20);
    /* After a minute with nothing ending it starts small again. */
    now += 60000 * MS;
    assert_int_equal(claim_ctl_room(&c, 0, now, NULL), 4);
    assert_int_equal(claim_ctl_limit(&c), 4);
}

static void test_the_limit_stays_within_its_bounds(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    /* The ceiling. */
    claim_ctl_init(&c, 16, 1, 4, 1000);
    settle(&c, 0.4, 2.5, 1, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 16);
    /* The provider's own calls at once, plus one pool: more would wait in its queue. */
    claim_ctl_init(&c, 64, 1, 4, 10);
    settle(&c, 0.4, 2.5, 1, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 14);
    /* At least one, however slow post-processing is. */
    claim_ctl_init(&c, 64, 1, 1, 32);
    settle(&c, 60, 0.5, 1, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 1);
}

static void test_samples_that_say_nothing_are_ignored(void **state)
{
    (void)state;
    claim_ctl_t c;
    claim_ctl_init(&c, 64, 1, 4, 32);
    claim_ctl_post(&c, 0, 1 * MS);
    claim_ctl_post(&c, -1, 1 * MS);
    claim_ctl_job(&c, 3, 0, 1 * MS);          /* no image post-processed */
    claim_ctl_job(&c, 0, 1, 1 * MS);          /* no time */
    claim_ctl_job(&c, -2, 1, 1 * MS);         /* a clock gone backwards */
    assert_int_equal(claim_ctl_limit(&c), 4); /* still the start */
    /* Only a post time, no job ended yet: still the start. */
    claim_ctl_post(&c, 0.4, 1 * MS);
    assert_int_equal(claim_ctl_limit(&c), 4);
}

static void test_claims_are_paced_at_the_rate_post_processing_finishes(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    claim_ctl_init(&c, 64, 1, 4, 32);
    settle(&c, 0.4, 2.5, 1, 50, &now); /* 10 jobs/s, limit 25 */
    uint64_t retry = 0;
    /* A full bucket holds one pool's width of jobs, not the limit. */
    assert_int_equal(claim_ctl_room(&c, 0, now, &retry), 4);
    claim_ctl_took(&c, 4);
    assert_int_equal(claim_ctl_room(&c, 4, now, &retry), 0);
    assert_int_equal(retry, 100); /* the next token in 1/10 s */
    now += 250 * MS;
    assert_int_equal(claim_ctl_room(&c, 4, now, &retry), 2);
    claim_ctl_took(&c, 1);
    assert_int_equal(claim_ctl_room(&c, 5, now, &retry), 1);
    /* A pause fills the bucket, never past its size. */
    now += 1000 * MS;
    assert_int_equal(claim_ctl_room(&c, 0, now, &retry), 4);
    /* Near the limit the limit is what stops. */
    assert_int_equal(claim_ctl_room(&c, 23, now, &retry), 2);
    retry = 5;
    assert_int_equal(claim_ctl_room(&c, 25, now, &retry), 0);
    assert_int_equal(retry, 5);
}

static void test_ceiling_mode_always_claims_up_to_the_ceiling(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    claim_ctl_init(&c, 64, 0, 4, 32);
    assert_int_equal(claim_ctl_limit(&c), 64);
    settle(&c, 0.4, 2.5, 1, 50, &now);
    claim_ctl_post(&c, 0.4, now);
    assert_int_equal(claim_ctl_limit(&c), 64);
    assert_int_equal(claim_ctl_room(&c, 10, now, NULL), 54); /* not paced */
}

/* One job ended at `now`: its image post-processed in `post_s`, held `hold_s` (waits taken
 * out), `total_s` from its claim to its end. */
static void end_job(claim_ctl_t *c, double post_s, double hold_s, double total_s, uint64_t now)
{
    claim_ctl_post(c, post_s, now);
    claim_ctl_job(c, hold_s, 1, now);
    claim_ctl_delay(c, total_s, now);
}

/* A worker at Little's 25 (4 threads, 0.4 s an image, 2.5 s held) whose fastest job took 2 s. */
static void at_25(claim_ctl_t *c, uint64_t *now)
{
    claim_ctl_init(c, 64, 1, 4, 32);
    settle(c, 0.4, 2.5, 1, 50, now);
    assert_int_equal(claim_ctl_limit(c), 25);
    end_job(c, 0.4, 2.5, 2.0, *now);
    assert_int_equal(claim_ctl_limit(c), 25); /* no delay over the base: no window */
}

/* Jobs ending every 10 ms for `ms`, each `total_s` after its claim. */
static void ends(claim_ctl_t *c, double total_s, int ms, uint64_t *now)
{
    for (int i = 0; i < ms / 10; i++) {
        *now += 10 * MS;
        end_job(c, 0.4, 2.5, total_s, *now);
    }
}

static void test_a_delay_over_its_target_cuts_the_window_once_per_hold(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    at_25(&c, &now);
    /* Every job now takes 1 s more than the fastest: within a hold (2.5 s) the window is
     * cut in proportion, (2 + 0.2) / (2 + 1) of 25: 18. */
    ends(&c, 3.0, 2490, &now);
    assert_int_equal(claim_ctl_limit(&c), 25);
    ends(&c, 3.0, 10, &now);
    assert_int_equal(claim_ctl_limit(&c), 18);
    /* The jobs claimed before the cut still end late: they are not samples (no second cut). */
    ends(&c, 3.0, 2900, &now);
    assert_int_equal(claim_ctl_limit(&c), 18);
    /* Those claimed after it end within the target: up by one a hold... */
    ends(&c, 2.1, 10, &now);
    assert_int_equal(claim_ctl_limit(&c), 19);
    ends(&c, 2.1, 2490, &now);
    assert_int_equal(claim_ctl_limit(&c), 19);
    ends(&c, 2.1, 10, &now);
    assert_int_equal(claim_ctl_limit(&c), 20);
    /* ... never past Little's. */
    ends(&c, 2.1, 60000, &now);
    assert_int_equal(claim_ctl_limit(&c), 25);
}

static void test_the_window_is_cut_by_half_at_most_and_never_below_half_of_littles(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    at_25(&c, &now);
    /* 10 s over the base: (2.2 / 12) of 25 would be 4; half of 25 is 12, and half of
     * Little's, 13, is the least. */
    ends(&c, 12.0, 2500, &now);
    assert_int_equal(claim_ctl_limit(&c), 13);
    ends(&c, 12.0, 3000, &now); /* stale: claimed before the cut */
    ends(&c, 12.0, 12000, &now);
    assert_int_equal(claim_ctl_limit(&c), 13);
    /* With a pool wider than half of Little's, the pool is the least. */
    claim_ctl_init(&c, 64, 1, 4, 2);
    settle(&c, 0.4, 2.5, 1, 50, &now);
    assert_int_equal(claim_ctl_limit(&c), 6); /* the provider's 2 calls plus the pool */
    end_job(&c, 0.4, 2.5, 2.0, now);
    ends(&c, 12.0, 2500, &now);
    assert_int_equal(claim_ctl_limit(&c), 4);
}

static void test_the_base_is_the_fastest_job_of_the_last_two_periods(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    at_25(&c, &now); /* the fastest: 2 s */
    /* A provider that is now 1 s slower for good: within one base period it reads as
     * congestion (the window is cut), ... */
    ends(&c, 3.0, 2500, &now);
    assert_int_equal(claim_ctl_limit(&c), 18);
    /* ... once the period of the 2-s job has passed (two of CLAIM_BASE_S), 3 s is the base:
     * nothing over the target, the window grows back to Little's. */
    ends(&c, 3.0, 2 * CLAIM_BASE_S * 1000, &now);
    ends(&c, 3.0, 30000, &now);
    assert_int_equal(claim_ctl_limit(&c), 25);
}

static void test_claims_are_paced_to_keep_the_limit_held(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    at_25(&c, &now);
    ends(&c, 3.0, 2500, &now);
    assert_int_equal(claim_ctl_limit(&c), 18);
    /* Post-processing could take 10 jobs/s, but 18 held for 2.5 s is 7.2 a second. */
    uint64_t retry = 0;
    now += 1000 * MS;
    assert_int_equal(claim_ctl_room(&c, 0, now, &retry), 4); /* a full bucket */
    claim_ctl_took(&c, 4);
    assert_int_equal(claim_ctl_room(&c, 4, now, &retry), 0);
    assert_int_equal(retry, 139); /* ceil(1000 / 7.2) */
}

static void test_ceiling_mode_ignores_the_delay(void **state)
{
    (void)state;
    claim_ctl_t c;
    uint64_t now = 1000 * MS;
    claim_ctl_init(&c, 64, 0, 4, 32);
    end_job(&c, 0.4, 2.5, 2.0, now);
    ends(&c, 12.0, 6000, &now);
    assert_int_equal(claim_ctl_limit(&c), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_any_sample_it_claims_one_pool_unpaced),
        cmocka_unit_test(test_the_limit_is_littles_law_on_the_measured_times),
        cmocka_unit_test(test_the_limit_grows_at_most_fourfold_per_hold),
        cmocka_unit_test(test_the_limit_stays_within_its_bounds),
        cmocka_unit_test(test_samples_that_say_nothing_are_ignored),
        cmocka_unit_test(test_claims_are_paced_at_the_rate_post_processing_finishes),
        cmocka_unit_test(test_ceiling_mode_always_claims_up_to_the_ceiling),
        cmocka_unit_test(test_a_delay_over_its_target_cuts_the_window_once_per_hold),
        cmocka_unit_test(test_the_window_is_cut_by_half_at_most_and_never_below_half_of_littles),
        cmocka_unit_test(test_the_base_is_the_fastest_job_of_the_last_two_periods),
        cmocka_unit_test(test_claims_are_paced_to_keep_the_limit_held),
        cmocka_unit_test(test_ceiling_mode_ignores_the_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
