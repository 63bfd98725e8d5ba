/*
 * api/gauges.c - the farm's state on the api's /metrics (API.md: queue depth
 * by priority, in-flight jobs, credits held), read every API_GAUGES_MS from
 * the queue's stats and Postgres's account totals.
 *
 * They are the farm's, not this process's: every api process reports the
 * same values, so a scrape that lands on any of them (SO_REUSEPORT) is
 * right. A read that fails leaves the last values and sets
 * farm_gauges_stale to 1; the next tick tries again.
 */
#include "api_int.h"

#define API_GAUGES_MS 10000

static void gauges_set(api_t *api, const char *name, const char *help, const char *label,
                       const char *value, double v)
{
    gf_mfamily_t *f = gf_metrics_gauge(api->metrics, name, help, label);
    gf_metric_set(gf_metric_with(f, value, NULL, NULL), v);
}

static void stale(api_t *api, const char *source, int yes)
{
    gauges_set(api, "farm_gauges_stale", "1 when the last read of these gauges failed", "source",
               source, yes);
}

static void on_stats(queue_t *q, const gf_err_t *err, const queue_stats_t *st, void *data)
{
    (void)q;
    api_t *api = data;
    api->gauges_pending &= ~1;
    stale(api, "queue", err->code < 0);
    if (err->code < 0)
        return;
    for (size_t i = 0; i < st->n_tiers; i++)
        gauges_set(api, "farm_queue_depth", "jobs ready to run, by tier", "tier", st->tiers[i].name,
                   (double)st->tiers[i].depth);
    gauges_set(api, "farm_queue_in_flight", "jobs running (leased)", NULL, NULL,
               (double)st->in_flight);
    gauges_set(api, "farm_queue_delayed", "jobs waiting for a retry's backoff", NULL, NULL,
               (double)st->delayed);
    gauges_set(api, "farm_queue_dead_lettered", "jobs in the dead letter", NULL, NULL,
               (double)st->dead);
    gauges_set(api, "farm_queue_workers_live", "workers seen within two leases", NULL, NULL,
               (double)st->workers);
    gauges_set(api, "farm_queue_completed_last_minute",
               "jobs a worker finished in the last full minute (their generations "
               "succeeded, partial or failed; canceled ones are not counted)",
               NULL, NULL, (double)st->done_last_min);
    gauges_set(api, "farm_queue_failed_last_minute",
               "jobs dead-lettered in the last full minute (attempts run out, a non-retryable "
               "error, or a poison job); a failed generation its worker finished counts as "
               "completed: see farm_generation_outcomes_total",
               NULL, NULL, (double)st->failed_last_min);
}

static void on_totals(store_t *s, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)s;
    api_t *api = data;
    api->gauges_pending &= ~2;
    stale(api, "postgres", err->code < 0);
    if (err->code == 0) {
        gauges_set(api, "farm_credits_held", "credits held for open generations, all accounts",
                   NULL, NULL, (double)call->res.balance.held);
        gauges_set(api, "farm_credits_balance", "credits in all accounts (held included)", NULL,
                   NULL, (double)call->res.balance.balance);
        gauges_set(api, "farm_generations_oldest_queued_seconds",
                   "age of the oldest generation still queued (0: none)", NULL, NULL,
                   (double)call->res.balance.oldest_queued_s);
        /* Counters of the farm: the accounts' running totals, which only grow. */
        gf_metric_set(
            gf_metric_with(gf_metrics_counter(api->metrics, "farm_credits_captured_total",
                                              "credits captured (charged), all accounts", NULL),
                           NULL, NULL, NULL),
            (double)call->res.balance.captured);
        gf_metric_set(gf_metric_with(gf_metrics_counter(api->metrics, "farm_credits_released_total",
                                                        "credits released (held, then given back), "
                                                        "all accounts",
                                                        NULL),
                                     NULL, NULL, NULL),
                      (double)call->res.balance.released);
    }
    store_call_dispose(call);
}

static void on_tick(uv_timer_t *t)
{
    api_t *api = t->data;
    if (!(api->gauges_pending & 1) && api->queue != NULL) {
        if (queue_stats(api->queue, on_stats, api) == 0)
            api->gauges_pending |= 1;
        else
            stale(api, "queue", 1);
    }
    if (!(api->gauges_pending & 2) && api->store != NULL) {
        store_call_totals(&api->gauges_call);
        if (api__store_exec(api, &api->gauges_call, on_totals, api) == 0) {
            api->gauges_pending |= 2;
        } else {
            store_call_dispose(&api->gauges_call);
            stale(api, "postgres", 1);
        }
    }
}

void api__gauges_start(api_t *api)
{
    uv_timer_init(api->loop, &api->gauges_timer);
    api->gauges_timer.data = api;
    uv_timer_start(&api->gauges_timer, on_tick, 100, API_GAUGES_MS);
    uv_unref((uv_handle_t *)&api->gauges_timer);
    api->gauges_on = 1;
}

void api__gauges_stop(api_t *api)
{
    if (api->gauges_on) {
        api->gauges_on = 0;
        uv_close((uv_handle_t *)&api->gauges_timer, NULL);
    }
}
