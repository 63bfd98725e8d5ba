/*
 * api/resolve.c - what became of writes whose answer Postgres lost
 * (store_call_t.outcome_unknown: the connection dropped after the call was
 * sent, or Postgres said nothing past its statement_timeout + 5 s). A 503
 * promises that nothing was written (API.md), so the api finds out before
 * it answers: farm_accept_resolve ends the backend the call ran on and
 * waits until it has (nothing of the call can commit afterwards), then says
 * which of the call's new rows, generations or uploads by their ids, exist.
 * A delete's (api__resolve_write) is the same with farm_delete_resolve,
 * which answers as the delete itself: the delete is idempotent, so when it
 * did not commit it is run there and then. An admin grant's, with
 * farm_credit_resolve: found by the id the api gave it (its audit row's
 * detail.op), else run there and then. Asked again every
 * RESOLVE_RETRY_MS until Postgres answers.
 *
 * Invariants:
 * - A resolution's callback runs exactly once, never inside api__resolve
 *   (every ask runs from its timer): with the answer, or GF_ECANCELED when
 *   the api stops first.
 * - A resolution is on api->resolving from api__resolve until its callback;
 *   its timer is closed after that, and then it is freed.
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#define RESOLVE_RETRY_MS 500

struct api_resolve {
    struct api_resolve *next;
    api_t *api;
    store_call_t own;   /* an accept's resolution */
    store_call_t *call; /* the one asked: &own, or a delete's (the caller's) */
    store_backend_t backend;
    const char *ids[STORE_ACCEPT_BATCH_MAX]; /* an accept's: the caller's, until the callback */
    size_t n;
    uv_timer_t retry;           /* the pause before asking again */
    api_resolve_cb cb;          /* an accept's */
    api_resolve_build_fn build; /* a delete's or a grant's, and its callback: */
    store_call_cb done;
    void *data;
};

typedef struct api_resolve resolve_t;

static void ask(resolve_t *r);

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Off the list, the callback, then the timer closes and `r` is freed. */
static void finish(resolve_t *r, const gf_err_t *err, const store_accept_resolve_result_t *res)
{
    resolve_t **pp = &r->api->resolving;
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    if (r->build) { /* the call is the caller's: it may be gone once `done` returns */
        r->done(r->api->store, err, r->call, r->data);
    } else {
        r->cb(r->api, err, res, r->data);
        store_call_dispose(&r->own);
    }
    uv_close((uv_handle_t *)&r->retry, on_closed);
}

static void on_retry(uv_timer_t *t)
{
    ask(t->data);
}

/* Asks again after a pause, or, when the api stops, gives up. */
static void again(resolve_t *r, const gf_err_t *err)
{
    store_call_dispose(r->call);
    if (r->api->resolve_on) {
        gf_log_err(GF_LOG_WARN,
                   &(gf_log_ctx){.component = "api", .action = "resolving a lost write"}, err);
        uv_timer_start(&r->retry, on_retry, RESOLVE_RETRY_MS, 0);
        return;
    }
    gf_err_t e = {0};
    gf_err_set(&e, GF_ECANCELED, "api", "the api stopped before it could learn the outcome");
    finish(r, &e, NULL);
}

static void on_answer(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    resolve_t *r = data;
    /* A delete's not_found and not_deletable, and a grant's insufficient credits, are its
     * answer, not a failure to get one. */
    int answered =
        err->code == 0 || (r->build && (err->code == GF_ENOTFOUND || err->code == GF_ECONFLICT ||
                                        err->code == GF_ECREDITS));
    if (!answered) {
        again(r, err);
        return;
    }
    finish(r, err, r->build ? NULL : &call->res.accept_resolve);
}

/* From the timer: the first ask on the loop turn after api__resolve(_write), the others
 * after a pause. So the callback never runs inside them. */
static void ask(resolve_t *r)
{
    gf_err_t err = {0};
    if (r->build)
        r->build(r->call, &r->backend, r->data);
    int rc = r->build ? 0 : store_call_accept_resolve(r->call, &r->backend, r->ids, r->n);
    if (r->api->store != NULL && rc == 0 && api__store_exec(r->api, r->call, on_answer, r) == 0)
        return;
    err = r->call->err;
    if (err.code == 0)
        gf_err_set(&err, GF_EUNAVAIL, "api", "the store is closed");
    again(r, &err);
}

/* A resolution on the list, its first ask due on the next loop turn. */
static resolve_t *resolve_new(api_t *api, const store_backend_t *backend, void *data)
{
    resolve_t *r = gf_xcalloc(1, sizeof(*r));
    r->api = api;
    r->call = &r->own;
    r->backend = *backend;
    r->data = data;
    uv_timer_init(api->loop, &r->retry);
    r->retry.data = r;
    r->next = api->resolving;
    api->resolving = r;
    uv_timer_start(&r->retry, on_retry, 0, 0);
    return r;
}

int api__resolve(api_t *api, const store_backend_t *backend, const char *const ids[], size_t n,
                 api_resolve_cb cb, void *data)
{
    if (!api->resolve_on)
        return GF_ECANCELED;
    if (n == 0 || n > STORE_ACCEPT_BATCH_MAX)
        return GF_EINVAL;
    resolve_t *r = resolve_new(api, backend, data);
    memcpy(r->ids, ids, n * sizeof(ids[0]));
    r->n = n;
    r->cb = cb;
    return 0;
}

int api__resolve_write(api_t *api, const store_backend_t *backend, store_call_t *call,
                       api_resolve_build_fn build, store_call_cb done, void *data)
{
    if (!api->resolve_on)
        return GF_ECANCELED;
    resolve_t *r = resolve_new(api, backend, data);
    r->call = call;
    r->build = build;
    r->done = done;
    return 0;
}

void api__resolve_start(api_t *api)
{
    api->resolve_on = 1;
}

void api__resolve_stop(api_t *api)
{
    api->resolve_on = 0;
    /* Those waiting to ask again give up now; one asking ends with the store's close. */
    for (resolve_t *r = api->resolving, *next; r; r = next) {
        next = r->next;
        if (uv_is_active((uv_handle_t *)&r->retry)) {
            uv_timer_stop(&r->retry);
            gf_err_t e = {0};
            gf_err_set(&e, GF_ECANCELED, "api",
                       "the api stopped before it could learn the outcome");
            finish(r, &e, NULL);
        }
    }
}
