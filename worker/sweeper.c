/*
 * worker/sweeper.c - the sweeper's tick: one store call (farm_sweep), then
 * one queue call per generation it returned, then one store call per
 * generation the queue had given up on; beside it, the lifecycle step
 * (docs/storage.md, "Lifecycle"): one store call (farm_lifecycle:
 * retention, the idempotency keys' purge, a batch of objects due for
 * deletion), the batch's deletes through storage/, and one store call that
 * reports the objects deleted.
 *
 * Invariant: at most one tick runs at a time in a process (the timer is
 * re-armed only when a tick has finished); `pending` counts its calls in
 * flight and the sweeper is freed only when it is zero and the timer closed.
 */
#include "sweeper.h"

#include <stdlib.h>
#include <string.h>

struct worker_sweeper {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    store_t *store;
    queue_t *queue;
    storage_t *storage;
    uv_timer_t timer;
    store_call_t sweep;
    store_call_t life; /* the lifecycle step's calls, one after the other */
    int pending;       /* calls of the current tick in flight */
    int closing, timer_closed;
    /* the reconcile check: its own timer and call, one at a time */
    uv_timer_t rc_timer;
    store_call_t rc_call;
    int rc_pending, rc_timer_closed;
    gf_metric_t *m_violations, *m_last_run;
    worker_sweeper_closed_cb closed_cb;
    void *closed_data;
};

/* One candidate on its way through the queue and maybe back to the store. */
typedef struct {
    worker_sweeper_t *sw;
    char gen_id[37];
    store_call_t finish;
} sweep_item_t;

static void sweeper_tick(uv_timer_t *t);

static void sweeper_maybe_closed(worker_sweeper_t *sw)
{
    if (!sw->closing || sw->pending > 0 || !sw->timer_closed || sw->rc_pending ||
        !sw->rc_timer_closed)
        return;
    worker_sweeper_closed_cb cb = sw->closed_cb;
    void *data = sw->closed_data;
    free(sw);
    if (cb)
        cb(data);
}

/* A tick's call ended; when it was the last, arm the next tick. */
static void sweeper_call_done(worker_sweeper_t *sw)
{
    if (--sw->pending > 0)
        return;
    if (sw->closing) {
        sweeper_maybe_closed(sw);
        return;
    }
    uv_timer_start(&sw->timer, sweeper_tick, (uint64_t)sw->cfg->sweep_interval_s * 1000, 0);
}

static void on_finished(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    sweep_item_t *it = data;
    gf_log_ctx ctx = {.component = "sweeper", .generation_id = it->gen_id};
    if (err->code < 0)
        gf_log_err(GF_LOG_WARN, &ctx, err);
    else if (call->res.finish.applied)
        GF_LOG(GF_LOG_WARN, &ctx, "the queue had given up on it: finished as %s, credits released",
               call->res.finish.status);
    store_call_dispose(&it->finish);
    worker_sweeper_t *sw = it->sw;
    free(it);
    sweeper_call_done(sw);
}

/*
 * The status to finish a generation with whose job the queue holds in a
 * final state: Postgres's "auto" (decided by its images) for done, failed for
 * dead (retries exhausted, or a poison job).
 */
static const char *final_status(const char *queue_state)
{
    int qs = gf_queue_state_parse(queue_state);
    if (qs == GF_QS_DONE)
        return "auto";
    int st = gf_queue_state_final_status(qs);
    return gf_gen_status_name(st < 0 ? GF_GEN_FAILED : (gf_gen_status)st);
}

static void on_enqueued(queue_t *q, const gf_err_t *qerr, const queue_result_t *res, void *data)
{
    (void)q;
    sweep_item_t *it = data;
    worker_sweeper_t *sw = it->sw;
    gf_log_ctx ctx = {.component = "sweeper", .generation_id = it->gen_id};
    int status = qerr->code;
    if (status == 0 && res->created) {
        GF_LOG(GF_LOG_WARN, &ctx, "the queue had lost it: enqueued again");
    } else if (status == 0 && queue_state_is_terminal(res->state) && !sw->closing) {
        const char *st = final_status(res->state);
        const char *err = strcmp(st, gf_gen_status_name(GF_GEN_FAILED)) == 0
                              ? "{\"code\":\"internal\",\"message\":\"the queue gave up on this "
                                "generation\",\"retryable\":false}"
                              : NULL;
        store_call_finish(&it->finish, it->gen_id, -1, st, err);
        if (store_exec(sw->store, &it->finish, on_finished, it) == 0)
            return;
        store_call_dispose(&it->finish);
    } else if (status < 0 && status != GF_ECANCELED) {
        GF_LOG(GF_LOG_WARN, &ctx, "cannot check it against the queue (%s): next tick",
               gf_status_name(status));
    }
    free(it);
    sweeper_call_done(sw);
}

static void sweep_candidate(worker_sweeper_t *sw, const store_sweep_candidate_t *c)
{
    sweep_item_t *it = gf_xcalloc(1, sizeof(*it));
    it->sw = sw;
    snprintf(it->gen_id, sizeof(it->gen_id), "%s", c->id);
    queue_enqueue_req_t req = {.gen_id = c->id,
                               .user_id = c->user_id,
                               .tier = queue_tier_of(sw->cfg, c->plan),
                               .payload = c->params,
                               .deadline_ms = c->deadline_ms,
                               .token_floor = c->fence > 0 ? (uint64_t)c->fence : 0};
    if (queue_enqueue(sw->queue, &req, on_enqueued, it) == 0)
        sw->pending++;
    else
        free(it);
}

static void on_swept(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    worker_sweeper_t *sw = data;
    const store_sweep_result_t *res = &call->res.sweep;
    if (err->code < 0) {
        gf_log_ctx ctx = {.component = "sweeper", .action = "sweeping"};
        gf_log_err(GF_LOG_WARN, &ctx, err);
    } else if (!sw->closing) {
        for (size_t i = 0; i < res->n_expired; i++) {
            gf_log_ctx ctx = {.component = "sweeper", .generation_id = res->expired[i].id};
            GF_LOG(GF_LOG_INFO, &ctx, "expired before it started: credits released");
        }
        if (queue_is_connected(sw->queue))
            for (size_t i = 0; i < res->n_candidates; i++)
                sweep_candidate(sw, &res->candidates[i]);
    }
    store_call_dispose(&sw->sweep);
    sweeper_call_done(sw);
}

/* --- the lifecycle step ------------------------------------------------------------- */

static void on_life_reported(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    worker_sweeper_t *sw = data;
    if (err->code < 0) /* the rows stay: their (gone) objects are deleted again later */
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "sweeper", .action = "lifecycle"}, err);
    store_call_dispose(&sw->life);
    sweeper_call_done(sw);
}

static void on_life_deleted(storage_t *s, const gf_err_t *err, const char *const *deleted,
                            size_t n_deleted, void *data)
{
    (void)s;
    worker_sweeper_t *sw = data;
    gf_log_ctx ctx = {.component = "sweeper", .action = "deleting objects"};
    size_t n = sw->life.res.keys.n;
    if (err->code < 0)
        GF_LOG(GF_LOG_WARN, &ctx, "%zu of %zu objects not deleted (%s: %s): retried later",
               n - n_deleted, n, gf_status_name(err->code), err->msg);
    else
        GF_LOG(GF_LOG_INFO, &ctx, "%zu objects deleted", n_deleted);
    store_call_dispose(&sw->life);
    if (n_deleted > 0 && !sw->closing) {
        store_call_storage_deleted(&sw->life, deleted, n_deleted);
        if (store_exec(sw->store, &sw->life, on_life_reported, sw) == 0)
            return;
        store_call_dispose(&sw->life);
    }
    sweeper_call_done(sw);
}

static void on_lifecycle(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    worker_sweeper_t *sw = data;
    const store_keys_result_t *k = &call->res.keys;
    gf_log_ctx ctx = {.component = "sweeper", .action = "lifecycle"};
    if (err->code < 0) {
        gf_log_err(GF_LOG_WARN, &ctx, err);
    } else {
        if (k->outputs_expired > 0 || k->uploads_expired > 0)
            GF_LOG(GF_LOG_INFO, &ctx,
                   "retention: %lld outputs and %lld uploads past their days marked deleted",
                   k->outputs_expired, k->uploads_expired);
        if (k->idempotency_purged > 0)
            GF_LOG(GF_LOG_INFO, &ctx, "%lld idempotency keys older than 24 h purged",
                   k->idempotency_purged);
        /* Claimed keys not tried now (closing) are due again after their backoff. */
        if (k->n > 0 && !sw->closing &&
            storage_delete_keys(sw->storage, (const char *const *)k->keys, k->n, on_life_deleted,
                                sw) == 0)
            return;
    }
    store_call_dispose(&sw->life);
    sweeper_call_done(sw);
}

static void sweeper_tick(uv_timer_t *t)
{
    worker_sweeper_t *sw = t->data;
    sw->pending = 1; /* the tick itself, until both its calls are sent */
    store_call_sweep(&sw->sweep, (int)sw->cfg->sweep_stale_s, (int)sw->cfg->sweep_batch);
    if (store_exec(sw->store, &sw->sweep, on_swept, sw) == 0)
        sw->pending++;
    else
        store_call_dispose(&sw->sweep);
    store_call_lifecycle(&sw->life, (int)sw->cfg->sweep_batch, (int)sw->cfg->output_retention_days,
                         (int)sw->cfg->upload_retention_days);
    if (store_exec(sw->store, &sw->life, on_lifecycle, sw) == 0)
        sw->pending++;
    else
        store_call_dispose(&sw->life);
    sweeper_call_done(sw);
}

/* --- the reconcile check ----------------------------------------------------------- */

static void reconcile_tick(uv_timer_t *t);

static void on_reconciled(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    worker_sweeper_t *sw = data;
    sw->rc_pending = 0;
    long long n = call->res.reconcile.violations;
    if (err->code < 0) {
        gf_log_ctx ctx = {.component = "sweeper", .action = "checking the ledger"};
        gf_log_err(GF_LOG_WARN, &ctx, err);
    } else if (n >= 0) {
        /* n < 0: another worker checked at this moment; its gauge says. */
        gf_metric_set(sw->m_violations, (double)n);
        gf_metric_set(sw->m_last_run, (double)gf_clock_unix_ms() / 1000);
        if (n > 0) {
            gf_log_ctx ctx = {.component = "sweeper"};
            GF_LOG(GF_LOG_ERROR, &ctx,
                   "the ledger has %lld violation(s) of its invariants: run farm reconcile", n);
        }
    }
    store_call_dispose(&sw->rc_call);
    if (sw->closing)
        sweeper_maybe_closed(sw);
    else
        uv_timer_start(&sw->rc_timer, reconcile_tick,
                       (uint64_t)sw->cfg->reconcile_interval_s * 1000, 0);
}

static void reconcile_tick(uv_timer_t *t)
{
    worker_sweeper_t *sw = t->data;
    store_call_reconcile_count(&sw->rc_call);
    if (store_exec(sw->store, &sw->rc_call, on_reconciled, sw) == 0) {
        sw->rc_pending = 1;
        return;
    }
    store_call_dispose(&sw->rc_call);
    uv_timer_start(&sw->rc_timer, reconcile_tick, (uint64_t)sw->cfg->reconcile_interval_s * 1000,
                   0);
}

worker_sweeper_t *worker_sweeper_new(uv_loop_t *loop, const gf_config_t *cfg, store_t *store,
                                     queue_t *queue, storage_t *storage, gf_metrics_t *metrics)
{
    worker_sweeper_t *sw = gf_xcalloc(1, sizeof(*sw));
    sw->loop = loop;
    sw->cfg = cfg;
    sw->store = store;
    sw->queue = queue;
    sw->storage = storage;
    uv_timer_init(loop, &sw->timer);
    sw->timer.data = sw;
    uv_timer_init(loop, &sw->rc_timer);
    sw->rc_timer.data = sw;
    sw->m_violations = gf_metric_with(
        gf_metrics_gauge(metrics, "farm_reconcile_violations",
                         "violations of the ledger's invariants at the last check (farm reconcile)",
                         NULL),
        NULL, NULL, NULL);
    sw->m_last_run = gf_metric_with(
        gf_metrics_gauge(metrics, "farm_reconcile_last_run_timestamp_seconds",
                         "when this worker last checked the ledger (unix seconds; 0: never)", NULL),
        NULL, NULL, NULL);
    return sw;
}

void worker_sweeper_start(worker_sweeper_t *sw)
{
    uv_timer_start(&sw->timer, sweeper_tick, (uint64_t)sw->cfg->sweep_interval_s * 1000, 0);
    if (sw->cfg->reconcile_interval_s > 0)
        uv_timer_start(&sw->rc_timer, reconcile_tick, (uint64_t)sw->cfg->sweep_interval_s * 1000,
                       0);
}

static void on_timer_closed(uv_handle_t *h)
{
    worker_sweeper_t *sw = h->data;
    if (h == (uv_handle_t *)&sw->timer)
        sw->timer_closed = 1;
    else
        sw->rc_timer_closed = 1;
    sweeper_maybe_closed(sw);
}

void worker_sweeper_close(worker_sweeper_t *sw, worker_sweeper_closed_cb cb, void *data)
{
    sw->closing = 1;
    sw->closed_cb = cb;
    sw->closed_data = data;
    uv_close((uv_handle_t *)&sw->timer, on_timer_closed);
    uv_close((uv_handle_t *)&sw->rc_timer, on_timer_closed);
}
