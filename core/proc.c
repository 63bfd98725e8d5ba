/*
 * core/proc.c - process start and stop shared by farm-api and farm-worker.
 */
#include "proc.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

extern char **environ;

static uv_signal_t sig_term, sig_int;
static int sig_started, sig_seen;
static gf_proc_stop_cb stop_cb;
static void *stop_data;

gf_config_t *gf_proc_init(const char *component)
{
    gf_err_t err = {0};
    signal(SIGPIPE, SIG_IGN);
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s: configuration error: %s\n", component, err.msg);
        exit(2);
    }
    gf_log_min_level = (int)cfg->log_level;
    /* Each connection and stream holds a descriptor: take all the kernel allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            GF_LOG(GF_LOG_WARN, &(gf_log_ctx){.component = component},
                   "cannot raise the open files limit");
    }
    gf_cfg_log(cfg, component);
    return cfg;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (sig_seen++) {
        GF_LOG(GF_LOG_WARN, NULL, "second signal %d: exiting now", signum);
        _exit(1);
    }
    GF_LOG(GF_LOG_INFO, NULL, "signal %d: stopping gracefully", signum);
    stop_cb(stop_data);
}

void gf_proc_signals_start(uv_loop_t *loop, gf_proc_stop_cb cb, void *data)
{
    stop_cb = cb;
    stop_data = data;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
    sig_started = 1;
}

void gf_proc_signals_close(void)
{
    if (!sig_started)
        return;
    sig_started = 0;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void on_healthz(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_http_respond(r, 200, "text/plain; charset=utf-8", "ok", 2);
}

static void on_metrics(gf_http_req_t *r, void *data)
{
    char *text = gf_metrics_render(data);
    gf_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

void gf_proc_add_ops_routes(gf_httpd_t *h, gf_metrics_t *m)
{
    gf_httpd_route(h, "GET", "/healthz", 0, on_healthz, NULL);
    gf_httpd_route(h, "GET", "/metrics", 0, on_metrics, m);
}

void gf_proc_httpd_opts(gf_httpd_opts_t *o, const gf_config_t *cfg, const char *name,
                        gf_metrics_t *m)
{
    gf_httpd_opts_default(o);
    o->name = name;
    o->metrics = m;
    o->max_header_bytes = (size_t)cfg->http_max_header_bytes;
    o->max_body_bytes = (size_t)cfg->http_max_body_bytes;
    o->max_connections = (size_t)cfg->http_max_connections;
    o->idle_timeout_ms = (uint64_t)cfg->http_idle_timeout_s * 1000;
    o->header_timeout_ms = (uint64_t)cfg->http_header_timeout_s * 1000;
    o->body_timeout_ms = (uint64_t)cfg->http_body_timeout_s * 1000;
    o->stream_max_queued_bytes = (size_t)cfg->http_stream_max_queued_bytes;
    o->shutdown_timeout_ms = (uint64_t)cfg->shutdown_s * 1000;
}
