/*
 * tests/support/providers_util.h - what the providers_* integration tests
 * share: starting farm-fake-provider, reading its log, a configuration that
 * points every adapter at it with short timeouts, and running one call to
 * its end on a private loop.
 */
#ifndef PROVIDERS_UTIL_H
#define PROVIDERS_UTIL_H

#include <sys/types.h>

#include "provider.h"

typedef struct {
    pid_t pid;
    int port;
    char base[64];
    char dir[256];
} pt_fake_t;

/* Starts the fake with extra arguments (NULL-terminated, may be NULL). Aborts on failure. */
void pt_fake_start(pt_fake_t *f, const char *const *args);
void pt_fake_stop(pt_fake_t *f);
/* Requests the fake has seen on `endpoint` ("hf.submit", "bfl.poll", "cdn"...). */
long pt_fake_count(const pt_fake_t *f, const char *endpoint);
/* POSTs `json` to /__fake/<what> ("faults", "config", "reset", "clock"). */
void pt_fake_post(const pt_fake_t *f, const char *what, const char *json);
/* The whole log as JSON text (free()). */
char *pt_fake_log(const pt_fake_t *f);

/*
 * A configuration for `provider` pointed at the fake (tokens set, timeouts and
 * backoffs short); `extra` ("NAME=value", NULL-terminated) overrides.
 */
gf_config_t *pt_config(const pt_fake_t *f, const char *provider, const char *const *extra);

typedef struct {
    int done, status;
    provider_error_t err;
    unsigned char *img;
    size_t len;
    char mime[16], provider[16];
    char accepted_id[128], resume[1024], resume_provider[16];
    int progress_calls;
    double done_at; /* ts_now() when done ran */
    provider_call_t *call;
    int cancel_on_accept;
    int abandon_on_accept; /* provider_abandon() as soon as accepted: the job runs on */
    /* With cancel_on_accept: provider_close() of this right after the cancel, in the same
     * loop turn (`closed` set once it has closed). */
    provider_t *close_after_cancel;
    int closed;
} pt_result_t;

provider_req_t pt_req(const char *prompt, int w, int h);
/* Submits and runs the loop until `done`. Asserts the submit is accepted. */
void pt_run(uv_loop_t *loop, provider_t *p, const provider_req_t *req, pt_result_t *res);
/*
 * pt_run() of `prompt` (64 x 64) on the suite's loop as a resumed call:
 * `token` and the provider that issued it. `r` is reset first.
 */
void pt_run_resumed(provider_t *p, const char *prompt, const char *token, const char *provider,
                    pt_result_t *r);
/*
 * One call on the suite's fake and loop (below): a provider configured by
 * pt_config(&fake, provider, extra) runs `req` to its end into `res`, then
 * is closed (pt_close).
 */
void pt_run_one(const char *provider, const char *const *extra, const provider_req_t *req,
                pt_result_t *res);

/*
 * Runs `q` on `p` (the suite's loop) until the provider accepts it, and ends
 * the call there: canceled (`abandon` 0: the provider is told too) or
 * abandoned (1: its job runs on). Asserts it ended GF_ECANCELED with a resume
 * token, and points q->resume and q->resume_provider at it, in `first`
 * (reset first; the caller disposes of it).
 */
void pt_run_to_acceptance(provider_t *p, provider_req_t *q, int abandon, pt_result_t *first);

/* Submits without running the loop (for concurrent calls). */
void pt_submit(provider_t *p, const provider_req_t *req, pt_result_t *res);
/* provider_submit() with the callbacks that fill `res`; its return value. */
int pt_try_submit(provider_t *p, const provider_req_t *req, pt_result_t *res, gf_err_t *err);
/* Runs the loop for `ms` (other handles may keep running). */
void pt_spin(uv_loop_t *loop, uint64_t ms);
void pt_result_dispose(pt_result_t *r);
/* Closes the provider, runs the loop empty and checks nothing is left. */
void pt_close(uv_loop_t *loop, provider_t *p, gf_config_t *cfg);
/* Width and height of a PNG (from IHDR); 0 when not a PNG. */
void pt_png_size(const unsigned char *b, size_t n, int *w, int *h);

/*
 * The suite of a providers test: one fake provider and one loop shared by
 * its tests (defined in providers_util.c).
 */
extern pt_fake_t fake;
extern uv_loop_t loop;
int pt_suite_setup(void **state);
int pt_suite_teardown(void **state);
/*
 * Spins the suite's loop until the fake has seen a request on `endpoint`
 * (a cancel that outlives its call on the engine) or 10 s passed; then the
 * fake's count of them.
 */
long pt_fake_wait_one(const char *endpoint);

/*
 * Runs `prompt` (64 x 64) on `provider` against the suite's fake, canceled as
 * soon as it is accepted: the call ends GF_ECANCELED (PROVIDER_E_CANCELED),
 * and the provider's cancel request (`endpoint`, "fal.cancel"), which
 * outlives the call on the engine, reaches the fake once within 10 s. The
 * provider is closed; the result is in `r` (dispose of it).
 */
void pt_cancel_mid_flight(const char *provider, const char *prompt, const char *endpoint,
                          pt_result_t *r);

/* Before each test: the fake forgets its log and jobs and takes `config_json`. */
int pt_suite_reset(void **state, const char *config_json);

#endif
