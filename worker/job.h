/*
 * worker/job.h - one generation in a worker (internal to worker/).
 *
 * A job owns everything allocated for it and is freed in one place once no
 * callback of it is pending (`pending` counts store, queue, provider and
 * thread-pool work in flight) and it has ended: finished, lost or handed back.
 * A callback keeps its count until it returns (job_unref is its last call):
 * what it calls may end the job (a hand-back, a lost lease), so a count given
 * back earlier let the job be freed under the callback still using it.
 */
#ifndef WORKER_JOB_H
#define WORKER_JOB_H

#include <jansson.h>

#include "runner.h"

typedef struct job job_t;

typedef enum {
    IMAGE_PENDING,
    IMAGE_CALLING,    /* the provider call is in flight */
    IMAGE_PROCESSING, /* post-processing and storage on the thread pool */
    IMAGE_STORING,    /* outputs and capture in Postgres */
    IMAGE_SETTLED,
} image_state;

typedef struct {
    job_t *job;
    int index, pose;
    int attempts;
    int64_t seed;
    image_state state;
    provider_call_t *call;
    uv_work_t work;
    unsigned char *bytes; /* the provider's image, for the thread pool */
    size_t len;
    char *outputs_json; /* made on the thread pool */
    char *resume;       /* "provider:token" an earlier attempt persisted, or NULL */
    uint64_t t_stage;   /* when the current stage began (uv_hrtime) */
    gf_err_t work_err;
} job_image_t;

struct job {
    job_t *next, *prev;
    worker_runner_t *r;
    queue_job_t qj;
    img_params params; /* the payload's */
    int params_ok;     /* the payload parsed; job_parse fails the generation otherwise */
    char *prompt;      /* with the style's suffix */
    int count, nposes, images;
    int width, height;
    const img_export_preset **exports; /* params.export_defs */
    size_t nexports;
    job_image_t *imgs;
    int running, settled, delivered;
    char *last_error; /* the error JSON of the last image that failed for good */
    /* Files the generation refers to: storage keys, then their bytes (thread pool). */
    char *identity_key;
    char **pose_keys; /* by pose index; NULL where the pose is a preset */
    img_buf identity;
    img_buf *pose_maps;
    uv_work_t refs_work;
    int pending;
    int started, canceling, lost, ending, ended, handed_back;
    int stage; /* the gf_stage last published, -1 before the first */
    uint64_t started_ns;
};

/* The runner's side that jobs use. */
struct worker_runner {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    queue_t *queue;
    store_t *store;
    provider_t *provider;
    const img_presets_t *presets;
    char worker_id[80];
    job_t *jobs;
    size_t njobs;
    int claiming, draining;
    uv_timer_t claim_timer, heartbeat_timer, drain_timer;
    int timers_open;
    worker_runner_stopped_cb stopped_cb;
    void *stopped_data;
    gf_mfamily_t *m_outcomes, *m_stage, *m_provider, *m_images;
    gf_metric_t *m_inflight, *m_claimed, *m_heartbeat_failures;
};

/* Ends one pending callback of the job; frees it when it has ended and none is left. */
void job_unref(job_t *j);

/* Takes ownership of `qj`'s strings; starts the job. */
void job_start(worker_runner_t *r, queue_job_t *qj);

/* The queue asked to cancel (heartbeat answer or pub/sub). */
void job_cancel(job_t *j);

/* The lease is gone: abort everything, write nothing. */
void job_lose(job_t *j);

/* Drain timeout: abort and give the job back to the queue at once. */
void job_hand_back(job_t *j);

/* --- shared by job.c and job_image.c ------------------------------------------- */

/* A store call made for a job (and maybe one of its images). */
typedef struct {
    job_t *job;
    job_image_t *img;
    store_call_t call;
    char *error_json; /* an image's release: the error it records (owned) */
} job_op_t;

gf_log_ctx job__log(const job_t *j, const char *action);
/* Whether the job lost its lease or was handed back: then it writes nothing more. */
int job__gone(const job_t *j);
/* Frees the job once it has ended and nothing of it is in flight. */
void job__check_end(job_t *j);
/* A store call owned by the job (counted in `pending`); free it in its callback. */
job_op_t *job__op_new(job_t *j, job_image_t *img);
/* Runs `op`'s call; a call the store refuses (it is closing) hands the job back and frees `op`
 * without running `cb`. */
void job__op_exec(job_op_t *op, store_call_cb cb);
void job__op_free(job_op_t *op);
/* Appends an event (data stolen; the generation id is added). */
void job__event(job_t *j, const char *type, json_t *data);
/* Starts what may start, and finishes the generation when nothing is left. */
void job__pump(job_t *j);
/* Ends the image's current stage in the stage histogram and starts the next. */
void job__stage_done(job_image_t *img, gf_stage stage);
/* An image began stage `s`: the generation's stage (API.md) is published when it changes. */
void job__stage(job_t *j, gf_stage s);
/* Starts (or restarts) an image's provider call. */
void job__image_start(job_image_t *img);

/* Called by a job when it is gone (the runner unlinks it and may claim again). */
void worker_runner__job_gone(worker_runner_t *r, job_t *j);

#endif
