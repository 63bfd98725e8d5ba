/*
 * tests/support/worker_farm.h - the farm the worker integration tests
 * (tests/integration/worker/faults.c, references.c) run against: the fake
 * provider answering after WF_LATENCY_MS, a farm-api and one farm-worker
 * (both on the fake, fallback hf,fal,bfl,replicate, 2 s leases, storage in the
 * test's temp dir; the worker claims up to its ceiling, FARM_WORKER_CLAIM=ceiling),
 * and a pro user with 10,000 credits. Use wf_setup and
 * wf_teardown as the cmocka group fixture.
 */
#ifndef WORKER_FARM_H
#define WORKER_FARM_H

#include <jansson.h>
#include <sys/types.h>

#include "api_harness.h"
#include "support.h"

#define WF_LATENCY_MS 4000

extern char wf_fake_env[128];    /* "FARM_FAKE_PROVIDER_URL=..." */
extern char wf_storage_env[600]; /* "FARM_STORAGE_DIR=..." shared by the api and workers */
extern pid_t wf_api_pid, wf_fake_pid, wf_worker_pid;
extern char *wf_tok;     /* the user's token */
extern char wf_user[37]; /* the user's id */

/* A worker on the fake; `fallback` orders its adapters (NULL: hf first); `more`, `more2`: NULL
 * or one more setting each. */
pid_t wf_start_worker_more(const char *name, const char *fallback, const char *more,
                           const char *more2);
/* The same with any number of more settings, `more` NULL-terminated. */
pid_t wf_start_worker_env(const char *name, const char *fallback, const char *const more[]);
pid_t wf_start_worker_with(const char *name, const char *fallback);
pid_t wf_start_worker(const char *name);

int wf_setup(void **state);
int wf_teardown(void **state);

/* A request to the api as the user; dispose of the answer. */
ts_http_t wf_api(const char *method, const char *path, const char *body);
/* Prints the tails of the processes' logs (to explain a failure). */
void wf_dump_logs(void);

#define wf_assert_found(g)                                                                         \
    do {                                                                                           \
        if ((g) == NULL)                                                                           \
            wf_dump_logs();                                                                        \
        assert_non_null(g);                                                                        \
    } while (0)

/* POSTs a generation as the user (asserting 202); its id into `id`. */
void wf_create(const char *body, char id[37]);
/*
 * POSTs a 256 x 256 avatar of `prompt` (`count` images; 0: the default) with
 * the upload `upload` as its identity, and waits up to 30 s for it to end
 * (succeeded, partial or failed; asserted); the generation (decref it).
 */
json_t *wf_identity_avatar(const char *prompt, int count, const char *upload);
/* Polls GET until the status is one of `want` ("a|b"); the generation (decref it), or NULL. */
json_t *wf_wait_status(const char *id, const char *want, double timeout_s);
/* Waits up to `timeout_s` for the status to be one of `want` (asserted, the logs printed when it
 * is not), keeping nothing of the generation. */
void wf_expect_status(const char *id, const char *want, double timeout_s);
/* Waits up to `timeout_s` for the generation to end (succeeded, partial or failed; asserted,
 * the logs printed when it does not); the generation (decref it). */
json_t *wf_wait_end(const char *id, double timeout_s);
/* wf_create, then wf_wait_end. */
json_t *wf_create_ended(const char *body, char id[37], double timeout_s);
/* Uploads a w x h PNG gradient as the user; its upload id into `upload`. */
void wf_upload_png(int w, int h, char upload[37]);
/* The fake's count of requests to `endpoint` ("bfl.submit"). */
long wf_fake_count(const char *endpoint);
/* The fake's log entries for `endpoint`, oldest first (a new array). */
json_t *wf_fake_requests(const char *endpoint);

#endif
