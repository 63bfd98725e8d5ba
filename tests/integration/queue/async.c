/*
 * tests/integration/queue/async.c - the async client on a libuv loop against
 * the fixture's real Redis: the lifecycle through callbacks, the live wait
 * (one subscription, events in order without gaps), cancel of a running job
 * seen within 2 s through pub/sub, failing fast while Redis is down, and
 * reconnecting (watches resume) after it restarts, channels subscribed only
 * as needed, a subscriber connection that died silently (or never answered
 * its setup) found and replaced, a new process reading from a full Redis, a
 * failed watch read read again, no callback inside a call, and a close that
 * ends its watches after it returned, and within the operation timeout while
 * Redis is silent. What the client sends to Redis (batches, rate limit
 * takes, the function library, error records) is in batch.c. Each test
 * closes the queue and checks that the loop closes empty (qt_async_teardown).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_proxy.h"
#include "queue_util.h"
#include "support.h"

typedef qt_async_fx_t fx_t;

static void on_watch(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e, void *data)
{
    fx_t *fx = data;
    (void)w;
    if (err->code < 0) {
        fx->watch_final = err->code;
        return;
    }
    for (size_t i = 0; i < e->n && fx->n_seen < 64; i++) {
        fx->seen_ids[fx->n_seen++] = e->ev[i].id;
        snprintf(fx->last_type, sizeof(fx->last_type), "%s", e->ev[i].type);
    }
}

static int seen_at_least(fx_t *fx, int n, double timeout_s)
{
    double end = ts_now() + timeout_s;
    while (fx->n_seen < n && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return fx->n_seen >= n;
}

/* A watch of job `gen` on `q` from its start, once it delivered the job's first event (the
 * 'queued' one that already exists; asserted). */
static queue_watch_t *watch_from_start(fx_t *fx, queue_t *q, const char *gen)
{
    gf_err_t err = {0};
    queue_watch_t *w = queue_watch_gen(q, gen, 0, on_watch, fx, &err);
    assert_non_null(w);
    assert_true(seen_at_least(fx, 1, 5));
    return w;
}

static void test_async_lifecycle_with_live_wait(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_id(gen, sizeof(gen), "async");
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = "ua", .tier = "pro", .payload = "{}"};
    assert_int_equal(qt_wait_op(fx, queue_enqueue(fx->q, &req, qt_on_result, fx)), 0);
    assert_int_equal(fx->res.created, 1);

    /* the 'queued' event that already existed */
    queue_watch_t *w = watch_from_start(fx, fx->q, gen);

    assert_int_equal(qt_wait_op(fx, queue_claim(fx->q, "wa", 8, qt_on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    uint64_t tok = fx->claim->jobs[0].token;
    queue_claim_dispose(fx->claim);
    free(fx->claim);

    for (int i = 0; i < 10; i++)
        assert_int_equal(
            qt_wait_op(fx, queue_event_append(fx->q, gen, tok, "progress", "{}", qt_on_result, fx)),
            0);
    assert_int_equal(qt_wait_op(fx, queue_heartbeat(fx->q, "wa", gen, tok, qt_on_result, fx)), 0);
    assert_int_equal(fx->res.cancel, 0);
    assert_int_equal(
        qt_wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_DONE, NULL, qt_on_result, fx)), 0);
    assert_string_equal(fx->res.state, "done");
    assert_int_equal(
        qt_wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_DONE, NULL, qt_on_result, fx)),
        GF_ECONFLICT);

    /* queued, 10 progress, done: ids 1..12, in order, no gaps, no repeats. */
    assert_true(seen_at_least(fx, 12, 5));
    assert_int_equal(fx->n_seen, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(fx->seen_ids[i], (uint64_t)i + 1);
    assert_string_equal(fx->last_type, "done");
    queue_watch_stop(w);
}

static void test_resumed_watch_starts_after_its_id(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "resume"), "ub", "pro");
    for (int i = 0; i < 4; i++)
        assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    gf_err_t err = {0};
    queue_watch_t *w = queue_watch_gen(fx->q, gen, 3, on_watch, fx, &err); /* Last-Event-ID: 3 */
    assert_true(seen_at_least(fx, 2, 5));
    assert_int_equal(fx->seen_ids[0], 4);
    assert_int_equal(fx->seen_ids[1], 5);
    /* A user watch on the same process shares the subscription. */
    queue_watch_t *uw = queue_watch_user(fx->q, "ub", NULL, on_watch, fx, &err);
    assert_non_null(uw);
    assert_true(seen_at_least(fx, 7, 5)); /* the user's five so far */
    assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    assert_true(seen_at_least(fx, 9, 5)); /* one more through each watch */
    queue_watch_stop(w);
    queue_watch_stop(uw);
}

/* A held user watch: the events it delivered, and how many it takes before it holds. */
static int held_seen, held_after;

static void on_held_watch(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e,
                          void *data)
{
    (void)data;
    if (err->code < 0)
        return;
    held_seen += (int)e->n;
    if (held_seen >= held_after)
        queue_watch_hold(w, 1);
}

/* A reader that holds its watch (a stream waiting before it writes) gets nothing more
 * while it holds it, whatever the history still to read; released, the rest in order. */
static void test_a_held_watch_reads_nothing_until_released(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "held"), "uheld", "pro");
    for (int i = 0; i < 250; i++)
        assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    held_seen = 0;
    held_after = 100;
    gf_err_t err = {0};
    queue_watch_t *w = queue_watch_user(fx->q, "uheld", NULL, on_held_watch, fx, &err);
    assert_non_null(w);
    for (double end = ts_now() + 5; held_seen < 100 && ts_now() < end;)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(held_seen, 100); /* one batch, then held */
    for (double end = ts_now() + 1; ts_now() < end;)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(held_seen, 100);
    held_after = 1000;
    queue_watch_hold(w, 0);
    assert_int_equal(held_seen, 100); /* nothing inside the release */
    for (double end = ts_now() + 5; held_seen < 251 && ts_now() < end;)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(held_seen, 251); /* queued, then the 250 */
    queue_watch_stop(w);
}

static void on_cancel(queue_t *q, const char *gen_id, void *data)
{
    fx_t *fx = data;
    (void)q;
    snprintf(fx->canceled, sizeof(fx->canceled), "%s", gen_id);
    fx->canceled_at = ts_now();
}

static void test_cancel_of_running_job_reaches_holder_within_2s(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "cancel"), "uc", "pro");
    queue_on_cancel(fx->q, on_cancel, fx);
    assert_int_equal(qt_wait_op(fx, queue_claim(fx->q, "wc", 1, qt_on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    uint64_t tok = fx->claim->jobs[0].token;
    queue_claim_dispose(fx->claim);
    free(fx->claim);
    /* Let the subscription come up before the cancel (a real worker has it from the start). */
    queue_watch_t *w = watch_from_start(fx, fx->q, gen);
    double t0 = ts_now();
    queue_result_t res;
    assert_int_equal(queue_sync_cancel(fx->qs, gen, &res, NULL), 0);
    assert_string_equal(res.state, "canceling");
    double end = t0 + 2.0;
    while (fx->canceled[0] == '\0' && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_string_equal(fx->canceled, gen);
    assert_true(fx->canceled_at - t0 <= 2.0);
    /* The heartbeat answer says the same (the guarantee when pub/sub is down). */
    assert_int_equal(qt_wait_op(fx, queue_heartbeat(fx->q, "wc", gen, tok, qt_on_result, fx)), 0);
    assert_int_equal(fx->res.cancel, 1);
    assert_int_equal(
        qt_wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_CANCELED, NULL, qt_on_result, fx)), 0);
    assert_string_equal(fx->res.state, "canceled");
    queue_watch_stop(w);
    queue_on_cancel(fx->q, NULL, NULL);
}

static void on_ping(queue_t *q, const gf_err_t *err, void *data)
{
    (void)q;
    fx_t *fx = data;
    fx->status = err->code;
    fx->done = 1;
}

static void test_fails_fast_while_down_and_reconnects(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "down"), "ud", "pro");
    gf_err_t err = {0};
    queue_watch_t *w = watch_from_start(fx, fx->q, gen);

    qt_redis_stop();
    double end = ts_now() + 10;
    while (queue_is_connected(fx->q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_false(queue_is_connected(fx->q));
    queue_enqueue_req_t req = {.gen_id = "while-down", .user_id = "ud", .tier = "pro"};
    double t0 = ts_now();
    assert_int_equal(queue_enqueue(fx->q, &req, qt_on_result, fx), GF_EUNAVAIL);
    assert_int_equal(queue_claim(fx->q, "w", 1, qt_on_claim, fx), GF_EUNAVAIL);
    assert_int_equal(queue_ping(fx->q, 500, on_ping, fx), GF_EUNAVAIL);
    assert_null(queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err));
    assert_int_equal(err.code, GF_EUNAVAIL);
    assert_true(ts_now() - t0 < 1.0); /* no waiting on a dead server */

    qt_redis_start();
    assert_true(qt_async_connected(fx));
    assert_int_equal(qt_wait_op(fx, queue_ping(fx->q, 2000, on_ping, fx)), 0);
    assert_int_equal(qt_wait_op(fx, queue_enqueue(fx->q, &req, qt_on_result, fx)), 0);
    /* The watch picks up what was appended after the restart. */
    assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL),
                     GF_EUNAVAIL); /* its connection died with the server */
    assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    assert_true(seen_at_least(fx, 2, 10));
    assert_int_equal(fx->seen_ids[1], 2);
    queue_watch_stop(w);
}

/* Runs the loop until `channel` has `n` subscribers (PUBSUB NUMSUB) or 5 s pass. */
static long long numsub_reaches(fx_t *fx, const char *channel, long long n)
{
    double end = ts_now() + 5;
    long long v;
    while ((v = qt_redis_numsub(channel)) != n && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return v;
}

static void test_channels_are_subscribed_as_needed(void **state)
{
    fx_t *fx = *state;
    /* A worker listens for cancels only: it must not receive the farm's events. */
    queue_on_cancel(fx->q, on_cancel, fx);
    assert_int_equal(numsub_reaches(fx, "{farm}:cx", 1), 1);
    assert_int_equal(qt_redis_numsub("{farm}:ev"), 0);
    /* A watch added later subscribes to the events too, on the same connection,
     * and sees events appended after it started. */
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "chan"), "uch", "pro");
    gf_err_t err = {0};
    queue_watch_t *w = queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err);
    assert_non_null(w);
    assert_int_equal(numsub_reaches(fx, "{farm}:ev", 1), 1);
    assert_int_equal(qt_redis_numsub("{farm}:cx"), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    assert_true(seen_at_least(fx, 4, 5));
    assert_int_equal(fx->n_seen, 4);
    queue_watch_stop(w);
    queue_on_cancel(fx->q, NULL, NULL);
}

/* fx->q2: a second queue on `cfg`, connected within `timeout_s` (asserted); the teardown
 * closes it. */
static queue_t *open_q2(fx_t *fx, const gf_config_t *cfg, double timeout_s)
{
    gf_err_t err = {0};
    queue_t *q = fx->q2 = queue_new(&fx->loop, cfg, &err);
    assert_non_null(q);
    double end = ts_now() + timeout_s;
    while (!queue_is_connected(q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(queue_is_connected(q));
    return q;
}

/* The second queue (fx->q2), connected through a new proxy (fx->px) to the fixture's Redis,
 * with `op_timeout` (a FARM_QUEUE_OP_TIMEOUT_MS setting) and a 300 ms connect timeout. */
static queue_t *q2_through_proxy(fx_t *fx, const char *op_timeout)
{
    qt_proxy_t *px = fx->px = qt_proxy_start(atoi(ts_env("FARM_TEST_REDIS_PORT")));
    assert_non_null(px);
    static char url[96];
    snprintf(url, sizeof(url), "FARM_REDIS_URL=redis://127.0.0.1:%d/0", qt_proxy_port(px));
    const char *const env[] = {url, op_timeout, "FARM_REDIS_CONNECT_TIMEOUT_MS=300", NULL};
    fx->cfg2 = qt_cfg(env);
    return open_q2(fx, fx->cfg2, 5);
}

static void test_a_deaf_subscription_is_found_and_replaced(void **state)
{
    fx_t *fx = *state;
    /* A queue that reaches Redis through a proxy which can silence one connection. */
    queue_t *q = q2_through_proxy(fx, "FARM_QUEUE_OP_TIMEOUT_MS=1000");
    qt_proxy_t *px = fx->px;
    assert_int_equal(qt_proxy_accepted(px), 1); /* the command connection */

    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "deaf"), "udf", "pro");
    queue_watch_t *w = watch_from_start(fx, q, gen);
    assert_int_equal(numsub_reaches(fx, "{farm}:ev", 1), 1);
    /* An event through the live subscription, and a moment for the loop, so the
     * subscriber has surely taken its confirmations. */
    assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    assert_true(seen_at_least(fx, 2, 5));
    double pause = ts_now() + 0.2;
    while (ts_now() < pause)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(qt_proxy_accepted(px), 2); /* commands, then the subscriber */

    /* The subscriber's connection dies without a word; an event comes. Without
     * the probe the watch would wait forever; with it, the subscriber is
     * replaced (a third connection) and the watch re-reads. */
    qt_proxy_deafen(px, 1);
    assert_int_equal(queue_sync_event_append(fx->qs, gen, 0, "progress", "{}", NULL, NULL), 0);
    assert_true(seen_at_least(fx, 3, 15));
    assert_int_equal(fx->n_seen, 3);
    assert_int_equal(fx->seen_ids[2], 3);
    assert_true(qt_proxy_accepted(px) >= 3);

    queue_watch_stop(w); /* the teardown closes the queue and stops the proxy */
}

/*
 * A connection the kernel accepted but that never answers its setup (a connect
 * that lands while Redis shuts down): without a setup timeout the queue stayed
 * "connected", never ready, and failed every call fast, for ever.
 */
/* fx->cfg2: Redis through fx->px, whose first connection is open and silent, and `setting`. */
static qt_proxy_t *cfg2_with_a_silent_first_connection(fx_t *fx, const char *setting)
{
    qt_proxy_t *px = fx->px = qt_proxy_start(atoi(ts_env("FARM_TEST_REDIS_PORT")));
    assert_non_null(px);
    qt_proxy_deafen(px, 0);
    char url[96];
    snprintf(url, sizeof(url), "FARM_REDIS_URL=redis://127.0.0.1:%d/0", qt_proxy_port(px));
    const char *const env[] = {url, setting, NULL};
    fx->cfg2 = qt_cfg(env);
    return px;
}

static void test_a_connection_that_never_answers_its_setup_is_replaced(void **state)
{
    fx_t *fx = *state;
    qt_proxy_t *px = cfg2_with_a_silent_first_connection(fx, "FARM_QUEUE_OP_TIMEOUT_MS=500");
    queue_t *q = open_q2(fx, fx->cfg2, 10);
    assert_int_equal(qt_proxy_accepted(px), 2); /* the silent one, then its replacement */

    /* And it works: a job enqueued through it can be claimed. */
    char gen[64];
    qt_id(gen, sizeof(gen), "setup");
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = "ust", .tier = "pro", .payload = "{}"};
    assert_int_equal(qt_wait_op(fx, queue_enqueue(q, &req, qt_on_result, fx)), 0);
    assert_int_equal(fx->res.created, 1);
    assert_int_equal(qt_wait_op(fx, queue_claim(q, "wst", 8, qt_on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    assert_string_equal(fx->claim->jobs[0].gen_id, gen);
    queue_claim_dispose(fx->claim);
    free(fx->claim);
}

/*
 * A claim whose answer is lost (the proxy forwards it and drops what Redis
 * answers) times out; the next claim of the same worker is given the job the
 * lost one leased, under the same token, instead of nothing while that lease
 * runs out and then a reclaim counted toward the poison limit.
 */
static void test_a_claim_whose_answer_was_lost_is_asked_again(void **state)
{
    fx_t *fx = *state;
    queue_t *q = q2_through_proxy(fx, "FARM_QUEUE_OP_TIMEOUT_MS=500");
    qt_proxy_t *px = fx->px;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "lostclaim"), "ulc", "pro");
    qt_proxy_lose_answers(px, 0);
    assert_int_equal(qt_wait_op(fx, queue_claim(q, "wlc", 1, qt_on_claim, fx)), GF_ETIMEDOUT);
    /* It ran: the job is leased, to nobody that knows it. */
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ZRANK {farm}:leases %s", gen);
    assert_true(qt_redis_int(cmd) >= 0);
    /* The timeout dropped the connection; a new one answers. */
    double end = ts_now() + 10;
    while ((!queue_is_connected(q) || qt_proxy_accepted(px) < 2) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(queue_is_connected(q));
    assert_int_equal(qt_wait_op(fx, queue_claim(q, "wlc", 1, qt_on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    assert_string_equal(fx->claim->jobs[0].gen_id, gen);
    assert_int_equal(fx->claim->jobs[0].token, 1);
    assert_int_equal(fx->claim->jobs[0].attempt, 1);
    queue_claim_dispose(fx->claim);
    free(fx->claim);
    /* That claim was answered: the next one is new, and finds nothing more. */
    assert_int_equal(qt_wait_op(fx, queue_claim(q, "wlc", 1, qt_on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 0);
    queue_claim_dispose(fx->claim);
    free(fx->claim);
}

static void on_events(queue_t *q, const gf_err_t *err, const queue_events_t *e, void *data)
{
    (void)q;
    fx_t *fx = data;
    fx->status = err->code;
    if (err->code == 0)
        fx->n_seen += (int)e->n;
    fx->done = 1;
}

/* A process that connects to a full Redis (maxmemory reached) still gets ready to read. */
static void test_a_full_redis_still_lets_a_new_process_read(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "full"), "ufull", "pro");
    assert_true(qt_redis_ok("CONFIG SET maxmemory 1"));
    gf_err_t err = {0};
    queue_t *q = fx->q2 = queue_new(&fx->loop, fx->cfg, &err);
    double end = ts_now() + 5;
    while (q && !queue_is_connected(q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    int ready = q && queue_is_connected(q);
    int rc = ready ? queue_events_read(q, gen, 0, 10, on_events, fx) : -1;
    if (rc == 0)
        qt_run_until(fx, &fx->done, 5);
    assert_true(qt_redis_ok("CONFIG SET maxmemory 0"));
    assert_true(ready);
    assert_int_equal(rc, 0);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->n_seen, 1); /* its 'queued' event */
}

/*
 * A watch whose read gets an error answer, on a connection that stays up,
 * reads again at the next probe tick (every 3 s). The error: this queue's
 * library is gone and Redis refuses to load it again (an ACL without
 * FUNCTION), while a process with other settings, and so its own library,
 * appends an event and notifies.
 */
static void test_a_watch_read_that_failed_is_read_again(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "retry"), "uretry", "pro");
    gf_err_t err = {0};
    queue_watch_t *w = watch_from_start(fx, fx->q, gen);
    static const char *const other[] = {"FARM_QUEUE_TIERS=pro:4:11,free:1:3", NULL};
    fx->cfg2 = qt_cfg(other);
    queue_sync_t *qs2 = queue_sync_new(fx->cfg2, &err);
    assert_non_null(qs2);
    assert_int_equal(qt_redis_ok("FUNCTION FLUSH"), 1);
    queue_stats_t st;
    assert_int_equal(queue_sync_stats(qs2, &st, &err), 0); /* qs2 loads its own again */
    queue_stats_dispose(&st);
    assert_int_equal(qt_redis_ok("ACL SETUSER default -function"), 1);
    int appended = queue_sync_event_append(qs2, gen, 0, "progress", "{}", NULL, &err);
    double pause = ts_now() + 1;
    while (ts_now() < pause)
        uv_run(&fx->loop, UV_RUN_ONCE);
    int seen_while_refused = fx->n_seen;
    assert_int_equal(qt_redis_ok("ACL SETUSER default +function"), 1);
    int seen_after = seen_at_least(fx, 2, 6);
    queue_watch_stop(w);
    queue_sync_free(qs2);
    assert_int_equal(appended, 0);
    assert_int_equal(seen_while_refused, 1); /* the read failed */
    assert_true(seen_after);                 /* and was made again, unprompted */
    assert_int_equal(fx->seen_ids[1], 2);
}

/* Calls made from a callback that runs while the connection is being torn down. */
typedef struct {
    fx_t *fx;
    int in_call;    /* set while this test is inside queue_enqueue */
    int ran_inside; /* callbacks that ran inside a call: must stay 0 */
    int accepted, answered, unavailable;
} flood_t;

static void on_flood_answer(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    (void)q;
    (void)res;
    flood_t *f = data;
    f->ran_inside += f->in_call;
    f->answered++;
    f->unavailable += err->code == GF_EUNAVAIL;
}

static void on_ping_flood(queue_t *q, const gf_err_t *err, void *data)
{
    flood_t *f = data;
    f->fx->status = err->code;
    f->fx->done = 1;
    /* 70 enqueues: the 64th fills a batch, which is sent at once and cannot be. */
    for (int i = 0; i < 70; i++) {
        char gen[64];
        queue_enqueue_req_t req = {.gen_id = qt_id(gen, sizeof(gen), "flood"),
                                   .user_id = "uflood",
                                   .tier = "pro",
                                   .payload = "{}"};
        f->in_call = 1;
        f->accepted += queue_enqueue(q, &req, on_flood_answer, f) == 0;
        f->in_call = 0;
    }
}

static void test_no_callback_runs_inside_a_call(void **state)
{
    fx_t *fx = *state;
    flood_t f = {.fx = fx};
    /* Redis goes away; the loop has not seen it yet, so a PING is still taken,
     * and its failure is delivered while hiredis tears the connection down. */
    qt_redis_stop();
    assert_int_equal(queue_ping(fx->q, 2000, on_ping_flood, &f), 0);
    double end = ts_now() + 10;
    while ((!fx->done || f.answered < f.accepted) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->done);
    assert_true(fx->status < 0);
    assert_int_equal(f.answered, f.accepted);
    assert_int_equal(f.unavailable, f.accepted);
    assert_int_equal(f.ran_inside, 0);
    qt_redis_start();
    assert_true(qt_async_connected(fx));
}

/* A watch's final answer to a close, and whether it came inside queue_close. */
typedef struct {
    int in_close;
    int ran_inside;
    gf_err_t final;
} closing_watch_t;

static void on_watch_closing(queue_watch_t *w, const gf_err_t *err, const queue_events_t *e,
                             void *data)
{
    closing_watch_t *cw = data;
    (void)w;
    (void)e;
    if (err->code < 0) {
        cw->ran_inside += cw->in_close;
        cw->final = *err;
    }
}

static void test_a_close_ends_its_watches_after_it_returned(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q2(fx, fx->cfg, 5);
    gf_err_t err = {0};
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "closew"), "ucw", "pro");
    closing_watch_t cw = {0};
    assert_non_null(queue_watch_gen(q, gen, 0, on_watch_closing, &cw, &err));
    cw.in_close = 1;
    queue_close(q, qt_on_closed2, fx);
    cw.in_close = 0;
    fx->q2 = NULL;                          /* closed: the teardown must not close it again */
    assert_int_equal(cw.final.code, GF_OK); /* nothing yet */
    assert_true(qt_run_until(fx, &fx->closed2, 10));
    assert_int_equal(cw.ran_inside, 0);
    assert_int_equal(cw.final.code, GF_ECANCELED);
    assert_string_equal(cw.final.domain, "queue");
}

/* A stats answer: how many times it came, the last status, and whether inside queue_close. */
typedef struct {
    int calls, in_close, ran_inside;
    gf_err_t err;
} closing_stats_t;

static void on_stats_closing(queue_t *q, const gf_err_t *err, const queue_stats_t *s, void *data)
{
    closing_stats_t *cs = data;
    (void)q;
    (void)s;
    cs->calls++;
    cs->ran_inside += cs->in_close;
    cs->err = *err;
}

/* Closes fx->q2 and runs the loop until it closed or `timeout_s` passed; whether it closed. */
static int close_q2_within(fx_t *fx, closing_stats_t *cs, double timeout_s)
{
    cs->in_close = 1;
    queue_close(fx->q2, qt_on_closed2, fx);
    cs->in_close = 0;
    fx->q2 = NULL; /* closing: the teardown must not close it again (stopping the proxy ends it) */
    return qt_run_until(fx, &fx->closed2, timeout_s);
}

/*
 * Redis goes silent with the TCP connection up (SIGSTOP, a VM pause) while an
 * operation waits for its answer, and the process stops: hiredis disconnects
 * only once every reply is in, so the close waited forever, till SIGKILL. It
 * ends within the operation timeout, the operation with its error, once.
 */
static void test_a_close_ends_while_redis_is_silent(void **state)
{
    fx_t *fx = *state;
    queue_t *q = q2_through_proxy(fx, "FARM_QUEUE_OP_TIMEOUT_MS=500");
    qt_proxy_deafen(fx->px, 0); /* the command connection */
    closing_stats_t cs = {0};
    assert_int_equal(queue_stats(q, on_stats_closing, &cs), 0);
    assert_true(close_q2_within(fx, &cs, 5));
    assert_int_equal(cs.ran_inside, 0);
    assert_int_equal(cs.calls, 1);
    assert_true(cs.err.code == GF_ECANCELED || cs.err.code == GF_ETIMEDOUT);
    double end = ts_now() + 0.3; /* and never again */
    while (ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(cs.calls, 1);
}

/* The same while the connection's setup (FUNCTION LOAD) waits for its answer. */
static void test_a_close_ends_while_the_setup_is_unanswered(void **state)
{
    fx_t *fx = *state;
    qt_proxy_t *px = cfg2_with_a_silent_first_connection(fx, "FARM_QUEUE_OP_TIMEOUT_MS=1000");
    gf_err_t err = {0};
    fx->q2 = queue_new(&fx->loop, fx->cfg2, &err);
    assert_non_null(fx->q2);
    /* Connected and its setup sent, well inside the 1 s setup timeout. */
    double end = ts_now() + 5;
    while (qt_proxy_accepted(px) < 1 && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    end = ts_now() + 0.3;
    while (ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(qt_proxy_accepted(px), 1);
    assert_false(queue_is_connected(fx->q2));
    closing_stats_t cs = {0};
    assert_true(close_q2_within(fx, &cs, 5));
    assert_int_equal(qt_proxy_accepted(px), 1); /* and it did not connect again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_async_lifecycle_with_live_wait, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_resumed_watch_starts_after_its_id, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_held_watch_reads_nothing_until_released,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_of_running_job_reaches_holder_within_2s,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_fails_fast_while_down_and_reconnects, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_channels_are_subscribed_as_needed, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_no_callback_runs_inside_a_call, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_connection_that_never_answers_its_setup_is_replaced,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_full_redis_still_lets_a_new_process_read,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_watch_read_that_failed_is_read_again, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_deaf_subscription_is_found_and_replaced,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_claim_whose_answer_was_lost_is_asked_again,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_close_ends_its_watches_after_it_returned,
                                        qt_async_setup, qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_close_ends_while_redis_is_silent, qt_async_setup,
                                        qt_async_teardown),
        cmocka_unit_test_setup_teardown(test_a_close_ends_while_the_setup_is_unanswered,
                                        qt_async_setup, qt_async_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
