/*
 * worker/worker.c - the worker process: its metrics port, its Redis and
 * Postgres clients, the sweeper, and the order of a graceful stop (HTTP,
 * then the sweeper, then the clients it uses).
 */
#include "worker.h"
#include "imaging.h"
#include "net.h"
#include "provider.h"
#include "queue.h"
#include "storage.h"
#include "worker_int.h"
#include "store.h"
#include "sweeper.h"
#include "webhooks.h"

#include <stdlib.h>

struct worker {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    gf_metrics_t *metrics;
    gf_httpd_t *httpd;
    queue_t *queue;
    store_t *store;
    storage_t *storage;
    worker_sweeper_t *sweeper;
    provider_t *provider;
    img_presets_t *presets;
    worker_runner_t *runner;
    webhook_deliverer_t *webhooks;
    int imaging_up;
    int closes_pending;
    worker_stopped_cb stopped_cb;
    void *stopped_data;
};

static const gf_log_ctx log_ctx = {.component = "worker"};

worker_t *worker_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    worker_t *w = gf_xcalloc(1, sizeof(*w));
    w->loop = loop;
    w->cfg = cfg;
    w->metrics = gf_metrics_new();
    gf_httpd_opts_t o;
    gf_proc_httpd_opts(&o, cfg, "worker", w->metrics);
    o.host = cfg->worker_metrics_host;
    o.port = (int)cfg->worker_metrics_port;
    w->httpd = gf_httpd_new(loop, &o, err);
    if (w->httpd == NULL) {
        worker_free(w);
        return NULL;
    }
    gf_proc_add_ops_routes(w->httpd, w->metrics);
    return w;
}

int worker_start(worker_t *w, gf_err_t *err)
{
    w->queue = queue_new(w->loop, w->cfg, err);
    if (w->queue == NULL)
        return err ? err->code : GF_EINVAL;
    w->store = store_new(w->loop, w->cfg, err);
    if (w->store == NULL)
        return err ? err->code : GF_EINVAL;
    store_metrics(w->store, w->metrics);
    queue_metrics(w->queue, w->metrics);
    int rc = img_init(w->cfg, err);
    if (rc < 0)
        return rc;
    w->imaging_up = 1;
    img_keep_heap();
    w->presets = img_presets_load(w->cfg->presets_dir, err);
    if (w->presets == NULL)
        return err ? err->code : GF_EINVAL;
    if (storage_start_check(w->cfg, err) < 0)
        return err ? err->code : GF_EINVAL;
    w->storage = storage_new(w->loop, w->cfg, w->metrics, err);
    if (w->storage == NULL)
        return err ? err->code : GF_EINVAL;
    w->provider = provider_new(w->loop, w->cfg, NULL, err);
    if (w->provider == NULL)
        return err ? err->code : GF_EINVAL;
    rc = gf_httpd_listen(w->httpd, err);
    if (rc < 0)
        return rc;
    /* Webhooks go out of every worker, FARM_WORKER_CONCURRENCY=0 included. */
    w->webhooks = webhook_deliverer_new(w->loop, w->cfg, w->store, w->metrics, err);
    if (w->webhooks == NULL)
        return err ? err->code : GF_EINVAL;
    webhook_deliverer_start(w->webhooks);
    w->sweeper = worker_sweeper_new(w->loop, w->cfg, w->store, w->queue, w->storage, w->metrics);
    worker_sweeper_start(w->sweeper);
    w->runner = worker_runner_new(w->loop, w->cfg, w->queue, w->store, w->storage, w->provider,
                                  w->presets, w->webhooks, w->metrics);
    worker_runner_start(w->runner);
    GF_LOG(GF_LOG_INFO, &log_ctx, "metrics on http://%s:%d/metrics", w->cfg->worker_metrics_host,
           gf_httpd_port(w->httpd));
    const char *proxy = net_env_https_proxy();
    if (proxy != NULL)
        GF_LOG(GF_LOG_WARN, &log_ctx,
               "%s is set: provider calls use it, but webhook deliveries and provider image "
               "downloads do not (their addresses are checked where they connect)",
               proxy);
    return 0;
}

static void worker_maybe_stopped(worker_t *w)
{
    if (--w->closes_pending > 0)
        return;
    if (w->stopped_cb)
        w->stopped_cb(w, w->stopped_data);
}

static void on_queue_closed(queue_t *q, void *data)
{
    (void)q;
    worker_maybe_stopped(data);
}

static void on_store_closed(void *data)
{
    worker_maybe_stopped(data);
}

static void on_storage_closed(void *data)
{
    worker_maybe_stopped(data);
}

static void on_provider_closed(provider_t *p, void *data)
{
    (void)p;
    worker_maybe_stopped(data);
}

/* The sweeper and the jobs use the clients: close them only once both are gone. */
static void on_sweeper_closed(void *data)
{
    worker_t *w = data;
    w->sweeper = NULL;
    if (w->provider) {
        w->closes_pending++;
        provider_close(w->provider, on_provider_closed, w);
        w->provider = NULL;
    }
    if (w->queue) {
        w->closes_pending++;
        queue_close(w->queue, on_queue_closed, w);
        w->queue = NULL;
    }
    if (w->store) {
        w->closes_pending++;
        store_close(w->store, on_store_closed, w);
        w->store = NULL;
    }
    if (w->storage) {
        w->closes_pending++;
        storage_close(w->storage, on_storage_closed, w);
        w->storage = NULL;
    }
    worker_maybe_stopped(w);
}

static void on_webhooks_closed(void *data)
{
    worker_t *w = data;
    w->webhooks = NULL;
    if (w->sweeper)
        worker_sweeper_close(w->sweeper, on_sweeper_closed, w);
    else
        on_sweeper_closed(w);
}

/* The jobs have drained: the deliveries in flight end, then the sweeper, then the clients. */
static void on_runner_drained(void *data)
{
    worker_t *w = data;
    w->runner = NULL;
    if (w->webhooks)
        webhook_deliverer_close(w->webhooks, on_webhooks_closed, w);
    else if (w->sweeper)
        worker_sweeper_close(w->sweeper, on_sweeper_closed, w);
    else
        on_sweeper_closed(w);
}

/* SIGTERM: the metrics port goes first, then the jobs drain, then the rest closes. */
static void on_httpd_stopped(gf_httpd_t *h, void *data)
{
    (void)h;
    worker_t *w = data;
    w->closes_pending = 1;
    if (w->runner)
        worker_runner_drain(w->runner, on_runner_drained, w);
    else
        on_runner_drained(w);
}

void worker_stop(worker_t *w, worker_stopped_cb cb, void *data)
{
    w->stopped_cb = cb;
    w->stopped_data = data;
    gf_httpd_stop(w->httpd, on_httpd_stopped, w);
}

void worker_free(worker_t *w)
{
    if (w == NULL)
        return;
    gf_httpd_free(w->httpd);
    gf_metrics_free(w->metrics);
    img_presets_free(w->presets);
    if (w->imaging_up)
        img_shutdown();
    free(w);
}
