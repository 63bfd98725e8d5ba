/*
 * api/accept.c - group commit of POST /v1/generations (docs/api.md
 * "Group-committed accepts"): the accepts that arrive in one loop turn go
 * to Postgres as one statement (store_call_accept_batch: one transaction,
 * each request with its own outcome), and the enqueues their callbacks make
 * then leave together too (queue/batch.c sends the enqueues of one loop
 * turn as one call).
 *
 * A batch is sent at the end of the loop turn it was collected in (a
 * uv_check handle; a uv_idle handle keeps the loop from waiting for I/O
 * meanwhile), unless every connection of the store's pool already carries
 * one of our batches: then it keeps collecting, and goes as soon as one of
 * them is answered. A lone request therefore never waits for company, and
 * under load the batches grow instead of queueing behind each other. A
 * batch holds at most FARM_API_ACCEPT_BATCH_MAX requests; a full one goes at
 * the end of the turn whatever is in flight.
 *
 * A batch whose answer is lost (store_call_t.outcome_unknown: the
 * connection dropped after it was sent, or Postgres said nothing past
 * statement_timeout) may have committed. API.md promises that a 503 charged
 * nothing, so the farm finds out before answering (api/resolve.c). A request
 * whose generation exists was accepted (its callback gets the outcome
 * "accepted", and it is enqueued as any other); the others committed nothing
 * and get the batch's failure.
 *
 * Invariants:
 * - Every request added gets its callback exactly once, never inside
 *   api__accept_add: with its own outcome, or with its batch's failure
 *   (Postgres down, timed out, the store closing), when nothing of the
 *   request was written. Only when the api stops before a lost batch is
 *   resolved do its requests get GF_EIO (a 500, which promises nothing).
 * - A batch is off the list before it is sent, and its callbacks run after
 *   the store's call is done with it, so a callback may add requests.
 * - The handles run only while something waits to be sent (no idle spin).
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    store_accept_item_t item; /* its strings are the caller's until its callback */
    api_accept_cb cb;
    void *data;
} pending_t;

struct api_accept_batch {
    struct api_accept_batch *next;
    api_t *api;
    store_call_t call;
    gf_err_t lost; /* a lost batch: how its call failed */
    int n;
    pending_t items[];
};

typedef struct api_accept_batch batch_t;

static void send_ready(api_t *api, int all);

static void on_check(uv_check_t *h)
{
    send_ready(h->data, 0);
}

static void on_idle(uv_idle_t *h)
{
    send_ready(h->data, 0);
}

static void arm(api_t *api)
{
    if (api->accept_armed)
        return;
    api->accept_armed = 1;
    uv_check_start(&api->accept_check, on_check);
    uv_idle_start(&api->accept_idle, on_idle);
}

static void disarm(api_t *api)
{
    if (!api->accept_armed)
        return;
    api->accept_armed = 0;
    uv_check_stop(&api->accept_check);
    uv_idle_stop(&api->accept_idle);
}

/* Gives every request of `b` the batch's `err`, then frees `b`. */
static void fail_all(batch_t *b, const gf_err_t *err)
{
    for (int i = 0; i < b->n; i++)
        b->items[i].cb(b->api, err, NULL, b->items[i].data);
    store_call_dispose(&b->call);
    free(b);
}

/* The api stops before it could learn whether the lost batch `b` committed. */
static void give_up(batch_t *b)
{
    gf_err_t e = {0};
    gf_err_set(&e, GF_EIO, "api", "the outcome of an accept batch is unknown (%s)", b->lost.msg);
    for (int i = 0; i < b->n; i++)
        b->items[i].cb(b->api, &e, NULL, b->items[i].data);
    free(b);
}

static void on_resolved(api_t *api, const gf_err_t *err, const store_accept_resolve_result_t *res,
                        void *data)
{
    batch_t *b = data;
    if (err->code < 0) { /* the api stops */
        give_up(b);
        return;
    }
    int accepted = 0;
    for (int i = 0; i < b->n; i++) {
        if (!res->accepted[i]) {
            b->items[i].cb(api, &b->lost, NULL, b->items[i].data);
            continue;
        }
        store_accept_outcome_t o = {0};
        snprintf(o.accept.generation_id, sizeof(o.accept.generation_id), "%s",
                 b->items[i].item.accept.id);
        snprintf(o.created_at, sizeof(o.created_at), "%s", res->created_at[i]);
        accepted++;
        b->items[i].cb(api, &o.err, &o, b->items[i].data);
    }
    gf_log_ctx ctx = {.component = "api", .action = "resolving a lost accept"};
    GF_LOG(GF_LOG_WARN, &ctx, "%d of %d accepts of a batch whose answer was lost had committed",
           accepted, b->n);
    free(b);
}

/* The batch's call failed after it was sent: it is kept until its outcome is known. */
static void lost(batch_t *b, const gf_err_t *err)
{
    const char *ids[STORE_ACCEPT_BATCH_MAX];
    for (int i = 0; i < b->n; i++)
        ids[i] = b->items[i].item.accept.id;
    b->lost = *err;
    store_backend_t backend = b->call.backend;
    store_call_dispose(&b->call);
    if (api__resolve(b->api, &backend, ids, (size_t)b->n, on_resolved, b) < 0)
        give_up(b);
}

static void on_batch_done(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    batch_t *b = data;
    api_t *api = b->api;
    api->accept_inflight--;
    if (err->code < 0) {
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "api", .action = "accepting"}, err);
        if (call->outcome_unknown)
            lost(b, err);
        else
            fail_all(b, err);
    } else {
        for (int i = 0; i < b->n; i++) {
            const store_accept_outcome_t *o = &call->res.accept_batch.items[i];
            b->items[i].cb(api, &o->err, o, b->items[i].data);
        }
        store_call_dispose(&b->call);
        free(b);
    }
    if (api->accept_on)
        send_ready(api, 0);
}

/* Sends `b` (already off the list); a batch that cannot be sent fails here. */
static void send_batch(api_t *api, batch_t *b)
{
    store_accept_item_t items[STORE_ACCEPT_BATCH_MAX];
    for (int i = 0; i < b->n; i++)
        items[i] = b->items[i].item;
    gf_metric_observe(api->m_accept_batch, b->n);
    gf_err_t err = {0};
    if (store_call_accept_batch(&b->call, items, (size_t)b->n) < 0) {
        gf_err_set(&err, GF_EINVAL, "api", "an accept batch that cannot be built");
        fail_all(b, &err);
        return;
    }
    if (api__store_exec(api, &b->call, on_batch_done, b) < 0) {
        err = b->call.err;
        fail_all(b, &err);
        return;
    }
    api->accept_inflight++;
}

/*
 * Sends the collected batches that may go: while fewer of ours than the
 * pool's connections are in flight, or when full; `all`: every one.
 */
static void send_ready(api_t *api, int all)
{
    long long max = api->cfg->api_accept_batch_max;
    while (api->accept_head &&
           (all || api->accept_inflight < api->cfg->db_pool_size || api->accept_head->n >= max)) {
        batch_t *b = api->accept_head;
        api->accept_head = b->next;
        if (api->accept_head == NULL)
            api->accept_tail = NULL;
        send_batch(api, b);
    }
    disarm(api); /* what is left goes when a batch in flight is answered */
}

int api__accept_add(api_t *api, const store_accept_item_t *item, api_accept_cb cb, void *data)
{
    if (!api->accept_on)
        return GF_ECANCELED;
    int max = (int)api->cfg->api_accept_batch_max;
    batch_t *b = api->accept_tail;
    if (b == NULL || b->n >= max) {
        b = gf_xcalloc(1, sizeof(*b) + (size_t)max * sizeof(b->items[0]));
        b->api = api;
        if (api->accept_tail)
            api->accept_tail->next = b;
        else
            api->accept_head = b;
        api->accept_tail = b;
    }
    b->items[b->n++] = (pending_t){.item = *item, .cb = cb, .data = data};
    if (api->accept_inflight < api->cfg->db_pool_size || b->n >= max)
        arm(api);
    return 0;
}

void api__accept_start(api_t *api)
{
    uv_check_init(api->loop, &api->accept_check);
    uv_idle_init(api->loop, &api->accept_idle);
    api->accept_check.data = api;
    api->accept_idle.data = api;
    api->m_accept_batch =
        gf_metric_with(gf_metrics_histogram(
                           api->metrics, "farm_api_accept_batch_size",
                           "accepts sent to Postgres as one statement (FARM_API_ACCEPT_BATCH_MAX)",
                           NULL, (const double[]){1, 2, 4, 8, 16, 32, 64, 128, 256}, 9),
                       NULL, NULL, NULL);
    api->accept_on = 1;
}

void api__accept_stop(api_t *api)
{
    if (!api->accept_on)
        return;
    send_ready(api, 1); /* before the store closes: they end with its GF_ECANCELED at worst */
    api->accept_on = 0;
    uv_close((uv_handle_t *)&api->accept_check, NULL);
    uv_close((uv_handle_t *)&api->accept_idle, NULL);
}
