/*
 * queue/redis.c - the async Redis connections behind queue_t: the command
 * connection and, once a watch or a cancel listener needs it, the subscriber.
 *
 * Invariants (per connection):
 * - At most one hiredis context exists; `ac` is NULL whenever it is gone
 *   (hiredis frees it after the connect-failure or disconnect callback).
 * - While not ready, the one timer `reconnect` is armed: as the connect
 *   timeout of an attempt in progress, as the setup timeout of a connection
 *   whose setup commands have not all answered yet, or as the backoff (100 ms
 *   doubling to 5 s, with jitter) before the next attempt. The backoff starts
 *   again from 100 ms only once a connection is ready.
 * - hiredis 0.14's libuv adapter drops poll errors (a refused connect, a
 *   reset) without telling hiredis, so a connect and the setup after it are
 *   bounded by our own timer, and an operation that times out drops the
 *   connection; none of them can hang forever. (A connect that lands while
 *   Redis shuts down can be accepted by the kernel and then never answered.
 *   Without the setup timeout such a connection stayed "connected" and never
 *   ready, and every operation failed fast, without a timeout to notice.)
 * - From queue_close on, `reconnect` bounds the close instead: hiredis
 *   disconnects only once every pending reply is in (an operation's, a setup
 *   command's, the probe's PUBLISH), so a connection still waiting for one
 *   FARM_QUEUE_OP_TIMEOUT_MS after the close began is dropped, and what
 *   still waited on it ends with GF_ECANCELED. The timer is closed when the
 *   connection is gone. (A Redis that went silent with the TCP connection up
 *   otherwise held a stopping process until it was killed.)
 * - `ready` is set only when the setup commands queued at connect have all
 *   answered (function library loaded; SUBSCRIBE confirmed), so an operation
 *   never reaches a Redis that lacks our library except after a FUNCTION
 *   FLUSH, which ops.c handles (load, then the same call again).
 */
#include "async.h"

#include <hiredis/adapters/libuv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define QUEUE_PROBE_MS   3000

static const gf_log_ctx log_ctx = {.component = "queue"};

static void conn_connect(queue__conn_t *c);

static int port_of(const queue_t *q)
{
    return q->url.port ? q->url.port : 6379;
}

static void on_reconnect_timer(uv_timer_t *t)
{
    conn_connect(t->data);
}

static void schedule_reconnect(queue__conn_t *c)
{
    if (c->q->closing)
        return;
    uint64_t jitter = c->backoff_ms / 4 ? (uint64_t)rand() % (c->backoff_ms / 4) : 0;
    uv_timer_start(&c->reconnect, on_reconnect_timer, c->backoff_ms + jitter, 0);
    c->backoff_ms = c->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : c->backoff_ms * 2;
}

/* Drops the current context; on_disconnect (when it was connected) or we reschedule. */
static void conn_drop(queue__conn_t *c)
{
    redisAsyncContext *ac = c->ac;
    if (ac == NULL)
        return;
    if (c->connected) {
        redisAsyncFree(ac); /* runs on_disconnect, which reschedules */
        return;
    }
    c->ac = NULL;
    redisAsyncFree(ac);
    schedule_reconnect(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
    queue__conn_t *c = t->data;
    if (!c->down_logged)
        GF_LOG(GF_LOG_WARN, &log_ctx, "redis at %s:%d not answering (retrying)", c->q->url.host,
               port_of(c->q));
    c->down_logged = 1;
    conn_drop(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    queue__conn_t *c = ac->data;
    if (status != REDIS_OK) {
        if (!c->down_logged)
            GF_LOG(GF_LOG_WARN, &log_ctx, "redis at %s:%d unreachable: %s (retrying)",
                   c->q->url.host, port_of(c->q), ac->errstr);
        c->down_logged = 1;
        c->ac = NULL; /* hiredis frees the context after this callback */
        schedule_reconnect(c);
        queue__maybe_closed(c->q);
        return;
    }
    c->connected = 1;
    /* The setup commands must answer within the operation timeout (see above). */
    uv_timer_start(&c->reconnect, on_connect_timeout, (uint64_t)c->q->conf.op_timeout_ms, 0);
    if (c->down_logged || !c->subscriber)
        GF_LOG(GF_LOG_INFO, &log_ctx, "connected to redis at %s:%d (%s)", c->q->url.host,
               port_of(c->q), c->name);
    c->down_logged = 0;
}

static void on_reconnect_closed(uv_handle_t *h)
{
    queue__conn_t *c = h->data;
    c->timer_open = 0;
    queue__maybe_closed(c->q);
}

static void conn_timer_close(queue__conn_t *c)
{
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->reconnect))
        uv_close((uv_handle_t *)&c->reconnect, on_reconnect_closed);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    queue__conn_t *c = ac->data;
    c->ac = NULL;
    c->connected = 0;
    c->ready = 0;
    if (!c->q->closing) {
        GF_LOG(GF_LOG_WARN, &log_ctx, "lost redis connection (%s)%s%s (reconnecting)", c->name,
               status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
        schedule_reconnect(c);
    } else {
        conn_timer_close(c); /* the close's bound, no longer needed */
    }
    queue__maybe_closed(c->q);
}

/*
 * One setup reply is in. A SUBSCRIBE sent later on a ready connection (a
 * channel needed only now) comes here too, with nothing pending: the
 * subscriber is "ready" again, so every watch re-reads what was published
 * before the subscription took.
 */
static void setup_done(queue__conn_t *c)
{
    if (c->setup_pending > 0)
        c->setup_pending--;
    if (c->setup_pending > 0 || c->ac == NULL)
        return;
    uv_timer_stop(&c->reconnect);
    c->backoff_ms = RECONNECT_MIN_MS;
    c->ready = 1;
    if (c->subscriber)
        queue__sub_on_ready(c->q);
    else
        queue__cmd_on_ready(c->q);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    queue__conn_t *c = ac->data;
    redisReply *reply = r;
    if (reply == NULL)
        return; /* the connection went away; on_disconnect deals with it */
    if (reply->type == REDIS_REPLY_ERROR) {
        GF_LOG(GF_LOG_ERROR, &log_ctx, "redis refused %s: %s", (const char *)privdata, reply->str);
        conn_drop(c);
        return;
    }
    setup_done(c);
}

static void on_library_listed(redisAsyncContext *ac, void *r, void *privdata)
{
    queue__conn_t *c = ac->data;
    (void)privdata;
    if (r == NULL)
        return;
    if (!queue__reply_lists_library(r)) {
        GF_LOG(GF_LOG_ERROR, &log_ctx,
               "redis refused FUNCTION LOAD: out of memory (maxmemory), and the library is not "
               "there");
        conn_drop(c);
        return;
    }
    setup_done(c);
}

static void on_library_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    queue__conn_t *c = ac->data;
    redisReply *reply = r;
    (void)privdata;
    if (reply == NULL)
        return;
    if (queue__reply_is_oom(reply)) {
        /* A full Redis refuses the load, not the reads: ready if the library is there. */
        redisAsyncCommand(ac, on_library_listed, NULL, "FUNCTION LIST LIBRARYNAME %s",
                          c->q->conf.lib_name);
        return;
    }
    if (!queue__reply_loaded(reply)) {
        GF_LOG(GF_LOG_ERROR, &log_ctx, "redis refused FUNCTION LOAD: %s",
               reply->type == REDIS_REPLY_ERROR ? reply->str : "bad answer");
        conn_drop(c);
        return;
    }
    setup_done(c);
}

/* The subscriber's one callback: the SUBSCRIBE confirmations, then every message. */
static void on_sub_message(redisAsyncContext *ac, void *r, void *privdata)
{
    queue__conn_t *c = ac->data;
    redisReply *reply = r;
    (void)privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    const redisReply *kind = reply->element[0], *chan = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0)
        setup_done(c);
    else if (strcmp(kind->str, "message") != 0 || reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    else if (strcmp(chan->str, c->q->probe_channel) == 0)
        c->q->probe_sent_ms = 0; /* the probe came back: the subscription works */
    else
        queue__sub_on_message(c->q, reply->element[2]->str, reply->element[2]->len);
}

/*
 * The subscriber's liveness probe. A subscriber only reads, so a connection
 * that died without a word (hiredis 0.14's libuv adapter drops poll errors)
 * would leave every watch waiting forever. Every QUEUE_PROBE_MS the command
 * connection publishes on this process's own probe channel; the subscriber
 * is dropped, and so reconnected with every watch re-read, when Redis says
 * nobody is subscribed to it or the message is not back within the
 * operation timeout.
 */
static void sub_deaf(queue_t *q, const char *why)
{
    GF_LOG(GF_LOG_WARN, &log_ctx, "the event subscription %s: reconnecting it", why);
    q->probe_sent_ms = 0;
    conn_drop(&q->sub);
}

static void on_probe_published(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    (void)ac;
    if (reply == NULL)
        return; /* the command connection went away (or the queue is closing) */
    queue_t *q = privdata;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && q->probe_sent_ms &&
        q->sub.ready && !q->closing)
        sub_deaf(q, "is not subscribed any more");
}

static void on_probe_tick(uv_timer_t *t)
{
    queue_t *q = t->data;
    if (q->closing || !q->sub.ready || !q->cmd.ready || q->cmd.ac == NULL) {
        q->probe_sent_ms = 0;
        return;
    }
    queue__watches_retry(q);
    uint64_t now = uv_now(q->loop);
    if (q->probe_sent_ms == 0) {
        q->probe_sent_ms = now;
        redisAsyncCommand(q->cmd.ac, on_probe_published, q, "PUBLISH %s p", q->probe_channel);
    } else if (now - q->probe_sent_ms >= (uint64_t)q->conf.op_timeout_ms) {
        sub_deaf(q, "stopped delivering");
    }
}

static void on_probe_closed(uv_handle_t *h)
{
    queue_t *q = h->data;
    q->probe_closed = 1;
    queue__maybe_closed(q);
}

static void sub_subscribe(queue__conn_t *c, const char *channel)
{
    if (!c->ready)
        c->setup_pending++;
    redisAsyncCommand(c->ac, on_sub_message, NULL, "SUBSCRIBE %s", channel);
}

void queue__sub_want(queue_t *q, int cancel)
{
    int *flag = cancel ? &q->sub_cancel : &q->sub_events;
    if (*flag || q->closing)
        return;
    *flag = 1;
    if (!q->sub_started) {
        q->sub_started = 1;
        queue__conn_start(&q->sub); /* conn_setup subscribes to what is wanted */
    } else if (q->sub.ac != NULL) {
        sub_subscribe(&q->sub, cancel ? q->cx_channel : q->channel);
    } /* else it is reconnecting, and conn_setup will */
}

static void conn_setup(queue__conn_t *c)
{
    redisAsyncContext *ac = c->ac;
    queue_t *q = c->q;
    c->setup_pending = 0;
    /* Commands queued now go out, in order, as soon as the connection is up. */
    /* AUTH [user] password: with a user, Redis 6's ACL user (else "default"). */
    if (q->url.password && q->url.password[0]) {
        c->setup_pending++;
        if (q->url.user && q->url.user[0])
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", q->url.user,
                              q->url.password);
        else
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", q->url.password);
    }
    if (c->subscriber) {
        sub_subscribe(c, q->probe_channel);
        if (q->sub_events)
            sub_subscribe(c, q->channel);
        if (q->sub_cancel)
            sub_subscribe(c, q->cx_channel);
        return;
    }
    if (q->db > 0) {
        c->setup_pending++;
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", q->db);
    }
    /* Loading on every connect covers a Redis that lost its data (and a first start). */
    c->setup_pending++;
    redisAsyncCommand(ac, on_library_loaded, NULL, "FUNCTION LOAD %s", c->q->conf.lib);
}

static void conn_connect(queue__conn_t *c)
{
    if (c->q->closing || c->ac != NULL)
        return;
    redisAsyncContext *ac = redisAsyncConnect(c->q->url.host, port_of(c->q));
    if (ac == NULL || ac->err) {
        if (!c->down_logged)
            GF_LOG(GF_LOG_WARN, &log_ctx, "cannot connect to redis: %s",
                   ac ? ac->errstr : "out of memory");
        c->down_logged = 1;
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    uv_timer_start(&c->reconnect, on_connect_timeout, (uint64_t)c->q->cfg->redis_connect_timeout_ms,
                   0);
    redisLibuvAttach(ac, c->q->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    /* hiredis 0.14 learns a connect's outcome only once it has bytes to write. */
    conn_setup(c);
}

void queue__conn_init(queue_t *q, queue__conn_t *c, const char *name, int subscriber)
{
    memset(c, 0, sizeof(*c));
    c->q = q;
    c->name = name;
    c->subscriber = subscriber;
    c->backoff_ms = RECONNECT_MIN_MS;
    uv_timer_init(q->loop, &c->reconnect);
    c->reconnect.data = c;
    c->timer_open = 1;
}

void queue__conn_start(queue__conn_t *c)
{
    conn_connect(c);
}

int queue__conn_closed(const queue__conn_t *c)
{
    return c->ac == NULL && !c->timer_open;
}

static void on_close_timeout(uv_timer_t *t)
{
    queue__conn_t *c = t->data;
    GF_LOG(GF_LOG_WARN, &log_ctx, "redis did not answer before the close (%s): dropping it",
           c->name);
    conn_drop(c); /* every reply still awaited gets NULL, then on_disconnect */
}

void queue__conn_close(queue__conn_t *c)
{
    if (c->ac != NULL && c->connected) {
        /* Armed first: with nothing pending, on_disconnect runs inside the
         * disconnect and closes it. */
        uv_timer_start(&c->reconnect, on_close_timeout, (uint64_t)c->q->conf.op_timeout_ms, 0);
        redisAsyncDisconnect(c->ac); /* pending replies first, then on_disconnect */
        return;
    }
    if (c->ac != NULL) {
        /* Still connecting: hiredis would never call on_disconnect, so free it now. */
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    conn_timer_close(c);
}

queue_t *queue_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    queue_t *q = gf_xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->cfg = cfg;
    if (queue__conf_init(&q->conf, cfg, err) < 0) {
        free(q);
        return NULL;
    }
    if (gf_url_parse(cfg->redis_url, &q->url, err) < 0) {
        queue__conf_dispose(&q->conf);
        free(q);
        return NULL;
    }
    q->db = cfg->redis_db;
    snprintf(q->channel, sizeof(q->channel), "%s:ev", q->conf.tag);
    snprintf(q->cx_channel, sizeof(q->cx_channel), "%s:cx", q->conf.tag);
    static unsigned probes;
    snprintf(q->probe_channel, sizeof(q->probe_channel), "%s:probe:%ld-%u-%u", q->conf.tag,
             (long)getpid(), ++probes, (unsigned)rand());
    uv_timer_init(loop, &q->probe);
    q->probe.data = q;
    uv_timer_start(&q->probe, on_probe_tick, QUEUE_PROBE_MS, QUEUE_PROBE_MS);
    uv_unref((uv_handle_t *)&q->probe);
    queue__conn_init(q, &q->cmd, "commands", 0);
    queue__conn_init(q, &q->sub, "events", 1);
    queue__batch_init(q);
    queue__conn_start(&q->cmd);
    return q;
}

int queue_is_connected(const queue_t *q)
{
    return q->cmd.ready;
}

void queue__maybe_closed(queue_t *q)
{
    if (!q->closing || !q->flusher_closed || !q->probe_closed || !queue__conn_closed(&q->cmd) ||
        !queue__conn_closed(&q->sub))
        return;
    queue_closed_cb cb = q->closed_cb;
    void *data = q->closed_data;
    gf_url_dispose(&q->url);
    queue__conf_dispose(&q->conf);
    free(q);
    if (cb)
        cb(NULL, data);
}

void queue_close(queue_t *q, queue_closed_cb cb, void *data)
{
    if (q->closing)
        return;
    q->closing = 1;
    q->closed_cb = cb;
    q->closed_data = data;
    queue__batch_close(q); /* its last run fails what waits and ends the watches */
    uv_close((uv_handle_t *)&q->probe, on_probe_closed);
    queue__conn_close(&q->cmd);
    queue__conn_close(&q->sub);
    queue__maybe_closed(q);
}
