/*
 * core/proc.h - what every genfarm process does at start and stop: load and
 * validate the configuration (exit 2 with one line naming the bad variable),
 * set the log level, raise the open-files limit, ignore SIGPIPE, and turn
 * SIGTERM/SIGINT into one graceful-stop callback on the loop.
 */
#ifndef GF_PROC_H
#define GF_PROC_H

#include <uv.h>

#include "config.h"
#include "httpd.h"
#include "metrics.h"

/* Loads the config from the environment or exits(2) printing why. Logs it once. */
gf_config_t *gf_proc_init(const char *component);

typedef void (*gf_proc_stop_cb)(void *data);

/*
 * Watches SIGTERM and SIGINT on `loop`; the first one calls `cb`, a second one
 * exits at once with status 1 (an operator who insists). The signal handles
 * are unref'd so they never keep the loop alive; close them with gf_proc_signals_close().
 */
void gf_proc_signals_start(uv_loop_t *loop, gf_proc_stop_cb cb, void *data);
void gf_proc_signals_close(void);

/* Adds GET /healthz (200 "ok") and GET /metrics (Prometheus text of `m`). */
void gf_proc_add_ops_routes(gf_httpd_t *h, gf_metrics_t *m);

/* Fills httpd options from the FARM_HTTP_* settings. */
void gf_proc_httpd_opts(gf_httpd_opts_t *o, const gf_config_t *cfg, const char *name,
                        gf_metrics_t *m);

#endif
