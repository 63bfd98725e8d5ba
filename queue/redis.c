/*
 * queue/redis.c - the async Redis connection behind queue_t.
 *
 * Invariants:
 * - At most one hiredis context exists; `ac` is NULL whenever it is gone
 *   (hiredis frees it after the connect-failure or disconnect callback).
 * - While not connected, the one timer `reconnect` is armed: either as the
 *   connect timeout of an attempt in progress, or as the backoff (100 ms
 *   doubling to 5 s, with jitter) before the next attempt.
 * - hiredis 0.14's libuv adapter drops poll errors (a refused connect, a
 *   reset) without telling hiredis, so a connect is bounded by our own timer
 *   and a PING that times out drops the connection; neither can hang forever.
 * - Each operation has its own timeout timer; its callback runs once, from
 *   whichever of reply, disconnect or timeout comes first. The operation is
 *   freed when both the hiredis callback and the timer close have happened.
 */
#include "queue.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

struct queue {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    gf_url_t url;
    int db;
    redisAsyncContext *ac;
    int connected;
    int closing;
    uv_timer_t reconnect;
    uint64_t backoff_ms;
    int handles_open;
    int down_logged;
    queue_closed_cb closed_cb;
    void *closed_data;
};

typedef struct {
    queue_t *q;
    uv_timer_t timer;
    int done;
    int refs; /* the pending hiredis callback and the timer close */
    queue_ping_cb cb;
    void *data;
} queue_op_t;

static const gf_log_ctx log_ctx = {.component = "queue"};

static void queue_connect(queue_t *q);
static void queue_maybe_closed(queue_t *q);

static void on_reconnect_timer(uv_timer_t *t)
{
    queue_connect(t->data);
}

static void schedule_reconnect(queue_t *q)
{
    if (q->closing)
        return;
    uint64_t jitter = q->backoff_ms / 4 ? (uint64_t)rand() % (q->backoff_ms / 4) : 0;
    uv_timer_start(&q->reconnect, on_reconnect_timer, q->backoff_ms + jitter, 0);
    q->backoff_ms = q->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : q->backoff_ms * 2;
}

/* Drops the current context; on_disconnect (when it was connected) or we reschedule. */
static void queue_drop(queue_t *q)
{
    redisAsyncContext *ac = q->ac;
    if (ac == NULL)
        return;
    if (q->connected) {
        redisAsyncFree(ac); /* runs on_disconnect, which reschedules */
        return;
    }
    q->ac = NULL;
    redisAsyncFree(ac);
    schedule_reconnect(q);
}

static void on_connect_timeout(uv_timer_t *t)
{
    queue_t *q = t->data;
    if (!q->down_logged)
        GF_LOG(GF_LOG_WARN, &log_ctx, "redis at %s:%d not answering (retrying)", q->url.host,
               q->url.port ? q->url.port : 6379);
    q->down_logged = 1;
    queue_drop(q);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    queue_t *q = ac->data;
    if (status != REDIS_OK) {
        if (!q->down_logged)
            GF_LOG(GF_LOG_WARN, &log_ctx, "redis at %s:%d unreachable: %s (retrying)", q->url.host,
                   q->url.port ? q->url.port : 6379, ac->errstr);
        q->down_logged = 1;
        q->ac = NULL; /* hiredis frees the context after this callback */
        schedule_reconnect(q);
        queue_maybe_closed(q);
        return;
    }
    uv_timer_stop(&q->reconnect);
    q->connected = 1;
    q->backoff_ms = RECONNECT_MIN_MS;
    q->down_logged = 0;
    GF_LOG(GF_LOG_INFO, &log_ctx, "connected to redis at %s:%d", q->url.host,
           q->url.port ? q->url.port : 6379);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    queue_t *q = ac->data;
    q->ac = NULL;
    q->connected = 0;
    if (!q->closing) {
        GF_LOG(GF_LOG_WARN, &log_ctx, "lost redis connection%s%s (reconnecting)",
               status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
        schedule_reconnect(q);
    }
    queue_maybe_closed(q);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    (void)ac;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        GF_LOG(GF_LOG_ERROR, &log_ctx, "redis refused %s: %s", (const char *)privdata, reply->str);
}

static void queue_connect(queue_t *q)
{
    if (q->closing || q->ac != NULL)
        return;
    redisAsyncContext *ac = redisAsyncConnect(q->url.host, q->url.port ? q->url.port : 6379);
    if (ac == NULL || ac->err) {
        if (!q->down_logged)
            GF_LOG(GF_LOG_WARN, &log_ctx, "cannot connect to redis: %s",
                   ac ? ac->errstr : "out of memory");
        q->down_logged = 1;
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(q);
        return;
    }
    ac->data = q;
    uv_timer_start(&q->reconnect, on_connect_timeout, (uint64_t)q->cfg->redis_connect_timeout_ms,
                   0);
    redisLibuvAttach(ac, q->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    q->ac = ac;
    /* Commands queued now go out, in order, as soon as the connection is up. */
    if (q->url.password && q->url.password[0])
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", q->url.password);
    if (q->db > 0)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", q->db);
    /* hiredis 0.14 learns a connect's outcome only once it has bytes to write. */
    redisAsyncCommand(ac, on_setup_reply, "PING", "PING");
}

queue_t *queue_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    queue_t *q = gf_xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->cfg = cfg;
    if (gf_url_parse(cfg->redis_url, &q->url, err) < 0) {
        free(q);
        return NULL;
    }
    const char *path = q->url.path;
    if (path[0] == '/' && path[1] != '\0') {
        char *end;
        long db = strtol(path + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 15) {
            gf_url_dispose(&q->url);
            free(q);
            gf_err_set(err, GF_EINVAL, "queue", "FARM_REDIS_URL: the path must be a db number");
            return NULL;
        }
        q->db = (int)db;
    }
    q->backoff_ms = RECONNECT_MIN_MS;
    uv_timer_init(loop, &q->reconnect);
    q->reconnect.data = q;
    q->handles_open = 1;
    queue_connect(q);
    return q;
}

int queue_is_connected(const queue_t *q)
{
    return q->connected;
}

static void op_unref(queue_op_t *op)
{
    if (--op->refs == 0)
        free(op);
}

static void on_op_timer_closed(uv_handle_t *h)
{
    op_unref(h->data);
}

static void op_finish(queue_op_t *op, int status)
{
    if (op->done)
        return;
    op->done = 1;
    uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
    op->cb(op->q, status, op->data);
}

static void on_op_timeout(uv_timer_t *t)
{
    queue_op_t *op = t->data;
    queue_t *q = op->q;
    op_finish(op, GF_ETIMEDOUT);
    /* A connection that cannot answer a PING in time is not worth keeping. */
    GF_LOG(GF_LOG_WARN, &log_ctx, "redis did not answer in time: reconnecting");
    queue_drop(q);
}

static void on_ping_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    queue_op_t *op = privdata;
    redisReply *reply = r;
    (void)ac;
    int status = 0;
    if (reply == NULL)
        status = op->q->closing ? GF_ECANCELED : GF_EUNAVAIL;
    else if (reply->type == REDIS_REPLY_ERROR)
        status = GF_EUNAVAIL;
    op_finish(op, status);
    op_unref(op);
}

int queue_ping(queue_t *q, uint64_t timeout_ms, queue_ping_cb cb, void *data)
{
    if (q->closing || !q->connected || q->ac == NULL)
        return GF_EUNAVAIL;
    queue_op_t *op = gf_xcalloc(1, sizeof(*op));
    op->q = q;
    op->cb = cb;
    op->data = data;
    op->refs = 2;
    if (redisAsyncCommand(q->ac, on_ping_reply, op, "PING") != REDIS_OK) {
        free(op);
        return GF_EUNAVAIL;
    }
    uv_timer_init(q->loop, &op->timer);
    op->timer.data = op;
    uv_timer_start(&op->timer, on_op_timeout, timeout_ms, 0);
    return 0;
}

static void queue_maybe_closed(queue_t *q)
{
    if (!q->closing || q->ac != NULL || q->handles_open > 0)
        return;
    queue_closed_cb cb = q->closed_cb;
    void *data = q->closed_data;
    gf_url_dispose(&q->url);
    free(q);
    if (cb)
        cb(NULL, data);
}

static void on_reconnect_closed(uv_handle_t *h)
{
    queue_t *q = h->data;
    q->handles_open--;
    queue_maybe_closed(q);
}

void queue_close(queue_t *q, queue_closed_cb cb, void *data)
{
    if (q->closing)
        return;
    q->closing = 1;
    q->closed_cb = cb;
    q->closed_data = data;
    uv_close((uv_handle_t *)&q->reconnect, on_reconnect_closed);
    if (q->ac != NULL && q->connected) {
        redisAsyncDisconnect(q->ac); /* pending replies first, then on_disconnect */
    } else if (q->ac != NULL) {
        /* Still connecting: hiredis would never call on_disconnect, so free it now. */
        redisAsyncContext *ac = q->ac;
        q->ac = NULL;
        redisAsyncFree(ac);
    }
    queue_maybe_closed(q);
}
