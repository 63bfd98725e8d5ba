/*
 * tests/support/farm_fixture.h - one farm for a test program: the fake
 * provider, a farm-api and one farm-worker (its log worker.log) with the
 * settings the test names, on local storage in $FARM_TEST_TMPDIR/storage or,
 * when the fixture runs its S3 server (FARM_TEST_S3_ENDPOINT set), on S3
 * under a prefix of the test's; a pro user with 10,000 credits. Also what the
 * tests on such a farm share: the worker's metrics, the processes' logs, a
 * PNG upload, and objects checked with clients that are not ours (sha256sum
 * locally, the AWS SDK for JavaScript on S3).
 */
#ifndef FARM_FIXTURE_H
#define FARM_FIXTURE_H

#include <jansson.h>
#include <sys/types.h>

#include "api_harness.h"
#include "support.h"

typedef struct {
    const char *reason;        /* the user's grant's reason */
    int fake_latency_ms;       /* the fake provider answers after this */
    const char *s3_prefix;     /* FARM_S3_PREFIX on S3 ("left/") */
    int metrics;               /* 1: the worker's /metrics on ff_metrics_port; 0: none */
    const char *const *both;   /* settings of the api and the worker, NULL-terminated */
    const char *const *api;    /* the api's own (NULL-terminated, or NULL) */
    const char *const *worker; /* the worker's own (NULL-terminated, or NULL) */
} ff_farm_t;

extern int ff_s3;                /* 1: the farm stores on the fixture's S3 server */
extern char ff_storage_dir[600]; /* local storage's root */
extern char ff_fake_env[128];    /* "FARM_FAKE_PROVIDER_URL=..." */
extern int ff_metrics_port;      /* the worker's /metrics, when farm->metrics */
extern pid_t ff_api_pid, ff_worker_pid, ff_fake_pid;
extern char *ff_tok;     /* the user's token */
extern char ff_user[37]; /* the user's id */

/* Whether the fixture runs its S3 server (then ff_setup puts the farm's objects there). */
int ff_wants_s3(void);

/* Starts the farm (`farm` must outlive it) and waits for the api to be ready and, with
 * farm->metrics, for the worker's /metrics to answer; 0, or -1 when a part did not come up. */
int ff_setup(const ff_farm_t *farm);
/* Stops it (ts_stop_farm); 0 when the worker and the api exited 0. */
int ff_teardown(void);

/* Prints the last `lines` lines of each process's log (to explain a failure). */
void ff_dump_logs(int lines);

/* A series' value on the worker's /metrics (0 when it is not there). */
double ff_worker_metric(const char *series);

/* POSTs a w x h PNG gradient (libvips, initialised by the caller) to au_base's /v1/uploads as
 * `tok`: the answer, whatever it is (ts_http_dispose it). */
ts_http_t ff_post_png(const char *tok, int w, int h);

/* ff_post_png, which must be accepted (201); the upload's id into `id`. */
void ff_upload_png(const char *tok, int w, int h, char id[37]);

/* An output's storage key: its signed URL's path after /v1/files/ (the layout's key). */
void ff_output_key(json_t *o, char key[300]);

/*
 * tests/s3/interop.js `op` ("get", "put", "absent") on `key` with `arg`
 * (NULL: none), with the farm's S3 settings: the AWS SDK's exit status.
 */
int ff_interop(const char *op, const char *key, const char *arg);

/* Whether the object of `key` is stored with the SHA-256 `sha` (the AWS SDK on S3, sha256sum
 * on local storage). */
int ff_object_present(const char *key, const char *sha);

#endif
