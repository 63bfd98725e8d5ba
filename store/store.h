/*
 * store/store.h - Postgres, the record of the farm (DESIGN.md): users, the
 * two-phase credit ledger (hold, capture, release), generations, and the
 * migrations runner. docs/credits.md tells which call moves which number.
 *
 * Every credit operation is one SQL function (migrations/0002) run as one
 * prepared statement: one round trip, one transaction, no read-then-write.
 * A call is described by a store_call_t, built with one of the
 * store_call_*() builders, and run either
 *   - asynchronously on a libuv loop (store_t: a small pool of non-blocking
 *     libpq connections driven by uv_poll, reconnecting after Postgres
 *     restarts; a clear GF_EUNAVAIL while it is down), for the api and worker;
 *   - or blocking (store_conn_t), for the CLI, tests and benchmarks.
 * No other module sees a libpq type.
 *
 * Worker-side calls (start, provider request, image, finish) carry the
 * queue's fencing token; a token older than the newest one recorded for the
 * generation is refused with GF_ECONFLICT, so a worker that lost its lease
 * can neither charge nor finish the generation.
 *
 * Async contract (libuv's rule): a call that returns an error never runs its
 * callback; a call that returns 0 runs it exactly once, on the loop thread
 * (GF_ECANCELED when the store is closed first). It may run before
 * store_exec() returns when the failure is immediate.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "core.h"

#define STORE_MAX_PARAMS 12

typedef enum {
    STORE_OP_ACCEPT,
    STORE_OP_START,
    STORE_OP_PROVIDER_REQUEST,
    STORE_OP_IMAGE,
    STORE_OP_FINISH,
    STORE_OP_CANCEL,
    STORE_OP_EXPIRE,
    STORE_OP_CREDIT,
    STORE_OP_BALANCE,
    STORE_OP_GENERATION,
    STORE_OP_SWEEP,
    STORE_OP_LIST,
    STORE_OP_LEDGER,
    STORE_OP_IMAGE_DONE,
    STORE_OP_UPLOAD_ADD,
    STORE_OP_RESUME,
    STORE_OP_REFS,
    STORE_OP_REFUSE,
    STORE_OP_TOTALS,
    STORE_OP_COUNT_
} store_op_t;

/*
 * One call: its inputs (copied in by the builders) and its results. The
 * caller owns it; it must stay valid until the callback of an async call.
 * Free what it holds with store_call_dispose().
 *
 * Results by operation (status is 0 unless said otherwise):
 *   ACCEPT      generation_id; available (after the hold). existing = 1 when an
 *               idempotency key matched an earlier identical request.
 *               GF_ECREDITS: available too low (available filled).
 *               GF_ECONFLICT: same key, different body (generation_id: the first).
 *   START       attempts. GF_ECONFLICT stale token; GF_ECANCELED finished; GF_ENOTFOUND.
 *   PROVIDER_REQUEST  GF_ECONFLICT stale; GF_ECANCELED finished; GF_ENOTFOUND.
 *   IMAGE       applied = 1 when this call settled the image, 0 when it was
 *               settled before (idempotent). GF_ECONFLICT stale; GF_EINVAL bad index.
 *   FINISH      gen_status (the status in force); applied = 0 when it was
 *               already finished (the first finish wins). GF_ECONFLICT stale.
 *   CANCEL      applied = 1 canceled now, 0 cancel requested from the worker.
 *               GF_ECONFLICT not cancelable (finished); GF_ENOTFOUND (or not the owner's).
 *   EXPIRE      applied = 1 when it expired it now.
 *   CREDIT      GF_ECREDITS when an adjust would go below what is held.
 *   BALANCE     balance, held (available = balance - held).
 *   GENERATION  json: the generation as GET /v1/generations/{id} shows it
 *               (outputs with their storage keys, not yet signed URLs).
 *               GF_ENOTFOUND when absent or not the owner's.
 *   SWEEP       json: {"locked": false} when another sweeper holds the lock,
 *               else {"locked": true, "expired": [{id, user_id}],
 *               "candidates": [{id, user_id, plan, status, params, deadline_ms}]}:
 *               queued generations past their deadline were expired (and
 *               released); open ones untouched for stale_s are candidates the
 *               queue should hold.
 *   LIST        json: {"items": [generation...], "next_cursor": "..." | null}.
 *               GF_EINVAL for a malformed cursor.
 *   LEDGER      json: {"items": [{kind, amount, generation_id, image_index,
 *               reason, created_at}], "next_cursor": "..." | null}.
 *   RESUME      json: {"settled": [image index...], "provider_requests":
 *               {"<index>": "<token>"}}: what a worker taking a generation over
 *               skips and resumes. GF_ENOTFOUND when absent.
 *   REFS        GF_ENOTFOUND when a reference is not the user's (or does not
 *               exist); gen_status then names it: "identity" or "poses".
 *   IMAGE_DONE  records an image's outputs and captures its share in one
 *               transaction; applied as for IMAGE.
 */
typedef struct {
    store_op_t op;
    char *params[STORE_MAX_PARAMS]; /* NULL is SQL NULL */
    int nparams;
    /* results */
    int status;
    gf_err_t err;
    char generation_id[37];
    char gen_status[16];
    long long available, balance, held;
    int existing, applied, attempts;
    char *json;
} store_call_t;

/* What accept needs; strings are copied. */
typedef struct {
    const char *id;      /* new generation id (UUID) */
    const char *user_id; /* UUID */
    const char *plan;    /* NULL: free */
    const char *kind;    /* "avatar" | "pose" */
    int images;
    long long unit_cost;
    long long welcome_credits;
    const char *params_json;     /* as accepted, seed filled in */
    const char *metadata_json;   /* NULL: none */
    long long deadline_unix_ms;  /* 0: none */
    const char *idempotency_key; /* NULL: none */
    const char *request_hash;    /* hash of the request body, with the key */
} store_accept_t;

void store_call_accept(store_call_t *c, const store_accept_t *a);
void store_call_start(store_call_t *c, const char *gen_id, long long fence, const char *provider);
void store_call_provider_request(store_call_t *c, const char *gen_id, long long fence, int index,
                                 const char *request_id);
/* error_json: the image's error ({"code","message","retryable"}) when it failed; else NULL. */
void store_call_image(store_call_t *c, const char *gen_id, long long fence, int index,
                      int succeeded, const char *error_json);
/* status: "auto" (succeeded/partial/failed from the images), "canceled", "failed"... fence < 0:
 * none. */
void store_call_finish(store_call_t *c, const char *gen_id, long long fence, const char *status,
                       const char *error_json);
void store_call_cancel(store_call_t *c, const char *gen_id, const char *user_id);
/* A generation the queue refused (the active cap): canceled, its credits released, and its
 * idempotency key (NULL: none) freed for a retry. gen_status: the status in force. */
void store_call_refuse(store_call_t *c, const char *gen_id, const char *user_id,
                       const char *idem_key);
/* The farm's credit totals for /metrics: balance and held summed over every account. */
void store_call_totals(store_call_t *c);
void store_call_expire(store_call_t *c, const char *gen_id);
/* amount > 0 grants, < 0 adjusts down; the user is provisioned first if new. */
void store_call_credit(store_call_t *c, const char *user_id, long long amount, const char *reason,
                       long long welcome_credits);
/* Provisions the user on first sight (welcome credits), then reads the account. */
void store_call_balance(store_call_t *c, const char *user_id, long long welcome_credits);
void store_call_generation(store_call_t *c, const char *gen_id, const char *user_id);
void store_call_sweep(store_call_t *c, int stale_s, int limit);
/* status, kind, cursor: NULL for none. The cursor is the opaque next_cursor of a page. */
void store_call_list(store_call_t *c, const char *user_id, const char *status, const char *kind,
                     int limit, const char *cursor);
void store_call_ledger(store_call_t *c, const char *user_id, int limit, const char *cursor);
void store_call_resume(store_call_t *c, const char *gen_id);
/*
 * Checks that a request's references are the user's. Any may be NULL;
 * pose_uploads is a Postgres array literal ("{uuid,uuid}").
 */
void store_call_refs(store_call_t *c, const char *user_id, const char *identity_upload,
                     const char *identity_gen, int identity_index, const char *pose_uploads);
/* Records an upload whose normalized bytes are stored under `key`. */
void store_call_upload_add(store_call_t *c, const char *id, const char *user_id,
                           long long welcome_credits, const char *format, int width, int height,
                           long long bytes, const char *sha256, const char *key);
/* outputs_json: [{variant, format, width, height, bytes, sha256, storage_key, pose, seed}]. */
void store_call_image_done(store_call_t *c, const char *gen_id, long long fence, int index,
                           const char *outputs_json);

/* Frees what the call holds (inputs and results); the struct can be built again. */
void store_call_dispose(store_call_t *c);

/* --- asynchronous: the pool on a libuv loop ------------------------------------ */

typedef struct store store_t;
typedef void (*store_call_cb)(store_t *st, store_call_t *call, void *data);
typedef void (*store_ping_cb)(store_t *st, int status, void *data);
typedef void (*store_closed_cb)(void *data);

/* Returns a new pool for cfg->database_url (connections open on first use). `cfg` is borrowed. */
store_t *store_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);

/* Runs `call`; its status and results are in `call` when `cb` runs. */
int store_exec(store_t *st, store_call_t *call, store_call_cb cb, void *data);

/* Runs SELECT 1: 0, GF_EUNAVAIL or GF_ETIMEDOUT. */
int store_ping(store_t *st, uint64_t timeout_ms, store_ping_cb cb, void *data);

/* Fails queued calls with GF_ECANCELED, waits for those on the wire, disconnects, frees. */
void store_close(store_t *st, store_closed_cb cb, void *data);

/* --- blocking -------------------------------------------------------------------- */

typedef struct store_conn store_conn_t;

/* Connects (blocking). NULL with `err` when Postgres cannot be reached. */
store_conn_t *store_conn_new(const char *url, gf_err_t *err);
void store_conn_free(store_conn_t *sc);

/* Runs `call`, returns call->status. A broken connection is retried once after reconnecting. */
int store_conn_exec(store_conn_t *sc, store_call_t *call);

/*
 * Checks every ledger invariant (docs/credits.md); prints each violation to
 * `out`. Returns the number of violations, or < 0 when it could not check.
 */
int store_reconcile(store_conn_t *sc, FILE *out, gf_err_t *err);

/* See migrate.c: applies migrations/NNNN_name.sql in order. Returns the count applied, or < 0. */
int store_migrate(const char *url, const char *dir, FILE *out, gf_err_t *err);
/* Then the live SQL in dir/../store/sql (migrate.c). Returns the count applied, or < 0. */
int store_migrate_sql(const char *url, const char *dir, FILE *out, gf_err_t *err);

#endif
