/*
 * worker/sweeper.h - keeps Redis (transport) in line with Postgres (the
 * record), DESIGN.md: every FARM_SWEEP_INTERVAL_S one sweeper in the farm
 * (an advisory lock in farm_sweep) expires queued generations past their
 * deadline, enqueues again the open generations the queue lost (enqueue is
 * idempotent, so one the queue still holds is untouched), and finishes in
 * Postgres the ones the queue gave up on (dead-lettered: failed; canceled,
 * expired), releasing their credits. No accepted generation stays held forever.
 * Each tick also runs the lifecycle step (docs/storage.md, "Lifecycle"):
 * retention (FARM_OUTPUT_RETENTION_DAYS, FARM_UPLOAD_RETENTION_DAYS), the
 * purge of idempotency keys older than 24 h, and the deletion of a batch of
 * objects due (FARM_SWEEP_BATCH), retried with a backoff when storage fails.
 * And each tick reads one page (FARM_SWEEP_BATCH objects) of storage's
 * listing, going round it page after page, and deletes the leftover files
 * older than FARM_SWEEP_LEFTOVER_GRACE_S on it (docs/storage.md, "Leftover
 * files"): a put's temporary files, and the files of an attempt that no
 * output records (farm_storage_unreferenced: never those of a queued or
 * running generation), counted in farm_sweeper_leftover_files_deleted_total{kind}.
 *
 * Every FARM_RECONCILE_INTERVAL_S (the first after FARM_SWEEP_INTERVAL_S) it
 * also counts `farm reconcile`'s violations, one worker of the farm at a
 * time, into farm_reconcile_violations and
 * farm_reconcile_last_run_timestamp_seconds on `metrics`.
 */
#ifndef WORKER_SWEEPER_H
#define WORKER_SWEEPER_H

#include <uv.h>

#include "core.h"
#include "queue.h"
#include "storage.h"
#include "store.h"

typedef struct worker_sweeper worker_sweeper_t;

/*
 * Fills `call` to finish in Postgres a generation whose job the queue holds
 * in the final `queue_state` without a worker having recorded it (a poison
 * job dead-lettered at a claim, one canceled after its holder died, or any
 * the sweeper finds): done as Postgres's images decide, dead as failed with
 * an internal error, the others as their status. The sweeper and a claimer
 * that ended such a job both record it this way.
 */
void worker_finish_from_queue(store_call_t *call, const char *gen_id, const char *queue_state);
/* farm_generation_outcomes_total{kind,status,code}: the family the jobs, the claim and the
 * sweeper of a worker count the generations they finish in. */
gf_mfamily_t *worker_outcomes_family(gf_metrics_t *metrics);
/* Counts one generation a claim or the sweeper finished from the queue's state
 * (worker_finish_from_queue) or expired: code internal when failed or partial (the queue
 * gave up on it), expired when expired, else none. Nothing when `kind` is "". */
void worker_count_queue_finish(gf_mfamily_t *outcomes, const char *kind, const char *status);
typedef void (*worker_sweeper_closed_cb)(void *data);

/* Returns a new sweeper; `store`, `queue`, `storage` and `metrics` are borrowed and must
 * outlive it. */
worker_sweeper_t *worker_sweeper_new(uv_loop_t *loop, const gf_config_t *cfg, store_t *store,
                                     queue_t *queue, storage_t *storage, gf_metrics_t *metrics);

/* Starts ticking (the first tick after one interval). */
void worker_sweeper_start(worker_sweeper_t *sw);

/* Stops; `cb` runs once the tick and check in progress (if any) have ended and the timers are
 * closed. */
void worker_sweeper_close(worker_sweeper_t *sw, worker_sweeper_closed_cb cb, void *data);

#endif
