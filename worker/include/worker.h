/*
 * worker/include/worker.h - the worker of farm-worker: its clients (Redis,
 * Postgres, providers, imaging), the job runner and the sweeper, and its
 * /healthz and /metrics port. worker/main.c runs it in the process shell of
 * core/include/proc.h; worker_stop() drains the jobs, then closes everything.
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
