/*
 * tests/support/api_harness.h - what the api integration tests share: a
 * real farm-api process on a free port with the tests' JWT secret, tokens
 * for it, credits granted through the farm CLI, and requests to it (a
 * generation's status among them, polled until it is one a test waits for).
 */
#ifndef API_HARNESS_H
#define API_HARNESS_H

#include <jansson.h>
#include <sys/types.h>

#include "imaging.h"
#include "support.h"

#define AU_SECRET "test-jwt-secret-0123456789"
/* The FARM_FILE_SECRET of the api au_api_start() starts, which its workers share. */
#define AU_FILE_SECRET_ENV "FARM_FILE_SECRET=test-file-secret-0123456789"

/* "http://127.0.0.1:<port>" of the api au_api_start() started. */
extern char au_base[64];

/*
 * Starts farm-api (FARM_TEST_API_BIN) on a free port with AU_SECRET and the
 * settings in `extra` ("NAME=value", NULL-terminated; may be NULL), its
 * output in $FARM_TEST_TMPDIR/api.log, and waits until /readyz answers 200.
 * Returns its pid, or -1 when it did not get ready within 20 s.
 */
pid_t au_api_start(const char *const *extra);

/* A token for a new user (or `sub`), with `plan` and `role`; the user's id in `user_out`. */
char *au_token(const char *sub, const char *plan, const char *role, char user_out[37]);

/* Grants `amount` credits to `user` with the farm CLI (FARM_TEST_CLI); its exit status. */
int au_grant(const char *user, long amount, const char *reason);

/*
 * A request with `tok` as the bearer (none when NULL), JSON as the body's type
 * unless `extra_header` is a Content-Type, and `extra_header` (may be NULL).
 */
ts_http_t au_call(const char *method, const char *path, const char *tok, const char *body,
                  const char *extra_header);

/*
 * Asserts that `r` answered `status` with `needle` in its body (NULL: any
 * body), printing the answer when not, and disposes of it.
 */
void au_expect(ts_http_t *r, long status, const char *needle);

/*
 * Asserts that `r` is API.md's error `code` with `status`, naming `field`
 * (NULL: not checked), and disposes of it.
 */
void au_expect_error(ts_http_t *r, long status, const char *code, const char *field);

/* The string member `key` of `o`, which must be there (borrowed from `o`). */
const char *au_str(json_t *o, const char *key);

/*
 * GETs an output's signed `url` (an output object of API.md) from the api at
 * au_base, asserting 200 and the `bytes` the output states; dispose of it.
 */
ts_http_t au_get_output(json_t *output);

/*
 * Asserts that `data` is an image (img_upload_probe, up to 50 MiB and 40
 * Mpx) of the width, height and format that `output` states; its info into
 * `info`.
 */
void au_assert_output_image(const void *data, size_t len, json_t *output, img_info *info);

/* GETs `path` as `tok`, which must answer 200 with JSON: the body, parsed (decref it). */
json_t *au_get_json(const char *tok, const char *path);

/* The "id" of a 202/200 answer. */
void au_id_of(const ts_http_t *r, char out[37]);

/* POSTs `body` to /v1/generations as `tok` and asserts it is accepted (202); its id in `id`. */
void au_create(const char *tok, const char *body, char id[37]);

/* POST /v1/generations/{id}/cancel as `tok`; the answer (the caller disposes of it). */
ts_http_t au_cancel(const char *tok, const char *id);

/* Polls GET /v1/generations/<id> as `tok` until its status is one of `want` ("a|b"); the
 * generation (decref it), or NULL when `timeout_s` passed first. AU_ENDED: every status after
 * queued and running. */
#define AU_ENDED "succeeded|partial|failed|canceled|expired"
json_t *au_wait_status(const char *tok, const char *id, const char *want, double timeout_s);

/* GETs /v1/credits as `tok`, which must answer 200: its integer `field` ("held"...). */
long long au_credits_field(const char *tok, const char *field);

/*
 * GETs the /metrics page at `url`, which must answer 200: the value of
 * `series` (its name, labels and the space after them), or `absent`.
 */
double au_metric(const char *url, const char *series, double absent);

#endif
