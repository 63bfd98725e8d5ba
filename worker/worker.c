/*
 * worker/worker.c - the worker process shell: metrics port and stop.
 */
#include "worker.h"

#include <stdlib.h>

struct worker {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    gf_metrics_t *metrics;
    gf_httpd_t *httpd;
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
    int rc = gf_httpd_listen(w->httpd, err);
    if (rc < 0)
        return rc;
    GF_LOG(GF_LOG_INFO, &log_ctx, "metrics on http://%s:%d/metrics", w->cfg->worker_metrics_host,
           gf_httpd_port(w->httpd));
    GF_LOG(GF_LOG_WARN, &log_ctx,
           "this build does not claim generations yet: job processing is not implemented");
    return 0;
}

static void on_httpd_stopped(gf_httpd_t *h, void *data)
{
    (void)h;
    worker_t *w = data;
    if (w->stopped_cb)
        w->stopped_cb(w, w->stopped_data);
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
    free(w);
}
