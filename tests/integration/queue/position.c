/*
 * tests/integration/queue/position.c - where a queued job stands, through the
 * blocking client against the fixture's real Redis: queue_position for one
 * job, and queue_positions for a page of them (the list's), each checked
 * against the order the queue then hands the jobs out in, and by hand across
 * tiers; and what a running job's position answers (its stage and progress).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "queue_util.h"
#include "support.h"

typedef qt_sync_fx_t fx_t;

static void test_position_counts_turns_across_users(void **state)
{
    fx_t *fx = *state;
    char a[3][64], b[64];
    for (int i = 0; i < 3; i++)
        qt_enqueue(fx->qs, qt_id(a[i], sizeof(a[i]), "pos"), "alice", "pro");
    assert_int_equal(qt_enqueue(fx->qs, qt_id(b, sizeof(b), "pos"), "bob", "pro"), 1);
    queue_result_t res;
    assert_int_equal(queue_sync_position(fx->qs, a[0], &res, NULL), 0);
    assert_int_equal(res.position, 0);
    assert_int_equal(queue_sync_position(fx->qs, a[2], &res, NULL), 0);
    assert_int_equal(res.position, 3); /* a0, b, a1 */
    /* The prediction holds: the order of claims is a0, b, a1, a2. */
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 4, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 4);
    assert_string_equal(c.jobs[0].gen_id, a[0]);
    assert_string_equal(c.jobs[1].gen_id, b);
    assert_string_equal(c.jobs[2].gen_id, a[1]);
    assert_string_equal(c.jobs[3].gen_id, a[2]);
    queue_claim_dispose(&c);
}

/* Enqueues ids[i] ("page-...") for each (users[i], tiers[i]) and asks their positions, with
 * `extra` asked after them, in one call: into *p, which must have n + 1 items. */
static void enqueue_and_ask(fx_t *fx, int n, const char *const *users, const char *const *tiers,
                            char (*ids)[64], const char *extra, queue_positions_t *p)
{
    const char *ask[16];
    assert_true(n < 16);
    for (int i = 0; i < n; i++) {
        qt_enqueue(fx->qs, qt_id(ids[i], sizeof(ids[i]), "page"), users[i], tiers[i]);
        ask[i] = ids[i];
    }
    ask[n] = extra;
    assert_int_equal(queue_sync_positions(fx->qs, ask, (size_t)n + 1, p, NULL), 0);
    assert_int_equal(p->n, (size_t)n + 1);
}

/* A page's worth of positions in one call. In one tier, each queued job's is the number of
 * jobs claimed before it; across tiers each is what queue_position says for it alone. A
 * running job has its state and stage, an unknown id no state. */
static void test_positions_answer_a_page_in_one_call(void **state)
{
    fx_t *fx = *state;
    static const char *const users[] = {"alice", "bob",   "alice", "carol", "alice", "dave", "bob",
                                        "carol", "alice", "bob",   "alice", "dave",  "carol"};
    static const char *const pro[] = {"pro", "pro", "pro", "pro", "pro", "pro", "pro",
                                      "pro", "pro", "pro", "pro", "pro", "pro"};
    static const char *const mixed[] = {"pro",  "pro", "pro", "free", "pro",  "free", "pro",
                                        "free", "pro", "pro", "pro",  "free", "free"};
    enum { N = sizeof(users) / sizeof(users[0]) };
    char ids[N][64], running[64];
    queue_claim_t c;
    queue_positions_t p;

    qt_enqueue(fx->qs, qt_id(running, sizeof(running), "run"), "erin", "pro");
    assert_int_equal(queue_sync_claim(fx->qs, "w0", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    assert_int_equal(queue_sync_event_append(fx->qs, running, c.jobs[0].token, "progress",
                                             "{\"stage\":\"generating\"}", NULL, NULL),
                     0);
    queue_claim_dispose(&c);

    enqueue_and_ask(fx, N, users, pro, ids, running, &p);
    assert_string_equal(p.items[N].state, "running");
    assert_string_equal(p.items[N].stage, "generating");
    assert_int_equal(p.items[N].position, -1);
    /* One at a time, each claim takes the job whose position is the count taken so far. */
    for (int k = 0; k < N; k++) {
        assert_int_equal(queue_sync_claim(fx->qs, "w1", 1, &c, NULL), 0);
        assert_int_equal(c.n_jobs, 1);
        int i = 0;
        while (i < N && strcmp(ids[i], c.jobs[0].gen_id) != 0)
            i++;
        assert_true(i < N);
        assert_string_equal(p.items[i].state, "queued");
        assert_int_equal(p.items[i].position, k);
        queue_claim_dispose(&c);
    }
    queue_positions_dispose(&p);

    /* Across tiers, counted by hand at pro:4 and free:1, ring order as enqueued: kim's
     * first starts first; lee's after it (kim is ahead of lee in the ring: min(2, 0 + 1) =
     * 1); kim's second after lee's (min(1, 1) = 1 more); max's free job after pro's share,
     * four per free turn, of which there are 3. */
    static const char *const small_users[] = {"kim", "lee", "kim", "max"};
    static const char *const small_tiers[] = {"pro", "pro", "pro", "free"};
    static const long long by_hand[] = {0, 1, 2, 3};
    enqueue_and_ask(fx, 4, small_users, small_tiers, ids, "never-enqueued", &p);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p.items[i].position, by_hand[i]);
    queue_positions_dispose(&p);
    /* Then more users' jobs, each as queue_position counts it alone. */
    static const char *const others[] = {"frank", "gina",  "frank", "hal",   "frank", "ivy", "gina",
                                         "hal",   "frank", "gina",  "frank", "ivy",   "hal"};
    enqueue_and_ask(fx, N, others, mixed, ids, "never-enqueued", &p);
    assert_string_equal(p.items[N].state, "");
    assert_int_equal(p.items[N].position, -1);
    for (int i = 0; i < N; i++) {
        queue_result_t one;
        assert_int_equal(queue_sync_position(fx->qs, ids[i], &one, NULL), 0);
        assert_string_equal(p.items[i].state, "queued");
        assert_int_equal(p.items[i].position, one.position);
    }
    queue_positions_dispose(&p);

    /* Bad asks are refused before Redis: none, an empty id, one with a newline, too many. */
    const char *bad[] = {"", "a\nb"};
    const char *many[QUEUE_POSITIONS_MAX + 1];
    gf_err_t err = {0};
    assert_int_equal(queue_sync_positions(fx->qs, bad, 0, &p, &err), GF_EINVAL);
    assert_int_equal(queue_sync_positions(fx->qs, bad, 1, &p, &err), GF_EINVAL);
    assert_int_equal(queue_sync_positions(fx->qs, bad + 1, 1, &p, &err), GF_EINVAL);
    for (int i = 0; i <= QUEUE_POSITIONS_MAX; i++)
        many[i] = running;
    assert_int_equal(queue_sync_positions(fx->qs, many, QUEUE_POSITIONS_MAX + 1, &p, &err),
                     GF_EINVAL);
    assert_int_equal(queue_sync_positions(fx->qs, many, QUEUE_POSITIONS_MAX, &p, &err), 0);
    assert_int_equal(p.n, QUEUE_POSITIONS_MAX);
    assert_string_equal(p.items[QUEUE_POSITIONS_MAX - 1].state, "running");
    queue_positions_dispose(&p);
}

/*
 * A running job's position answers its stage and its worker's progress (GET's), the top level's
 * only, and never less than it answered before: an attempt that starts over (a job claimed
 * again) does not take GET back.
 */
static void test_position_answers_the_larger_progress(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "pg"), "pguser", "pro");
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    uint64_t tok = c.jobs[0].token;
    queue_claim_dispose(&c);
    static const struct {
        const char *type, *data, *stage;
        int progress;
    } steps[] = {
        {"progress", "{\"status\":\"running\",\"stage\":\"postprocessing\",\"progress\":80}",
         "postprocessing", 80},
        {"image", "{\"progress\":95,\"outputs\":[{\"progress\":7}],\"index\":0}", "postprocessing",
         95},
        {"started", "{\"status\":\"running\",\"stage\":\"starting\",\"progress\":0}", "starting",
         95},
        {"image", "{\"outputs\":[{\"progress\":99}],\"progress\":98}", "starting", 95},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        queue_result_t res;
        assert_int_equal(
            queue_sync_event_append(fx->qs, gen, tok, steps[i].type, steps[i].data, &res, NULL), 0);
        assert_int_equal(queue_sync_position(fx->qs, gen, &res, NULL), 0);
        assert_string_equal(res.state, "running");
        assert_string_equal(res.stage, steps[i].stage);
        assert_int_equal(res.progress, steps[i].progress);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_position_counts_turns_across_users, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_positions_answer_a_page_in_one_call, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_position_answers_the_larger_progress, qt_sync_setup,
                                        qt_sync_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
