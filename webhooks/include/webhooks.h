/*
 * webhooks/include/webhooks.h - webhook delivery (API.md, Webhooks;
 * docs/webhooks.md): the outbox rows that Postgres writes with the events
 * (migrations/0018) are claimed, fenced by a lease token, and POSTed over
 * net/, signed the Standard Webhooks way, retried on a schedule for 24 h.
 *
 * The pure parts (signature, schedule, Retry-After, the verdict on one
 * answer) are separate functions so they are unit-tested on their own
 * (tests/unit/webhooks/); the deliverer runs in farm-worker processes,
 * whatever their FARM_WORKER_CONCURRENCY.
 */
#ifndef WEBHOOKS_H
#define WEBHOOKS_H

#include "core.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* API.md: retried for 24 h after the first attempt. */
#define WEBHOOK_WINDOW_MS (24LL * 3600 * 1000)
/* A whsec_ secret's bytes (Standard Webhooks: 24..64), or a plain secret's. */
#define WEBHOOK_KEY_MAX 256

/* --- pure ------------------------------------------------------------------------ */

/*
 * The HMAC key of `secret`: a "whsec_"-prefixed one is base64 and used as its
 * decoded bytes; any other is used as its bytes. 0 with `*len` set, or
 * GF_EINVAL (bad base64, empty, longer than WEBHOOK_KEY_MAX) with `err`.
 */
int webhook_key_decode(const char *secret, unsigned char key[WEBHOOK_KEY_MAX], size_t *len,
                       gf_err_t *err);

/*
 * The `webhook-signature` value: "v1," and the base64 HMAC-SHA256 of
 * "<id>.<timestamp>.<body>" under `key`. Writes it NUL-terminated into `out`
 * (at least 48 bytes).
 */
void webhook_sign(const unsigned char *key, size_t key_len, const char *id, long long timestamp,
                  const char *body, size_t body_len, char *out, size_t out_len);

/*
 * The backoff after the `attempts`-th failed attempt (1 = the first): 5 s,
 * 5 min, 30 min, 2 h, 5 h, then 10 h each (API.md), in milliseconds.
 */
long long webhook_backoff_ms(int attempts);

/*
 * A Retry-After value as milliseconds from `now_ms`: delta-seconds or an
 * HTTP-date (IMF-fixdate). -1 when absent or unreadable; 0 for a date past.
 */
long long webhook_retry_after_ms(const char *value, long long now_ms);

typedef enum {
    WEBHOOK_DELIVERED, /* a 2xx */
    WEBHOOK_RETRY,     /* again at next_ms from now */
    WEBHOOK_FAILED,    /* for good: reason says why */
} webhook_verdict_t;

/* What one attempt brought back. */
typedef struct {
    int attempts;               /* made in this window, this one included */
    long long first_attempt_ms; /* unix ms of the window's first (this one's for the first) */
    long long now_ms;
    long status;             /* HTTP status; 0: no answer */
    int timed_out;           /* no answer within the timeout */
    int refused;             /* the address was not public: never sent */
    const char *retry_after; /* the Retry-After header; NULL: none */
    const char *error;       /* what went wrong without an answer (curl's message); may be NULL */
} webhook_attempt_t;

typedef struct {
    webhook_verdict_t verdict;
    long long next_ms; /* WEBHOOK_RETRY: the delay */
    char reason[200];  /* why not delivered ("" when delivered) */
} webhook_decision_t;

/*
 * The verdict on one attempt: any 2xx delivers; 410 and a refused address
 * fail at once; anything else is retried after webhook_backoff_ms(), or
 * after Retry-After when that is longer, as long as the attempt falls
 * within WEBHOOK_WINDOW_MS of the first; the last one is made at the
 * window's end, and after it the delivery fails.
 */
void webhook_decide(const webhook_attempt_t *a, webhook_decision_t *d);

/*
 * The body POSTed: {"type": event, "timestamp": RFC 3339 of created_ms,
 * "data": data}, `data` being JSON text whose "outputs" entries have their
 * "storage_key" replaced by a signed "url" as GET shows it (`file_secret`,
 * valid `url_ttl_s`). Returns a new string (free()), or NULL when `data` is
 * not JSON.
 */
char *webhook_body(const char *event, long long created_ms, const char *data,
                   const char *file_secret, long long url_ttl_s, long long now_ms);

/* --- the deliverer ------------------------------------------------------------- */

typedef struct webhook_deliverer webhook_deliverer_t;

/*
 * A deliverer on `loop` with the process's store (borrowed; it must outlive
 * the deliverer) and metrics (may be NULL). NULL with `err` when the
 * configuration cannot work (a whsec_ secret that is not base64, a lease
 * not longer than the timeout plus 5 s). Without FARM_WEBHOOK_SECRET, or
 * with FARM_WEBHOOK_CONCURRENCY=0, it claims nothing.
 */
/*
 * The webhook settings every process checks before it starts (farm-api takes
 * webhook_url only when the workers can sign and record what it asks for):
 * FARM_WEBHOOK_SECRET, when set, decodes (webhook_key_decode), and
 * FARM_WEBHOOK_LEASE_S exceeds an attempt's time plus a poll plus 5 s.
 * 0, or GF_EINVAL with `err` naming the variable.
 */
int webhook_config_check(const gf_config_t *cfg, gf_err_t *err);

webhook_deliverer_t *webhook_deliverer_new(uv_loop_t *loop, const gf_config_t *cfg, store_t *store,
                                           gf_metrics_t *metrics, gf_err_t *err);
/* Starts claiming due deliveries every FARM_WEBHOOK_POLL_MS. */
void webhook_deliverer_start(webhook_deliverer_t *d);
/*
 * The deliveries a process leases for itself as it makes them due (the
 * finishing worker's terminal delivery, store_call_image_done_finish):
 * reserve() before the store call, and the lease seconds to ask for, 0 when
 * this deliverer takes none now (no secret, FARM_WEBHOOK_CONCURRENCY=0,
 * closing, or as many held as that allows). A reservation counts as a held
 * delivery until adopt() gives it back, with the leased deliveries (NULL or
 * none: the call failed or leased nothing), which it takes over (their
 * strings too) and sends as if it had claimed them. Each reservation is
 * adopted exactly once; until then the deliverer is not freed.
 */
int webhook_deliverer_reserve(webhook_deliverer_t *d);
void webhook_deliverer_adopt(webhook_deliverer_t *d, store_webhook_claim_result_t *r);
/*
 * Stops claiming, releases the deliveries not yet sent, lets the requests in flight end (at
 * most FARM_WEBHOOK_TIMEOUT_S), records every attempt at once (a running deliverer records
 * them with its next poll), waits for the store calls in flight, closes its handles and frees
 * it; `cb` runs once that is done.
 */
void webhook_deliverer_close(webhook_deliverer_t *d, void (*cb)(void *data), void *data);

#endif
