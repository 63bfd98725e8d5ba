/*
 * providers/provider_int.h - what the files of providers/ share: the ops table
 * every adapter exports, the call record adapters drive, and the pure policy
 * helpers of fault.c, breaker.c and chain.c.
 *
 * Invariants:
 * - Adapters reach the network only through net/ (the process's curl multi
 *   handle): they start transfers with net_start() and get one callback each.
 * - An adapter ends every call it starts with exactly one of
 *   provider__call_succeed() or provider__call_fail(); call.c then runs
 *   the user's `done` (or moves the call to the next adapter of `auto`).
 * - Adapters never call a user callback directly.
 */
#ifndef PROVIDER_INT_H
#define PROVIDER_INT_H

#include "net.h"
#include "provider.h"

#include <sys/socket.h>

#include <jansson.h>
#include <stdint.h>

/* --- URLs and JSON replies (url.c, call.c) ---------------------------------- */

/*
 * Whether a URL taken from a provider's reply may be used. Always: http(s),
 * and https unless `base` itself is http (a local fake). With `creds` (the
 * request carries the adapter's token) also: the port of `base`, and the host
 * of `base` or a host under its parent domain (api.us1.bfl.ai for api.bfl.ai);
 * an IP-literal or single-label base host must match exactly.
 */
int provider__url_allowed(const char *base, const char *url, int creds);
/*
 * Reads c->req.resume, `n` (2 or 3) space-separated URLs of adapter `name`, into
 * `urls`; the last, the cancel URL, is "-" when there is none. Each other URL must
 * be allowed with credentials. Otherwise fails the call and returns -1.
 */
int provider__call_resume_urls(provider_call_t *c, const char *name, int n, char (*urls)[1024]);
/*
 * The body limit of JSON exchanges (submit, poll, result, errors): jansson
 * needs about 75 times its input in memory, and these replies are a few kB.
 */
#define PROVIDER_JSON_MAX_BYTES ((size_t)256 * 1024)
/* A provider's JSON reply, parsed; NULL when it is not JSON or larger than the limit above. */
json_t *provider__json_load(const char *body, size_t len);

/* --- policy (fault.c) ---------------------------------------------------------- */

typedef struct {
    const char *name;
    provider_error_code code;
    gf_status status;
    int retryable; /* the job may be run again */
    int failover;  /* auto may try the next provider */
    int breaker;   /* counts as a failure of the provider's health */
} provider_fault_info_t;

const provider_fault_info_t *provider__fault_info(provider_fault f);
/*
 * Classifies a finished exchange that is not a success: the curl code first,
 * then the HTTP status. `body` may carry HF's `estimated_time` (a 503 then is
 * MODEL_LOADING). Returns PROVIDER_F_NONE for a 2xx with no transport error.
 */
provider_fault provider__classify(int curl_code, long status, const char *body, size_t len);
/* provider__classify() of a finished transfer; a reply cut off at its bound
 * (net's too_big) is PROVIDER_F_TOO_BIG whatever its status. */
provider_fault provider__resp_fault(const net_resp_t *r);
/* Exponential backoff for attempt 1, 2...: base*2^(n-1) capped, then ±25% from `rnd`. */
uint64_t provider__backoff_ms(int attempt, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd);
/*
 * The wait a 429/503 asks for, in ms: Retry-After (delta-seconds or an
 * HTTP-date), the RateLimit header's t=, or an x-ratelimit-reset epoch;
 * -1 when none is usable. `now` is the wall clock in seconds.
 */
int64_t provider__retry_after_ms(const char *retry_after, const char *ratelimit,
                                 const char *reset_epoch, int64_t now);
/* The next poll interval: ×1.5, at most `max_ms`. */
uint64_t provider__poll_next_ms(uint64_t cur_ms, uint64_t max_ms);
/* "image/png", "image/jpeg", "image/webp" from the magic bytes, or NULL. */
const char *provider__sniff_image(const unsigned char *b, size_t n);
/* Whether a body looks like JSON (first non-space byte is '{' or '['). */
int provider__looks_json(const char *b, size_t n);
/* The error text of a JSON body (error, detail, message; detail[0].msg), or NULL. New string. */
char *provider__json_error_text(const char *body, size_t len);
/* HF's estimated_time in seconds from a 503 body, or < 0. */
double provider__hf_estimated_time(const char *body, size_t len);
/* Copies at most n-1 bytes of `s` keeping only printable ASCII (log-safe). */
void provider__sanitize(char *dst, size_t n, const char *s, size_t len);

/* --- circuit breaker (breaker.c) -------------------------------------------------- */

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } provider_breaker_state_t;

typedef struct {
    provider_breaker_state_t state;
    int failures;           /* consecutive */
    int threshold;          /* failures that open it */
    uint64_t cooldown_ms;   /* how long it stays open */
    uint64_t open_until_ms; /* monotonic ms */
    int probe_out;          /* half-open: the one probe is in flight */
} provider_breaker_t;

void provider__breaker_init(provider_breaker_t *b, int threshold, uint64_t cooldown_ms);
/* Whether a call may go now; in half-open it lets exactly one probe through. */
int provider__breaker_allow(provider_breaker_t *b, uint64_t now_ms);
void provider__breaker_success(provider_breaker_t *b);
/* Records a failure; `cooldown_ms` 0 uses the breaker's own (402 passes a long one). */
void provider__breaker_failure(provider_breaker_t *b, uint64_t now_ms, uint64_t cooldown_ms);
/* Releases a probe that ended without a verdict (canceled, caller's bad input). */
void provider__breaker_release(provider_breaker_t *b);
/* Whether the breaker refuses a call now: open within its cooldown, or half-open with its probe
 * out. (Open past the cooldown, the next call would go: not refusing.) */
int provider__breaker_refusing(const provider_breaker_t *b, uint64_t now_ms);
const char *provider__breaker_name(const provider_breaker_t *b, uint64_t now_ms);

/* --- adapters ------------------------------------------------------------------- */

typedef struct provider_adapter provider_adapter_t;

typedef struct provider_ops {
    const char *name;
    /* Checks the configuration (token present...); GF_EINVAL when unusable. */
    int (*init)(provider_adapter_t *a, gf_err_t *err);
    /* Starts the protocol of `c` (or resumes it from c->req.resume). */
    void (*submit)(provider_call_t *c);
    /* Tells the provider a submitted job is abandoned (may be NULL). Fire and forget. */
    void (*cancel)(provider_call_t *c);
    /* Frees what init allocated in a->priv (may be NULL). */
    void (*free)(provider_adapter_t *a);
} provider_ops;

extern const provider_ops provider_hf_ops;
extern const provider_ops provider_fal_ops;
extern const provider_ops provider_bfl_ops;
extern const provider_ops provider_replicate_ops;
extern const provider_ops provider_local_ops;

struct provider_adapter {
    const provider_ops *ops;
    provider_t *p;
    const gf_config_t *cfg;
    const char *name;
    char *base_url, *model, *token;  /* copies; token is a secret */
    char *pose_model;                /* the model of calls that carry a reference image */
    provider_caps_t caps, pose_caps; /* of model and pose_model (caps.model points into them) */
    provider_breaker_t breaker;
    int max_inflight, inflight;
    provider_call_t *wait_head, *wait_tail; /* calls waiting for a slot */
    void *priv;
};

#define CHAIN_MAX 8

/* --- the chain (chain.c) ------------------------------------------------------------ */

/* The adapters a chain holds, in the order they are tried. */
typedef struct {
    char names[CHAIN_MAX][16];
    int n;
    int fake;        /* FARM_PROVIDER=fake: the remote adapters point at the fake server */
    int local_alone; /* auto with no remote token: local alone (the caller warns) */
} provider_chain_plan_t;

/*
 * The chain of `mode` ("auto", "fake" or one adapter's name): that adapter
 * alone; else FARM_PROVIDER_FALLBACK's order, each name that
 * provider_chain_has() keeps, once. GF_EINVAL when that leaves none.
 */
int provider__chain_plan(const gf_config_t *cfg, const char *mode, provider_chain_plan_t *plan,
                         gf_err_t *err);

/* The provider object (provider.c owns it). */
struct provider {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    net_t *http;
    provider_adapter_t *chain[CHAIN_MAX];
    int nchain;
    char chain_names[64];
    provider_call_t *calls;
    size_t ncalls;
    size_t ncancels; /* provider__send_cancel()s not yet ended: the engine closes after them */
    int closing;
    provider_closed_cb closed_cb;
    void *closed_data;
};

/* The per-call record. call.c owns it; adapters use the protocol fields. */
struct provider_call {
    provider_t *p;
    provider_adapter_t *a;
    int chain_pos;
    provider_call_t *prev, *next; /* every live call of p */
    provider_call_t *wait_next;   /* the adapter's slot queue */
    int state;
    int canceled, busy, has_slot, probing;
    /* the request (deep copies) */
    provider_req_t req;
    char *prompt, *negative, *resume, *resume_provider, *log_id;
    char *only; /* the request's own provider, or NULL: the chain */
    unsigned char *identity, *pose;
    provider_cbs_t cbs;
    uint64_t deadline_at; /* uv_now() ms */
    uv_timer_t timer;
    void (*on_timer)(provider_call_t *c);
    net_xfer_t *xfer;
    /* protocol state, reset when auto moves to the next adapter */
    int phase;
    int submits, get_failures, waits;
    int wait_for_model;
    uint64_t poll_ms;
    char *status_url, *result_url, *cancel_url, *image_url;
    char request_id[128];
    /* The provider holds a job for this call: it accepted one (a request id or a
     * resume token came back), or the call resumes one. Such a call is never
     * moved to another provider (that would pay for the image twice). */
    int accepted;
    long last_status;
    /* outcome */
    unsigned char *img;
    size_t img_len;
    provider_image_t image;
    provider_error_t perr;
    int status;
};

/* The model call `c` uses on its adapter: the pose model when it carries a reference image. */
const char *provider__call_model(const provider_call_t *c);
/* What that model takes. */
const provider_caps_t *provider__call_caps(const provider_call_t *c);
/* What the request of `c` carries. */
void provider__call_needs(const provider_call_t *c, provider_needs_t *n);

/* Once closing and nothing is left (no call, no cancel on the wire): closes the shared HTTP
 * engine, then frees the provider. */
void provider__close_when_idle(provider_t *p);

/*
 * Sends `req`, the cancel of the job `c` submitted, which nothing waits for: it
 * outlives `c` (the call ends at once), and the provider's close waits for it,
 * bounded by its timeout. Freed unsent, the job would run on, billed.
 */
void provider__send_cancel(provider_call_t *c, const net_req_t *req);

/* --- helpers adapters use (call.c, fetch.c) ---------------------------------------- */

/* Starts a transfer for `c` bounded by its deadline; sets c->xfer. */
void provider__call_http(provider_call_t *c, net_req_t *req, net_done_cb cb);
/* Runs `cb` after `ms`; fails the call with DEADLINE when that passes the deadline. */
void provider__call_wait(provider_call_t *c, uint64_t ms, void (*cb)(provider_call_t *c));
/* Ends the call with an image (takes ownership of `img`, a malloc'd buffer). */
void provider__call_succeed(provider_call_t *c, unsigned char *img, size_t len);
/* Ends the call with a typed failure; the message is printf-style and log-safe. */
void provider__call_fail(provider_call_t *c, provider_fault f, long http_status, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
/* Tells the caller the provider's request id and resume token as soon as known. */
void provider__call_accepted(provider_call_t *c, const char *request_id, const char *resume);
void provider__call_progress(provider_call_t *c, double progress, const char *stage);
/* Remaining ms before the deadline (0 when past). */
uint64_t provider__call_remaining(const provider_call_t *c);
/* The call's HTTP engine, for fire-and-forget requests (a remote cancel). */
net_t *provider__call_engine(provider_call_t *c);
/* The loop the provider runs on. */
uv_loop_t *provider__call_loop(provider_call_t *c);
/* A jitter source for backoff (xorshift on the loop thread). */
uint32_t provider__rand(void);
/* Fills the phase timeouts of `req` from the configuration. */
void provider__http_defaults(const provider_call_t *c, net_req_t *req, uint64_t phase_ms);
/*
 * For a request the provider answers only once its work is done (HF's
 * synchronous POST, Replicate's submit with `Prefer: wait`): it may be silent
 * for `silent_s` before the first byte. curl's low-speed check counts from the
 * request's start, so without this it would take that silence for a stall,
 * abort, and the POST would be sent, and paid for, again.
 */
void provider__http_silent(net_req_t *req, long silent_s);
/*
 * Handles a failed GET of a poll/result/download (retry with backoff up to
 * FARM_PROVIDER_MAX_RETRIES consecutive failures, honouring Retry-After).
 * Returns 1 when a retry of `again` was scheduled, 0 when the caller must fail.
 */
int provider__call_retry_get(provider_call_t *c, net_resp_t *r, provider_fault f,
                             void (*again)(provider_call_t *c));
/* The wait before retry `attempt`: the response's Retry-After/RateLimit hint, else backoff. */
uint64_t provider__retry_wait(provider_call_t *c, net_resp_t *r, int attempt);
/*
 * Fails the call with what its failed exchange says, log-safe:
 * "<what>: HTTP <status>: <text>" ("HTTP <status>: <text>" when `what` is
 * NULL), the text being the provider's JSON error, else curl's message.
 */
void provider__call_fail_resp(provider_call_t *c, net_resp_t *r, provider_fault f,
                              const char *what);
/*
 * Handles a failed submit POST: retried while no job can have been created
 * (429, 503, connect failure) up to FARM_PROVIDER_MAX_RETRIES; once at most
 * otherwise (5xx, a reset after sending: a duplicate bill is possible).
 * Counts c->submits. Returns 1 when `again` was scheduled.
 */
int provider__call_retry_post(provider_call_t *c, net_resp_t *r, provider_fault f,
                              void (*again)(provider_call_t *c));
/*
 * Takes the answer `r` to a submit POST: records it on the call and, when it is a
 * fault, retries it (`again`, as provider__call_retry_post) or fails the call.
 * Returns 1 when `r` is a success for the adapter to read, else 0.
 */
int provider__call_submit_answered(provider_call_t *c, net_resp_t *r,
                                   void (*again)(provider_call_t *c));
/*
 * Schedules the next poll: the first from the provider's hint (Retry-After of
 * `r`, at least FARM_PROVIDER_POLL_MIN_MS), then x1.5 up to
 * FARM_PROVIDER_POLL_MAX_MS; the deadline bounds it.
 */
void provider__call_poll_later(provider_call_t *c, net_resp_t *r, void (*poll)(provider_call_t *c));
/*
 * Downloads c->image_url (plain GET, no credentials) and ends the call: the
 * image on a 2xx with a complete body and image magic bytes, URL_EXPIRED on
 * 403/404/410, retries on 5xx, network errors and bad bodies.
 */
void provider__fetch_image(provider_call_t *c);
/* Handles a response that should be an image (2xx): succeed, or fail with the right fault. */
void provider__accept_image(provider_call_t *c, net_resp_t *r);
/* A JSON string of the request's prompt fields etc. is built by each adapter. */
/* A JSON string "data:<mime>;base64,..." of image bytes `b` (new reference). */
json_t *provider__data_url(const unsigned char *b, size_t n);
/* Base64 of `b` (new string). */
char *provider__base64(const unsigned char *b, size_t n);
/*
 * The bytes of base64 text `s` (OpenSSL's decoder; line breaks allowed),
 * NULL when it is not base64 or decodes to more than `max` bytes. New
 * buffer, its length in `*len`.
 */
unsigned char *provider__base64_decode(const char *s, size_t n, size_t max, size_t *len);
/*
 * A JSON reply that may carry an image inline (HF's {"data":[{"b64_json"}]}):
 * like provider__json_load() up to its limit; above it, only a body with
 * at most a few dozen values (one long string, jansson's memory about the
 * body's size), so a reply of many small values cannot take 75 times its size.
 */
json_t *provider__json_load_inline(const char *body, size_t len);

#endif
