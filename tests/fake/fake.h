/*
 * tests/fake/fake.h - farm-fake-provider: a loopback stand-in for the Hugging
 * Face router, the fal queue, Black Forest Labs and Replicate's predictions
 * (providers.md section 6),
 * built on core/httpd. What its files share.
 *
 * Faults come from three places, checked in this order for each request:
 * the `X-Fake-Fault: mode[,mode]` header (kept with the job it creates),
 * the script (`POST /__fake/faults`, a FIFO per endpoint), and prompt markers
 * `[[mode[:arg][@endpoint][*times]]]`. A mode without `@endpoint` applies at
 * its natural endpoint (model_loading at hf.submit, content_moderated at
 * bfl.poll, expired_url at cdn, ...); without `*times` a marker always applies.
 *
 * Endpoints (names used by the script, markers and the log): hf.submit,
 * hf.legacy, hf.hub, bfl.submit, bfl.poll, bfl.poll_global, fal.submit,
 * fal.status, fal.result, fal.cancel, fal.stream, replicate.submit,
 * replicate.poll, replicate.cancel, cdn.
 */
#ifndef FAKE_H
#define FAKE_H

#include <jansson.h>
#include <stdint.h>

#include "core.h"

/* The formats the fake's images come in (fake_image.c). */
typedef enum { FAKE_JPEG, FAKE_PNG, FAKE_WEBP } fake_format_t;

typedef struct fake_script {
    struct fake_script *next;
    char match[32], mode[32], arg[32];
    int times;
} fake_script_t;

typedef struct fake_counter {
    struct fake_counter *next;
    char *key;
    int used;
} fake_counter_t;

typedef struct fake_job {
    struct fake_job *next;
    char id[40];
    char provider[16];
    char app[160]; /* fal: "owner/app" (the subpath dropped); replicate: the model or version */
    char *prompt;
    char *faults; /* X-Fake-Fault of the submit, "" when none */
    int64_t seed;
    int width, height;
    fake_format_t format; /* its output's, from the submit's output_format */
    int polls;
    int canceled;
    int64_t done_at; /* virtual epoch seconds when Ready/COMPLETED was first answered */
    /* replicate */
    int64_t cancel_after_at; /* virtual epoch seconds of Cancel-After, 0: none */
    int finished;            /* the model is done (a sync wait covered it, or enough polls) */
    char outcome[32];        /* a submit fault that decides how the prediction ends */
} fake_job_t;

typedef struct fake_delay fake_delay_t;

typedef struct {
    uv_loop_t *loop;
    gf_httpd_t *httpd;
    char base[128];
    int latency_ms;
    int polls;       /* polls before a job is done */
    int retry_after; /* BFL poll hint, seconds */
    int cdn_ttl_s;
    fake_format_t hf_format; /* what the HF route answers: JPEG, as HF does */
    int64_t clock_offset;
    fake_script_t *script;
    fake_counter_t *counters;
    fake_job_t *jobs;
    json_t *log;    /* array of request records */
    json_t *counts; /* endpoint -> requests */
    json_t *bodies; /* body hash -> submits */
    fake_delay_t *delays;
    unsigned long seq;
} fake_t;

/* A mode in force for one request. */
typedef struct {
    char mode[32];
    char arg[32];
} fake_fault_t;

/* fake.c */
int64_t fake_now(const fake_t *f);
/* Records a request in the log; returns the record (borrowed) to add fields. */
json_t *fake_log(fake_t *f, gf_http_req_t *r, const char *endpoint, const char *job_id);
/* A job for an accepted submit `r` of `provider`: it keeps the submit's X-Fake-Fault. */
fake_job_t *fake_job_new(fake_t *f, gf_http_req_t *r, const char *provider, const char *prompt,
                         int64_t seed, int width, int height, fake_format_t format);
fake_job_t *fake_job_find(fake_t *f, const char *id);

/* fake_answers.c */
/*
 * Finds the fault for `endpoint` of `provider`: header, script, then markers
 * of `prompt` (and the job's stored header faults). Returns 1 and fills `out`.
 */
int fake_fault(fake_t *f, gf_http_req_t *r, const char *provider, const char *endpoint,
               const char *prompt, const fake_job_t *job, fake_fault_t *out);
/* Runs `fn(f, r, arg)` after `ms` (0: at once); the fake finishes `r` at shutdown if pending. */
void fake_later(fake_t *f, gf_http_req_t *r, uint64_t ms,
                void (*fn)(fake_t *f, gf_http_req_t *r, void *arg), void *arg);
/* Sends raw bytes and closes the connection (reset, truncated, chunked_abort). */
void fake_raw_close(gf_http_req_t *r, const char *bytes, size_t n);
/* Sends raw bytes and keeps the connection hanging until the client gives up. */
void fake_raw_stall(fake_t *f, gf_http_req_t *r, const char *bytes, size_t n);
void fake_json(gf_http_req_t *r, int status, json_t *body); /* steals body */
/* The generic fault answers (status codes, reset, slow_headers...). 1 when answered. */
int fake_generic(fake_t *f, gf_http_req_t *r, const char *provider, const fake_fault_t *ft);
/* Ends every pending delayed or stalled answer with a 503 (at shutdown). */
void fake_answers_end(fake_t *f);

/* fake_image.c */
uint64_t fake_hash(const char *s, size_t n);
/* "jpeg" or "jpg", "png", "webp": 0 and *out set; -1 for any other name. */
int fake_format_parse(const char *name, fake_format_t *out);
const char *fake_format_mime(fake_format_t fmt);
const char *fake_format_ext(fake_format_t fmt); /* "jpeg", "png", "webp" */
/*
 * The image of w x h in `fmt` for `seed`: one of a few pictures per (format,
 * size), encoded on first use and kept in a bounded pool. Borrowed: valid
 * until the next call.
 */
const unsigned char *fake_image(fake_format_t fmt, int w, int h, uint64_t seed, size_t *len);
/* Answers an image with the image faults of `ft` applied (corrupt, truncated...). */
void fake_send_image(fake_t *f, gf_http_req_t *r, int w, int h, uint64_t seed, fake_format_t fmt,
                     const fake_fault_t *ft);
/* Frees the pool (at exit). */
void fake_images_end(void);

/* fake_received.c */
/*
 * Records under entry["received"] the prompt and every image part of `body`
 * found under `keys` (NULL-terminated; "parameters.x" reaches into an
 * object; a value may be a string or an array of strings, base64 or a
 * data: URL): {"prompt", "count", "images": [{"key", "bytes", "width",
 * "height", "sha256"}]}, in the order of `keys`.
 */
void fake_received(json_t *entry, const char *prompt, json_t *body, const char *const *keys);

/* fake_routes.c */
void fake_routes(fake_t *f);
/* fake_replicate.c: the Replicate routes (fake_routes() adds them). */
void fake_replicate_routes(fake_t *f);
/* The problem+json answers of Replicate's error statuses; 1 when `ft` is one. */
int fake_replicate_problem(gf_http_req_t *r, const fake_fault_t *ft);

/* fake_h2.c: HTTP/2 with prior knowledge (h2c) on the fake's port. */
void fake_h2_start(fake_t *f);
void fake_h2_stop(void); /* at shutdown: GOAWAY and close every h2 connection */
/* Opens the h2-over-TLS port (any free one, into *port), its certificate written to
 * `cert_path` as PEM. 0, or -1 with the reason on stderr. */
int fake_h2_tls_listen(fake_t *f, const char *cert_path, int *port);
/* Whether `r` came on an HTTP/2 stream. */
int fake_h2_owns(const gf_http_req_t *r);
/* Resets the stream of an h2 request and finishes it: 1, or 0 when `r` is not one. */
int fake_h2_reset(gf_http_req_t *r);
/* "h2", "http/1.1" or "http/1.0", for the log. */
const char *fake_protocol(const gf_http_req_t *r);
/* {"connections", "streams"} over h2 since the start or the last reset. New reference. */
json_t *fake_h2_counts(void);
void fake_h2_reset_counts(void);

#endif
