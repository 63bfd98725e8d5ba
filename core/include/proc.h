/*
 * core/include/proc.h - the process shell of farm-api and farm-worker: load and
 * validate the configuration, set the log level, raise the open-files limit,
 * ignore SIGPIPE, create and start the process's service on the default
 * loop, turn SIGTERM/SIGINT into one graceful stop (SIGUSR2 too: the api
 * supervisor's, which never counts as a second signal), run the loop until
 * every handle is closed and check that it closes empty.
 *
 * Exit statuses, the same for every genfarm process:
 *   0  stopped gracefully (a signal, then a drained stop)
 *   1  could not start, or did not close cleanly; a second signal
 *   2  bad configuration: a value the table refuses, a check of the
 *      service's own, or a setting that start refused with GF_EINVAL
 */
#ifndef GF_PROC_H
#define GF_PROC_H

#include <signal.h>
#include <uv.h>

#include "config.h"
#include "httpd.h"
#include "metrics.h"

enum { GF_EXIT_OK = 0, GF_EXIT_FAILURE = 1, GF_EXIT_CONFIG = 2 };

/*
 * What the shell runs: farm-api's api_t or farm-worker's worker_t behind
 * these functions. Every function runs on the loop thread; `svc` is what
 * `create` returned.
 */
typedef struct gf_proc_service gf_proc_service_t;
struct gf_proc_service {
    const char *component; /* "api", "worker": the component of its log lines */
    /* Optional: refuses a configuration the table cannot judge alone (GF_EINVAL + `err`). */
    int (*check)(const gf_config_t *cfg, gf_err_t *err);
    /* Creates the service on `loop`; `cfg` is borrowed and outlives it. NULL with `err`. */
    void *(*create)(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);
    /* Starts it: 0, or a negative status with `err` (GF_EINVAL: a bad setting, exit 2). */
    int (*start)(void *svc, gf_err_t *err);
    /* Stops it gracefully; it calls gf_proc_stopped() once its handles are closed. */
    void (*stop)(void *svc);
    /* Frees a stopped service (or one that never started). */
    void (*free)(void *svc);
    /*
     * Optional: runs the process in place of gf_proc_serve() and returns its
     * exit status (farm-api's supervisor of several processes, each of which
     * runs gf_proc_serve()). `cfg` stays the shell's; a forked child that
     * ends with _exit() may free its copy first. It starts with SIGTERM and
     * SIGINT blocked (so none kills a process half-started) and unblocks them
     * once it has handlers; gf_proc_serve() does so itself.
     */
    int (*run)(const gf_proc_service_t *svc, gf_config_t *cfg);
};

/*
 * The whole life of a process, for main(): gf_proc_init(), the service's
 * check, then `run` or gf_proc_serve(); frees the configuration. Returns the
 * exit status (see the file comment).
 */
int gf_proc_main(const gf_proc_service_t *svc);

/* The libuv thread pool's width, read as libuv reads it: UV_THREADPOOL_SIZE,
 * default 4, 0 or what is not a number as 1, at most 1024. */
int gf_proc_pool_width(void);

/* Loads the config from the environment or exits(2) printing why. Logs it once. */
gf_config_t *gf_proc_init(const char *component);

/* Blocks (SIG_BLOCK) or unblocks (SIG_UNBLOCK) SIGTERM, SIGINT and SIGUSR2 for
 * the calling thread; the previous mask into `old` when not NULL. */
void gf_proc_stop_signals(int how, sigset_t *old);

/*
 * One process's service on the default loop: create and start it (a failure
 * is logged and stops what was made), stop it on the first SIGTERM or SIGINT
 * (a second one exits at once with status 1), run the loop until every
 * handle is closed and close it. Returns the exit status. Used once per
 * process (the signal handles are the process's).
 */
int gf_proc_serve(const gf_proc_service_t *svc, const gf_config_t *cfg);

/* Tells the shell the service has stopped: closes the signal handles so the loop can end. */
void gf_proc_stopped(void);

/* Adds GET /healthz (200 "ok") and GET /metrics (Prometheus text of `m`). */
void gf_proc_add_ops_routes(gf_httpd_t *h, gf_metrics_t *m);

/* Fills httpd options from the FARM_HTTP_* settings. */
void gf_proc_httpd_opts(gf_httpd_opts_t *o, const gf_config_t *cfg, const char *name,
                        gf_metrics_t *m);

#endif
