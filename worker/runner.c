/*
 * worker/runner.c - the claim loop, the heartbeats, cancel routing and the
 * drain of farm-worker. The jobs themselves are in job.c.
 *
 * Invariants: at most one claim is in flight; claims ask for no more than
 * the claim limit minus what runs (claim.h: by measured capacity, within
 * FARM_WORKER_CONCURRENCY; FARM_WORKER_CLAIM=ceiling: the ceiling itself),
 * at the pace its token bucket allows; a heartbeat goes to every job at
 * least every min(lease / 3, 1.5 s), so a cancel reaches its job within 2 s
 * even when the pub/sub message is lost.
 */
#include "sweeper.h"
#include "worker_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const gf_log_ctx log_ctx = {.component = "worker"};

static void runner_claim(worker_runner_t *r);
static void runner_maybe_stopped(worker_runner_t *r);
static void hand_back_all(worker_runner_t *r);

static void on_claim_timer(uv_timer_t *t)
{
    runner_claim(t->data);
}

static void schedule_claim(worker_runner_t *r, uint64_t ms)
{
    if (!r->draining)
        uv_timer_start(&r->claim_timer, on_claim_timer, ms, 0);
}

/* A job the claim ended, being recorded in Postgres: expired (farm_expire), or ended because its
 * holder never came back (worker_finish_from_queue). */
typedef struct {
    store_call_t call;
    gf_mfamily_t *outcomes; /* the runner's m_gen_outcomes (outlives the call: a metric family) */
    char gen_id[64];
    char state[16];
} ended_rec_t;

static void on_expired_released(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    ended_rec_t *e = data; /* call is &e->call */
    gf_log_ctx ctx = {.component = "worker", .generation_id = e->gen_id};
    (void)st;
    if (err->code < 0)
        gf_log_err(GF_LOG_WARN, &ctx, err);
    else if (call->res.expire.applied)
        worker_count_queue_finish(e->outcomes, call->res.expire.kind,
                                  gf_gen_status_name(GF_GEN_EXPIRED));
    else /* not_expired: Redis and Postgres disagree */
        GF_LOG(GF_LOG_WARN, &ctx,
               "the queue expired it but Postgres did not: not queued there, or not past its "
               "deadline by Postgres's clock");
    store_call_dispose(call);
    free(e);
}

static void on_ended_recorded(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    ended_rec_t *e = data; /* call is &e->call */
    gf_log_ctx ctx = {.component = "worker", .generation_id = e->gen_id};
    (void)st;
    if (err->code < 0)
        gf_log_err(GF_LOG_WARN, &ctx, err); /* the sweeper records it later */
    else if (call->res.finish.applied) {
        GF_LOG(GF_LOG_WARN, &ctx,
               "its holder never came back and the queue ended it (%s): finished as %s, credits "
               "released",
               e->state, call->res.finish.status);
        worker_count_queue_finish(e->outcomes, call->res.finish.kind, call->res.finish.status);
    }
    store_call_dispose(call);
    free(e);
}

static void on_claimed(queue_t *q, const gf_err_t *err, queue_claim_t *c, void *data)
{
    (void)q;
    worker_runner_t *r = data;
    r->claiming = 0;
    if (err->code < 0) {
        schedule_claim(r, (uint64_t)r->cfg->worker_claim_poll_ms * 5);
        runner_maybe_stopped(r);
        return;
    }
    /* Jobs whose start deadline passed were not leased: release their credits. */
    for (size_t i = 0; i < c->n_expired; i++) {
        ended_rec_t *e = gf_xcalloc(1, sizeof(*e));
        e->outcomes = r->m_gen_outcomes;
        snprintf(e->gen_id, sizeof(e->gen_id), "%s", c->expired[i].gen_id);
        store_call_expire(&e->call, e->gen_id);
        if (store_exec(r->store, &e->call, on_expired_released, e) < 0) {
            store_call_dispose(&e->call);
            free(e);
        }
    }
    /* Jobs the claim ended (their holder never came back): record them now, as the sweeper
     * would a stale period later. One Postgres finished already stays as it is. */
    for (size_t i = 0; i < c->n_ended; i++) {
        ended_rec_t *e = gf_xcalloc(1, sizeof(*e));
        e->outcomes = r->m_gen_outcomes;
        snprintf(e->gen_id, sizeof(e->gen_id), "%s", c->ended[i].gen_id);
        snprintf(e->state, sizeof(e->state), "%s", c->ended[i].state);
        worker_finish_from_queue(&e->call, e->gen_id, e->state);
        if (store_exec(r->store, &e->call, on_ended_recorded, e) < 0) {
            store_call_dispose(&e->call);
            free(e);
        }
    }
    size_t got = c->n_jobs;
    claim_ctl_took(&r->ctl, (int)got);
    for (size_t i = 0; i < c->n_jobs; i++) {
        if (r->m_claimed)
            gf_metric_inc(r->m_claimed);
        job_start(r, &c->jobs[i]);
    }
    queue_claim_dispose(c);
    free(c);
    if (r->draining) {
        /* Claimed while a drain began: they start and finish like the others, or, answered
         * after the drain's time ran out, go back at once as the others did (else they ran
         * on past it, and the worker was killed holding them). */
        if (r->drain_over)
            hand_back_all(r);
        runner_maybe_stopped(r);
        return;
    }
    if (got > 0)
        runner_claim(r); /* more may be ready: room and pace decide */
    else
        schedule_claim(r, (uint64_t)r->cfg->worker_claim_poll_ms);
}

static void claim_limit_gauge(worker_runner_t *r)
{
    if (r->m_claim_limit)
        gf_metric_set(r->m_claim_limit, (double)claim_ctl_limit(&r->ctl));
}

static void runner_claim(worker_runner_t *r)
{
    if (r->claiming || r->draining)
        return;
    uint64_t poll = (uint64_t)r->cfg->worker_claim_poll_ms, retry = poll;
    long want = claim_ctl_room(&r->ctl, r->njobs, uv_hrtime(), &retry);
    claim_limit_gauge(r);
    if (want <= 0) {
        /* At the limit a job's end claims again (worker_runner__job_gone); out of tokens,
         * the next one's time (the poll's time at most: the rate may change meanwhile). */
        schedule_claim(r, retry < poll ? retry : poll);
        return;
    }
    if (want > 64)
        want = 64; /* one claim script stays short */
    if (queue_claim(r->queue, r->worker_id, (int)want, on_claimed, r) == 0)
        r->claiming = 1;
    else
        schedule_claim(r, (uint64_t)r->cfg->worker_claim_poll_ms * 5);
}

static void on_heartbeat(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    (void)q;
    job_t *j = data;
    if (err->code == GF_ECONFLICT || err->code == GF_ENOTFOUND) {
        if (j->r->m_heartbeat_failures)
            gf_metric_inc(j->r->m_heartbeat_failures);
        job__advance(j, JOB_EV_LEASE_LOST, NULL);
    } else if (err->code == GF_OK && res->cancel) {
        job__advance(j, JOB_EV_CANCEL, NULL);
    }
    job_unref(j);
}

/*
 * 1 for each adapter of the chain whose breaker refuses calls now: open
 * within its cooldown, or half-open with its probe out (reading 0 then let a
 * provider that stays down, probed at each cooldown by a call that hangs,
 * drop the gauge for most of every cycle, and the alert's `for` never held).
 * Open past its cooldown with no probe sent, the next call would go: 0, or a
 * fallback adapter nothing calls any more would read 1 for ever.
 */
static void breaker_gauges(worker_runner_t *r)
{
    const char *chain = provider_chain(r->provider);
    while (r->m_breaker_open && chain && *chain) {
        size_t n = strcspn(chain, ",");
        char name[32];
        snprintf(name, sizeof(name), "%.*s", (int)n, chain);
        gf_metric_set(gf_metric_with(r->m_breaker_open, name, NULL, NULL),
                      provider_breaker_refusing(r->provider, name));
        chain += n + (chain[n] == ',');
    }
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    worker_runner_t *r = t->data;
    for (job_t *j = r->jobs, *next; j; j = next) {
        next = j->next; /* a retried queue end may end (and free) the job */
        job_queue_retry(j);
    }
    for (job_t *j = r->jobs; j; j = j->next) {
        if (!job_is_live(j))
            continue;
        if (queue_heartbeat(r->queue, r->worker_id, j->qj.gen_id, j->qj.token, on_heartbeat, j) < 0)
            continue; /* Redis is down: the next tick tries again */
        j->pending++;
    }
    if (r->m_inflight)
        gf_metric_set(r->m_inflight, (double)r->njobs);
    claim_limit_gauge(r);
    breaker_gauges(r);
}

static void on_cancel_message(queue_t *q, const char *gen_id, void *data)
{
    (void)q;
    worker_runner_t *r = data;
    for (job_t *j = r->jobs; j; j = j->next)
        if (strcmp(j->qj.gen_id, gen_id) == 0)
            job__advance(j, JOB_EV_CANCEL, NULL);
}

/*
 * Images post-processed at once: the libuv thread pool's width, at most the cores this
 * process may use (more images at once than cores only makes each slower).
 */
static int post_parallelism(void)
{
    int n = gf_proc_pool_width();
    unsigned cores = uv_available_parallelism();
    return cores >= 1 && (int)cores < n ? (int)cores : n;
}

worker_runner_t *worker_runner_new(uv_loop_t *loop, const gf_config_t *cfg, queue_t *queue,
                                   store_t *store, storage_t *storage, provider_t *provider,
                                   const img_presets_t *presets, webhook_deliverer_t *webhooks,
                                   gf_metrics_t *metrics)
{
    worker_runner_t *r = gf_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->cfg = cfg;
    r->queue = queue;
    r->store = store;
    r->storage = storage;
    r->provider = provider;
    r->presets = presets;
    r->webhooks = webhooks;
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    char rnd[37];
    gf_uuid4(rnd);
    snprintf(r->worker_id, sizeof(r->worker_id), "%s-%d-%.8s", host, (int)getpid(), rnd);
    uv_timer_init(loop, &r->claim_timer);
    uv_timer_init(loop, &r->heartbeat_timer);
    uv_timer_init(loop, &r->drain_timer);
    r->claim_timer.data = r->heartbeat_timer.data = r->drain_timer.data = r;
    r->timers_open = 3;
    claim_ctl_init(&r->ctl,
                   cfg->worker_concurrency > INT_MAX ? INT_MAX : (int)cfg->worker_concurrency,
                   cfg->worker_claim == 0, post_parallelism(),
                   cfg->provider_concurrency > INT_MAX ? INT_MAX : (int)cfg->provider_concurrency);
    if (metrics) {
        r->m_outcomes = gf_metrics_counter(metrics, "farm_worker_generations_total",
                                           "generations finished, by status", "status");
        r->m_stage = gf_metrics_histogram(
            metrics, "farm_worker_stage_duration_seconds",
            "time per image in each stage: generating (provider), postprocessing (libvips on "
            "the thread pool, queueing included), storing (outputs and capture)",
            "stage", gf_metrics_latency_buckets, gf_metrics_latency_nbuckets);
        r->m_provider = gf_metrics_histogram(
            metrics, "farm_worker_provider_call_seconds", "provider calls, by provider and outcome",
            "provider,outcome", gf_metrics_latency_buckets, gf_metrics_latency_nbuckets);
        r->m_provider_calls = gf_metrics_counter(
            metrics, "farm_worker_provider_calls_total",
            "provider calls that ended, by provider and whether they resumed an earlier "
            "attempt's request (resumed=\"false\": a new, paid request); divided by "
            "farm_worker_images_total{outcome=\"captured\"}, the provider calls per delivered "
            "image",
            "provider,resumed");
        r->m_images = gf_metrics_counter(metrics, "farm_worker_images_total",
                                         "images settled by this worker: captured (its credits "
                                         "charged) or released (given back)",
                                         "outcome");
        /* Generations, from their acceptance (the enqueue's clock) to now: minutes long. */
        static const double gen_buckets[] = {0.1, 0.25, 0.5, 1,   2.5, 5,    10,  20,
                                             30,  60,   120, 300, 600, 1200, 3600};
        const size_t ngen = sizeof(gen_buckets) / sizeof(gen_buckets[0]);
        r->m_gen_outcomes = worker_outcomes_family(metrics);
        r->m_queue_wait =
            gf_metrics_histogram(metrics, "farm_generation_queue_wait_seconds",
                                 "time from a generation's enqueue to its first start, by kind",
                                 "kind", gen_buckets, ngen);
        r->m_gen_duration = gf_metrics_histogram(
            metrics, "farm_generation_duration_seconds",
            "time from a generation's enqueue (at acceptance) to its finish, by kind", "kind",
            gen_buckets, ngen);
        gf_metric_set(gf_metric_with(gf_metrics_gauge(metrics, "farm_worker_concurrency",
                                                      "generations this worker may run at once "
                                                      "(FARM_WORKER_CONCURRENCY)",
                                                      NULL),
                                     NULL, NULL, NULL),
                      (double)cfg->worker_concurrency);
        r->m_claim_limit = gf_metric_with(
            gf_metrics_gauge(metrics, "farm_worker_claim_limit",
                             "generations this worker may hold now: by its measured capacity "
                             "(provider calls enough to keep post-processing busy, fewer while "
                             "the jobs' delay grows), within FARM_WORKER_CONCURRENCY "
                             "(docs/queue.md \"Claiming by capacity\")",
                             NULL),
            NULL, NULL, NULL);
        gf_metric_set(r->m_claim_limit, (double)claim_ctl_limit(&r->ctl));
        r->m_inflight = gf_metric_with(
            gf_metrics_gauge(metrics, "farm_worker_inflight", "generations running", NULL), NULL,
            NULL, NULL);
        r->m_claimed = gf_metric_with(
            gf_metrics_counter(metrics, "farm_worker_claimed_total", "jobs claimed", NULL), NULL,
            NULL, NULL);
        r->m_breaker_open = gf_metrics_gauge(
            metrics, "farm_provider_breaker_open",
            "1 while the provider's circuit breaker refuses calls (open, or its probe out: "
            "calls go elsewhere or fail)",
            "provider");
        r->m_heartbeat_failures =
            gf_metric_with(gf_metrics_counter(metrics, "farm_worker_heartbeat_failures_total",
                                              "heartbeats refused (a lease was lost)", NULL),
                           NULL, NULL, NULL);
    }
    return r;
}

void worker_runner_start(worker_runner_t *r)
{
    queue_on_cancel(r->queue, on_cancel_message, r);
    uint64_t every = (uint64_t)r->cfg->queue_lease_s * 1000 / 3;
    if (every > 1500)
        every = 1500;
    uv_timer_start(&r->heartbeat_timer, on_heartbeat_timer, every, every);
    if (r->cfg->worker_concurrency == 0) {
        GF_LOG(GF_LOG_INFO, &log_ctx, "FARM_WORKER_CONCURRENCY=0: claiming nothing");
        return;
    }
    GF_LOG(GF_LOG_INFO, &log_ctx, "worker %s claiming %s, up to %lld generations (provider %s)",
           r->worker_id, r->ctl.by_capacity ? "by measured capacity" : "to the ceiling",
           r->cfg->worker_concurrency, provider_chain(r->provider));
    runner_claim(r);
}

size_t worker_runner_inflight(const worker_runner_t *r)
{
    return r->njobs;
}

/*
 * A job that post-processed images is a sample of the hold: its claim to now, less the
 * time its images waited to be post-processed (summed, over the images it ran at once).
 */
static void hold_measured(worker_runner_t *r, const job_t *j)
{
    if (j->post_images == 0)
        return;
    long long par =
        j->images < r->cfg->worker_images_parallel ? j->images : r->cfg->worker_images_parallel;
    uint64_t wait = j->pool_wait_ns / (uint64_t)(par > 0 ? par : 1);
    uint64_t now = uv_hrtime(), held = now - j->started_ns;
    if (held > wait)
        claim_ctl_job(&r->ctl, (double)(held - wait) / 1e9, j->post_images, now);
    claim_ctl_delay(&r->ctl, (double)held / 1e9, now);
}

void worker_runner__job_gone(worker_runner_t *r, job_t *j)
{
    hold_measured(r, j);
    if (j->prev)
        j->prev->next = j->next;
    else if (r->jobs == j)
        r->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
    r->njobs--;
    if (r->draining)
        runner_maybe_stopped(r);
    else if (!r->claiming)
        runner_claim(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    worker_runner_t *r = h->data;
    if (--r->timers_open > 0)
        return;
    worker_runner_stopped_cb cb = r->stopped_cb;
    void *data = r->stopped_data;
    free(r);
    if (cb)
        cb(data);
}

static void runner_maybe_stopped(worker_runner_t *r)
{
    if (!r->draining || r->njobs > 0 || r->claiming || r->timers_open < 3 ||
        uv_is_closing((uv_handle_t *)&r->claim_timer))
        return;
    queue_on_cancel(r->queue, NULL, NULL);
    uv_close((uv_handle_t *)&r->claim_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->heartbeat_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->drain_timer, on_timer_closed);
}

/* Every job not finishing already goes back to the queue (a job handed back is left as it is). */
static void hand_back_all(worker_runner_t *r)
{
    for (job_t *j = r->jobs; j;) {
        job_t *next = j->next;
        job__advance(j, JOB_EV_DRAIN_TIMEOUT, NULL);
        j = next;
    }
    for (job_t *j = r->jobs; j;) {
        job_t *next = j->next;
        job_queue_retry(j);
        j = next;
    }
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker_runner_t *r = t->data;
    GF_LOG(GF_LOG_WARN, &log_ctx, "drain timeout: handing %zu generations back to the queue",
           r->njobs);
    r->drain_over = 1; /* from now on a queue end that fails is given up: the lease expires */
    hand_back_all(r);
}

void worker_runner_drain(worker_runner_t *r, worker_runner_stopped_cb cb, void *data)
{
    r->draining = 1;
    r->stopped_cb = cb;
    r->stopped_data = data;
    uv_timer_stop(&r->claim_timer);
    GF_LOG(GF_LOG_INFO, &log_ctx, "draining: %zu generations running", r->njobs);
    uv_timer_start(&r->drain_timer, on_drain_timeout, (uint64_t)r->cfg->worker_drain_s * 1000, 0);
    runner_maybe_stopped(r);
}
