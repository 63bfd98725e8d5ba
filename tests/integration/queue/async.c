/*
 * tests/integration/queue/async.c - the async client on a libuv loop against
 * the fixture's real Redis: the lifecycle through callbacks, the live wait
 * (one subscription, events in order without gaps), cancel of a running job
 * seen within 2 s through pub/sub, failing fast while Redis is down, and
 * reconnecting (watches resume) after it restarts, many calls of one loop
 * iteration sent as one batch with their own answers (enqueues, finishes,
 * rate limit takes), a rate limit bucket's expiry written once per refill, a library lost to
 * FUNCTION FLUSH loaded again, channels subscribed only as needed, and a
 * subscriber connection that died silently found by the probe and replaced, the error
 * record every answer carries, and a close that ends its watches after it returned. Each
 * test closes the queue and checks that the loop closes empty.
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

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    gf_config_t *cfg;
    queue_t *q;
    queue_sync_t *qs;
    int closed;
    /* the last answer of a small operation */
    int done, status;
    gf_err_t err; /* its error record */
    queue_result_t res;
    queue_claim_t *claim;
    /* watch deliveries */
    uint64_t seen_ids[64];
    int n_seen;
    char last_type[32];
    int watch_final;
    /* cancel fast path */
    char canceled[64];
    double canceled_at;
    /* a second queue (through a proxy) that a test may leave behind when it fails */
    queue_t *q2;
    qt_proxy_t *px;
    gf_config_t *cfg2;
    int closed2;
} fx_t;

static void on_tick(uv_timer_t *t)
{
    (void)t; /* keeps the loop turning so run_until can look at the clock */
}

/* Runs the loop until *flag is set or `timeout_s` passes; returns *flag. */
static int run_until(fx_t *fx, const int *flag, double timeout_s)
{
    double end = ts_now() + timeout_s;
    while (!*flag && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return *flag;
}

static int connected_flag(fx_t *fx)
{
    double end = ts_now() + 10;
    while (!queue_is_connected(fx->q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return queue_is_connected(fx->q);
}

static int setup(void **state)
{
    static const char *const env[] = {"FARM_QUEUE_LEASE_S=5", "FARM_QUEUE_OP_TIMEOUT_MS=2000",
                                      "FARM_REDIS_CONNECT_TIMEOUT_MS=300", NULL};
    fx_t *fx = calloc(1, sizeof(*fx));
    qt_flush();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 10, 10);
    fx->cfg = qt_cfg(env);
    gf_err_t err = {0};
    fx->q = queue_new(&fx->loop, fx->cfg, &err);
    assert_non_null(fx->q);
    fx->qs = queue_sync_new(fx->cfg, &err);
    assert_non_null(fx->qs);
    assert_true(connected_flag(fx));
    *state = fx;
    return 0;
}

static void on_closed(queue_t *q, void *data)
{
    (void)q;
    ((fx_t *)data)->closed = 1;
}

static void on_closed2(queue_t *q, void *data)
{
    (void)q;
    ((fx_t *)data)->closed2 = 1;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    queue_close(fx->q, on_closed, fx);
    assert_true(run_until(fx, &fx->closed, 10));
    if (fx->q2) {
        queue_close(fx->q2, on_closed2, fx);
        assert_true(run_until(fx, &fx->closed2, 10));
    }
    if (fx->px)
        qt_proxy_stop(fx->px);
    gf_cfg_free(fx->cfg2);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    queue_sync_free(fx->qs);
    gf_cfg_free(fx->cfg);
    free(fx);
    return 0;
}

static void on_result(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    fx_t *fx = data;
    (void)q;
    fx->status = err->code;
    fx->err = *err;
    fx->res = *res;
    fx->done = 1;
}

static void on_claim(queue_t *q, const gf_err_t *err, queue_claim_t *c, void *data)
{
    fx_t *fx = data;
    (void)q;
    fx->status = err->code;
    fx->err = *err;
    fx->claim = c;
    fx->done = 1;
}

/* Waits for the answer of the operation just started (rc is its return). */
static int wait_op(fx_t *fx, int rc)
{
    assert_int_equal(rc, 0);
    assert_true(run_until(fx, &fx->done, 10));
    fx->done = 0;
    return fx->status;
}

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

static void test_async_lifecycle_with_live_wait(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_id(gen, sizeof(gen), "async");
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = "ua", .tier = "pro", .payload = "{}"};
    assert_int_equal(wait_op(fx, queue_enqueue(fx->q, &req, on_result, fx)), 0);
    assert_int_equal(fx->res.created, 1);

    gf_err_t err = {0};
    queue_watch_t *w = queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err);
    assert_non_null(w);
    assert_true(seen_at_least(fx, 1, 5)); /* the 'queued' event that already existed */

    assert_int_equal(wait_op(fx, queue_claim(fx->q, "wa", 8, on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    uint64_t tok = fx->claim->jobs[0].token;
    queue_claim_dispose(fx->claim);
    free(fx->claim);

    for (int i = 0; i < 10; i++)
        assert_int_equal(
            wait_op(fx, queue_event_append(fx->q, gen, tok, "progress", "{}", on_result, fx)), 0);
    assert_int_equal(wait_op(fx, queue_heartbeat(fx->q, "wa", gen, tok, on_result, fx)), 0);
    assert_int_equal(fx->res.cancel, 0);
    assert_int_equal(wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_DONE, NULL, on_result, fx)),
                     0);
    assert_string_equal(fx->res.state, "done");
    assert_int_equal(wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_DONE, NULL, on_result, fx)),
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
    assert_int_equal(wait_op(fx, queue_claim(fx->q, "wc", 1, on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    uint64_t tok = fx->claim->jobs[0].token;
    queue_claim_dispose(fx->claim);
    free(fx->claim);
    /* Let the subscription come up before the cancel (a real worker has it from the start). */
    gf_err_t err = {0};
    queue_watch_t *w = queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err);
    assert_true(seen_at_least(fx, 1, 5));
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
    assert_int_equal(wait_op(fx, queue_heartbeat(fx->q, "wc", gen, tok, on_result, fx)), 0);
    assert_int_equal(fx->res.cancel, 1);
    assert_int_equal(
        wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_CANCELED, NULL, on_result, fx)), 0);
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
    queue_watch_t *w = queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err);
    assert_true(seen_at_least(fx, 1, 5));

    qt_redis_stop();
    double end = ts_now() + 10;
    while (queue_is_connected(fx->q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_false(queue_is_connected(fx->q));
    queue_enqueue_req_t req = {.gen_id = "while-down", .user_id = "ud", .tier = "pro"};
    double t0 = ts_now();
    assert_int_equal(queue_enqueue(fx->q, &req, on_result, fx), GF_EUNAVAIL);
    assert_int_equal(queue_claim(fx->q, "w", 1, on_claim, fx), GF_EUNAVAIL);
    assert_int_equal(queue_ping(fx->q, 500, on_ping, fx), GF_EUNAVAIL);
    assert_null(queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err));
    assert_int_equal(err.code, GF_EUNAVAIL);
    assert_true(ts_now() - t0 < 1.0); /* no waiting on a dead server */

    qt_redis_start();
    assert_true(connected_flag(fx));
    assert_int_equal(wait_op(fx, queue_ping(fx->q, 2000, on_ping, fx)), 0);
    assert_int_equal(wait_op(fx, queue_enqueue(fx->q, &req, on_result, fx)), 0);
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

static void test_a_deaf_subscription_is_found_and_replaced(void **state)
{
    fx_t *fx = *state;
    /* A queue that reaches Redis through a proxy which can silence one connection. */
    qt_proxy_t *px = fx->px = qt_proxy_start(atoi(ts_env("FARM_TEST_REDIS_PORT")));
    assert_non_null(px);
    char url[96];
    snprintf(url, sizeof(url), "FARM_REDIS_URL=redis://127.0.0.1:%d/0", qt_proxy_port(px));
    const char *const env[] = {url, "FARM_QUEUE_OP_TIMEOUT_MS=1000",
                               "FARM_REDIS_CONNECT_TIMEOUT_MS=300", NULL};
    fx->cfg2 = qt_cfg(env);
    gf_err_t err = {0};
    queue_t *q = fx->q2 = queue_new(&fx->loop, fx->cfg2, &err);
    assert_non_null(q);
    double end = ts_now() + 5;
    while (!queue_is_connected(q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(queue_is_connected(q));
    assert_int_equal(qt_proxy_accepted(px), 1); /* the command connection */

    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "deaf"), "udf", "pro");
    queue_watch_t *w = queue_watch_gen(q, gen, 0, on_watch, fx, &err);
    assert_non_null(w);
    assert_true(seen_at_least(fx, 1, 5));
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

    queue_watch_stop(w); /* teardown closes the queue and stops the proxy */
}

/*
 * A connection the kernel accepted but that never answers its setup (a connect
 * that lands while Redis shuts down): without a setup timeout the queue stayed
 * "connected", never ready, and failed every call fast, for ever.
 */
static void test_a_connection_that_never_answers_its_setup_is_replaced(void **state)
{
    fx_t *fx = *state;
    qt_proxy_t *px = fx->px = qt_proxy_start(atoi(ts_env("FARM_TEST_REDIS_PORT")));
    assert_non_null(px);
    qt_proxy_deafen(px, 0); /* the first connection: open, and silent */
    char url[96];
    snprintf(url, sizeof(url), "FARM_REDIS_URL=redis://127.0.0.1:%d/0", qt_proxy_port(px));
    const char *const env[] = {url, "FARM_QUEUE_OP_TIMEOUT_MS=500", NULL};
    fx->cfg2 = qt_cfg(env);
    gf_err_t err = {0};
    queue_t *q = fx->q2 = queue_new(&fx->loop, fx->cfg2, &err);
    assert_non_null(q);
    double end = ts_now() + 10;
    while (!queue_is_connected(q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(queue_is_connected(q));
    assert_int_equal(qt_proxy_accepted(px), 2); /* the silent one, then its replacement */

    /* And it works: a job enqueued through it can be claimed. */
    char gen[64];
    qt_id(gen, sizeof(gen), "setup");
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = "ust", .tier = "pro", .payload = "{}"};
    assert_int_equal(wait_op(fx, queue_enqueue(q, &req, on_result, fx)), 0);
    assert_int_equal(fx->res.created, 1);
    assert_int_equal(wait_op(fx, queue_claim(q, "wst", 8, on_claim, fx)), 0);
    assert_int_equal(fx->claim->n_jobs, 1);
    assert_string_equal(fx->claim->jobs[0].gen_id, gen);
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
        run_until(fx, &fx->done, 5);
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
    queue_watch_t *w = queue_watch_gen(fx->q, gen, 0, on_watch, fx, &err);
    assert_non_null(w);
    assert_true(seen_at_least(fx, 1, 5));
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
    assert_true(connected_flag(fx));
}

/* Answers of many calls made in one loop iteration (they go to Redis as one batch). */
typedef struct {
    int n, status[80];
    queue_result_t res[80];
} many_t;

static void on_many(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    many_t *m = data;
    (void)q;
    int i = m->n++;
    m->status[i] = err->code;
    m->res[i] = *res;
}

static long long fcalls(void)
{
    return qt_redis_stat("fcall");
}

static void test_calls_of_one_iteration_each_get_their_own_answer(void **state)
{
    fx_t *fx = *state;
    /* 70 enqueues in one iteration (more than one batch holds): 66 for 66 users, a
     * repeat of the first, one with an unknown tier, and the free tier's cap (3)
     * exceeded by a user's 4th. Each answer must be its own call's, in order. */
    static char gens[70][64];
    char users[70][32];
    many_t *m = calloc(1, sizeof(*m));
    long long before = fcalls();
    for (int i = 0; i < 70; i++) {
        qt_id(gens[i], sizeof(gens[i]), "many");
        snprintf(users[i], sizeof(users[i]), "many-u%d", i);
    }
    snprintf(gens[66], sizeof(gens[66]), "%s", gens[0]);
    for (int i = 67; i < 70; i++)
        snprintf(users[i], sizeof(users[i]), "many-capped");
    for (int i = 0; i < 70; i++) {
        queue_enqueue_req_t req = {.gen_id = gens[i],
                                   .user_id = users[i],
                                   .tier = i == 66 ? "pro" : "free",
                                   .payload = "{}"};
        if (i == 65)
            req.tier = "gold";
        assert_int_equal(queue_enqueue(fx->q, &req, on_many, m), 0);
    }
    /* The capped user's 4th job, in the same iteration. */
    char extra[64];
    queue_enqueue_req_t req = {
        .gen_id = qt_id(extra, sizeof(extra), "many"), .user_id = "many-capped", .tier = "free"};
    assert_int_equal(queue_enqueue(fx->q, &req, on_many, m), 0);
    double end = ts_now() + 10;
    while (m->n < 71 && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(m->n, 71);
    for (int i = 0; i < 65; i++) {
        assert_int_equal(m->status[i], 0);
        assert_int_equal(m->res[i].created, 1);
        assert_string_equal(m->res[i].state, "queued");
    }
    assert_int_equal(m->status[65], GF_EINVAL); /* unknown tier */
    assert_int_equal(m->status[66], 0);         /* the repeat: known, nothing changed */
    assert_int_equal(m->res[66].created, 0);
    assert_string_equal(m->res[66].state, "queued");
    for (int i = 67; i < 70; i++)
        assert_int_equal(m->status[i], 0);
    assert_int_equal(m->status[70], GF_ETOOBIG);
    assert_int_equal(m->res[70].limit, 3);
    /* 71 calls, 2 batches (64 + 7), not 71 commands. */
    assert_int_equal(fcalls() - before, 2);

    /* Finishes batch the same way, each with its own fencing check. */
    queue_claim_t c;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_claim(fx->qs, "wm", 80, &c, &err), 0);
    assert_int_equal(c.n_jobs, 68);
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < c.n_jobs; i++)
        assert_int_equal(queue_finish(fx->q, c.jobs[i].gen_id, c.jobs[i].token + (i == 5),
                                      QUEUE_DONE, NULL, on_many, m),
                         0);
    end = ts_now() + 10;
    while (m->n < (int)c.n_jobs && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(m->n, (int)c.n_jobs);
    for (size_t i = 0; i < c.n_jobs; i++) {
        assert_int_equal(m->status[i], i == 5 ? GF_ECONFLICT : 0);
        assert_string_equal(m->res[i].state, i == 5 ? "running" : "done");
    }
    queue_claim_dispose(&c);
    free(m);
}

/* Rate limit takes of one iteration: one call, in order, each its own answer. */
static void test_rate_limit_takes_of_one_iteration_go_as_one_call(void **state)
{
    fx_t *fx = *state;
    char a[64], b[64];
    qt_id(a, sizeof(a), "rl-a");
    qt_id(b, sizeof(b), "rl-b");
    many_t *m = calloc(1, sizeof(*m));
    long long before = fcalls();
    /* a: 2 tokens, 1 a minute; b: 5 tokens. Interleaved: a, b, a, a. */
    const char *bucket[] = {a, b, a, a};
    for (int i = 0; i < 4; i++)
        assert_int_equal(queue_ratelimit(fx->q, bucket[i], 1, bucket[i] == a ? 2 : 5, on_many, m),
                         0);
    assert_int_equal(m->n, 0); /* no answer inside the calls */
    double end = ts_now() + 10;
    while (m->n < 4 && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(m->n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(m->status[i], 0);
    static const int allowed[] = {1, 1, 1, 0}, left[] = {1, 4, 0, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m->res[i].created, allowed[i]);
        assert_int_equal(m->res[i].position, left[i]);
    }
    /* a's third take waits for a token at 1 a minute. */
    assert_true(m->res[3].retry_in_ms > 50000 && m->res[3].retry_in_ms <= 60000);
    assert_int_equal(fcalls() - before, 1);
    free(m);
}

/*
 * A bucket's expiry: set by its first take, to twice its refill time (burst /
 * rate minutes, and a second), and pushed out again only when less than that
 * is left, so the takes in between write no PEXPIRE (nor its AOF entry).
 */
static void test_rate_limit_bucket_expiry_is_written_once_per_refill(void **state)
{
    fx_t *fx = *state;
    char a[64], key[128], cmd[160];
    qt_id(a, sizeof(a), "rl-ttl");
    snprintf(key, sizeof(key), "{%s}:rl:%s", fx->cfg->queue_name, a);
    snprintf(cmd, sizeof(cmd), "PTTL %s", key);
    long long before = qt_redis_stat("pexpire");
    many_t *m = calloc(1, sizeof(*m));
    /* 60 a minute, burst 10: full again 10 s (and a second) after a take */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(queue_ratelimit(fx->q, a, 60, 10, on_many, m), 0);
        double end = ts_now() + 10;
        while (m->n < i + 1 && ts_now() < end)
            uv_run(&fx->loop, UV_RUN_ONCE);
        assert_int_equal(m->n, i + 1);
        assert_int_equal(m->status[i], 0);
        assert_int_equal(m->res[i].created, 1);
        assert_int_equal(m->res[i].position, 9 - i); /* tokens left */
        long long ttl = qt_redis_int(cmd);
        assert_true(ttl > 11000 && ttl <= 22000);
    }
    assert_int_equal(qt_redis_stat("pexpire") - before, 1);
    /* less than the refill time left: the next take pushes it out again */
    snprintf(cmd, sizeof(cmd), "PEXPIRE %s 5000", key);
    assert_int_equal(qt_redis_int(cmd), 1);
    assert_int_equal(queue_ratelimit(fx->q, a, 60, 10, on_many, m), 0);
    double end = ts_now() + 10;
    while (m->n < 4 && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(m->n, 4);
    assert_int_equal(m->res[3].position, 6);
    snprintf(cmd, sizeof(cmd), "PTTL %s", key);
    assert_true(qt_redis_int(cmd) > 20000);
    assert_int_equal(qt_redis_stat("pexpire") - before, 3); /* ours, then the take's */
    free(m);
}

static void test_a_flushed_function_library_is_loaded_again(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "flush"), "uf", "pro");
    /* An operator's FUNCTION FLUSH: both clients load the library again and the
     * call that found it missing still runs, once. */
    assert_int_equal(qt_redis_ok("FUNCTION FLUSH"), 1);
    queue_result_t res;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_position(fx->qs, gen, &res, &err), 0);
    assert_string_equal(res.state, "queued");
    assert_int_equal(qt_redis_ok("FUNCTION FLUSH"), 1);
    assert_int_equal(wait_op(fx, queue_cancel(fx->q, gen, on_result, fx)), 0);
    assert_string_equal(fx->res.state, "canceled");
    assert_int_equal(queue_sync_position(fx->qs, gen, &res, &err), 0);
    assert_string_equal(res.state, "canceled");
}

/* Every answer carries its error record: the status, the module, and what happened. */
static void test_an_answer_carries_its_error_record(void **state)
{
    fx_t *fx = *state;
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "errrec"), "uer", "pro");
    assert_int_equal(wait_op(fx, queue_claim(fx->q, "wer", 1, on_claim, fx)), 0);
    assert_int_equal(fx->err.code, GF_OK);
    assert_int_equal(fx->claim->n_jobs, 1);
    uint64_t tok = fx->claim->jobs[0].token;
    queue_claim_dispose(fx->claim);
    free(fx->claim);
    /* A single call and a batched one, both refused for a stale token. */
    assert_int_equal(wait_op(fx, queue_heartbeat(fx->q, "wer", gen, tok + 1, on_result, fx)),
                     GF_ECONFLICT);
    assert_int_equal(fx->err.code, GF_ECONFLICT);
    assert_string_equal(fx->err.domain, "queue");
    assert_non_null(strstr(fx->err.msg, "token"));
    assert_int_equal(
        wait_op(fx, queue_finish(fx->q, gen, tok + 1, QUEUE_DONE, NULL, on_result, fx)),
        GF_ECONFLICT);
    assert_int_equal(fx->err.code, GF_ECONFLICT);
    assert_non_null(strstr(fx->err.msg, "token"));
    assert_int_equal(wait_op(fx, queue_finish(fx->q, gen, tok, QUEUE_DONE, NULL, on_result, fx)),
                     0);
    assert_int_equal(fx->err.code, GF_OK);
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
    gf_err_t err = {0};
    queue_t *q = fx->q2 = queue_new(&fx->loop, fx->cfg, &err);
    assert_non_null(q);
    double end = ts_now() + 5;
    while (!queue_is_connected(q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(queue_is_connected(q));
    char gen[64];
    qt_enqueue(fx->qs, qt_id(gen, sizeof(gen), "closew"), "ucw", "pro");
    closing_watch_t cw = {0};
    assert_non_null(queue_watch_gen(q, gen, 0, on_watch_closing, &cw, &err));
    cw.in_close = 1;
    queue_close(q, on_closed2, fx);
    cw.in_close = 0;
    fx->q2 = NULL;                          /* closed: teardown must not close it again */
    assert_int_equal(cw.final.code, GF_OK); /* nothing yet */
    assert_true(run_until(fx, &fx->closed2, 10));
    assert_int_equal(cw.ran_inside, 0);
    assert_int_equal(cw.final.code, GF_ECANCELED);
    assert_string_equal(cw.final.domain, "queue");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_async_lifecycle_with_live_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resumed_watch_starts_after_its_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_of_running_job_reaches_holder_within_2s, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fails_fast_while_down_and_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_of_one_iteration_each_get_their_own_answer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_takes_of_one_iteration_go_as_one_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_bucket_expiry_is_written_once_per_refill,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_flushed_function_library_is_loaded_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channels_are_subscribed_as_needed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_callback_runs_inside_a_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_connection_that_never_answers_its_setup_is_replaced,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_full_redis_still_lets_a_new_process_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_watch_read_that_failed_is_read_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_deaf_subscription_is_found_and_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_answer_carries_its_error_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_close_ends_its_watches_after_it_returned, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
