/*
 * providers/include/provider.h - one interface for every image-generation provider.
 *
 * A provider_t is what a process creates once from its configuration: one curl
 * multi handle driven by the process's libuv loop (net/net.c), one or
 * more adapters behind the `provider_ops` table (hf, fal, bfl, replicate,
 * local), each
 * with its own concurrency limit (a semaphore) and circuit breaker, and, for
 * FARM_PROVIDER=auto, an ordered fallback list. Hundreds of calls can be in
 * flight at once on one loop; no call owns a thread.
 *
 * Contract of a call (the one async contract of store/, queue/ and providers/):
 * - provider_submit() returning an error means no callback of the call ever
 *   runs; the error is in its `err`.
 * - Returning 0 means `done` runs exactly once, on the loop, on a later loop
 *   turn (never inside provider_submit() or provider_cancel()), with
 *   err->code GF_OK and an image, or a negative err->code and a typed
 *   provider_error_t; cancel and shutdown arrive as GF_ECANCELED.
 * - `accepted` runs as soon as an async provider (fal, bfl, replicate) returns its
 *   request id, before the image exists, so the caller can persist the resume
 *   token and, after a crash, resume polling with provider_req_t.resume
 *   instead of paying for a second generation. Neither it nor `progress`
 *   runs inside provider_submit() or provider_cancel().
 *
 * Threading: every function runs on the loop thread given to provider_new().
 * Secrets (tokens, signed URLs) never reach a log line or an error message.
 */
#ifndef PROVIDER_H
#define PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core.h"

typedef struct provider provider_t;
typedef struct provider_call provider_call_t;

/* The API.md error codes a provider failure maps to. */
typedef enum {
    PROVIDER_E_NONE = 0,
    PROVIDER_E_PROVIDER_ERROR,   /* "provider_error" */
    PROVIDER_E_TIMEOUT,          /* "provider_timeout" */
    PROVIDER_E_CONTENT_REJECTED, /* "content_rejected" */
    PROVIDER_E_INVALID_OUTPUT,   /* "invalid_output" */
    PROVIDER_E_CANCELED,         /* "canceled": the caller canceled or shut down */
} provider_error_code;

/* The row of providers.md section 5 a failure belongs to (finer than the code). */
typedef enum {
    PROVIDER_F_NONE = 0,
    PROVIDER_F_MODEL_LOADING,     /* HF 503 + estimated_time past the deadline */
    PROVIDER_F_RATE_LIMIT,        /* 429 */
    PROVIDER_F_CREDITS,           /* 402 */
    PROVIDER_F_AUTH,              /* 401, 403 */
    PROVIDER_F_BAD_INPUT,         /* 400, 422, fal detail[] */
    PROVIDER_F_MODEL_UNAVAILABLE, /* HF 404 / not supported, 410 legacy host */
    PROVIDER_F_MODERATION_INPUT,  /* BFL Request Moderated */
    PROVIDER_F_MODERATION_OUTPUT, /* BFL Content Moderated, fal has_nsfw_concepts */
    PROVIDER_F_SERVER,            /* 500, 502, 503 without a loading body, 504, JSON on a 200 */
    PROVIDER_F_NETWORK,           /* DNS, connect refused, reset, TLS */
    PROVIDER_F_STALLED,           /* no headers or a stalled body past the phase timeout */
    PROVIDER_F_BAD_BODY,          /* truncated body, bad magic bytes, non-image on a 200 */
    PROVIDER_F_TOO_BIG,           /* a reply above FARM_PROVIDER_MAX_IMAGE_BYTES */
    PROVIDER_F_DEADLINE,          /* the job never finished before its deadline */
    PROVIDER_F_LOST_JOB,          /* BFL Task not found / 404 on poll, fal NOT_FOUND */
    PROVIDER_F_URL_EXPIRED,       /* 403/404/410 from the result CDN */
    PROVIDER_F_CANCELED,
    PROVIDER_F_PROTOCOL,     /* a reply that breaks the provider's protocol */
    PROVIDER_F_UNCONFIGURED, /* no token configured for the adapter */
    PROVIDER_F_BREAKER_OPEN, /* every adapter that could take the call has its breaker open */
    PROVIDER_F_COUNT
} provider_fault;

/* A typed failure. Strings are copies owned by the record. */
typedef struct {
    provider_error_code code;
    provider_fault fault;
    int retryable;        /* the worker may run the job again (a new submit) */
    int new_seed;         /* ...and should change the seed first (output moderation) */
    int resumable;        /* ...by resuming the job the provider holds (the token of
                           * `accepted`, or the resumed one), not by a new submit */
    long http_status;     /* the last HTTP status seen, 0 when none */
    char provider[16];    /* "hf", "fal", "bfl", "replicate", "local" */
    char request_id[128]; /* the provider's request/task id, "" when unknown */
    gf_err_t err;         /* coarse status + a log message (no secrets) */
} provider_error_t;

/* What to generate. Everything is borrowed; provider_submit() copies it. */
typedef struct {
    const char *prompt;                  /* required */
    const char *negative_prompt;         /* optional */
    int width, height;                   /* pixels, 64..2048 */
    int64_t seed;                        /* < 0: the provider picks */
    int steps;                           /* 0: the model's default */
    double guidance;                     /* < 0: the model's default */
    const unsigned char *identity_image; /* optional reference image (PNG/JPEG/WEBP bytes) */
    size_t identity_len;
    const unsigned char *pose_image; /* optional pose map image */
    size_t pose_len;
    /* Resume a submitted async job from the token `accepted` reported (and the
     * provider named with it) instead of submitting again. NULL: submit. */
    const char *resume;
    const char *resume_provider;
    /* The request's own "provider": that adapter of the chain only, no fallback to
     * the others. NULL or "auto": the chain in order. */
    const char *only_provider;
    uint64_t deadline_ms; /* 0: FARM_PROVIDER_DEADLINE_S */
    const char *log_id;   /* optional generation/job id for log lines (borrowed) */
} provider_req_t;

/* The image of a successful call; borrowed, valid until `done` returns. */
typedef struct {
    const unsigned char *bytes;
    size_t len;
    const char *mime; /* from the magic bytes: "image/png", "image/jpeg", "image/webp" */
    const char *provider;
    const char *request_id;
} provider_image_t;

/* What a call ended with; borrowed, valid until `done` returns. */
typedef struct {
    const provider_image_t *image; /* err->code GF_OK: the image; otherwise NULL */
    const provider_error_t *error; /* err->code < 0: the typed failure (its `err` is *err) */
} provider_result_t;

/* `err` is never NULL: err->code is GF_OK on success, else the failure's status. */
typedef void (*provider_done_cb)(provider_call_t *call, const gf_err_t *err,
                                 const provider_result_t *res, void *data);
/* `request_id` and `resume` are borrowed; persist `resume` with `provider`. */
typedef void (*provider_accepted_cb)(provider_call_t *call, const char *provider,
                                     const char *request_id, const char *resume, void *data);
/* `progress` is 0..1 or -1 when unknown; `stage` is "queued", "running", "downloading"... */
typedef void (*provider_progress_cb)(provider_call_t *call, double progress, const char *stage,
                                     void *data);
typedef void (*provider_closed_cb)(provider_t *p, void *data);

typedef struct {
    provider_done_cb done; /* required */
    provider_accepted_cb accepted;
    provider_progress_cb progress;
    void *data;
} provider_cbs_t;

/*
 * Creates the provider chosen by `name` ("auto", "hf", "fal", "bfl", "replicate", "local",
 * "fake"; NULL: cfg's FARM_PROVIDER). "auto" tries FARM_PROVIDER_FALLBACK in
 * order, leaving out adapters with no token; with no token at all it is
 * `local`, and it logs so. "fake" is auto over hf, fal, bfl and replicate pointed at
 * FARM_FAKE_PROVIDER_URL. `cfg` is borrowed and must outlive the provider.
 * Returns a new provider (close with provider_close()) or NULL with `err`.
 */
provider_t *provider_new(uv_loop_t *loop, const gf_config_t *cfg, const char *name, gf_err_t *err);

/* The settings provider_new() would refuse for cfg's FARM_PROVIDER (its chain, each
 * adapter's settings, FARM_PROVIDER_HTTP2 and FARM_PROVIDER_CA_FILE), without a loop
 * and without I/O: 0, or GF_EINVAL with `err`. */
int provider_config_check(const gf_config_t *cfg, gf_err_t *err);

/* The adapter names in fallback order, comma-separated ("hf,local"); borrowed. */
const char *provider_chain(const provider_t *p);

/*
 * Whether adapter `name` is in the chain provider_new() builds for `mode`
 * (NULL: cfg's FARM_PROVIDER): the adapter named alone; for auto, those of
 * FARM_PROVIDER_FALLBACK that have a token (local needs none), or local alone
 * when none of hf, fal, bfl, replicate has one; for fake, the remote ones of that list.
 * The api checks a request's "provider" with it, so it accepts exactly what
 * a worker with the same configuration can call. Pure: no provider needed.
 */
int provider_chain_has(const gf_config_t *cfg, const char *mode, const char *name);

/* What a model can condition on (caps.c). */
typedef struct {
    const char *model; /* the model id this is of; borrowed from the configuration */
    int refs;          /* reference images it takes: 0 (text only), 1, or several */
    int control;       /* takes a control image (a pose map as control) */
    int max_side;      /* the largest width or height it takes */
    int step;          /* width and height must be multiples of it (0: any the api takes) */
    int negative;      /* takes a negative prompt (the adapter sends it) */
    int ratio_sizes;   /* takes no width/height, only an aspect ratio (and megapixels): the
                        * sizes of provider_ratio_size() alone (Replicate's FLUX.1 models) */
} provider_caps_t;

/*
 * For a model that takes an aspect ratio instead of a size: the `aspect_ratio`
 * and `megapixels` inputs that make exactly width x height, or 0 when none
 * does. Replicate's FLUX.1 predictors (cog-flux) make these sizes at
 * megapixels "1": 1:1 1024x1024, 16:9 1344x768, 21:9 1536x640, 3:2
 * 1216x832, 4:5 896x1088, 3:4 896x1152 (and each turned round); at "0.25",
 * the square's half, 512x512.
 */
int provider_ratio_size(int width, int height, const char **aspect, const char **megapixels);

/* What a request carries. */
typedef struct {
    int identity; /* a person to keep (a reference image) */
    int pose;     /* a pose map (reference or control image) */
    int width, height;
    int negative; /* a negative prompt */
} provider_needs_t;

/*
 * The capabilities of adapter `name` ("hf", "fal", "bfl", "replicate", "local") with the
 * model a call uses: FARM_<P>_POSE_MODEL when the call carries a reference
 * image (`with_refs`), FARM_<P>_MODEL otherwise. Pure.
 */
void provider_caps(const gf_config_t *cfg, const char *name, int with_refs, provider_caps_t *out);

/*
 * Whether a model with `c` can take everything `n` carries: 1, or 0 with
 * `*field` (may be NULL) the API.md field it cannot honour: "poses" (no
 * reference nor control image), "identity" (not one reference more), "width"
 * or "height" (above its largest side).
 */
int provider_caps_fit(const provider_caps_t *c, const provider_needs_t *n, const char **field);

/*
 * Whether some adapter of the chain of `mode` (NULL: FARM_PROVIDER), or the
 * adapter `only` (NULL or "auto": any of them), can take `n`: 1, or 0 with
 * `*field` the field to name in a 400 unsupported ("identity" when some
 * adapter takes the pose but none the person with it). Pure: the api
 * refuses with it what no worker of the same configuration could send.
 */
int provider_chain_can(const gf_config_t *cfg, const char *mode, const char *only,
                       const provider_needs_t *n, const char **field);

/*
 * Starts a call. Returns 0 (then `cbs->done` runs exactly once, later) or,
 * with `err` and no callback ever, GF_EINVAL for a bad request (one that no
 * adapter of the chain, or of `only_provider`, can take), GF_ECANCELED
 * when the provider is closing. `*out` (may be NULL) receives the call, valid
 * until `done` returns, for provider_cancel().
 */
int provider_submit(provider_t *p, const provider_req_t *req, const provider_cbs_t *cbs,
                    provider_call_t **out, gf_err_t *err);

/*
 * Cancels a call: the transfer in flight is aborted, the provider is told where
 * its protocol allows it (fal PUT cancel_url, Replicate POST urls.cancel), and
 * `done` runs on a later loop turn with GF_ECANCELED. A no-op once `done` has
 * run or when it is already canceled.
 */
void provider_cancel(provider_call_t *call);

/*
 * Stops waiting on a call, as provider_cancel() does, but leaves the
 * provider's job running: for a request another worker will resume (its
 * resume token is recorded), which a cancel at the provider would end.
 */
void provider_abandon(provider_call_t *call);

/* Calls in flight (waiting for a slot included), for gauges and tests. */
size_t provider_inflight(const provider_t *p);

/*
 * The state of an adapter's circuit breaker: "closed", "open", "half_open",
 * or NULL when `name` is not in the chain.
 */
const char *provider_breaker_state(const provider_t *p, const char *name);

/*
 * Whether an adapter's breaker refuses calls now: open within its cooldown,
 * or half-open while its one probe is out. 0 when closed, when the cooldown
 * is over and the next call would go as the probe, or for a name not in the
 * chain.
 */
int provider_breaker_refusing(const provider_t *p, const char *name);

/*
 * Cancels every call (their `done` runs with GF_ECANCELED), closes the libuv
 * handles and frees the provider; `cb` (may be NULL) runs once everything is
 * closed. After this the loop holds nothing of the provider.
 */
void provider_close(provider_t *p, provider_closed_cb cb, void *data);

/* "provider_error", "provider_timeout", ... */
const char *provider_error_code_name(provider_error_code code);
/* "rate_limit", "credits", ... */
const char *provider_fault_name(provider_fault f);

#endif
