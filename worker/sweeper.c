/*
 * worker/sweeper.c - the sweeper's tick: one store call (farm_sweep), then
 * one queue call per generation it returned (enqueued again, or told of an
 * expiry or a cancel), then one store call per generation the queue had
 * given up on or ended; beside it, the lifecycle step
 * (docs/storage.md, "Lifecycle"): one store call (farm_lifecycle:
 * retention, the idempotency keys' purge, a batch of objects due for
 * deletion), the batch's deletes through storage/, and one store call that
 * reports the objects deleted; and the leftover files' step (docs/storage.md,
 * "Leftover files"): one page of storage's listing (FARM_SWEEP_BATCH
 * objects), one store call that names the page's stale attempt files, and
 * the deletes of those and of old temporary files.
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
    /* leftover files: a pass over storage's listing, a page a tick */
    char *left_cursor; /* the next page's; NULL: from the start */
    store_call_t left_call;
    char **left_keys; /* due for deletion, the page's */
    size_t n_left, cap_left;
    gf_mfamily_t *m_swept;
    gf_mfamily_t *m_outcomes; /* worker_outcomes_family */
    worker_sweeper_closed_cb closed_cb;
    void *closed_data;
};

/* One candidate on its way through the queue and maybe back to the store. */
typedef struct {
    worker_sweeper_t *sw;
    char gen_id[37];
    int expiry; /* on_told: an expiry told to the queue, else a cancel */
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
    free(sw->left_cursor);
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
    else if (call->res.finish.applied) {
        GF_LOG(GF_LOG_WARN, &ctx, "the queue had given up on it: finished as %s, credits released",
               call->res.finish.status);
        worker_count_queue_finish(it->sw->m_outcomes, call->res.finish.kind,
                                  call->res.finish.status);
    }
    store_call_dispose(&it->finish);
    worker_sweeper_t *sw = it->sw;
    free(it);
    sweeper_call_done(sw);
}

gf_mfamily_t *worker_outcomes_family(gf_metrics_t *metrics)
{
    return gf_metrics_counter(metrics, "farm_generation_outcomes_total",
                              "generations finished by this worker (its jobs, its claims and its "
                              "sweeper), by kind, status and error code (\"none\" when nothing "
                              "failed)",
                              "kind,status,code");
}

void worker_count_queue_finish(gf_mfamily_t *outcomes, const char *kind, const char *status)
{
    if (outcomes == NULL || kind == NULL || kind[0] == '\0')
        return;
    int st = gf_gen_status_parse(status);
    const char *code = st == GF_GEN_FAILED || st == GF_GEN_PARTIAL ? "internal"
                       : st == GF_GEN_EXPIRED                      ? "expired"
                                                                   : "none";
    gf_metric_inc(gf_metric_with(outcomes, kind, status, code));
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

void worker_finish_from_queue(store_call_t *call, const char *gen_id, const char *queue_state)
{
    const char *st = final_status(queue_state);
    const char *err = strcmp(st, gf_gen_status_name(GF_GEN_FAILED)) == 0
                          ? "{\"code\":\"internal\",\"message\":\"the queue gave up on this "
                            "generation\",\"retryable\":false}"
                          : NULL;
    store_call_finish(call, gen_id, -1, st, err);
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
        worker_finish_from_queue(&it->finish, it->gen_id, res->state);
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
    /* The deadline is a start deadline (API.md): one that started keeps running past it, so its
     * job goes back without one, lest the claim expire it. */
    int started = gf_gen_status_parse(c->status) == GF_GEN_RUNNING;
    queue_enqueue_req_t req = {.gen_id = c->id,
                               .user_id = c->user_id,
                               .tier = queue_tier_of(sw->cfg, c->plan),
                               .payload = c->params,
                               .deadline_ms = started ? 0 : c->deadline_ms,
                               .token_floor = c->fence > 0 ? (uint64_t)c->fence : 0};
    if (queue_enqueue(sw->queue, &req, on_enqueued, it) == 0)
        sw->pending++;
    else
        free(it);
}

/*
 * The queue's answer to a word the sweep said again: an expiry (a queued job
 * ends 'expired' now, its stream and its user's active count with it, not at
 * the claim that would find it), or a cancel of a running generation that the
 * api may not have passed on. The holder, told again, ends a running job; a
 * job the queue held but no worker did (handed back) ends canceled in the
 * queue here, and in Postgres at once.
 */
static void on_told(queue_t *q, const gf_err_t *qerr, const queue_result_t *res, void *data)
{
    (void)q;
    sweep_item_t *it = data;
    worker_sweeper_t *sw = it->sw;
    int status = qerr->code;
    if (status == 0 && !it->expiry && queue_state_is_terminal(res->state) && !sw->closing) {
        worker_finish_from_queue(&it->finish, it->gen_id, res->state);
        if (store_exec(sw->store, &it->finish, on_finished, it) == 0)
            return;
        store_call_dispose(&it->finish);
    } else if (status < 0 && status != GF_ECANCELED && status != GF_ENOTFOUND) {
        gf_log_ctx ctx = {.component = "sweeper", .generation_id = it->gen_id};
        GF_LOG(GF_LOG_WARN, &ctx, "cannot tell the queue (%s): %s", gf_status_name(status),
               it->expiry ? "the claim that reaches the job expires it" : "next tick");
    }
    free(it);
    sweeper_call_done(sw);
}

static void tell_queue(worker_sweeper_t *sw, const char *gen_id, int expiry)
{
    sweep_item_t *it = gf_xcalloc(1, sizeof(*it));
    it->sw = sw;
    it->expiry = expiry;
    snprintf(it->gen_id, sizeof(it->gen_id), "%s", gen_id);
    if ((expiry ? queue_expire(sw->queue, gen_id, on_told, it)
                : queue_cancel(sw->queue, gen_id, on_told, it)) == 0)
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
        if (queue_is_connected(sw->queue)) {
            for (size_t i = 0; i < res->n_candidates; i++)
                sweep_candidate(sw, &res->candidates[i]);
            for (size_t i = 0; i < res->n_expired; i++)
                tell_queue(sw, res->expired[i].id, 1);
            for (size_t i = 0; i < res->n_canceling; i++)
                tell_queue(sw, res->canceling[i].id, 0);
        }
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

/* --- leftover files (docs/storage.md, "Leftover files") ---------------------------- */

/* "{user}/{generation}/{index}-{variant}.a{attempt}.{ext}": an attempt's output file. */
static int is_attempt_key(const char *key)
{
    const char *name = strrchr(key, '/');
    if (name == NULL || name == key || strchr(key, '/') == name)
        return 0;
    if (strchr(strchr(key, '/') + 1, '/') != name)
        return 0; /* three names exactly */
    const char *p = name + 1;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || p[n] != '-')
        return 0;
    p += n + 1;
    n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
    if (n == 0 || strncmp(p + n, ".a", 2) != 0)
        return 0;
    p += n + 2;
    n = strspn(p, "0123456789");
    if (n == 0 || p[n] != '.')
        return 0;
    p += n + 1;
    return p[0] != '\0' && strspn(p, "abcdefghijklmnopqrstuvwxyz") == strlen(p);
}

/* "{user}/uploads/{id}.{ext}": an upload's file (img_storage_upload_key). */
static int is_upload_key(const char *key)
{
    const char *slash = strchr(key, '/');
    if (slash == NULL || slash == key || strncmp(slash, "/uploads/", 9) != 0)
        return 0;
    const char *name = slash + 9;
    return *name != '\0' && *name != '.' && strchr(name, '/') == NULL && strchr(name, '.') != NULL;
}

static void left_free_keys(worker_sweeper_t *sw)
{
    for (size_t i = 0; i < sw->n_left; i++)
        free(sw->left_keys[i]);
    free(sw->left_keys);
    sw->left_keys = NULL;
    sw->n_left = 0;
}

static void on_left_deleted(storage_t *s, const gf_err_t *err, const char *const *deleted,
                            size_t n_deleted, void *data)
{
    (void)s;
    worker_sweeper_t *sw = data;
    gf_log_ctx ctx = {.component = "sweeper", .action = "deleting leftover files"};
    size_t temp = 0, uploads = 0;
    for (size_t i = 0; i < n_deleted; i++) {
        const char *name = strrchr(deleted[i], '/');
        if ((name ? name[1] : deleted[i][0]) == '.')
            temp++;
        else
            uploads += is_upload_key(deleted[i]);
    }
    if (temp > 0)
        gf_metric_add(gf_metric_with(sw->m_swept, "temp", NULL, NULL), (double)temp);
    if (uploads > 0)
        gf_metric_add(gf_metric_with(sw->m_swept, "upload", NULL, NULL), (double)uploads);
    if (n_deleted > temp + uploads)
        gf_metric_add(gf_metric_with(sw->m_swept, "attempt", NULL, NULL),
                      (double)(n_deleted - temp - uploads));
    if (err->code < 0)
        GF_LOG(GF_LOG_WARN, &ctx, "%zu of %zu leftover files not deleted (%s: %s): next pass",
               sw->n_left - n_deleted, sw->n_left, gf_status_name(err->code), err->msg);
    else
        GF_LOG(GF_LOG_INFO, &ctx,
               "%zu leftover files deleted (%zu temporary, %zu of stale attempts, %zu of uploads "
               "never recorded)",
               n_deleted, temp, n_deleted - temp - uploads, uploads);
    left_free_keys(sw);
    sweeper_call_done(sw);
}

/* Deletes the page's leftover files gathered in left_keys; ends the step when none. */
static void left_delete(worker_sweeper_t *sw)
{
    if (sw->n_left > 0 && !sw->closing &&
        storage_delete_keys(sw->storage, (const char *const *)sw->left_keys, sw->n_left,
                            on_left_deleted, sw) == 0)
        return;
    left_free_keys(sw);
    sweeper_call_done(sw);
}

static void on_left_unreferenced(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    worker_sweeper_t *sw = data;
    const store_keys_result_t *k = &call->res.keys;
    if (err->code < 0)
        gf_log_err(GF_LOG_WARN,
                   &(gf_log_ctx){.component = "sweeper", .action = "checking leftover files"}, err);
    else
        for (size_t i = 0; i < k->n && sw->n_left < sw->cap_left; i++)
            sw->left_keys[sw->n_left++] = gf_xstrdup(k->keys[i]);
    store_call_dispose(&sw->left_call);
    left_delete(sw);
}

static void on_left_listed(storage_t *s, const gf_err_t *err, const storage_entry_t *entries,
                           size_t n, const char *next, void *data)
{
    (void)s;
    worker_sweeper_t *sw = data;
    if (err->code < 0) { /* the same page again next tick */
        if (err->code != GF_ECANCELED)
            gf_log_err(GF_LOG_WARN,
                       &(gf_log_ctx){.component = "sweeper", .action = "listing leftover files"},
                       err);
        sweeper_call_done(sw);
        return;
    }
    free(sw->left_cursor);
    sw->left_cursor = next ? gf_xstrdup(next) : NULL; /* NULL: the next pass starts over */
    long long old = gf_clock_unix_ms() / 1000 - sw->cfg->sweep_leftover_grace_s;
    const char **ask = gf_xcalloc(n ? n : 1, sizeof(*ask));
    size_t n_ask = 0;
    sw->cap_left = n;
    sw->left_keys = gf_xcalloc(n ? n : 1, sizeof(*sw->left_keys));
    for (size_t i = 0; i < n; i++) {
        if (entries[i].mtime_unix_s >= old)
            continue; /* young: a put or an attempt may still be writing it */
        if (entries[i].temp)
            sw->left_keys[sw->n_left++] = gf_xstrdup(entries[i].key);
        else if (is_attempt_key(entries[i].key) || is_upload_key(entries[i].key))
            ask[n_ask++] = entries[i].key;
    }
    if (n_ask > 0 && !sw->closing) {
        store_call_unreferenced(&sw->left_call, ask, n_ask);
        if (store_exec(sw->store, &sw->left_call, on_left_unreferenced, sw) == 0) {
            free(ask);
            return;
        }
        store_call_dispose(&sw->left_call);
    }
    free(ask);
    left_delete(sw);
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
    size_t page = sw->cfg->sweep_batch < 1000 ? (size_t)sw->cfg->sweep_batch : 1000;
    if (storage_list(sw->storage, sw->left_cursor, page, on_left_listed, sw) == 0)
        sw->pending++;
    sweeper_call_done(sw);
}

/* --- the reconcile check ----------------------------------------------------------- */

static void reconcile_tick(uv_timer_t *t);

/* How often a worker asks for the farm's ledger check: every sweep, and at least once an
 * interval. Asking costs a read of one row (reconcile_state) until the farm's last count
 * is older than FARM_RECONCILE_INTERVAL_S, so the gauges follow a new count, or a clean
 * `farm reconcile` after a fix, within a sweep interval. */
static uint64_t reconcile_period_ms(const worker_sweeper_t *sw)
{
    int s = sw->cfg->sweep_interval_s < sw->cfg->reconcile_interval_s
                ? sw->cfg->sweep_interval_s
                : sw->cfg->reconcile_interval_s;
    return (uint64_t)s * 1000;
}

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
        /* n < 0: no check has finished yet (another worker's is running). */
        gf_metric_set(sw->m_violations, (double)n);
        gf_metric_set(sw->m_last_run, call->res.reconcile.checked_at);
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
        uv_timer_start(&sw->rc_timer, reconcile_tick, reconcile_period_ms(sw), 0);
}

static void reconcile_tick(uv_timer_t *t)
{
    worker_sweeper_t *sw = t->data;
    store_call_reconcile_check(&sw->rc_call, sw->cfg->reconcile_interval_s);
    if (store_exec(sw->store, &sw->rc_call, on_reconciled, sw) == 0) {
        sw->rc_pending = 1;
        return;
    }
    store_call_dispose(&sw->rc_call);
    uv_timer_start(&sw->rc_timer, reconcile_tick, reconcile_period_ms(sw), 0);
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
                         "violations of the ledger's invariants at the farm's last check (farm "
                         "reconcile; any worker's: farm_reconcile_check)",
                         NULL),
        NULL, NULL, NULL);
    sw->m_last_run = gf_metric_with(
        gf_metrics_gauge(metrics, "farm_reconcile_last_run_timestamp_seconds",
                         "when the ledger was last checked, by any worker (unix seconds; 0: never)",
                         NULL),
        NULL, NULL, NULL);
    sw->m_outcomes = worker_outcomes_family(metrics);
    sw->m_swept = gf_metrics_counter(metrics, "farm_sweeper_leftover_files_deleted_total",
                                     "leftover files the sweeper deleted: temp (a put's temporary "
                                     "file left by a dead writer), attempt (a stale attempt's "
                                     "file that no output records) or upload (an upload's file "
                                     "that no upload row records)",
                                     "kind");
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
