/*
 * api/api_int.h - what the files of api/ share: the api's state, the caller
 * (principal) of a request, JSON answers, the one table from gf_status to
 * API.md's errors, and authentication.
 */
#ifndef API_INT_H
#define API_INT_H

#include <jansson.h>

#include "api.h"
#include "dueq.h"
#include "slab.h"
#include "imaging.h"
#include "queue.h"
#include "storage.h"
#include "store.h"

#define API_SSE_USER_BUCKETS 1024
#define API_SSE_HUB_BUCKETS  1024

struct api {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    gf_metrics_t *metrics;
    gf_httpd_t *httpd;
    /* NULL once closed (server.c): a completion that comes after that (a decode on
     * the thread pool, a call a closing client answered) checks before it calls. */
    queue_t *queue;
    store_t *store;
    storage_t *storage;
    struct api_sse *streams; /* open event streams (closed all at stop) */
    /* Open streams per user, for FARM_SSE_MAX_PER_USER: a chained hash by user id. */
    struct api_sse_user *sse_users[API_SSE_USER_BUCKETS];
    /* api/sse_hub.c: the live generation streams, grouped by generation (one watch and one
     * terminal read each); api/events.c: every stream's heartbeat on one timer. */
    struct sse_hub *sse_hubs[API_SSE_HUB_BUCKETS];
    gf_dueq_t sse_pings;
    uv_timer_t sse_ping_timer;
    int sse_ping_on;
    gf_metric_t *m_sse_terminal_reads; /* farm_sse_terminal_reads_total */
    uv_timer_t sse_trim_timer;         /* hands a burst of stream setups' freed memory back */
    int sse_trim_on;
    int sse_closed;     /* api__events_close_all ran: no timer is started again */
    gf_slab_t sse_slab; /* the streams (slab.h) */
    img_presets_t *presets;
    img_buf *pose_maps; /* api/files.c: each preset's map once rendered (data NULL until then) */
    int imaging_up;
    int closes_pending;
    api_stopped_cb stopped_cb;
    void *stopped_data;
    /* api/gauges.c: the farm's state on /metrics, refreshed on a timer */
    uv_timer_t gauges_timer;
    store_call_t gauges_call;
    int gauges_on, gauges_pending; /* pending: 1 queue stats, 2 credit totals */
    /* api/gate.c: uploads admitted and not yet finished, and their announced bytes */
    size_t upload_inflight, upload_inflight_bytes;
    /* api/files.c: the memory of uploads decoding whole, and those waiting for room */
    size_t upload_decode_bytes, decodes_waiting, decodes_running;
    size_t decode_slots; /* the libuv pool's width less one, at least 1 (read at start) */
    struct file_job *decode_wait_head, *decode_wait_tail;
    gf_metric_t *m_decode_bytes, *m_decodes_waiting; /* the two above, on /metrics */
    gf_metric_t *m_credits_held; /* farm_credits_held_total: credits held by this process */
    /* api/requeue.c: accepted generations Redis could not take yet */
    struct api_requeue *requeue_head;
    size_t requeue_n, requeue_inflight;
    uv_timer_t requeue_timer;
    int requeue_on;
    /* api/accept.c: accepts collected for the next batch, and batches in flight */
    struct api_accept_batch *accept_head, *accept_tail;
    /* api/resolve.c: writes whose answer was lost, being found out */
    struct api_resolve *resolving;
    int resolve_on;
    long long accept_inflight;
    uv_check_t accept_check;
    uv_idle_t accept_idle;
    int accept_on, accept_armed;
    gf_metric_t *m_accept_batch;    /* farm_api_accept_batch_size */
    struct api_token_cache *tokens; /* api/token_cache.c: verified bearer tokens */
};

/*
 * api/resolve.c: what became of a write whose answer was lost (its call's
 * outcome_unknown). Ends `backend` (the call's), then answers, for each of the `n` ids
 * (the new generations' or uploads'; the strings are the caller's until the callback),
 * whether its row exists: `res->accepted[i]`, and a generation's created_at. `err`
 * GF_ECANCELED (res NULL): the api stopped before it could find out. Returns GF_ECANCELED
 * when the api is stopping (no callback).
 */
typedef void (*api_resolve_cb)(api_t *api, const gf_err_t *err,
                               const store_accept_resolve_result_t *res, void *data);
int api__resolve(api_t *api, const store_backend_t *backend, const char *const ids[], size_t n,
                 api_resolve_cb cb, void *data);
/*
 * The same for a write that its resolution answers as itself: a delete (DELETE
 * /v1/generations/{id}, /v1/uploads/{id}) or an admin grant whose answer was lost. `call`
 * is the caller's (disposed already), kept until `done`: before each ask, `build` fills it
 * with store_call_delete_resolve or store_call_credit_resolve for `backend` (the failed
 * call's), and may add its audit. `done` gets it as store_exec's callback would, with the
 * write's own outcome (a delete's GF_OK with res.keys, GF_ENOTFOUND, GF_ECONFLICT; a
 * grant's GF_OK with res.balance, GF_ECREDITS), or GF_ECANCELED when the api stopped
 * before it could find out. Returns GF_ECANCELED when the api is stopping (no callback).
 */
typedef void (*api_resolve_build_fn)(store_call_t *call, const store_backend_t *backend,
                                     void *data);
int api__resolve_write(api_t *api, const store_backend_t *backend, store_call_t *call,
                       api_resolve_build_fn build, store_call_cb done, void *data);
void api__resolve_start(api_t *api);
/* Resolutions waiting to ask again end with GF_ECANCELED; one asking ends when the store closes. */
void api__resolve_stop(api_t *api);

/* The 429 of a user at the active generations cap (api/gate.c, api/generations.c). */
#define API_TOO_MANY_ACTIVE_MSG   "too many queued and running generations; wait for one to finish"
#define API_TOO_MANY_ACTIVE_RETRY "10"

/*
 * api/accept.c: group-committed accepts. The outcome of one request: `err`
 * is its own (out: its outcome) or its batch's failure (out NULL: nothing of
 * the batch was written).
 */
typedef void (*api_accept_cb)(api_t *api, const gf_err_t *err, const store_accept_outcome_t *out,
                              void *data);
/* store_exec on the api's store, or GF_ECANCELED (in call->err, `cb` never runs)
 * once it has closed. */
int api__store_exec(api_t *api, store_call_t *call, store_call_cb cb, void *data);

/*
 * Adds a request to the batch of this loop turn; `item`'s strings are
 * borrowed until `cb` runs (on a later loop turn, exactly once). Returns 0,
 * or GF_ECANCELED when the api is stopping (`cb` then never runs).
 */
int api__accept_add(api_t *api, const store_accept_item_t *item, api_accept_cb cb, void *data);
void api__accept_start(api_t *api);
/* Sends what is collected (before the store closes), and closes the handles. */
void api__accept_stop(api_t *api);

/* api/requeue.c: keeps an accepted generation the queue refused for want of Redis, and
 * enqueues it as soon as the queue is connected again. */
void api__requeue_add(api_t *api, const queue_enqueue_req_t *req);
void api__requeue_start(api_t *api);
/* Stops retrying; what is kept is left to the sweeper. */
void api__requeue_stop(api_t *api);

/* api/gauges.c */
void api__gauges_start(api_t *api);
void api__gauges_stop(api_t *api);

/* The authenticated caller of a request. */
typedef struct {
    char sub[37];
    char plan[API_PLAN_MAX + 1];
    int admin;
    long exp; /* the token's exp (unix seconds) */
} api_principal_t;

/*
 * api/token_cache.c: the tokens this process verified, until their exp
 * (API_TOKEN_CACHE_SLOTS of them, each at most API_TOKEN_CACHE_TOKEN_MAX
 * bytes). api__token_cache_verify answers as api__token_verify does, at
 * unix time `now`.
 */
#define API_TOKEN_CACHE_SLOTS     4096
#define API_TOKEN_CACHE_TOKEN_MAX 1024
typedef struct api_token_cache api_token_cache_t;
api_token_cache_t *api__token_cache_new(size_t slots);
void api__token_cache_free(api_token_cache_t *c);
int api__token_cache_verify(api_token_cache_t *c, const char *secret, const char *token, long now,
                            api_principal_t *p, gf_err_t *err);
/* The api's bearer-token check: api__token_cache_verify on the api's cache at the current time. */
int api__token_check(api_t *api, const char *token, api_principal_t *p, gf_err_t *err);

/*
 * Authenticates `req` (Authorization: Bearer, or ?access_token= when
 * `allow_query` - event routes only). Returns 0, or answers 401 itself and
 * returns < 0 (the request is then finished).
 */
int api__auth(api_t *api, gf_http_req_t *req, api_principal_t *p, int allow_query);

/* api/gate.c: decides each request at its headers (httpd's check hook). */
void api__gate_install(api_t *api);
/* The caller the gate authenticated for this request, or NULL. */
const api_principal_t *api__gate_principal(const gf_http_req_t *req);
/* POST /v1/generations: 1 when the gate found the caller at the active generations cap. */
int api__gate_at_cap(const gf_http_req_t *req);

/*
 * Answers 429 rate_limited for an upload over the caller's quota (`over`:
 * "count" or "bytes"; docs/api.md), naming it, with Retry-After: the quota
 * frees when the user deletes an upload, not with time, so the value says
 * when to look again. `at_headers`: refused before the body
 * (gf_http_req_refuse), else answered by the handler.
 */
#define API_QUOTA_RETRY_AFTER_S "60"
void api__quota_refuse(api_t *api, gf_http_req_t *req, const char *plan, const char *over,
                       int at_headers);

/*
 * Verifies an HS256 token; fills `p`. GF_EINVAL with the reason in `err` (for logs only);
 * err->detail is API_TOKEN_SIGNED when the signature was ours and a claim refused it
 * (expired, say): the client is a user of this farm, who must be told 401 to refresh.
 */
#define API_TOKEN_SIGNED 1
int api__token_verify(const char *secret, const char *token, api_principal_t *p, gf_err_t *err);

/* Answers `body` (stolen: decref'd here) as JSON with the API's headers. */
void api__json(gf_http_req_t *req, int status, json_t *body);

/* Answers the error shape of API.md. */
void api__error(gf_http_req_t *req, int status, const char *code, const char *message,
                const char *field);

/*
 * Answers a failed call by its status through the one mapping table
 * (GF_ENOTFOUND 404, GF_EUNAVAIL 503, ...). `err` goes to the log, never to
 * the client; a 500 carries the request id.
 */
void api__fail(gf_http_req_t *req, int status, const gf_err_t *err);

/* Answers a failed read of a list's page: GF_EINVAL is the client's malformed cursor. */
void api__fail_page(gf_http_req_t *req, const gf_err_t *err);

/*
 * The signature of a file URL: hex(HMAC-SHA256(FARM_FILE_SECRET, "<key>\n<exp>")).
 * Made by api__sign_outputs and checked (in constant time) by GET /v1/files.
 */
void api__file_sig(const char *secret, const char *key, long exp, char out[65]);

/* `prefix` `key` ?exp=&sig= (a new JSON string): exp in quarter-TTL steps (FARM_FILE_URL_TTL_S). */
json_t *api__signed_url(api_t *api, const char *prefix, const char *key);

/* True when the request's exp and sig sign `key` and exp has not passed (then the seconds left
 * go to `seconds_left`, when not NULL). Constant-time. */
int api__signature_ok(api_t *api, gf_http_req_t *req, const char *key, long *seconds_left);

/* Adds the signed `url` of each output (dropping its storage key) of a generation object;
 * an output without a key (deleted) gets url null. */
void api__sign_outputs(api_t *api, json_t *gen);

/* api/store_json.c: the store's results as the API's JSON (new objects; storage keys unsigned). */
json_t *api__generation_json(const store_generation_t *g);
json_t *api__generation_page_json(const store_list_result_t *l);
json_t *api__ledger_page_json(const store_ledger_result_t *l);

/* A query parameter of a list route; an empty one is absent (API.md writes the routes as
 * `?status=&kind=&limit=&cursor=`, and clients send unset filters so). */
const char *api__query(gf_http_req_t *req, const char *name);

/* api__json with jansson's dump `flags` (JSON_COMPACT, and a real precision). */
void api__json_flags(gf_http_req_t *req, int status, json_t *body, size_t flags);

/* True when the request's body is declared application/json; else answers 415. */
int api__body_is_json(gf_http_req_t *req);

/* Parses ?limit= (1..100, default 20 when NULL); -1 when malformed. */
int api__parse_limit(const char *s);
/* True when a generations or uploads ?cursor= is absent or well formed (<= 80 chars, a '.'). */
int api__list_cursor_ok(const char *cursor);

/*
 * api/route.c: what a route that calls the store keeps. Its context begins
 * with an api_route_t (its first member: a store callback's `data` is both);
 * `dispose` releases what the context adds (NULL: nothing).
 */
typedef struct api_route api_route_t;
struct api_route {
    api_t *api;
    gf_http_req_t *req;
    api_principal_t who;
    store_call_t call;
    void (*dispose)(api_route_t *r);
};
/* A zeroed context of `size` bytes (at least an api_route_t). */
void *api__route_new(api_t *api, gf_http_req_t *req, size_t size, void (*dispose)(api_route_t *r));
/* Disposes the context's additions and its call, and frees it. */
void api__route_free(api_route_t *r);
/* Runs r->call with `cb` (data: r); when it cannot be sent, answers 503 and frees r. */
void api__route_run(api_route_t *r, store_call_cb cb);
/* In a store callback: when `err` is a failure answers it (api__fail, or
 * api__fail_page for a list's page), frees r and returns 1; else 0. */
int api__route_failed(api_route_t *r, const gf_err_t *err);
int api__route_page_failed(api_route_t *r, const gf_err_t *err);

/* api__auth, and 403 unless the caller is an admin. 0, or answered and < 0. */
int api__auth_admin(api_t *api, gf_http_req_t *req, api_principal_t *p);

/* ?limit= and a numeric ?cursor= (an id, at most 19 digits); 0, or answered 400 and -1. */
int api__id_page_query(gf_http_req_t *req, int *limit, const char **cursor);

/*
 * api/audit.c: makes `call` (built, not yet run) write its audit row in its
 * own transaction (store_call_set_audit): actor the caller's `sub`, the
 * request's X-Request-Id, `action` ("credits.grant"), `target` (NULL:
 * none) and `detail` (a JSON object, stolen; NULL: {}).
 */
void api__audit_set(store_call_t *call, gf_http_req_t *req, const api_principal_t *who,
                    const char *action, const char *target, json_t *detail);

/* Route registration of each file. */
void api__generations_routes(api_t *api);
void api__credits_routes(api_t *api);
void api__audit_routes(api_t *api);
void api__events_routes(api_t *api);
void api__files_routes(api_t *api);
/* Frees the pose maps api/files.c keeps (api_free). */
void api__files_free(api_t *api);
void api__cors_routes(api_t *api);
/* api/lifecycle.c: DELETE of generations and uploads, the list of uploads. */
void api__lifecycle_routes(api_t *api);
/* api/web.c: GET /v1/openapi.json, and the demo page when FARM_DEMO=1. */
void api__web_routes(api_t *api);

/* A file built into farm-api (api/embed.cmake writes the table, ended by a NULL url). */
typedef struct {
    const char *url;  /* the path it is served at */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
} api_asset_t;
extern const api_asset_t api__assets[];

/* Closes every open event stream (at shutdown, before the queue closes). */
void api__events_close_all(api_t *api);

#endif
