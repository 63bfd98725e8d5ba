/*
 * tests/unit/worker/test_job_state.c - the job's transition table
 * (worker/job_state.c): every path of the diagram in worker_int.h, and
 * every event a state must not take.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "worker_int.h"

#define ALL_STATES 8
#define ALL_EVENTS 10

static const job_facts_t busy = {.running = 2, .settled = 1, .images = 4};
static const job_facts_t all_settled = {.running = 0, .settled = 4, .images = 4};
static const job_facts_t none_running = {.running = 0, .settled = 1, .images = 4};

static job_state_t next(job_state_t s, job_event_t ev, const job_facts_t *f)
{
    return job__next(s, ev, f);
}

static void test_a_job_runs_its_images_then_finishes_then_closes(void **state)
{
    (void)state;
    job_state_t s = JOB_STARTING;
    s = next(s, JOB_EV_READY, &busy);
    assert_int_equal(s, JOB_RUNNING);
    assert_int_equal(next(s, JOB_EV_PUMP, &busy), JOB_RUNNING); /* images still to settle */
    s = next(s, JOB_EV_PUMP, &all_settled);
    assert_int_equal(s, JOB_FINISHING);
    s = next(s, JOB_EV_FINISHED, &all_settled);
    assert_int_equal(s, JOB_CLOSING);
    s = next(s, JOB_EV_QUEUE_ANSWERED, &all_settled);
    assert_int_equal(s, JOB_ENDED);
}

static void test_a_cancel_waits_for_running_images(void **state)
{
    (void)state;
    job_state_t s = next(JOB_RUNNING, JOB_EV_CANCEL, &busy);
    assert_int_equal(s, JOB_CANCELING);
    assert_int_equal(next(s, JOB_EV_PUMP, &busy), JOB_CANCELING);
    assert_int_equal(next(s, JOB_EV_PUMP, &none_running), JOB_FINISHING);
    /* A second cancel changes nothing. */
    assert_int_equal(next(s, JOB_EV_CANCEL, &busy), JOB_CANCELING);
}

static void test_a_cancel_while_starting_takes_effect_once_ready(void **state)
{
    (void)state;
    assert_int_equal(next(JOB_STARTING, JOB_EV_CANCEL, &busy), JOB_STARTING);
    job_facts_t asked = {.cancel_asked = 1, .images = 4};
    assert_int_equal(next(JOB_STARTING, JOB_EV_READY, &asked), JOB_CANCELING);
    assert_int_equal(next(JOB_CANCELING, JOB_EV_PUMP, &asked), JOB_FINISHING);
}

static void test_a_start_that_finds_it_finished_or_missing_closes_it(void **state)
{
    (void)state;
    assert_int_equal(next(JOB_STARTING, JOB_EV_CLOSE, &busy), JOB_CLOSING);
    assert_int_equal(next(JOB_STARTING, JOB_EV_UNRUNNABLE, &busy), JOB_FINISHING);
    /* Only a starting job is closed or failed that way. */
    for (job_state_t s = JOB_RUNNING; s < ALL_STATES; s++) {
        assert_int_equal(next(s, JOB_EV_CLOSE, &busy), s);
        assert_int_equal(next(s, JOB_EV_UNRUNNABLE, &busy), s);
    }
}

static void test_a_failed_write_hands_back_until_the_queue_is_told(void **state)
{
    (void)state;
    for (job_state_t s = JOB_STARTING; s <= JOB_FINISHING; s++)
        assert_int_equal(next(s, JOB_EV_STORE_FAILED, &busy), JOB_HANDING_BACK);
    for (job_state_t s = JOB_CLOSING; s < ALL_STATES; s++)
        assert_int_equal(next(s, JOB_EV_STORE_FAILED, &busy), s);
    assert_int_equal(next(JOB_HANDING_BACK, JOB_EV_QUEUE_ANSWERED, &busy), JOB_ENDED);
}

static void test_a_drain_timeout_waits_for_a_finish_on_its_way(void **state)
{
    (void)state;
    assert_int_equal(next(JOB_STARTING, JOB_EV_DRAIN_TIMEOUT, &busy), JOB_HANDING_BACK);
    assert_int_equal(next(JOB_RUNNING, JOB_EV_DRAIN_TIMEOUT, &busy), JOB_HANDING_BACK);
    assert_int_equal(next(JOB_CANCELING, JOB_EV_DRAIN_TIMEOUT, &busy), JOB_HANDING_BACK);
    assert_int_equal(next(JOB_FINISHING, JOB_EV_DRAIN_TIMEOUT, &busy), JOB_FINISHING);
    /* The last image's record, which finishes the generation, on its way: waited for. */
    job_facts_t sent = busy;
    sent.finish_sent = 1;
    assert_int_equal(next(JOB_RUNNING, JOB_EV_DRAIN_TIMEOUT, &sent), JOB_RUNNING);
    assert_int_equal(next(JOB_CLOSING, JOB_EV_DRAIN_TIMEOUT, &busy), JOB_CLOSING);
}

static void test_a_lost_lease_ends_every_live_state(void **state)
{
    (void)state;
    for (job_state_t s = JOB_STARTING; s <= JOB_CLOSING; s++)
        assert_int_equal(next(s, JOB_EV_LEASE_LOST, &busy), JOB_LOST);
    /* A hand-back already gave the lease up; an ended job has nothing to lose. */
    assert_int_equal(next(JOB_HANDING_BACK, JOB_EV_LEASE_LOST, &busy), JOB_HANDING_BACK);
    assert_int_equal(next(JOB_ENDED, JOB_EV_LEASE_LOST, &busy), JOB_ENDED);
    assert_int_equal(next(JOB_LOST, JOB_EV_LEASE_LOST, &busy), JOB_LOST);
}

static void test_an_ended_job_takes_no_event(void **state)
{
    (void)state;
    for (int ev = 0; ev < ALL_EVENTS; ev++) {
        assert_int_equal(next(JOB_ENDED, (job_event_t)ev, &all_settled), JOB_ENDED);
        assert_int_equal(next(JOB_LOST, (job_event_t)ev, &none_running), JOB_LOST);
    }
}

static void test_images_never_start_outside_running(void **state)
{
    (void)state;
    /* A pump or a ready outside their states moves nothing (a late callback). */
    for (job_state_t s = JOB_FINISHING; s < ALL_STATES; s++) {
        assert_int_equal(next(s, JOB_EV_PUMP, &all_settled), s);
        assert_int_equal(next(s, JOB_EV_READY, &all_settled), s);
        assert_int_equal(next(s, JOB_EV_CANCEL, &all_settled), s);
    }
    assert_int_equal(next(JOB_STARTING, JOB_EV_PUMP, &all_settled), JOB_STARTING);
    assert_int_equal(next(JOB_RUNNING, JOB_EV_FINISHED, &all_settled), JOB_RUNNING);
    assert_int_equal(next(JOB_RUNNING, JOB_EV_QUEUE_ANSWERED, &all_settled), JOB_RUNNING);
}

static void test_every_state_has_a_name(void **state)
{
    (void)state;
    for (job_state_t s = JOB_STARTING; s < ALL_STATES; s++)
        assert_string_not_equal(job__state_name(s), "?");
    assert_string_equal(job__state_name((job_state_t)ALL_STATES), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_job_runs_its_images_then_finishes_then_closes),
        cmocka_unit_test(test_a_cancel_waits_for_running_images),
        cmocka_unit_test(test_a_cancel_while_starting_takes_effect_once_ready),
        cmocka_unit_test(test_a_start_that_finds_it_finished_or_missing_closes_it),
        cmocka_unit_test(test_a_failed_write_hands_back_until_the_queue_is_told),
        cmocka_unit_test(test_a_drain_timeout_waits_for_a_finish_on_its_way),
        cmocka_unit_test(test_a_lost_lease_ends_every_live_state),
        cmocka_unit_test(test_an_ended_job_takes_no_event),
        cmocka_unit_test(test_images_never_start_outside_running),
        cmocka_unit_test(test_every_state_has_a_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
