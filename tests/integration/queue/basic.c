/*
 * tests/integration/queue/basic.c - the job lifecycle through the blocking
 * client against the fixture's real Redis: enqueue, claim, heartbeat,
 * finish; idempotency; the active cap; leases and fencing; poison jobs;
 * retries; dead letters; cancel; deadlines; events. Queue positions are
 * position.c's.
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

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Claims exactly one job (fails the test otherwise); dispose with queue_claim_dispose. */
static void claim_one(queue_sync_t *qs, const char *worker, queue_claim_t *c)
{
    gf_err_t err = {0};
    assert_int_equal(queue_sync_claim(qs, worker, 10, c, &err), 0);
    assert_int_equal(c->n_jobs, 1);
}

/* Enqueues a new job "<prefix>-..." for `user` on the pro tier (its id in `gen`), and claims it
 * as `worker`: c->jobs[0]. */
static void enqueue_and_claim(fx_t *fx, char gen[64], const char *prefix, const char *user,
                              const char *worker, queue_claim_t *c)
{
    qt_enqueue(fx->qs, qt_id(gen, 64, prefix), user, "pro");
    claim_one(fx->qs, worker, c);
}

/* Finishes `gen` as the holder of `token` with `outcome` and `detail`; the finish must succeed. */
static void finish_ok(fx_t *fx, const char *gen, uint64_t token, queue_outcome_t outcome,
                      const char *detail, queue_result_t *res)
{
    assert_int_equal(queue_sync_finish(fx->qs, gen, token, outcome, detail, res, NULL), 0);
}

static void test_enqueue_claim_complete(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_id(gen, sizeof(gen), "gen");
    queue_enqueue_req_t req = {
        .gen_id = gen, .user_id = "u1", .tier = "pro", .payload = "{\"prompt\":\"a cat\"}"};
    queue_result_t res;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, &err), 0);
    assert_int_equal(res.created, 1);
    assert_string_equal(res.state, "queued");
    assert_int_equal(res.position, 0);

    queue_claim_t c;
    claim_one(fx->qs, "w1", &c);
    queue_job_t *j = &c.jobs[0];
    assert_string_equal(j->gen_id, gen);
    assert_string_equal(j->user_id, "u1");
    assert_string_equal(j->tier, "pro");
    assert_string_equal(j->payload, "{\"prompt\":\"a cat\"}");
    assert_int_equal(j->token, 1);
    assert_int_equal(j->attempt, 1);
    assert_true(j->lease_until > now_ms());

    assert_int_equal(queue_sync_heartbeat(fx->qs, "w1", gen, j->token, &res, &err), 0);
    assert_int_equal(res.cancel, 0);
    queue_stats_t held;
    assert_int_equal(queue_sync_stats(fx->qs, &held, &err), 0);
    assert_int_equal(held.in_flight, 1);
    assert_int_equal(held.n_live, 1);
    assert_string_equal(held.live[0].id, "w1");
    assert_int_equal(held.live[0].in_flight, 1); /* w1 holds the job */
    queue_stats_dispose(&held);
    assert_int_equal(
        queue_sync_finish(fx->qs, gen, j->token, QUEUE_DONE, "{\"images\":1}", &res, &err), 0);
    assert_string_equal(res.state, "done");
    queue_claim_dispose(&c);

    /* Nothing left; a second finish is refused (the job is no longer running). */
    assert_int_equal(queue_sync_claim(fx->qs, "w1", 10, &c, &err), 0);
    assert_int_equal(c.n_jobs, 0);
    queue_claim_dispose(&c);
    assert_int_equal(queue_sync_finish(fx->qs, gen, 1, QUEUE_DONE, NULL, &res, NULL), GF_ECONFLICT);

    queue_events_t ev;
    assert_int_equal(queue_sync_events_read(fx->qs, gen, 0, 100, &ev, &err), 0);
    assert_int_equal(ev.n, 2);
    assert_int_equal(ev.ev[0].id, 1);
    assert_string_equal(ev.ev[0].type, "queued");
    assert_int_equal(ev.ev[1].id, 2);
    assert_string_equal(ev.ev[1].type, "done");
    assert_string_equal(ev.ev[1].data, "{\"images\":1}");
    queue_events_dispose(&ev);

    queue_stats_t st;
    assert_int_equal(queue_sync_stats(fx->qs, &st, &err), 0);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.done_this_min + st.done_last_min, 1);
    assert_int_equal(st.workers, 1);
    assert_int_equal(st.n_live, 1);
    assert_string_equal(st.live[0].id, "w1");
    assert_int_equal(st.live[0].in_flight, 0);
    assert_true(st.live[0].last_seen_ms > 1700000000000LL);
    assert_int_equal(st.n_tiers, 2);
    queue_stats_dispose(&st);
}

static void test_enqueue_is_idempotent(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_id(gen, sizeof(gen), "gen");
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = "u1", .tier = "free", .payload = "{}"};
    queue_result_t res;
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    assert_int_equal(res.created, 1);
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    assert_int_equal(res.created, 0);
    assert_string_equal(res.state, "queued");
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 10, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    /* Known while running, too: still a no-op that reports the job. */
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    assert_int_equal(res.created, 0);
    assert_string_equal(res.state, "running");
    queue_claim_dispose(&c);
}

static void test_active_cap_refuses_at_enqueue(void **state)
{
    fx_t *fx = *state;
    char gens[4][64];
    for (int i = 0; i < 3; i++)
        qt_enqueue(fx->qs, qt_id(gens[i], sizeof(gens[i]), "cap"), "capped", "free");
    queue_enqueue_req_t req = {
        .gen_id = qt_id(gens[3], sizeof(gens[3]), "cap"), .user_id = "capped", .tier = "free"};
    queue_result_t res;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, &err), GF_ETOOBIG);
    assert_int_equal(res.limit, 3);
    /* Another user is not affected; a finished job frees a slot. */
    req.user_id = "other";
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    queue_result_t cres;
    assert_int_equal(queue_sync_cancel(fx->qs, gens[0], &cres, NULL), 0);
    req.user_id = "capped";
    req.gen_id = "cap-after-cancel";
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    /* A bad tier is the caller's error. */
    req.tier = "platinum";
    req.gen_id = "bad-tier";
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), GF_EINVAL);
}

static void test_expired_lease_is_reclaimed_and_old_holder_fenced(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "lease"), "u1", "pro");
    queue_claim_t a, b;
    double t0 = ts_now();
    claim_one(fx->qs, "w1", &a);
    /* Before expiry nobody else gets it (checked only if this box was not stalled a lease long). */
    gf_err_t err = {0};
    assert_int_equal(queue_sync_claim(fx->qs, "w2", 10, &b, &err), 0);
    if (ts_now() - t0 < 0.8)
        assert_int_equal(b.n_jobs, 0);
    queue_claim_dispose(&b);
    qt_sleep_ms(1300);
    claim_one(fx->qs, "w2", &b);
    assert_string_equal(b.jobs[0].gen_id, gen);
    assert_true(b.jobs[0].token > a.jobs[0].token);
    assert_true(b.jobs[0].attempt >= 2);

    queue_result_t res;
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w1", gen, a.jobs[0].token, &res, NULL),
                     GF_ECONFLICT);
    assert_int_equal(queue_sync_finish(fx->qs, gen, a.jobs[0].token, QUEUE_DONE, NULL, &res, NULL),
                     GF_ECONFLICT);
    assert_int_equal(
        queue_sync_event_append(fx->qs, gen, a.jobs[0].token, "progress", "{}", &res, NULL),
        GF_ECONFLICT);
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w2", gen, b.jobs[0].token, &res, NULL), 0);
    finish_ok(fx, gen, b.jobs[0].token, QUEUE_DONE, NULL, &res);
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w1", "no-such-gen", 1, &res, NULL),
                     GF_ENOTFOUND);
    queue_claim_dispose(&a);
    queue_claim_dispose(&b);
}

static void test_poison_job_is_dead_lettered_after_max_reclaims(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    queue_claim_t c;
    enqueue_and_claim(fx, gen, "poison", "u1", "w1", &c); /* start */
    queue_claim_dispose(&c);
    qt_sleep_ms(1200);
    claim_one(fx->qs, "w2", &c); /* reclaim 1 (the limit) */
    queue_claim_dispose(&c);
    qt_sleep_ms(1200);
    assert_int_equal(queue_sync_claim(fx->qs, "w3", 10, &c, NULL), 0); /* reclaim 2: poison */
    assert_int_equal(c.n_jobs, 0);
    queue_claim_dispose(&c);
    queue_dead_list_t d;
    assert_int_equal(queue_sync_dead_list(fx->qs, 10, &d, NULL), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].gen_id, gen);
    assert_non_null(strstr(d.items[0].reason, "poison"));
    queue_dead_list_dispose(&d);
    queue_events_t ev;
    assert_int_equal(queue_sync_events_read(fx->qs, gen, 0, 10, &ev, NULL), 0);
    assert_string_equal(ev.ev[ev.n - 1].type, "failed");
    queue_events_dispose(&ev);
}

static void test_reclaim_from_a_holder_that_comes_back_is_not_poison(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "paused"), "u1", "pro");
    queue_claim_t a, b, c;
    queue_result_t res;
    claim_one(fx->qs, "w1", &a); /* start */
    qt_sleep_ms(1200);
    claim_one(fx->qs, "w2", &b); /* reclaim 1 (the limit) */
    /* w1 was only paused: it comes back and learns it lost the lease. */
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w1", gen, a.jobs[0].token, &res, NULL),
                     GF_ECONFLICT);
    qt_sleep_ms(1200);
    /* w2 was paused too, and comes back with a finish. */
    assert_int_equal(queue_sync_claim(fx->qs, "w3", 10, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1); /* reclaim 2 counts once: w1 came back */
    assert_string_equal(c.jobs[0].gen_id, gen);
    assert_int_equal(queue_sync_finish(fx->qs, gen, b.jobs[0].token, QUEUE_DONE, NULL, &res, NULL),
                     GF_ECONFLICT);
    /* Coming back twice takes back one reclaim only. */
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w1", gen, a.jobs[0].token, &res, NULL),
                     GF_ECONFLICT);
    queue_claim_t d;
    qt_sleep_ms(1200);
    assert_int_equal(queue_sync_claim(fx->qs, "w4", 10, &d, NULL), 0);
    assert_int_equal(d.n_jobs, 1); /* w2 came back too */
    queue_claim_dispose(&d);
    qt_sleep_ms(1200);
    /* w4 never comes back: with w3 that makes two holders lost, past the limit. */
    assert_int_equal(queue_sync_claim(fx->qs, "w5", 10, &d, NULL), 0);
    assert_int_equal(d.n_jobs, 0);
    queue_claim_dispose(&d);
    queue_dead_list_t dl;
    assert_int_equal(queue_sync_dead_list(fx->qs, 10, &dl, NULL), 0);
    assert_int_equal(dl.n, 1);
    assert_string_equal(dl.items[0].gen_id, gen);
    assert_non_null(strstr(dl.items[0].reason, "poison"));
    queue_dead_list_dispose(&dl);
    queue_claim_dispose(&a);
    queue_claim_dispose(&b);
    queue_claim_dispose(&c);
}

/* A hand-back (issue #17) spends no attempt and waits [w/2, w), w = min(cap, base * 2^(hb-1));
 * only past FARM_QUEUE_HANDBACK_MAX (4 here) is the job dead-lettered. */
static void test_handback_spends_no_attempt(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "handback"), "handbacker", "pro");
    for (int hb = 1; hb <= 5; hb++) {
        queue_claim_t c;
        double until = ts_now() + 5;
        do {
            assert_int_equal(queue_sync_claim(fx->qs, "w", 1, &c, NULL), 0);
            if (c.n_jobs == 1)
                break;
            queue_claim_dispose(&c);
            qt_sleep_ms(20);
        } while (ts_now() < until);
        assert_int_equal(c.n_jobs, 1);
        assert_int_equal(c.jobs[0].attempt, 1); /* never spent */
        queue_result_t res;
        finish_ok(fx, gen, c.jobs[0].token, QUEUE_HANDBACK, "postgres unavailable", &res);
        queue_claim_dispose(&c);
        if (hb == 5) {
            assert_string_equal(res.state, "dead");
            break;
        }
        assert_string_equal(res.state, "delayed");
        int64_t w = hb == 1 ? 200 : 400;
        assert_true(res.retry_in_ms >= w / 2 && res.retry_in_ms < w);
    }
    queue_dead_list_t d;
    assert_int_equal(queue_sync_dead_list(fx->qs, 100, &d, NULL), 0);
    int found = 0;
    for (size_t i = 0; i < d.n; i++)
        if (strcmp(d.items[i].gen_id, gen) == 0) {
            found = 1;
            assert_non_null(strstr(d.items[i].reason, "handed back 4 times"));
        }
    assert_true(found);
    queue_dead_list_dispose(&d);
}

static void test_fatal_failure_dead_letters_and_redrive_works(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    queue_claim_t c;
    enqueue_and_claim(fx, gen, "fatal", "u1", "w1", &c);
    queue_result_t res;
    finish_ok(fx, gen, c.jobs[0].token, QUEUE_FATAL, "prompt refused by the provider", &res);
    assert_string_equal(res.state, "dead");
    queue_claim_dispose(&c);

    queue_dead_list_t d;
    assert_int_equal(queue_sync_dead_list(fx->qs, 10, &d, NULL), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].reason, "prompt refused by the provider");
    queue_dead_list_dispose(&d);

    assert_int_equal(queue_sync_dead_retry(fx->qs, gen, NULL), 1);
    claim_one(fx->qs, "w2", &c);
    assert_string_equal(c.jobs[0].gen_id, gen);
    assert_int_equal(c.jobs[0].attempt, 1);
    assert_int_equal(c.jobs[0].token, 2);
    finish_ok(fx, gen, c.jobs[0].token, QUEUE_DONE, NULL, &res);
    queue_claim_dispose(&c);

    /* Purge: a second dead job disappears with its events. */
    char gen2[64];
    enqueue_and_claim(fx, gen2, "fatal", "u1", "w1", &c);
    finish_ok(fx, gen2, c.jobs[0].token, QUEUE_FATAL, "nope", &res);
    queue_claim_dispose(&c);
    assert_int_equal(queue_sync_dead_purge(fx->qs, "*", NULL), 1);
    assert_int_equal(queue_sync_dead_list(fx->qs, 10, &d, NULL), 0);
    assert_int_equal(d.n, 0);
    queue_dead_list_dispose(&d);
    assert_int_equal(queue_sync_position(fx->qs, gen2, &res, NULL), GF_ENOTFOUND);
}

static void test_cancel_queued_removes_it(void **state)
{
    fx_t *fx = *state;
    char gen[64], other[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "cq"), "u1", "pro");
    qt_enqueue(fx->qs, qt_id(other, sizeof(other), "cq"), "u2", "pro");
    queue_result_t res;
    assert_int_equal(queue_sync_cancel(fx->qs, gen, &res, NULL), 0);
    assert_string_equal(res.state, "canceled");
    queue_claim_t c;
    claim_one(fx->qs, "w", &c);
    assert_string_equal(c.jobs[0].gen_id, other);
    queue_claim_dispose(&c);
    assert_int_equal(queue_sync_cancel(fx->qs, gen, &res, NULL), 0);
    assert_string_equal(res.state, "canceled"); /* already final: a no-op */
    queue_events_t ev;
    assert_int_equal(queue_sync_events_read(fx->qs, gen, 1, 10, &ev, NULL), 0);
    assert_int_equal(ev.n, 1);
    assert_int_equal(ev.ev[0].id, 2);
    assert_string_equal(ev.ev[0].type, "canceled");
    queue_events_dispose(&ev);
}

static void test_cancel_running_is_seen_by_the_next_heartbeat(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    queue_claim_t c;
    enqueue_and_claim(fx, gen, "cr", "u1", "w", &c);
    queue_result_t res;
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w", gen, c.jobs[0].token, &res, NULL), 0);
    assert_int_equal(res.cancel, 0);
    assert_int_equal(queue_sync_cancel(fx->qs, gen, &res, NULL), 0);
    assert_string_equal(res.state, "canceling");
    assert_int_equal(queue_sync_heartbeat(fx->qs, "w", gen, c.jobs[0].token, &res, NULL), 0);
    assert_int_equal(res.cancel, 1);
    finish_ok(fx, gen, c.jobs[0].token, QUEUE_CANCELED, NULL, &res);
    assert_string_equal(res.state, "canceled");
    queue_claim_dispose(&c);
}

/*
 * Jobs found expired take turns too: five users each have an expired job and
 * then a live one; a claim of two goes round the ring through all five
 * expired jobs (more picks than it asked for jobs) and serves the users in
 * ring order all the same.
 */
static void test_expired_jobs_keep_the_ring_in_order(void **state)
{
    fx_t *fx = *state;
    char user[5][16], late[5][64], live[5][64];
    queue_result_t res;
    for (int i = 0; i < 5; i++) {
        snprintf(user[i], sizeof(user[i]), "ring-u%d", i);
        queue_enqueue_req_t req = {.gen_id = qt_id(late[i], sizeof(late[i]), "late"),
                                   .user_id = user[i],
                                   .tier = "pro",
                                   .deadline_ms = 1};
        assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    }
    for (int i = 0; i < 5; i++)
        qt_enqueue(fx->qs, qt_id(live[i], sizeof(live[i]), "live"), user[i], "pro");
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 2, &c, NULL), 0);
    assert_int_equal(c.n_expired, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(c.expired[i].gen_id, late[i]);
    assert_int_equal(c.n_jobs, 2);
    assert_string_equal(c.jobs[0].gen_id, live[0]);
    assert_string_equal(c.jobs[1].gen_id, live[1]);
    queue_claim_dispose(&c);
    assert_int_equal(queue_sync_claim(fx->qs, "w", 10, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(c.jobs[i].gen_id, live[i + 2]);
    queue_claim_dispose(&c);
}

/* A backlog past its start deadlines is expired at most 256 jobs per claim (each costs the claimer
 * a farm_expire call, started at once); the next claims expire the rest, none lost or twice. */
static void test_a_claim_expires_at_most_256_jobs(void **state)
{
    fx_t *fx = *state;
    enum { N = 300, CAP = 256 };
    static char gens[N][64];
    char user[32], live[64];
    int seen[N] = {0};
    queue_result_t res;
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "expcap-%d", i);
        queue_enqueue_req_t req = {.gen_id = qt_id(gens[i], sizeof(gens[i]), "expcap"),
                                   .user_id = user,
                                   .tier = "pro",
                                   .deadline_ms = 1};
        assert_int_equal(queue_sync_enqueue(fx->qs, &req, &res, NULL), 0);
    }
    qt_enqueue(fx->qs, qt_id(live, sizeof(live), "expcap"), "expcap-live", "pro");
    queue_claim_t c;
    size_t got = 0, expired = 0;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(queue_sync_claim(fx->qs, "w", 10, &c, NULL), 0);
        assert_int_equal(c.n_expired, k == 0 ? CAP : N - CAP);
        for (size_t e = 0; e < c.n_expired; e++) {
            int i = 0;
            while (i < N && strcmp(gens[i], c.expired[e].gen_id) != 0)
                i++;
            assert_true(i < N);
            assert_int_equal(seen[i]++, 0);
        }
        expired += c.n_expired;
        for (size_t j = 0; j < c.n_jobs; j++)
            assert_string_equal(c.jobs[j].gen_id, live);
        got += c.n_jobs;
        queue_claim_dispose(&c);
    }
    assert_int_equal(expired, N);
    assert_int_equal(got, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(queue_sync_position(fx->qs, gens[i], &res, NULL), 0);
        assert_string_equal(res.state, "expired");
    }
}

static void test_deadline_passed_is_expired_not_handed_out(void **state)
{
    fx_t *fx = *state;
    char late[64], fine[64];
    queue_enqueue_req_t req = {.gen_id = qt_id(late, sizeof(late), "dl"),
                               .user_id = "u1",
                               .tier = "pro",
                               .deadline_ms = now_ms() + 200};
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, NULL, NULL), 0);
    req.gen_id = qt_id(fine, sizeof(fine), "dl");
    req.deadline_ms = now_ms() + 600000;
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, NULL, NULL), 0);
    qt_sleep_ms(400);
    queue_claim_t c;
    assert_int_equal(queue_sync_claim(fx->qs, "w", 10, &c, NULL), 0);
    assert_int_equal(c.n_jobs, 1);
    assert_string_equal(c.jobs[0].gen_id, fine);
    assert_int_equal(c.n_expired, 1);
    assert_string_equal(c.expired[0].gen_id, late);
    assert_string_equal(c.expired[0].user_id, "u1");
    queue_claim_dispose(&c);
    queue_result_t res;
    assert_int_equal(queue_sync_position(fx->qs, late, &res, NULL), 0);
    assert_string_equal(res.state, "expired");
}

/* The deadline is a start deadline: a job handed back after its start (which gives its attempt
 * back) is leased again once its deadline has passed, not expired. */
static void test_handed_back_job_outlives_its_start_deadline(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    queue_enqueue_req_t req = {.gen_id = qt_id(gen, sizeof(gen), "dlhb"),
                               .user_id = "u1",
                               .tier = "pro",
                               .deadline_ms = now_ms() + 300};
    assert_int_equal(queue_sync_enqueue(fx->qs, &req, NULL, NULL), 0);
    queue_claim_t c;
    claim_one(fx->qs, "w", &c);
    queue_result_t res;
    finish_ok(fx, gen, c.jobs[0].token, QUEUE_HANDBACK, "postgres unavailable", &res);
    assert_string_equal(res.state, "delayed");
    queue_claim_dispose(&c);
    qt_sleep_ms(600); /* past the deadline and the hand-back's wait (under 200 ms) */
    assert_int_equal(queue_sync_claim(fx->qs, "w", 10, &c, NULL), 0);
    assert_int_equal(c.n_expired, 0);
    assert_int_equal(c.n_jobs, 1);
    assert_string_equal(c.jobs[0].gen_id, gen);
    queue_claim_dispose(&c);
}

static void test_events_are_numbered_and_resumable(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    queue_claim_t c;
    enqueue_and_claim(fx, gen, "ev", "evuser", "w", &c);
    queue_result_t res;
    for (int i = 0; i < 5; i++) {
        char data[32];
        snprintf(data, sizeof(data), "{\"pct\":%d}", (i + 1) * 20);
        assert_int_equal(
            queue_sync_event_append(fx->qs, gen, c.jobs[0].token, "progress", data, &res, NULL), 0);
        assert_int_equal(res.event_id, (uint64_t)i + 2);
    }
    queue_claim_dispose(&c);
    queue_events_t ev;
    assert_int_equal(queue_sync_events_read(fx->qs, gen, 3, 100, &ev, NULL), 0);
    assert_int_equal(ev.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ev.ev[i].id, 4 + i);
        assert_string_equal(ev.ev[i].type, "progress");
    }
    assert_string_equal(ev.ev[2].data, "{\"pct\":100}");
    queue_events_dispose(&ev);

    /* The user's stream: all six, then resumption after the third. */
    assert_int_equal(queue_sync_user_events_read(fx->qs, "evuser", NULL, 100, &ev, NULL), 0);
    assert_int_equal(ev.n, 6);
    char after[64];
    snprintf(after, sizeof(after), "%s", ev.ev[2].stream_id);
    assert_string_equal(ev.ev[2].gen_id, gen);
    assert_int_equal(ev.ev[2].id, 3);
    queue_events_dispose(&ev);
    assert_int_equal(queue_sync_user_events_read(fx->qs, "evuser", after, 100, &ev, NULL), 0);
    assert_int_equal(ev.n, 3);
    assert_int_equal(ev.ev[0].id, 4);
    queue_events_dispose(&ev);

    /* A Redis that refuses writes (maxmemory reached) still serves the reads. */
    assert_true(qt_redis_ok("CONFIG SET maxmemory 1"));
    char gen2[64];
    queue_enqueue_req_t req = {.gen_id = qt_id(gen2, sizeof(gen2), "ev"),
                               .user_id = "evuser",
                               .tier = "pro",
                               .payload = "{}"};
    queue_result_t r2;
    gf_err_t err = {0};
    int refused = queue_sync_enqueue(fx->qs, &req, &r2, &err);
    assert_int_equal(queue_sync_events_read(fx->qs, gen, 3, 100, &ev, NULL), 0);
    assert_int_equal(ev.n, 3);
    queue_events_dispose(&ev);
    queue_stats_t st;
    int stats_rc = queue_sync_stats(fx->qs, &st, NULL);
    /* And a process that connects now (FUNCTION LOAD is refused too) finds its library there. */
    gf_err_t late_err = {0};
    queue_sync_t *late = queue_sync_new(fx->cfg, &late_err);
    int late_rc = late ? queue_sync_events_read(late, gen, 3, 100, &ev, NULL) : -1;
    assert_true(qt_redis_ok("CONFIG SET maxmemory 0"));
    assert_true(refused < 0); /* the write was refused: the limit was in force */
    assert_int_equal(stats_rc, 0);
    queue_stats_dispose(&st);
    if (late == NULL)
        fail_msg("queue_sync_new at maxmemory: %s", late_err.msg);
    assert_int_equal(late_rc, 0);
    assert_int_equal(ev.n, 3);
    queue_events_dispose(&ev);
    queue_sync_free(late);
}

static void test_cli_dead_letter_list_retry_purge(void **state)
{
    fx_t *fx = *state;
    char gen[64], out[4096], args[128];
    queue_claim_t c;
    enqueue_and_claim(fx, gen, "cli", "u1", "w", &c);
    finish_ok(fx, gen, c.jobs[0].token, QUEUE_FATAL, "bad input", NULL);
    queue_claim_dispose(&c);
    assert_int_equal(qt_farm_cli(out, sizeof(out), "dead-letter list"), 0);
    assert_non_null(strstr(out, gen));
    assert_non_null(strstr(out, "bad input"));
    snprintf(args, sizeof(args), "dead-letter retry %s", gen);
    assert_int_equal(qt_farm_cli(out, sizeof(out), args), 0);
    /* Audited (docs/operations.md, "Audit trail"): actor cli, the job, how many. */
    assert_int_equal(
        ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT actor || ' ' || "
              "(detail->>'jobs') FROM audit_log WHERE action = 'dead_letter.retry' "
              "AND target = '%s'\")\" = 'cli 1'",
              gen),
        0);
    assert_int_equal(qt_farm_cli(out, sizeof(out), args), 1); /* no longer dead */
    claim_one(fx->qs, "w", &c);
    assert_string_equal(c.jobs[0].gen_id, gen);
    finish_ok(fx, gen, c.jobs[0].token, QUEUE_FATAL, "again", NULL);
    queue_claim_dispose(&c);
    /* Sloppy arguments are refused before anything is touched: the job is still there. */
    static const char *const sloppy[] = {"dead-letter purge '*'",
                                         "dead-letter retry '*'",
                                         "dead-letter purge ''",
                                         "dead-letter list --max 10x",
                                         "dead-letter list --max 4294967297",
                                         "dead-letter list --max 0"};
    for (size_t i = 0; i < sizeof(sloppy) / sizeof(sloppy[0]); i++)
        assert_int_equal(qt_farm_cli(out, sizeof(out), sloppy[i]), 2);
    assert_int_equal(qt_farm_cli(out, sizeof(out), "dead-letter list --max 10"), 0);
    assert_non_null(strstr(out, gen));
    assert_int_equal(qt_farm_cli(out, sizeof(out), "dead-letter purge --all"), 0);
    assert_non_null(strstr(out, "purged: 1"));
    assert_int_equal(ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                           "audit_log WHERE action = 'dead_letter.purge' AND target = '*' AND "
                           "actor = 'cli' AND detail->>'jobs' = '1'\")\" = 1"),
                     0);
    /* The retry of a job not dead-lettered (exit 1 above) wrote no row. */
    assert_int_equal(ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                           "audit_log WHERE action = 'dead_letter.retry'\")\" = 1"),
                     0);
    assert_int_equal(qt_farm_cli(out, sizeof(out), "dead-letter list"), 0);
    assert_null(strstr(out, gen));
    assert_int_equal(qt_farm_cli(out, sizeof(out), "dead-letter frobnicate"), 2);
}

static void test_a_redis_acl_user_logs_in(void **state)
{
    (void)state;
    assert_int_equal(qt_redis_ok("ACL SETUSER farmq on >p@ss:w0rd ~* &* +@all"), 1);
    char url[160], bad[160];
    snprintf(url, sizeof(url), "FARM_REDIS_URL=redis://farmq:p%%40ss%%3aw0rd@127.0.0.1:%s/0",
             ts_env("FARM_TEST_REDIS_PORT"));
    snprintf(bad, sizeof(bad), "FARM_REDIS_URL=redis://farmq:wrong@127.0.0.1:%s/0",
             ts_env("FARM_TEST_REDIS_PORT"));
    const char *ok_env[] = {url, NULL}, *bad_env[] = {bad, NULL};
    gf_config_t *cfg = qt_cfg(ok_env);
    gf_err_t err = {0};
    queue_sync_t *qs = queue_sync_new(cfg, &err);
    if (qs == NULL)
        fail_msg("queue_sync_new as farmq: %s", err.msg);
    queue_stats_t st;
    assert_int_equal(queue_sync_stats(qs, &st, NULL), 0);
    queue_stats_dispose(&st);
    queue_sync_free(qs);
    gf_cfg_free(cfg);
    cfg = qt_cfg(bad_env);
    qs = queue_sync_new(cfg, &err);
    assert_null(qs);
    assert_null(strstr(err.msg, "wrong"));
    gf_cfg_free(cfg);
    assert_int_equal(qt_redis_int("ACL DELUSER farmq"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enqueue_claim_complete, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_is_idempotent, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_active_cap_refuses_at_enqueue, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_expired_lease_is_reclaimed_and_old_holder_fenced,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_poison_job_is_dead_lettered_after_max_reclaims,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_from_a_holder_that_comes_back_is_not_poison,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_handback_spends_no_attempt, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_fatal_failure_dead_letters_and_redrive_works,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_removes_it, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running_is_seen_by_the_next_heartbeat,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_expired_jobs_keep_the_ring_in_order, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_a_claim_expires_at_most_256_jobs, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_deadline_passed_is_expired_not_handed_out,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_handed_back_job_outlives_its_start_deadline,
                                        qt_sync_setup, qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_events_are_numbered_and_resumable, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_cli_dead_letter_list_retry_purge, qt_sync_setup,
                                        qt_sync_teardown),
        cmocka_unit_test_setup_teardown(test_a_redis_acl_user_logs_in, qt_sync_setup,
                                        qt_sync_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
