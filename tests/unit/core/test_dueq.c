/*
 * tests/unit/core/test_dueq.c - core/dueq.c, the queue of things due at a
 * time that serves every SSE stream's heartbeat from one timer: earliest
 * first, ties in push order, removal from anywhere, nothing popped before
 * its time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dueq.h"

static void test_an_empty_queue_has_nothing_due(void **state)
{
    (void)state;
    gf_dueq_t q = {0};
    assert_int_equal(gf_dueq_next(&q), UINT64_MAX);
    assert_null(gf_dueq_pop_due(&q, UINT64_MAX - 1));
}

static void test_nodes_come_out_earliest_first_and_only_when_due(void **state)
{
    (void)state;
    gf_dueq_t q = {0};
    gf_due_t a = {0}, b = {0}, c = {0}, d = {0};
    gf_dueq_push(&q, &a, 100);
    gf_dueq_push(&q, &b, 300);
    gf_dueq_push(&q, &c, 200); /* earlier than the tail: goes before it */
    gf_dueq_push(&q, &d, 200); /* a tie: after the one pushed first */
    assert_int_equal(gf_dueq_next(&q), 100);
    assert_null(gf_dueq_pop_due(&q, 99));
    assert_ptr_equal(gf_dueq_pop_due(&q, 100), &a);
    assert_null(gf_dueq_pop_due(&q, 199));
    assert_ptr_equal(gf_dueq_pop_due(&q, 1000), &c);
    assert_ptr_equal(gf_dueq_pop_due(&q, 1000), &d);
    assert_ptr_equal(gf_dueq_pop_due(&q, 1000), &b);
    assert_null(gf_dueq_pop_due(&q, 1000));
    assert_null(q.head);
    assert_null(q.tail);
}

static void test_a_node_is_removed_from_anywhere_once(void **state)
{
    (void)state;
    gf_dueq_t q = {0};
    gf_due_t n[5] = {{0}};
    for (int i = 0; i < 5; i++)
        gf_dueq_push(&q, &n[i], 10 * (uint64_t)(i + 1));
    gf_dueq_remove(&q, &n[2]); /* middle */
    gf_dueq_remove(&q, &n[0]); /* head */
    gf_dueq_remove(&q, &n[4]); /* tail */
    gf_dueq_remove(&q, &n[4]); /* not queued any more: left alone */
    assert_false(n[4].queued);
    assert_int_equal(gf_dueq_next(&q), 20);
    assert_ptr_equal(gf_dueq_pop_due(&q, 100), &n[1]);
    assert_ptr_equal(gf_dueq_pop_due(&q, 100), &n[3]);
    assert_null(gf_dueq_pop_due(&q, 100));
}

/* A periodic chore, as the heartbeats use it: popped when due, pushed back a period later. */
static void test_a_popped_node_pushed_back_keeps_the_order(void **state)
{
    (void)state;
    gf_dueq_t q = {0};
    gf_due_t n[3] = {{0}};
    for (int i = 0; i < 3; i++)
        gf_dueq_push(&q, &n[i], 1000 + (uint64_t)i);
    uint64_t now = 1001;
    gf_due_t *d;
    int popped = 0;
    while ((d = gf_dueq_pop_due(&q, now)) != NULL) {
        gf_dueq_push(&q, d, now + 1000);
        popped++;
    }
    assert_int_equal(popped, 2);
    assert_ptr_equal(q.head, &n[2]);
    assert_int_equal(gf_dueq_next(&q), 1002);
    assert_ptr_equal(gf_dueq_pop_due(&q, 3000), &n[2]);
    assert_ptr_equal(gf_dueq_pop_due(&q, 3000), &n[0]);
    assert_ptr_equal(gf_dueq_pop_due(&q, 3000), &n[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_empty_queue_has_nothing_due),
        cmocka_unit_test(test_nodes_come_out_earliest_first_and_only_when_due),
        cmocka_unit_test(test_a_node_is_removed_from_anywhere_once),
        cmocka_unit_test(test_a_popped_node_pushed_back_keeps_the_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
