/*
 * core/proc.c - the process shell shared by farm-api and farm-worker (see
 * proc.h), and the operations routes both serve.
 *
 * The signal handles are process-wide (one service per process): they are
 * unref'd so they never keep the loop alive, and closed once the service has
 * stopped, or when the loop ran out before that.
 */
#include "proc.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

extern char **environ;

static uv_signal_t sig_term, sig_int, sig_usr2;
static int sig_started, sig_seen, sig_stopping;
static const gf_proc_service_t *sig_svc;
static void *sig_target;

gf_config_t *gf_proc_init(const char *component)
{
    gf_err_t err = {0};
    signal(SIGPIPE, SIG_IGN);
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s: configuration error: %s\n", component, err.msg);
        exit(GF_EXIT_CONFIG);
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

static void stop_once(int signum)
{
    if (sig_stopping)
        return;
    sig_stopping = 1;
    GF_LOG(GF_LOG_INFO, NULL, "signal %d: stopping gracefully", signum);
    sig_svc->stop(sig_target);
}

/* SIGTERM or SIGINT: the first stops gracefully, a second of them exits now. */
static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (sig_seen++) {
        GF_LOG(GF_LOG_WARN, NULL, "second signal %d: exiting now", signum);
        _exit(GF_EXIT_FAILURE);
    }
    stop_once(signum);
}

/*
 * SIGUSR2: farm-api's supervisor passing its stop on to a child (api/main.c).
 * It stops gracefully and is never a second signal: the same stop often
 * reaches a child directly as well (a terminal's Ctrl-C goes to the whole
 * process group, systemd's KillMode=control-group to the whole cgroup).
 */
static void on_supervisor_signal(uv_signal_t *s, int signum)
{
    (void)s;
    stop_once(signum);
}

static void signals_start(uv_loop_t *loop, const gf_proc_service_t *svc, void *target)
{
    sig_svc = svc;
    sig_target = target;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_usr2);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_usr2, on_supervisor_signal, SIGUSR2);
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
    uv_unref((uv_handle_t *)&sig_usr2);
    sig_started = 1;
}

void gf_proc_stopped(void)
{
    if (!sig_started)
        return;
    sig_started = 0;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_usr2, NULL);
    /* Closed, libuv puts the default action back, which for SIGUSR2 is to die: the
     * supervisor's stop may come after the child stopped on a SIGTERM of its own. */
    signal(SIGUSR2, SIG_IGN);
}

void gf_proc_stop_signals(int how, sigset_t *old)
{
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGUSR2);
    sigprocmask(how, &stop_set, old);
}

int gf_proc_serve(const gf_proc_service_t *svc, const gf_config_t *cfg)
{
    const gf_log_ctx ctx = {.component = svc->component};
    uv_loop_t *loop = uv_default_loop();
    gf_err_t err = {0};
    int status = GF_EXIT_OK;
    /* A stop signal that comes while the service starts waits for its handler
     * instead of killing the process half-started (exit 143): blocked until then. */
    gf_proc_stop_signals(SIG_BLOCK, NULL);
    void *s = svc->create(loop, cfg, &err);
    if (s == NULL || svc->start(s, &err) < 0) {
        gf_log_err(GF_LOG_ERROR, &(gf_log_ctx){.component = svc->component, .action = "starting"},
                   &err);
        /* A bad setting is 2: a supervisor does not start it again. */
        status = err.code == GF_EINVAL ? GF_EXIT_CONFIG : GF_EXIT_FAILURE;
        if (s)
            svc->stop(s);
    } else {
        signals_start(loop, svc, s);
        gf_proc_stop_signals(SIG_UNBLOCK, NULL); /* a pending one is handled now */
    }
    uv_run(loop, UV_RUN_DEFAULT);
    gf_proc_stopped();
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0) {
        GF_LOG(GF_LOG_ERROR, &ctx, "handles left open at exit");
        status = status ? status : GF_EXIT_FAILURE;
    }
    if (s)
        svc->free(s);
    return status;
}

int gf_proc_main(const gf_proc_service_t *svc)
{
    const gf_log_ctx ctx = {.component = svc->component};
    /* From the first instruction: a stop signal waits for gf_proc_serve's handlers. */
    gf_proc_stop_signals(SIG_BLOCK, NULL);
    gf_config_t *cfg = gf_proc_init(svc->component);
    gf_err_t err = {0};
    if (svc->check && svc->check(cfg, &err) < 0) {
        GF_LOG(GF_LOG_ERROR, &ctx, "configuration error: %s", err.msg);
        gf_cfg_free(cfg);
        return GF_EXIT_CONFIG;
    }
    int status = svc->run ? svc->run(svc, cfg) : gf_proc_serve(svc, cfg);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    GF_LOG(GF_LOG_INFO, &ctx, "stopped");
    return status;
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
    o->linger_ms = (uint64_t)cfg->http_linger_ms;
    o->stream_max_queued_bytes = (size_t)cfg->http_stream_max_queued_bytes;
    o->linger_max_bytes = (size_t)cfg->http_linger_max_bytes;
    o->max_queued_bytes = (size_t)cfg->http_max_queued_bytes;
    o->max_queued_total = (size_t)cfg->http_max_queued_total_bytes;
    o->shutdown_timeout_ms = (uint64_t)cfg->shutdown_s * 1000;
}

int gf_proc_pool_width(void)
{
    const char *v = getenv("UV_THREADPOOL_SIZE");
    long n = v ? strtol(v, NULL, 10) : 4;
    if (n <= 0)
        n = 1; /* libuv's reading of 0 (and of what is not a number) */
    return n > 1024 ? 1024 : (int)n;
}
