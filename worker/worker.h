/*
 * worker/worker.h - the worker process (farm-worker). This cut runs the
 * process shell ops scale out: configuration, its /healthz and /metrics port,
 * and a graceful stop. Claiming and running generations is not built yet
 * (the worker issue); the process says so at start.
 */
#ifndef WORKER_H
#define WORKER_H

#include <uv.h>

#include "core.h"

typedef struct worker worker_t;
typedef void (*worker_stopped_cb)(worker_t *w, void *data);

worker_t *worker_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);
int worker_start(worker_t *w, gf_err_t *err);
void worker_stop(worker_t *w, worker_stopped_cb cb, void *data);
void worker_free(worker_t *w);

#endif
