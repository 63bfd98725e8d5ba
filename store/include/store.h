/*
 * store/include/store.h - Postgres, the record of the farm (DESIGN.md): users, the
 * two-phase credit ledger (hold, capture, release), generations, and the
 * migrations runner. docs/credits.md tells which call moves which number.
 *
 * Every credit operation is one SQL function (store/sql/farm_*.sql) run as one
 * prepared statement: one round trip, one transaction, no read-then-write.
 * A call is described by a store_call_t, built with one of the
 * store_call_*() builders, and run either
 *   - asynchronously on a libuv loop (store_t: a small pool of non-blocking
 *     libpq connections driven by uv_poll, reconnecting after Postgres
 *     restarts; a clear GF_EUNAVAIL while it is down), for the api and worker;
 *   - or blocking (store_conn_t), for the CLI, tests and benchmarks.
 * No other module sees a libpq (or jansson) type.
 *
 * Worker-side calls (start, provider request, image, image done, finish)
 * carry the queue's fencing token; a token older than the newest one recorded for the
 * generation is refused with GF_ECONFLICT, so a worker that lost its lease
 * can neither charge nor finish the generation.
 *
 * Async contract (the one of queue/ and providers/ too): a call that
 * returns an error never runs its callback; a call that returns 0 runs it
 * exactly once, on the loop thread, and never inside the call that started
 * it: a failure known at once (Postgres cannot be reached) is delivered on a
 * later loop turn. GF_ECANCELED when the store is closed first. The callback
 * gets the call's gf_err_t (err->code GF_OK on success).
 *
 * Results are typed: each operation has its result struct (store_*_result_t
 * below), read from the SQL function's row (or its JSON) once, here; callers
 * never parse the store's JSON nor read their parameters back.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "core.h"

/* The most parameters of an operation (accept's 14), and of an audited one (+5). */
#define STORE_MAX_PARAMS   19
#define STORE_AUDIT_PARAMS 5

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
    STORE_OP_WEBHOOK_CLAIM,
    STORE_OP_WEBHOOK_RESULT,
    STORE_OP_WEBHOOK_RETRY,
    STORE_OP_WEBHOOK_LIST,
    /* lifecycle (docs/storage.md) */
    STORE_OP_GENERATION_DELETE,
    STORE_OP_UPLOAD_DELETE,
    STORE_OP_UPLOADS,
    STORE_OP_LIFECYCLE,
    STORE_OP_STORAGE_DELETED,
    STORE_OP_UPLOAD_USAGE,
    STORE_OP_AUDIT,
    STORE_OP_AUDIT_PAGE,
    STORE_OP_RECONCILE_CHECK,
    /* leftover files (docs/storage.md, "Leftover files") */
    STORE_OP_UNREFERENCED,
    /* group-committed accepts (docs/credits.md "Group-committed accepts") */
    STORE_OP_ACCEPT_BATCH,
    /* a generation's last image and its finish in one transaction */
    STORE_OP_IMAGE_DONE_FINISH,
    /* the outcome of accepts whose answer was lost */
    STORE_OP_ACCEPT_RESOLVE,
    /* the outcome of a delete whose answer was lost */
    STORE_OP_DELETE_RESOLVE,
    /* the outcome of an admin grant whose answer was lost */
    STORE_OP_CREDIT_RESOLVE,
    STORE_OP_COUNT_
} store_op_t;

/* --- results: one struct per operation, read from Postgres once, inside store/ ---- */

typedef struct {
    char generation_id[37]; /* the new one, or the first one (existing, or GF_ECONFLICT) */
    long long available;    /* after the hold; what was available on GF_ECREDITS */
    int existing;           /* 1: an idempotency key matched an earlier identical request */
} store_accept_result_t;

/*
 * ACCEPT_BATCH: one request's outcome. err.code: GF_OK (accepted, or
 * `accept.existing`), GF_ECREDITS (accept.available filled), GF_ETOOBIG (it
 * would have been accepted, but it was sent `at_cap`), GF_ECONFLICT
 * (same idempotency key, another body), GF_ENOTFOUND (a reference is not
 * the user's: `missing` names it, "identity" or "poses"), or this request's
 * own Postgres error (store__sqlstate_code: GF_EINVAL, GF_EUNAVAIL); nothing
 * of a request that failed was written.
 */
typedef struct {
    gf_err_t err;
    store_accept_result_t accept;
    char missing[16];
    /* existing: the first generation as a repeated request is answered; found = 0
     * when it was deleted since */
    int found;
    char kind[8], status[16];
    char created_at[32]; /* accepted: the new generation's; existing and found: the first's */
    long long cost;
    int images;
} store_accept_outcome_t;

typedef struct {
    store_accept_outcome_t *items; /* in the order of the batch's requests */
    size_t n;
} store_accept_batch_result_t;

/* The most requests of one ACCEPT_BATCH (FARM_API_ACCEPT_BATCH_MAX is at most this). */
#define STORE_ACCEPT_BATCH_MAX 256

/* A Postgres backend a connection of the pool talks to: its pid, and the application_name
 * the connection gave it, unique to that connection (so a pid that a restarted Postgres
 * gave another process names nothing). */
typedef struct {
    int pid;
    char app[48];
} store_backend_t;

/*
 * ACCEPT_RESOLVE: accepted[i] = 1 when ids[i]'s row exists (its accept committed);
 * created_at[i] (n of them) is then a generation's created_at, "" for an upload.
 */
typedef struct {
    unsigned char accepted[STORE_ACCEPT_BATCH_MAX];
    char (*created_at)[32];
    size_t n;
} store_accept_resolve_result_t;

typedef struct {
    int attempts;    /* this start included */
    char status[16]; /* GF_ECANCELED (finished already, or ended by this start: canceled,
                      * the user asked while it was out of a worker's hands, or expired,
                      * never started before its deadline): its status */
} store_start_result_t;

/* One claimed webhook delivery (farm_webhook_claim). Strings are owned by the result. */
typedef struct {
    char id[37], generation_id[37]; /* id: the `webhook-id` */
    char *url, *event;              /* event: the body's "type" */
    char *host;                     /* the URL's, lower-cased (the per-host bound's); NULL: none */
    char *data;                     /* the event's data, JSON text (outputs with storage keys) */
    int attempts;                   /* made before this claim */
    int window_attempts;            /* of those, made since the last `farm webhooks retry` */
    long long lease_token;
    long long created_ms;       /* when the event happened, unix ms */
    long long first_attempt_ms; /* 0: never attempted (or put back by `farm webhooks retry`) */
} store_webhook_claimed_t;

/* WEBHOOK_RESULT: recorded = 0 when the lease token was stale (nothing changed). */
typedef struct {
    int recorded;
    double lag_s; /* terminal status to delivery; < 0 unless a terminal event was delivered */
} store_webhook_result_t;

/* WEBHOOK_CLAIM: the due deliveries now leased to the caller, and the database's clock;
 * `results`: one per attempt the claim recorded first (store_call_webhook_claim_after), in
 * their order. */
typedef struct {
    store_webhook_claimed_t *items;
    size_t n;
    long long now_ms;
    store_webhook_result_t *results;
    size_t n_results;
} store_webhook_claim_result_t;

/* One attempt's outcome for store_call_webhook_claim_after (store_call_webhook_result's
 * arguments; the strings are copied). */
typedef struct {
    const char *id;
    long long lease_token;
    const char *outcome;
    int status_code;   /* 0: no answer */
    const char *error; /* NULL: none */
    long long next_ms;
} store_webhook_outcome_t;

/* IMAGE, IMAGE_DONE and IMAGE_DONE_FINISH: applied = 1 when this call settled the
 * image, 0 when it was settled before (the call is idempotent). IMAGE_DONE_FINISH
 * also finished the generation: `status` is the status in force after it (the
 * first finish wins), `finished` = 1 when this call set it; `webhook` holds the
 * terminal delivery it leased when asked to (n = 0: none). */
typedef struct {
    int applied;
    char status[16];
    int finished;
    store_webhook_claim_result_t webhook;
} store_image_result_t;

typedef struct {
    char status[16]; /* the generation's status in force */
    int applied;     /* 0: it was already finished (the first finish wins) */
    char kind[8];    /* the generation's ("" when not found) */
} store_finish_result_t;

typedef struct {
    int applied;  /* 1: it is expired (by this call, or already) */
    char kind[8]; /* the generation's when this call expired it, else "" */
} store_expire_result_t;

/* BALANCE (one account) and TOTALS (summed over every account). */
typedef struct {
    long long balance, held;      /* available = balance - held */
    long long captured, released; /* TOTALS only: settled ever (migrations/0021) */
    long long oldest_queued_s;    /* TOTALS only: age of the oldest queued generation; 0 none */
} store_balance_result_t;

typedef struct {
    char missing[16]; /* "ok", or the reference that is not the user's: "identity", "poses" */
} store_refs_result_t;

typedef struct {
    char status[16]; /* the generation's status in force */
} store_refuse_result_t;

/* UPLOAD_USAGE: what the user's uploads hold (farm_upload_usage); UPLOAD_ADD over a quota:
 * over = "count" or "bytes". */
typedef struct {
    long long uploads, bytes;
    char over[8];
} store_upload_result_t;

/* One recorded output of an image (farm_image_done). Strings are owned by the result. */
typedef struct {
    int index, pose;
    char *variant, *format, *sha256, *storage_key;
    int width, height;
    long long bytes;
    long long seed;
    int has_seed; /* 0: the seed is SQL NULL */
    int deleted;  /* 1: its object was deleted (storage_key is then NULL) */
} store_output_t;

/*
 * A generation as GET /v1/generations/{id} shows it (outputs with their
 * storage keys, not yet signed URLs). NULL strings are SQL NULL. params,
 * metadata, error and failures are the user's or the worker's own JSON,
 * kept as compact JSON text.
 */
typedef struct {
    char id[37];
    char *kind, *status, *stage; /* stage: NULL when none */
    int progress;
    int images, images_done, images_failed, attempts;
    long long cost, charged, released;
    char *provider;
    char *params, *metadata, *error, *failures;  /* JSON text; metadata and error may be NULL */
    char *created_at, *started_at, *finished_at; /* RFC 3339; the last two may be NULL */
    char *webhook; /* GET's `webhook` object as JSON text; NULL without a webhook_url */
    store_output_t *outputs;
    size_t n_outputs;
} store_generation_t;

/* CANCEL, when taken: the generation as the cancel left it (farm_cancel_json). */
typedef struct {
    int applied; /* 1: canceled now; 0: cancel requested from the worker that runs it */
    store_generation_t generation; /* as GENERATION reads it, after the cancel */
} store_cancel_result_t;

/* LIST: a page of a user's generations, newest first. */
typedef struct {
    store_generation_t *items;
    size_t n;
    char *next_cursor; /* NULL on the last page */
} store_list_result_t;

/* One ledger entry, as the store records it ("adjust" included). */
typedef struct {
    char *kind;
    long long amount;
    char *generation_id; /* NULL: not tied to a generation */
    int image_index;     /* -1: none */
    char *reason;        /* NULL: none */
    char *created_at;
} store_ledger_entry_t;

/* LEDGER: a page of a user's ledger, newest first. */
typedef struct {
    store_ledger_entry_t *items;
    size_t n;
    char *next_cursor; /* NULL on the last page */
} store_ledger_result_t;

/* A generation the sweep expired, or one it lists as canceling. */
typedef struct {
    char id[37], user_id[37];
} store_sweep_expired_t;

/* An open generation untouched for stale_s: the queue should hold it. */
typedef struct {
    char id[37], user_id[37];
    char *plan, *status;
    char *params;          /* JSON text, as accepted */
    long long deadline_ms; /* unix ms; 0: none */
    long long fence;       /* the last attempt's token Postgres recorded (0: none yet) */
} store_sweep_candidate_t;

/* SWEEP: locked = 0 when another sweeper holds the lock (then nothing else is filled).
 * Queued generations past their deadline were expired (and released); canceling:
 * running generations whose user asked to cancel them (at least 2 s ago). */
typedef struct {
    int locked;
    store_sweep_expired_t *expired;
    size_t n_expired;
    store_sweep_candidate_t *candidates;
    size_t n_candidates;
    store_sweep_expired_t *canceling;
    size_t n_canceling;
} store_sweep_result_t;

typedef struct {
    int index;
    char *token; /* "<provider>:<request>" as the worker persisted it */
} store_provider_request_t;

typedef struct {
    int pose;
    char *storage_key;
} store_pose_key_t;

/* RESUME: what a worker taking a generation over skips, resumes and reads. */
typedef struct {
    int *settled; /* image indexes captured or released */
    size_t n_settled;
    store_provider_request_t *requests;
    size_t n_requests;
    char *identity_key;          /* the identity image's storage key; NULL: none */
    store_pose_key_t *pose_keys; /* uploaded pose maps by pose index */
    size_t n_pose_keys;
} store_resume_result_t;

/* One delivery as `farm webhooks list` shows it. NULL strings are SQL NULL. */
typedef struct {
    char id[37], generation_id[37];
    char *event, *url, *status, *last_error, *created_at, *next_attempt_at, *delivered_at;
    int attempts;
    int last_status_code; /* 0: none */
} store_webhook_t;

/* WEBHOOK_LIST (newest first) and WEBHOOK_RETRY (n: how many were put back; no items). */
typedef struct {
    store_webhook_t *items;
    size_t n;
} store_webhook_list_result_t;

/* One row of the audit trail (GET /v1/admin/audit). NULL strings are SQL NULL. */
typedef struct {
    long long id;
    char *actor, *action, *target, *request_id;
    char *detail; /* JSON text (an object) */
    char *at;     /* RFC 3339 */
} store_audit_entry_t;

/* RECONCILE_CHECK: farm_reconcile's violations at the farm's last check, and when that was
 * (unix seconds); violations -1 (checked_at 0) when no check ever finished. */
typedef struct {
    long long violations;
    double checked_at;
} store_reconcile_result_t;

/* AUDIT_PAGE: a page of the audit trail, newest first. AUDIT: `id` of the row written. */
typedef struct {
    store_audit_entry_t *items;
    size_t n;
    char *next_cursor; /* NULL on the last page */
    long long id;
} store_audit_result_t;

/*
 * GENERATION_DELETE, UPLOAD_DELETE, DELETE_RESOLVE and LIFECYCLE: storage keys whose objects
 * the caller deletes now, then reports with store_call_storage_deleted().
 * LIFECYCLE also counts what retention marked and the idempotency keys it
 * purged. Strings are owned by the result.
 */
typedef struct {
    char **keys;
    size_t n;
    long long outputs_expired, uploads_expired, idempotency_purged; /* LIFECYCLE only */
} store_keys_result_t;

/* One live upload as GET /v1/uploads shows it. */
typedef struct {
    char id[37];
    char format[8];
    int width, height;
    long long bytes;
    char *created_at;
} store_upload_t;

/* UPLOADS: a page of a user's live uploads, newest first. */
typedef struct {
    store_upload_t *items;
    size_t n;
    char *next_cursor; /* NULL on the last page */
} store_uploads_result_t;

/*
 * One call: its inputs (copied in by the builders; private to store/, hence
 * the underscores) and its results. The caller owns it; it must stay valid
 * until the callback of an async call. Free what it holds with
 * store_call_dispose().
 *
 * err.code is the call's status: GF_OK, or (besides GF_EUNAVAIL,
 * GF_ETIMEDOUT, GF_ECANCELED and GF_EINVAL for bad input, which any call may
 * give) by operation:
 *   ACCEPT      GF_ECREDITS: available too low (res.accept.available filled).
 *               GF_ECONFLICT: same key, different body (generation_id: the first).
 *   START       GF_ECONFLICT stale token; GF_ECANCELED finished; GF_ENOTFOUND.
 *   PROVIDER_REQUEST  GF_ECONFLICT stale; GF_ECANCELED finished; GF_ENOTFOUND.
 *   IMAGE, IMAGE_DONE, IMAGE_DONE_FINISH GF_ECONFLICT stale (or the image released);
 *               GF_EINVAL bad index.
 *   FINISH      GF_ECONFLICT stale.
 *   CANCEL      GF_ECONFLICT not cancelable (finished); GF_ENOTFOUND (or not the owner's).
 *   CREDIT      GF_ECREDITS when an adjust would go below what is held.
 *   GENERATION  GF_ENOTFOUND when absent or not the owner's.
 *   LIST, LEDGER GF_EINVAL for a malformed cursor.
 *   RESUME      GF_ENOTFOUND when absent.
 *   REFS        GF_ENOTFOUND when a reference is not the user's (or does not
 *               exist); res.refs.missing then names it.
 *   WEBHOOK_RESULT  res.webhook_result.recorded = 0 for a stale lease token (and each
 *               res.webhook_claim.results[i] of WEBHOOK_CLAIM).
 *   GENERATION_DELETE GF_ENOTFOUND (absent, another user's, or deleted);
 *               GF_ECONFLICT while queued or running (not deletable).
 *   UPLOAD_DELETE GF_ENOTFOUND (absent, another user's, or deleted).
 *   DELETE_RESOLVE as the delete it resolves; CREDIT_RESOLVE as CREDIT.
 *   UPLOADS     GF_EINVAL for a malformed cursor.
 *   UPLOAD_ADD  GF_ETOOBIG: over the user's quota (res.upload.over names it); nothing added.
 * The result of the call's operation is the member of `res` named after it
 * (res.accept, res.generation, ...; res.upload for UPLOAD_ADD and UPLOAD_USAGE);
 * PROVIDER_REQUEST has none; CREDIT fills res.balance (the account after the grant). A result is
 * filled only as said above or when err.code is GF_OK.
 */
typedef struct {
    store_op_t _op;
    char *_params[STORE_MAX_PARAMS]; /* NULL is SQL NULL */
    int _nparams;
    int _audited;  /* store_call_set_audit: the last STORE_AUDIT_PARAMS params are the row's */
    size_t _batch; /* ACCEPT_BATCH, WEBHOOK_CLAIM, ACCEPT_RESOLVE: its number of items */
    gf_err_t err;
    /* Set when the call failed after it was sent (the connection dropped, or Postgres said
     * nothing past statement_timeout): it may have committed. `backend`: the Postgres
     * backend it was sent to, the fence of store_call_accept_resolve. */
    int outcome_unknown;
    store_backend_t backend;
    union {
        store_accept_result_t accept;
        store_start_result_t start;
        store_image_result_t image; /* IMAGE and IMAGE_DONE */
        store_finish_result_t finish;
        store_cancel_result_t cancel;
        store_expire_result_t expire;
        store_balance_result_t balance; /* BALANCE, TOTALS and CREDIT */
        store_generation_t generation;
        store_sweep_result_t sweep;
        store_list_result_t list;
        store_ledger_result_t ledger;
        store_resume_result_t resume;
        store_refs_result_t refs;
        store_refuse_result_t refuse;
        store_webhook_claim_result_t webhook_claim;
        store_webhook_result_t webhook_result;
        store_webhook_list_result_t webhook_list; /* WEBHOOK_LIST and WEBHOOK_RETRY */
        /* GENERATION_DELETE, UPLOAD_DELETE, DELETE_RESOLVE, LIFECYCLE, UNREFERENCED */
        store_keys_result_t keys;
        store_uploads_result_t uploads;
        store_upload_result_t upload; /* UPLOAD_ADD and UPLOAD_USAGE */
        store_audit_result_t audit;   /* AUDIT and AUDIT_PAGE */
        store_reconcile_result_t reconcile;
        store_accept_batch_result_t accept_batch;
        store_accept_resolve_result_t accept_resolve;
    } res;
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
    const char *webhook_url;     /* NULL: none */
    const char *webhook_events;  /* a Postgres array literal ("{started,image}"); NULL: none */
} store_accept_t;

void store_call_accept(store_call_t *c, const store_accept_t *a);

/* One request of a group-committed accept: the accept and the references it makes. */
typedef struct {
    store_accept_t accept;
    const char *identity_upload;     /* UUID; NULL: none */
    const char *identity_generation; /* UUID; NULL: none */
    int identity_index;              /* the output of identity_generation */
    const char *const *pose_uploads; /* UUIDs of uploaded pose maps */
    size_t n_pose_uploads;
    /* The user is at the active generations cap (the queue said so at the rate limit): a
     * request that would be accepted is refused instead, GF_ETOOBIG, writing nothing. */
    int at_cap;
} store_accept_item_t;

/*
 * Group-committed accepts (store/sql/farm_accept_generations.sql): `n`
 * requests (1..STORE_ACCEPT_BATCH_MAX; strings are copied) in one statement
 * and one transaction, each with its own outcome (res.accept_batch.items[i]
 * for items[i]): its reference check, then farm_accept_generation's
 * idempotency key, hold and generation row. Requests of the same user see
 * each other's holds. The call's own err.code fails every request at once
 * (Postgres down or timed out: then nothing of the batch was written).
 * Returns 0, or GF_EINVAL when n is out of range (the call is then empty:
 * do not run it).
 */
int store_call_accept_batch(store_call_t *c, const store_accept_item_t *items, size_t n);
/*
 * The outcome of accepts whose call failed with outcome_unknown (an ACCEPT_BATCH's): ends
 * the backend it ran on (`backend`, the failed call's; pid 0: none known) and waits until
 * it has, so the transaction is settled for good, then answers for each of the `n`
 * generation ids (1..STORE_ACCEPT_BATCH_MAX) whether it was accepted
 * (res.accept_resolve). GF_EINVAL: n out of range (do not run the call).
 */
int store_call_accept_resolve(store_call_t *c, const store_backend_t *backend,
                              const char *const ids[], size_t n);
/* `worker` (NULL: not checked) names the starting worker: another worker's start under the
 * same fence is stale (GF_ECONFLICT), as one under an older fence is. */
void store_call_start(store_call_t *c, const char *gen_id, long long fence, const char *provider,
                      const char *worker);
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
 * idempotency key (NULL: none) freed for a retry. res.refuse.status: the status in force. */
void store_call_refuse(store_call_t *c, const char *gen_id, const char *user_id,
                       const char *idem_key);
/* The farm's credit totals for /metrics: balance and held summed over every account. */
void store_call_totals(store_call_t *c);
void store_call_expire(store_call_t *c, const char *gen_id);
/* amount > 0 grants, < 0 adjusts down; the user is provisioned first if new. */
void store_call_credit(store_call_t *c, const char *user_id, long long amount, const char *reason,
                       long long welcome_credits);
/*
 * The outcome of a grant (store_call_credit, audited with detail.op = `op`, an id the
 * caller made for it) whose answer was lost: found committed, its outcome as it gave it;
 * else the grant runs now (audit it as the grant: its row is written only then). Answers
 * as CREDIT (res.balance, GF_ECREDITS). `backend`: the lost call's (farm_credit_resolve).
 */
void store_call_credit_resolve(store_call_t *c, const store_backend_t *backend, const char *op,
                               const char *user_id, long long amount, const char *reason,
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
/*
 * Records an upload whose normalized bytes are stored under `key`, unless the
 * user would then hold more than `max_count` uploads or `max_bytes` bytes
 * (0: no quota on that axis; docs/api.md). The check and the insert are one
 * transaction under the user's row lock.
 */
void store_call_upload_add(store_call_t *c, const char *id, const char *user_id,
                           long long welcome_credits, const char *format, int width, int height,
                           long long bytes, const char *sha256, const char *key,
                           long long max_count, long long max_bytes);
/* What the user's uploads hold against the quota: res.upload.uploads and .bytes. */
void store_call_upload_usage(store_call_t *c, const char *user_id);
/* outputs_json: [{variant, format, width, height, bytes, sha256, storage_key, pose, seed}]. */
void store_call_image_done(store_call_t *c, const char *gen_id, long long fence, int index,
                           const char *outputs_json);
/* image_done of the generation's last image to settle, then its finish with "auto"
 * (farm_image_done_finish): what a worker would send as two calls in a row, in one
 * transaction. res.image (status, finished) answers both. With `webhook_lease_s` > 0
 * the caller also leases the generation's terminal webhook delivery for that long, in
 * the same transaction and as WEBHOOK_CLAIM leases it, within the farm's
 * `webhook_per_host` of its host (0: no bound) (res.image.webhook: none, or that one
 * delivery). */
void store_call_image_done_finish(store_call_t *c, const char *gen_id, long long fence, int index,
                                  const char *outputs_json, int webhook_lease_s,
                                  int webhook_per_host);

/*
 * Webhook deliveries (docs/webhooks.md). CLAIM leases at most `limit` due
 * deliveries for `lease_s`. RESULT records one attempt under the claim's
 * token: `outcome` "delivered", "failed", "retry" (due again in `next_ms`)
 * or "release" (not sent; due again at once, no attempt counted);
 * `status_code` 0: no answer; `error` NULL: none. RETRY puts a failed
 * delivery (`id`; NULL: every failed one) back to pending. LIST: newest
 * first, `failed_only`, one generation's (`gen_id`; NULL: all), at most `limit`.
 */
void store_call_webhook_claim(store_call_t *c, int limit, int lease_s);
void store_call_webhook_result(store_call_t *c, const char *id, long long lease_token,
                               const char *outcome, int status_code, const char *error,
                               long long next_ms);
/* A host a deliverer holds deliveries of, claimed and not yet answered. */
typedef struct {
    const char *host; /* store_webhook_claimed_t.host */
    int held;
} store_webhook_host_t;

/* A deliverer's claim: at most `limit` (0: only record) due deliveries leased for
 * `lease_s`, no host's beyond `per_host` with what `busy` says it holds (0: no per-host
 * bound), after recording `nresults` attempts (0..STORE_WEBHOOK_RESULTS_MAX), each as
 * RESULT would, in the same statement and transaction (res.webhook_claim.results). */
typedef struct {
    int limit, lease_s, per_host;
    const store_webhook_host_t *busy;
    size_t nbusy;
    const store_webhook_outcome_t *results;
    size_t nresults;
} store_webhook_claim_req_t;

/* CLAIM as `q` says. GF_EINVAL: nresults out of range or a string that is not UTF-8. */
#define STORE_WEBHOOK_RESULTS_MAX 256
int store_call_webhook_claim_after(store_call_t *c, const store_webhook_claim_req_t *q);
/* RETRY the failed delivery `id`, or (id NULL) every failed one, of `host` only when not NULL
 * (the host as the outbox keeps it: lower-case, no port). */
void store_call_webhook_retry(store_call_t *c, const char *id, const char *host);
void store_call_webhook_list(store_call_t *c, int failed_only, const char *gen_id, int limit);

/*
 * Lifecycle (docs/storage.md, "Lifecycle"). GENERATION_DELETE hides a
 * finished generation of the user and marks its outputs deleted;
 * UPLOAD_DELETE deletes an upload of the user; both list the objects in
 * storage_deletions and give the keys the caller may delete at once.
 * UPLOADS: a page of the user's live uploads (cursor: a page's next_cursor,
 * NULL: the first). LIFECYCLE (the sweeper): retention with
 * `output_days`, `upload_days` (0: keep), the idempotency keys older than
 * 24 h purged, and at most `limit` due keys claimed, each step bounded by
 * `limit`. STORAGE_DELETED: the objects of `keys` are gone from storage.
 */
void store_call_generation_delete(store_call_t *c, const char *gen_id, const char *user_id);
void store_call_upload_delete(store_call_t *c, const char *upload_id, const char *user_id);
/*
 * The outcome of a GENERATION_DELETE or UPLOAD_DELETE (`what`: "generation" |
 * "upload") whose call failed with outcome_unknown: ends the backend it ran on
 * (`backend`, the failed call's; pid 0: none known) as store_call_accept_resolve
 * does, then answers as the delete: GF_OK with res.keys when the user's
 * generation or upload is deleted (by the lost call or an earlier one), else
 * the delete, run now, answers for itself (farm_delete_resolve).
 */
void store_call_delete_resolve(store_call_t *c, const store_backend_t *backend, const char *what,
                               const char *id, const char *user_id);
void store_call_uploads(store_call_t *c, const char *user_id, int limit, const char *cursor);
void store_call_lifecycle(store_call_t *c, int limit, int output_days, int upload_days);
void store_call_storage_deleted(store_call_t *c, const char *const *keys, size_t n);
/*
 * Of `n` storage keys ([0-9a-z_./-] only), those of a generation's files
 * ("{user}/{generation}/...") that no output row records, that are not due
 * for deletion already (storage_deletions), and whose generation is not
 * queued or running (farm_storage_unreferenced): a stale attempt's files.
 * Result: res.keys.
 */
void store_call_unreferenced(store_call_t *c, const char *const *keys, size_t n);

/*
 * The audit trail (migrations/0021_operations.sql, docs/operations.md "Audit
 * trail"): who did what to what. Strings are copied; detail_json is a JSON
 * object as text (NULL: {}); actor is the admin's JWT `sub` or "cli";
 * action is "<object>.<verb>" in lower case ("credits.grant",
 * "dead_letter.retry", "generation.delete"); target and request_id may be NULL.
 */
typedef struct {
    const char *actor;
    const char *action;
    const char *target;
    const char *request_id;
    const char *detail_json;
} store_audit_t;

/*
 * Makes an already built call (store_call_credit, ...) write its audit row
 * in the call's own transaction: the row is committed exactly when the
 * action is, and carries the action's answer in detail.result (its row as
 * JSON, e.g. {"farm_credit": "granted"}; null when over 4 kB). A call whose
 * SQL function raises writes no row. Call it after the builder and before
 * store_exec / store_conn_exec; store_call_dispose frees what it copied.
 * Any operation of at most STORE_MAX_PARAMS - STORE_AUDIT_PARAMS parameters
 * (every one but ACCEPT) can be audited so.
 */
void store_call_set_audit(store_call_t *c, const store_audit_t *a);

/* A row of its own, for an action outside Postgres (a dead-letter re-drive in
 * Redis): res.audit.id is the new row's id. */
void store_call_audit(store_call_t *c, const store_audit_t *a);

/* A page of the trail, newest first (limit 1..100); cursor: a page's next_cursor, NULL first. */
void store_call_audit_page(store_call_t *c, int limit, const char *cursor);

/* farm_reconcile's violations: the farm's last check when it is younger than interval_s,
 * else counted now (the whole ledger read), one process at a time (farm_reconcile_check). */
void store_call_reconcile_check(store_call_t *c, int interval_s);

/* Frees what the call holds (inputs and results); the struct can be built again. */
void store_call_dispose(store_call_t *c);

/* --- asynchronous: the pool on a libuv loop ------------------------------------ */

typedef struct store store_t;
/* `err` is &call->err (never NULL); the results are in call->res. */
typedef void (*store_call_cb)(store_t *st, const gf_err_t *err, store_call_t *call, void *data);
/* err->code: GF_OK, GF_EUNAVAIL, GF_ETIMEDOUT or GF_ECANCELED. */
typedef void (*store_ping_cb)(store_t *st, const gf_err_t *err, void *data);
typedef void (*store_closed_cb)(void *data);

/* Returns a new pool for cfg->database_url (connections open on first use). `cfg` is borrowed. */
store_t *store_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);

/* What store_new() refuses: a FARM_DATABASE_URL libpq would refuse at every connect (an
 * unknown parameter, a bad sslmode). 0, or GF_EINVAL with `err`; no I/O. */
int store_config_check(const gf_config_t *cfg, gf_err_t *err);

/*
 * Runs `call`; its status and results are in `call` when `cb` runs (on a
 * later loop turn). Returns 0, or GF_ECANCELED when the store is closing
 * (call->err says so, and `cb` never runs).
 */
int store_exec(store_t *st, store_call_t *call, store_call_cb cb, void *data);

/*
 * Exports the pool on `m` (borrowed; it must outlive the store): connections
 * (its size), in use, waiting, and the time statements wait for a connection
 * (farm_pg_pool_*). Call once, after store_new().
 */
void store_metrics(store_t *st, gf_metrics_t *m);

/* Runs SELECT 1, under the same contract as store_exec(). */
int store_ping(store_t *st, uint64_t timeout_ms, store_ping_cb cb, void *data);

/*
 * Fails every call, waiting or on the wire, with GF_ECANCELED (their
 * callbacks run inside this call, as do those of calls whose failure was
 * waiting for the next loop turn), disconnects, and frees the pool once its
 * handles have closed; `cb` then runs, on a later loop turn.
 */
void store_close(store_t *st, store_closed_cb cb, void *data);

/* --- blocking -------------------------------------------------------------------- */

typedef struct store_conn store_conn_t;

/* Connects (blocking). NULL with `err` when Postgres cannot be reached. */
store_conn_t *store_conn_new(const char *url, gf_err_t *err);
void store_conn_free(store_conn_t *sc);

/* Runs `call`, returns call->err.code. A broken connection is retried once after reconnecting. */
int store_conn_exec(store_conn_t *sc, store_call_t *call);

/*
 * Checks every ledger invariant (docs/credits.md); prints each violation to
 * `out`, and records the count as the farm's last check (reconcile_state, which
 * the workers' gauges show). Returns the number of violations, or < 0 when it
 * could not check.
 */
int store_reconcile(store_conn_t *sc, FILE *out, gf_err_t *err);

/*
 * See migrate.c: applies migrations/NNNN_name.sql in order. Returns the count applied, or < 0:
 * GF_ECONFLICT for a changed applied file, and for a database that records a migration `dir`
 * has no file for (a newer build migrated it), which changes nothing.
 */
int store_migrate(const char *url, const char *dir, FILE *out, gf_err_t *err);
/*
 * Then the live SQL in dir/../store/sql (migrate.c). Returns the count applied, or < 0:
 * GF_ECONFLICT, changing nothing, for a database a newer build migrated (as store_migrate), or
 * whose store/sql records a file this build does not have with no migration applied since.
 */
int store_migrate_sql(const char *url, const char *dir, FILE *out, gf_err_t *err);

#endif
