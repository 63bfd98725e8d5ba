/*
 * tests/support/played_worker.h - a real farm-api process and no worker: the
 * test plays the worker's part itself through the queue and store APIs
 * (claims, starts, appends events, settles, finishes), so it decides when
 * each thing happens. For the api's event tests, and the api tests that
 * read or change the queue and the store beside the api (pw_setup alone).
 */
#ifndef PLAYED_WORKER_H
#define PLAYED_WORKER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "api_harness.h"
#include "queue.h"
#include "store.h"

extern pid_t pw_api_pid;
extern gf_config_t *pw_cfg; /* the environment's configuration */
extern queue_sync_t *pw_qs; /* the worker's queue */
extern store_conn_t *pw_sc; /* the worker's store */

/* Starts farm-api with `api_extra` (au_api_start) and opens the queue and the store; 0 or -1. */
int pw_setup(const char *const *api_extra);
/* Closes them, forgets the config's log secrets and stops the api; 0 when it exited 0 (no
 * sanitizer report, no crash). */
int pw_teardown(void);

/* Claims until generation `id` comes up; its fencing token. */
uint64_t pw_claim_token(const char *id);

/* Claims generation `id` and starts it in the store (local provider); its fencing token. */
uint64_t pw_start(const char *id);

/*
 * Settles the only image of `id` (`ok`: captured; else released with
 * `error_json`) and finishes it ("auto": the store decides its status).
 */
void pw_settle_and_finish(const char *id, uint64_t tok, int ok, const char *error_json);

/* A socket connected to the api started by au_api_start(), for raw requests. */
int pw_connect(void);

/* How many times `needle` stands in `hay` (NULL: none). */
size_t pw_count_of(const char *hay, const char *needle);

/* An event stream read by libcurl: the request (`url`, one `auth` header line, an optional
 * Last-Event-ID) and what came, guarded by `mu` while sse_run() reads on a thread. */
typedef struct {
    char url[512];
    char auth[2048];
    const char *last_event_id;
    gf_buf_t got;
    pthread_mutex_t mu;
    long status;
    double timeout_s; /* the whole request's, after which it "disconnects" */
} sse_client_t;

/* Reads the stream until it ends or its timeout (a pthread start routine). */
void *sse_run(void *arg);
/* Whether `needle` has come. */
int sse_has(sse_client_t *c, const char *needle);
/* Waits up to `timeout_s` for `needle`; 1 when it came. */
int sse_wait_for(sse_client_t *c, const char *needle, double timeout_s);

#endif
