/*
 * api/lifecycle.c - DELETE /v1/generations/{id}, GET /v1/uploads and
 * DELETE /v1/uploads/{id} (API.md; docs/storage.md, "Lifecycle").
 *
 * A delete is decided in Postgres first, in one transaction
 * (farm_generation_delete, farm_upload_delete): from then on the generation
 * or upload is gone for its user, and its objects are listed in
 * storage_deletions. The api then deletes the objects it may delete at once
 * through storage/ and answers 204 once they have been tried, or after
 * DELETE_ANSWER_WAIT_MS while storage is slow (the deletes go on); what
 * storage refused, and what an open generation still reads, the sweeper
 * deletes later. A delete that fails halfway never leaves a generation half-visible.
 * A delete whose answer was lost (outcome_unknown) may have committed, and
 * its retry would then be 404: the api finds out first (api__resolve_write)
 * and answers what the delete did, 204 with its objects deleted as here.
 *
 * deleted() is the one place where a delete has succeeded.
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

/* How long a DELETE waits for its objects' deletes before it answers anyway. */
#define DELETE_ANSWER_WAIT_MS 5000

typedef struct {
    api_route_t r; /* r.req: NULL once answered */
    char id[37];
    const char *what;   /* "generation" | "upload" */
    const char *action; /* its audit action */
    int resolving;      /* the answer was lost: api__resolve_write is finding it out */
    uv_timer_t timer;   /* DELETE_ANSWER_WAIT_MS, while the objects are deleted */
    int timer_init;
} del_ctx_t;

static del_ctx_t *ctx_new(api_t *api, gf_http_req_t *req, const char *what)
{
    del_ctx_t *c = api__route_new(api, req, sizeof(del_ctx_t), NULL);
    c->what = what;
    return c;
}

static void ctx_free(del_ctx_t *c)
{
    api__route_free(&c->r);
}

static void on_timer_closed(uv_handle_t *h)
{
    ctx_free(h->data);
}

/* Answers 204 unless that was done, then frees the context (once its timer is closed). */
static void answer_deleted(del_ctx_t *c)
{
    if (c->r.req)
        gf_http_respond(c->r.req, 204, NULL, "", 0);
    c->r.req = NULL;
    if (c->timer_init)
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    else
        ctx_free(c);
}

/* Storage is slow: the delete is committed, so answer now; the deletes go on. */
static void on_wait_over(uv_timer_t *t)
{
    del_ctx_t *c = t->data;
    gf_log_ctx ctx = {
        .component = "api", .request_id = gf_http_req_id(c->r.req), .user_id = c->r.who.sub};
    GF_LOG(GF_LOG_WARN, &ctx, "%s %s: objects still being deleted after %d ms; answered", c->what,
           c->id, DELETE_ANSWER_WAIT_MS);
    gf_http_respond(c->r.req, 204, NULL, "", 0);
    c->r.req = NULL;
}

static void on_reported(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    del_ctx_t *c = data;
    if (err->code < 0) /* the rows stay: the sweeper deletes their (gone) objects again */
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "api", .user_id = c->r.who.sub}, err);
    answer_deleted(c);
}

/* The objects were tried: those deleted leave storage_deletions; the others wait for the
 * sweeper. */
static void on_objects_deleted(storage_t *s, const gf_err_t *err, const char *const *deleted,
                               size_t n_deleted, void *data)
{
    (void)s;
    del_ctx_t *c = data;
    if (err->code < 0) {
        gf_log_ctx ctx = {.component = "api",
                          .request_id = c->r.req ? gf_http_req_id(c->r.req) : NULL,
                          .user_id = c->r.who.sub,
                          .action = "deleting objects (the sweeper retries)"};
        gf_log_err(GF_LOG_WARN, &ctx, err);
    }
    store_call_dispose(&c->r.call);
    if (n_deleted == 0) {
        answer_deleted(c);
        return;
    }
    store_call_storage_deleted(&c->r.call, deleted, n_deleted);
    if (api__store_exec(c->r.api, &c->r.call, on_reported, c) < 0)
        answer_deleted(c);
}

/* The delete is committed in Postgres: the one place a delete succeeds. */
static void deleted(del_ctx_t *c)
{
    const store_keys_result_t *k = &c->r.call.res.keys;
    gf_log_ctx ctx = {.component = "api",
                      .request_id = gf_http_req_id(c->r.req),
                      .user_id = c->r.who.sub,
                      .generation_id = strcmp(c->what, "generation") == 0 ? c->id : NULL};
    GF_LOG(GF_LOG_INFO, &ctx, "%s %s deleted by its owner: %zu object(s) to delete now", c->what,
           c->id, k->n);
    if (k->n == 0) {
        answer_deleted(c);
        return;
    }
    int rc = c->r.api->storage == NULL
                 ? GF_ECANCELED
                 : storage_delete_keys(c->r.api->storage, (const char *const *)k->keys, k->n,
                                       on_objects_deleted, c);
    if (rc == 0) {
        uv_timer_init(c->r.api->loop, &c->timer);
        c->timer.data = c;
        c->timer_init = 1;
        uv_timer_start(&c->timer, on_wait_over, DELETE_ANSWER_WAIT_MS, 0);
        return;
    }
    GF_LOG(GF_LOG_WARN, &ctx, "cannot delete the objects now (%s): the sweeper will",
           gf_status_name(rc));
    answer_deleted(c);
}

static void on_marked(store_t *st, const gf_err_t *err, store_call_t *call, void *data);

/* The call that resolves a lost delete, audited as the delete (it may be the one that
 * deletes). */
static void build_resolve(store_call_t *call, const store_backend_t *backend, void *data)
{
    del_ctx_t *c = data;
    store_call_delete_resolve(call, backend, c->what, c->id, c->r.who.sub);
    api__audit_set(call, c->r.req, &c->r.who, c->action, c->id, NULL);
}

/* The delete may have committed: a 503 would say it did not (API.md), so find out. 0, or
 * the api is stopping. */
static int resolve(del_ctx_t *c, store_call_t *call)
{
    store_backend_t backend = call->backend;
    store_call_dispose(call);
    c->resolving = 1;
    return api__resolve_write(c->r.api, &backend, &c->r.call, build_resolve, on_marked, c);
}

static void on_marked(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    del_ctx_t *c = data;
    char msg[64];
    switch (err->code) {
    case GF_OK:
        deleted(c);
        return;
    case GF_ENOTFOUND:
        snprintf(msg, sizeof(msg), "no such %s", c->what);
        api__error(c->r.req, 404, "not_found", msg, NULL);
        break;
    case GF_ECONFLICT:
        api__error(c->r.req, 409, "not_deletable",
                   "the generation is still queued or running; cancel it first", NULL);
        break;
    default:
        if (call->outcome_unknown && !c->resolving && resolve(c, call) == 0)
            return;
        /* Still unknown (the api stops first): a 500, which promises nothing. */
        api__fail(c->r.req, c->resolving ? GF_EIO : err->code, err);
    }
    ctx_free(c);
}

/* Authenticates and checks the :id; 0, or answered (and freed). */
static int del_start(del_ctx_t *c)
{
    if (api__auth(c->r.api, c->r.req, &c->r.who, 0) < 0)
        goto fail;
    const char *id = gf_http_req_param(c->r.req, "id");
    if (!api_is_uuid(id)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no such %s", c->what);
        api__error(c->r.req, 404, "not_found", msg, NULL);
        goto fail;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    return 0;
fail:
    ctx_free(c);
    return -1;
}

/* A DELETE of a `what`: `mark` is its store call, `action` its audit action. */
static void delete_route(api_t *api, gf_http_req_t *req, const char *what,
                         void (*mark)(store_call_t *c, const char *id, const char *user_id),
                         const char *action)
{
    del_ctx_t *c = ctx_new(api, req, what);
    if (del_start(c) < 0)
        return;
    c->action = action;
    mark(&c->r.call, c->id, c->r.who.sub);
    api__audit_set(&c->r.call, req, &c->r.who, action, c->id, NULL);
    api__route_run(&c->r, on_marked);
}

static void on_delete_generation(gf_http_req_t *req, void *data)
{
    delete_route(data, req, "generation", store_call_generation_delete, "generation.delete");
}

static void on_delete_upload(gf_http_req_t *req, void *data)
{
    delete_route(data, req, "upload", store_call_upload_delete, "upload.delete");
}

/* --- GET /v1/uploads ----------------------------------------------------------------- */

static void on_uploads_page(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    del_ctx_t *c = data;
    if (api__route_page_failed(&c->r, err))
        return;
    const store_uploads_result_t *l = &call->res.uploads;
    json_t *items = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const store_upload_t *u = &l->items[i];
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:i, s:i, s:I, s:s}", "id", u->id, "format",
                                        u->format, "width", u->width, "height", u->height, "bytes",
                                        (json_int_t)u->bytes, "created_at", u->created_at));
    }
    api__json(c->r.req, 200,
              json_pack("{s:o, s:o}", "items", items, "next_cursor",
                        l->next_cursor ? json_string(l->next_cursor) : json_null()));
    ctx_free(c);
}

static void on_list_uploads(gf_http_req_t *req, void *data)
{
    del_ctx_t *c = ctx_new(data, req, "upload");
    if (api__auth(c->r.api, req, &c->r.who, 0) < 0) {
        ctx_free(c);
        return;
    }
    const char *cursor = api__query(req, "cursor");
    int limit = api__parse_limit(api__query(req, "limit"));
    const char *bad = limit < 0 ? "limit" : !api__list_cursor_ok(cursor) ? "cursor" : NULL;
    if (bad != NULL) {
        api__error(req, 400, "invalid_request", "invalid query parameter", bad);
        ctx_free(c);
        return;
    }
    store_call_uploads(&c->r.call, c->r.who.sub, limit, cursor);
    api__route_run(&c->r, on_uploads_page);
}

void api__lifecycle_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "DELETE", "/v1/generations/:id", 0, on_delete_generation, api);
    gf_httpd_route(api->httpd, "GET", "/v1/uploads", 0, on_list_uploads, api);
    gf_httpd_route(api->httpd, "DELETE", "/v1/uploads/:id", 0, on_delete_upload, api);
}
