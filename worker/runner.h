/*
 * worker/runner.h - the job loop of farm-worker (DESIGN.md): claim ->
 * start in Postgres -> for every image: provider call -> post-processing on
 * the thread pool -> storage -> capture -> events; then finish in Postgres
 * and in the queue. Heartbeats keep the leases; a lost lease aborts a job
 * without writing anything; a cancel aborts its provider calls, keeps the
 * images already finished and releases the rest.
 */
#ifndef WORKER_RUNNER_H
#define WORKER_RUNNER_H

#include <uv.h>

#include "core.h"
#include "imaging.h"
#include "provider.h"
#include "queue.h"
#include "store.h"

typedef struct worker_runner worker_runner_t;
typedef void (*worker_runner_stopped_cb)(void *data);

/* Everything is borrowed and must outlive the runner. */
worker_runner_t *worker_runner_new(uv_loop_t *loop, const gf_config_t *cfg, queue_t *queue,
                                   store_t *store, provider_t *provider,
                                   const img_presets_t *presets, gf_metrics_t *metrics);

/* Starts claiming. */
void worker_runner_start(worker_runner_t *r);

/* Generations running now. */
size_t worker_runner_inflight(const worker_runner_t *r);

/*
 * Stops claiming, lets running generations finish for FARM_WORKER_DRAIN_S,
 * then hands the rest back to the queue; `cb` runs when no job is left and
 * the runner is freed.
 */
void worker_runner_drain(worker_runner_t *r, worker_runner_stopped_cb cb, void *data);

#endif
