/*
 * api/requeue.c - generations this process accepted (their credits held in
 * Postgres, answered 202) while Redis could not take them: kept here and
 * enqueued as soon as the queue is connected again, so such a generation
 * waits seconds for Redis, not a sweeper pass (issue #17). The sweeper still
 * enqueues what a crashed api kept (docs/operations.md).
 *
 * Invariants: an item is either on the list or in flight (one enqueue at a
 * time each), never both; the list holds at most API_REQUEUE_MAX items (more
 * are left to the sweeper, with a log line); the enqueue is idempotent, so a
 * timed-out one that did happen is harmless to send again.
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#define API_REQUEUE_MAX     10000
#define API_REQUEUE_TICK_MS 200

typedef struct api_requeue {
    struct api_requeue *next;
    api_t *api;
    char gen_id[37], user_id[37];
    char *tier, *payload;
    int64_t deadline_ms;
} requeue_t;

static const gf_log_ctx log_ctx = {.component = "api", .action = "enqueueing again"};

static void requeue_free(requeue_t *it)
{
    free(it->tier);
    free(it->payload);
    free(it);
}

static void requeue_push(api_t *api, requeue_t *it)
{
    it->next = api->requeue_head;
    api->requeue_head = it;
    api->requeue_n++;
}

static void on_requeued(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    (void)q;
    (void)res;
    requeue_t *it = data;
    api_t *api = it->api;
    if (err->code == GF_ECANCELED) { /* the queue is closing: the sweeper has it */
        requeue_free(it);
        return;
    }
    api->requeue_inflight--;
    gf_log_ctx ctx = log_ctx;
    ctx.generation_id = it->gen_id;
    if (err->code == 0) {
        GF_LOG(GF_LOG_INFO, &ctx, "enqueued once redis was back");
        requeue_free(it);
    } else if (err->code == GF_ETOOBIG || !api->requeue_on) {
        /* Over the user's active cap (or stopping): left to the sweeper. */
        gf_log_err(GF_LOG_WARN, &ctx, err);
        requeue_free(it);
    } else {
        requeue_push(api, it);
    }
}

static void on_tick(uv_timer_t *t)
{
    api_t *api = t->data;
    if (api->requeue_head == NULL || api->queue == NULL || !queue_is_connected(api->queue))
        return;
    requeue_t *list = api->requeue_head;
    api->requeue_head = NULL;
    api->requeue_n = 0;
    while (list) {
        requeue_t *it = list;
        list = it->next;
        queue_enqueue_req_t req = {.gen_id = it->gen_id,
                                   .user_id = it->user_id,
                                   .tier = it->tier,
                                   .payload = it->payload,
                                   .deadline_ms = it->deadline_ms};
        if (queue_enqueue(api->queue, &req, on_requeued, it) == 0)
            api->requeue_inflight++;
        else
            requeue_push(api, it); /* gone again: the next tick */
    }
}

void api__requeue_add(api_t *api, const queue_enqueue_req_t *req)
{
    gf_log_ctx ctx = log_ctx;
    ctx.generation_id = req->gen_id;
    if (!api->requeue_on || api->requeue_n + api->requeue_inflight >= API_REQUEUE_MAX) {
        GF_LOG(GF_LOG_WARN, &ctx, "accepted but not enqueued: the sweeper will enqueue it");
        return;
    }
    requeue_t *it = gf_xcalloc(1, sizeof(*it));
    it->api = api;
    snprintf(it->gen_id, sizeof(it->gen_id), "%s", req->gen_id);
    snprintf(it->user_id, sizeof(it->user_id), "%s", req->user_id);
    it->tier = gf_xstrdup(req->tier);
    it->payload = gf_xstrdup(req->payload ? req->payload : "");
    it->deadline_ms = req->deadline_ms;
    requeue_push(api, it);
    GF_LOG(GF_LOG_WARN, &ctx, "accepted but not enqueued: enqueued as soon as redis answers");
}

void api__requeue_start(api_t *api)
{
    uv_timer_init(api->loop, &api->requeue_timer);
    api->requeue_timer.data = api;
    uv_timer_start(&api->requeue_timer, on_tick, API_REQUEUE_TICK_MS, API_REQUEUE_TICK_MS);
    uv_unref((uv_handle_t *)&api->requeue_timer);
    api->requeue_on = 1;
}

void api__requeue_stop(api_t *api)
{
    if (!api->requeue_on)
        return;
    api->requeue_on = 0;
    uv_close((uv_handle_t *)&api->requeue_timer, NULL);
    size_t n = api->requeue_n;
    while (api->requeue_head) {
        requeue_t *it = api->requeue_head;
        api->requeue_head = it->next;
        requeue_free(it);
    }
    api->requeue_n = 0;
    if (n > 0)
        GF_LOG(GF_LOG_WARN, &log_ctx,
               "stopping with %zu generations not enqueued: the sweeper "
               "will enqueue them",
               n);
}
