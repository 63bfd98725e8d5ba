/*
 * worker/worker_int.h - what the files of worker/ share (private to worker/):
 * the runner (claims, heartbeats, drain: runner.c), the job and its state
 * machine (job.c), and an image's path through provider, thread pool and
 * store (job_image.c).
 *
 * A job is one generation in this worker. Every event that can change its
 * course goes through one transition function, job__advance(), which reads
 * and writes its one `state`:
 *
 *   STARTING --ready--> RUNNING --all images settled--> FINISHING --finished--> CLOSING --> ENDED
 *      |  cancel: remembered      | cancel                  ^                       ^
 *      |  until ready             v                         |                       |
 *      |                      CANCELING --running == 0------+                       |
 *      +-- finished in Postgres before it started / no such generation -------------+
 *   STARTING, RUNNING, CANCELING, FINISHING --postgres failed--> HANDING_BACK --> ENDED
 *   STARTING, RUNNING, CANCELING --drain timeout--> HANDING_BACK
 *   any state but HANDING_BACK and the ended ones --lease lost--> LOST
 *
 * FINISHING records the finish in Postgres, CLOSING tells the queue how the job
 * ended, HANDING_BACK gives it back for another worker (retry). LOST and ENDED
 * write nothing more. A job owns everything allocated for it and is freed in
 * one place once it has ended (ENDED or LOST) and no callback of it is
 * pending (`pending` counts store, queue, provider and thread-pool work in
 * flight). A callback keeps its count until it returns (job_unref is its last
 * call): what it calls may end the job, so a count given back earlier would
 * let the job be freed under the callback still using it.
 */
#ifndef WORKER_INT_H
#define WORKER_INT_H

#include <jansson.h>
#include <uv.h>

#include "claim.h"
#include "core.h"
#include "imaging.h"
#include "provider.h"
#include "queue.h"
#include "storage.h"
#include "store.h"

typedef struct webhook_deliverer webhook_deliverer_t; /* webhooks.h */

typedef struct worker_runner worker_runner_t;
typedef void (*worker_runner_stopped_cb)(void *data);

/* Everything is borrowed and must outlive the runner. */
worker_runner_t *worker_runner_new(uv_loop_t *loop, const gf_config_t *cfg, queue_t *queue,
                                   store_t *store, storage_t *storage, provider_t *provider,
                                   const img_presets_t *presets, webhook_deliverer_t *webhooks,
                                   gf_metrics_t *metrics);

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

typedef struct job job_t;

/* Where a job is in its life (the diagram at the top of this file). */
typedef enum {
    JOB_STARTING,     /* recording the start, reading what to resume, loading references */
    JOB_RUNNING,      /* its images run, FARM_WORKER_IMAGES_PARALLEL at a time */
    JOB_CANCELING,    /* canceled: provider calls aborted, waiting for running images to stop */
    JOB_FINISHING,    /* the finish is being recorded in Postgres */
    JOB_CLOSING,      /* the queue is being told how it ended */
    JOB_HANDING_BACK, /* the queue is being asked to give it to another worker */
    JOB_ENDED,        /* the queue was told (or could not be): nothing more is written */
    JOB_LOST,         /* its lease went to another worker: nothing more is written */
} job_state_t;

/* What happens to a job; each goes through job__advance(). */
typedef enum {
    JOB_EV_READY,          /* started, what to resume read, references loaded: images may run */
    JOB_EV_PUMP,           /* an image settled or stopped: start more, or finish */
    JOB_EV_CANCEL,         /* the user canceled it (heartbeat answer or pub/sub) */
    JOB_EV_UNRUNNABLE,     /* its parameters cannot be run: it finishes failed */
    JOB_EV_FINISHED,       /* Postgres recorded the finish (`status`: the status in force) */
    JOB_EV_CLOSE,          /* end it in the queue without a finish of ours (`outcome`, `detail`) */
    JOB_EV_QUEUE_ANSWERED, /* the queue answered the close or the hand-back */
    JOB_EV_STORE_FAILED,   /* a Postgres write failed: hand it back */
    JOB_EV_DRAIN_TIMEOUT,  /* the worker is stopping and the drain time is over: hand it back */
    JOB_EV_LEASE_LOST,     /* a fenced write or a heartbeat was refused */
} job_event_t;

/* What the transition table needs to know besides the state and the event. */
typedef struct {
    int cancel_asked;             /* a cancel came while STARTING */
    int running, settled, images; /* images in flight, settled, in all */
    int finish_sent;              /* the last image's record, which finishes it, is in flight */
} job_facts_t;

/*
 * The transition table (job_state.c, pure): the state a job in `s` moves to
 * on `ev`; `s` itself when the state does not take the event.
 */
job_state_t job__next(job_state_t s, job_event_t ev, const job_facts_t *f);

/* Whether a job in `s` has ended (ENDED or LOST): it writes nothing more. */
int job__state_is_ended(job_state_t s);

/* A state's name, for logs. */
const char *job__state_name(job_state_t s);

/* What an event carries, where it carries anything. */
typedef struct {
    const char *status;      /* JOB_EV_FINISHED */
    int applied;             /* JOB_EV_FINISHED: this job's record set the status (counted) */
    queue_outcome_t outcome; /* JOB_EV_CLOSE */
    const char *detail;      /* JOB_EV_CLOSE */
} job_event_arg_t;

typedef enum {
    IMAGE_PENDING,
    IMAGE_CALLING,    /* the provider call is in flight */
    IMAGE_PROCESSING, /* post-processing on the thread pool, then its outputs put in storage */
    IMAGE_STORING,    /* outputs and capture in Postgres */
    IMAGE_SETTLED,
} image_state;

typedef struct job_image job_image_t;
struct job_image {
    job_t *job;
    int index, pose;
    int attempts;
    int64_t seed;
    image_state state;
    provider_call_t *call;
    uv_work_t work;
    unsigned char *bytes; /* the provider's image, for the thread pool */
    size_t len;
    char *outputs_json;        /* made on the thread pool */
    img_variants vars;         /* made on the thread pool, put in storage from the loop */
    char (*keys)[IMG_KEY_MAX]; /* the storage key of each of `vars` (this attempt's names) */
    size_t nkeys;              /* kept until the outputs are recorded, or their files dropped */
    gf_err_t put_err;          /* the first put that failed for good */
    char *resume;              /* "provider:token" of the last request a provider accepted (this
                                * worker's, or one an earlier holder persisted), or NULL */
    int resumed;               /* the call in flight resumes `resume` (no new request) */
    int resume_next;           /* the next attempt resumes `resume`: the last one's job lives */
    unsigned retried_once;     /* faults retried already that are retried once (job_image.c) */
    int request_recorded;      /* the call in flight's request is in Postgres: resumable */
    unsigned request_seq;      /* bumped by each attempt and each request a provider accepts */
    uint64_t t_stage;          /* when the current stage began (uv_hrtime) */
    /* Post-processing (uv_hrtime): queued in the runner's FIFO, begun and ended on its pool
     * thread (read on the loop once the work is done). The claim controller's samples. */
    uint64_t t_pool_queued, t_pool_begun, t_pool_ended;
    uint64_t t_called, t_provider_done, t_recorded; /* the debug timing line (job.c) */
    job_image_t *post_next; /* waiting for a post-processing slot (the runner's FIFO) */
    gf_err_t work_err;
};

struct job {
    job_t *next, *prev;
    worker_runner_t *r;
    queue_job_t qj;
    img_params params;  /* the payload's */
    int params_ok;      /* the payload parsed; job_parse fails the generation otherwise */
    char *prompt;       /* with the style's suffix */
    int nposes, images; /* poses (1 for an avatar) and images it runs, from params */
    job_image_t *imgs;
    int running, settled, delivered;
    int progress;    /* the last progress its events said (job__progress: never lower) */
    int finish_sent; /* the last image's record and the finish (one call) are in flight */
    /* The status its last image's record finished it with (farm_image_done_finish);
     * FINISHING then has nothing left to send. Empty until then. */
    char finished_status[16];
    int finished_applied; /* ...and that record set it (res.image.finished) */
    char *last_error;     /* the error JSON of the last image that failed for good */
    /* Files the generation refers to: storage keys, then their bytes (thread pool). */
    char *identity_key;
    char **pose_keys; /* by pose index; NULL where the pose is a preset */
    img_buf identity;
    img_buf *pose_maps; /* by pose index: rendered from a preset or read from an upload */
    int refs_reading;   /* storage reads of the references in flight */
    gf_err_t refs_err;  /* the first of them that failed other than not-found */
    uv_work_t refs_work;
    job_state_t state;
    int cancel_asked; /* a cancel came while STARTING: it cancels once ready */
    int pending;
    int stage;             /* the gf_stage last published, -1 before the first */
    uint64_t started_ns;   /* its claim (uv_hrtime) */
    uint64_t pool_wait_ns; /* its images' waits to be post-processed (FIFO, pool), summed */
    int post_images;       /* its images post-processed */
    /* CLOSING and HANDING_BACK: what the queue is told, kept to tell it again when
     * Redis did not answer (`queue_retry`: the runner's next tick sends it again). */
    queue_outcome_t queue_outcome;
    char *queue_detail;
    int queue_retry;
};

/* The runner's side that jobs use. */
struct worker_runner {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    queue_t *queue;
    store_t *store;
    storage_t *storage;
    provider_t *provider;
    const img_presets_t *presets;
    webhook_deliverer_t *webhooks; /* sends the terminal webhooks its jobs lease (may be NULL) */
    char worker_id[80];
    job_t *jobs;
    size_t njobs;
    int claiming, draining;
    claim_ctl_t ctl; /* how many it may hold now (claim.h) */
    /* Images post-processed at once (ctl.pool: the thread pool's width, at most the cores);
     * the others wait in this FIFO, and the pool's other threads stay free for storage. */
    int posting;
    job_image_t *post_head, *post_tail;
    int drain_over; /* the drain time is over: a queue end that fails is not retried */
    uv_timer_t claim_timer, heartbeat_timer, drain_timer;
    int timers_open;
    worker_runner_stopped_cb stopped_cb;
    void *stopped_data;
    gf_mfamily_t *m_outcomes, *m_stage, *m_provider, *m_images;
    gf_mfamily_t *m_provider_calls; /* by provider and resumed (job_image.c) */
    gf_mfamily_t *m_gen_outcomes, *m_queue_wait, *m_gen_duration; /* by kind (job.c) */
    gf_metric_t *m_inflight, *m_claimed, *m_heartbeat_failures;
    gf_metric_t *m_claim_limit; /* farm_worker_claim_limit */
    gf_mfamily_t
        *m_breaker_open; /* farm_provider_breaker_open{provider}, set each heartbeat tick */
};

/* Ends one pending callback of the job; frees it when it has ended and none is left. */
void job_unref(job_t *j);

/* Takes ownership of `qj`'s strings; starts the job. */
void job_start(worker_runner_t *r, queue_job_t *qj);

/*
 * The one transition function: moves the job on `ev` (arg: NULL unless the
 * event carries something) and starts what the new state does. An event a
 * state does not take is ignored. Call it holding a count (a callback's).
 */
void job__advance(job_t *j, job_event_t ev, const job_event_arg_t *arg);

/* Whether the job still holds its lease and heartbeats it. */
int job_holds_lease(const job_t *j);

/* Whether the job may still write (start images, record results, emit events). */
int job_is_live(const job_t *j);

/* --- shared by job.c and job_image.c ------------------------------------------- */

/* A store call made for a job (and maybe one of its images). */
typedef struct {
    job_t *job;
    job_image_t *img;
    store_call_t call;
    char *error_json;     /* an image's release: the error it records (owned) */
    int finishes;         /* an image_done that finishes the generation too */
    int webhook_reserved; /* it leases the terminal webhook for r->webhooks (to adopt) */
    unsigned request_seq; /* a provider request's record: the image's request_seq it is for */
} job_op_t;

gf_log_ctx job__log(const job_t *j, const char *action);
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
/* Ends the image's current stage in the stage histogram and starts the next. */
void job__stage_done(job_image_t *img, gf_stage stage);
/* The generation's progress, 0..100, for its events (job.c). */
int job__progress(job_t *j);
/* An image began stage `s`: the generation's stage (API.md) is published when it changes. */
void job__stage(job_t *j, gf_stage s);
/* The kind label of the job's metrics: bounded to the kinds, "unknown" if unreadable. */
const char *job__kind(const job_t *j);
/* Seconds since the job was enqueued (its creation time, unix ms), or -1 when unknown. */
double job__age_s(const job_t *j);
/* Starts (or restarts) an image's provider call. */
void job__image_start(job_image_t *img);

/*
 * Sends a job's queue end again (CLOSING, HANDING_BACK) when the last one
 * failed because Redis did not answer; the runner calls it on every tick.
 * A failure gives it up when the drain time is over.
 */
void job_queue_retry(job_t *j);

/* Called by a job when it is gone (the runner unlinks it and may claim again). */
void worker_runner__job_gone(worker_runner_t *r, job_t *j);

#endif
