/*
 * queue/ops.c - the async operations of queue_t: each is one command (a
 * function of the queue's library via FCALL, or a plain read) with its own
 * timeout timer.
 *
 * Invariants:
 * - An operation's handler runs exactly once, from whichever of reply,
 *   disconnect or timeout comes first; the op is freed when both the hiredis
 *   callback and the timer close have happened (`refs`).
 * - The op owns a copy of its arguments, because a "function not found"
 *   answer (FUNCTION FLUSH, or a Redis that lost its data) loads the library
 *   and sends the same call again. hiredis allows new commands from a reply
 *   callback: they are only appended to its output buffer, so this is not a
 *   re-entry into its read path.
 */
#include "async.h"
#include "ids.h"

#include <stdlib.h>
#include <string.h>

static const gf_log_ctx log_ctx = {.component = "queue"};

static void op_unref(queue__op_t *op)
{
    if (--op->refs == 0) {
        free(op->argv);
        free(op);
    }
}

static void on_op_timer_closed(uv_handle_t *h)
{
    op_unref(h->data);
}

/* The series of an operation's latency: its function, or the plain command it is. */
static gf_metric_t *op_series(const queue__op_t *op)
{
    queue_t *q = op->q;
    if (op->script < QS__COUNT)
        return q->m_cmd_script[op->script];
    const char *name = op->argc > 0 && strcmp(op->argv[0], "PING") == 0     ? "ping"
                       : op->argc > 0 && strcmp(op->argv[0], "XRANGE") == 0 ? "xrange"
                                                                            : "other";
    return gf_metric_with(q->m_cmd, name, NULL, NULL);
}

static void op_finish(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    if (op->done)
        return;
    op->done = 1;
    if (op->q->m_cmd)
        gf_metric_observe(op_series(op), (double)(uv_hrtime() - op->sent_ns) / 1e9);
    uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
    op->handle(op, err, r);
}

static void on_op_timeout(uv_timer_t *t)
{
    queue__op_t *op = t->data;
    queue_t *q = op->q;
    gf_err_t err = {0};
    gf_err_set(&err, GF_ETIMEDOUT, "queue", "redis did not answer within the timeout");
    op_finish(op, &err, NULL);
    /*
     * A connection that cannot answer in time is not worth keeping, whatever
     * the command: hiredis 0.14's libuv adapter drops poll errors, so after a
     * Redis restart a context can stay "connected" while nothing it sends is
     * ever answered. Dropping it fails what waits on it (EUNAVAIL, which every
     * caller retries) and reconnects. A closing queue's connection is left to
     * the close's own bound (redis.c), which drops it as well.
     */
    if (q->cmd.ac != NULL && q->cmd.connected && !q->closing) {
        GF_LOG(GF_LOG_WARN, &log_ctx, "redis did not answer in time: reconnecting");
        redisAsyncFree(q->cmd.ac);
    }
}

static int op_issue(queue__op_t *op);

static void on_op_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    queue__op_t *op = privdata;
    redisReply *reply = r;
    (void)ac;
    if (!op->done && op->script != QS__COUNT && !op->retried && queue__reply_needs_load(reply)) {
        /* Not run: load the library, then the same call again, in that order. */
        op->retried = 1;
        redisAsyncCommand(op->q->cmd.ac, NULL, NULL, "FUNCTION LOAD %s", op->q->conf.lib);
        if (op_issue(op) == 0)
            return; /* the new callback now holds this reference */
    }
    gf_err_t err = {0};
    if (reply == NULL && op->q->closing)
        gf_err_set(&err, GF_ECANCELED, "queue", "queue closed");
    else
        queue__reply_check(reply, &err); /* NULL: the connection was lost */
    op_finish(op, &err, err.code < 0 ? NULL : reply);
    op_unref(op);
}

static int op_issue(queue__op_t *op)
{
    queue_t *q = op->q;
    if (q->cmd.ac == NULL || !q->cmd.connected)
        return GF_EUNAVAIL;
    if (redisAsyncCommandArgv(q->cmd.ac, on_op_reply, op, op->argc, op->argv, op->len) != REDIS_OK)
        return GF_EUNAVAIL;
    return 0;
}

int queue__op_send_argv(queue_t *q, queue__script script, int argc, const char **argv,
                        const size_t *len, uint64_t timeout_ms, queue__op_handler handle, void *cb,
                        void *data, queue__op_t **out)
{
    if (q->closing || !q->cmd.ready || q->cmd.ac == NULL)
        return GF_EUNAVAIL;
    /* One allocation for argv and lengths, then the argument bytes. */
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += len[i] + 1;
    size_t head = sizeof(const char *) * (size_t)argc + sizeof(size_t) * (size_t)argc;
    queue__op_t *op = gf_xcalloc(1, sizeof(*op));
    char *blob = gf_xmalloc(head + bytes);
    op->argv = (const char **)blob;
    op->len = (size_t *)(blob + sizeof(const char *) * (size_t)argc);
    char *p = blob + head;
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], len[i]);
        p[len[i]] = '\0';
        op->argv[i] = p;
        op->len[i] = len[i];
        p += len[i] + 1;
    }
    op->argc = argc;
    op->script = script;
    op->q = q;
    op->handle = handle;
    op->cb = cb;
    op->data = data;
    op->refs = 2;
    op->sent_ns = uv_hrtime();
    if (op_issue(op) < 0) {
        free(op->argv);
        free(op);
        return GF_EUNAVAIL;
    }
    uv_timer_init(q->loop, &op->timer);
    op->timer.data = op;
    uv_timer_start(&op->timer, on_op_timeout, timeout_ms, 0);
    if (out)
        *out = op;
    return 0;
}

int queue__op_send(queue_t *q, queue__cmd_t *cmd, uint64_t timeout_ms, queue__op_handler handle,
                   void *cb, void *data, queue__op_t **out)
{
    return queue__op_send_argv(q, cmd->script, cmd->argc, cmd->argv, cmd->len, timeout_ms, handle,
                               cb, data, out);
}

void queue_metrics(queue_t *q, gf_metrics_t *m)
{
    q->m_cmd = gf_metrics_histogram(
        m, "farm_redis_command_seconds",
        "time from sending a queue operation to Redis to its answer (or timeout), by operation",
        "op", gf_metrics_latency_buckets, gf_metrics_latency_nbuckets);
    for (int s = 0; s < QS__COUNT; s++)
        q->m_cmd_script[s] = gf_metric_with(q->m_cmd, queue__script_name[s], NULL, NULL);
}

/* --- handlers: a reply into the caller's callback ------------------------------- */

static void handle_ping(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    (void)r;
    ((queue_ping_cb)op->cb)(op->q, err, op->data);
}

static void handle_result(queue__op_t *op, queue__result_parser parse, gf_err_t *err, redisReply *r)
{
    queue_result_t res = {0};
    if (err->code == GF_OK)
        parse(r, &res, err);
    ((queue_result_cb)op->cb)(op->q, err, &res, op->data);
}

#define RESULT_HANDLER(name, parser)                                                               \
    static void name(queue__op_t *op, gf_err_t *err, redisReply *r)                                \
    {                                                                                              \
        handle_result(op, parser, err, r);                                                         \
    }

RESULT_HANDLER(handle_heartbeat, queue__parse_heartbeat)
RESULT_HANDLER(handle_cancel, queue__parse_cancel)
RESULT_HANDLER(handle_event, queue__parse_event)
RESULT_HANDLER(handle_position, queue__parse_position)

static void handle_claim(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    queue_claim_t *c = NULL;
    /* No answer (a timeout, the connection lost): the claim may have run, so the next
     * one asks under the same id for what it leased. */
    op->q->claim_again = err->code == GF_ETIMEDOUT || err->code == GF_EUNAVAIL;
    if (err->code == GF_OK) {
        c = gf_xcalloc(1, sizeof(*c));
        if (queue__parse_claim(r, c, err) < 0)
            GF_FREE(c);
    }
    ((queue_claim_cb)op->cb)(op->q, err, c, op->data);
}

static void handle_events(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    queue_events_t e = {0};
    if (err->code == GF_OK) {
        if (op->after_id == UINT64_MAX)
            queue__parse_user_events(r, &e, err);
        else
            queue__parse_gen_events(r, op->after_id, &e, err);
    }
    ((queue_events_cb)op->cb)(op->q, err, err->code == GF_OK ? &e : NULL, op->data);
    queue_events_dispose(&e);
}

static void handle_stats(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    queue_stats_t s = {0};
    if (err->code == GF_OK)
        queue__parse_stats(r, &s, err);
    ((queue_stats_cb)op->cb)(op->q, err, err->code == GF_OK ? &s : NULL, op->data);
    queue_stats_dispose(&s);
}

static void handle_positions(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    queue_positions_t p = {0};
    if (err->code == GF_OK)
        queue__parse_positions(r, op->n_ids, &p, err);
    ((queue_positions_cb)op->cb)(op->q, err, err->code == GF_OK ? &p : NULL, op->data);
    queue_positions_dispose(&p);
}

/* --- public operations ------------------------------------------------------ */

static uint64_t op_timeout(const queue_t *q)
{
    return (uint64_t)q->conf.op_timeout_ms;
}

int queue_ping(queue_t *q, uint64_t timeout_ms, queue_ping_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_plain(&cmd, "PING");
    return queue__op_send(q, &cmd, timeout_ms, handle_ping, (void *)cb, data, NULL);
}

int queue_enqueue(queue_t *q, const queue_enqueue_req_t *req, queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    gf_buf_t d = {0};
    int rc = GF_EINVAL;
    if (queue__cmd_enqueue(&cmd, &q->conf, req, &d, NULL) == 0)
        rc = queue__batch_add(q, QUEUE_BATCH_ENQUEUE, &cmd, cb, data); /* copies the arguments */
    gf_buf_dispose(&d);
    return rc;
}

int queue_claim(queue_t *q, const char *worker_id, int max, queue_claim_cb cb, void *data)
{
    if (max < 1 || worker_id == NULL)
        return GF_EINVAL;
    if (!q->claim_again || strcmp(q->claim_wid, worker_id) != 0) {
        gf_uuid4(q->claim_id);
        snprintf(q->claim_wid, sizeof(q->claim_wid), "%s", worker_id);
    }
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_CLAIM);
    queue__cmd_int(&cmd, max);
    queue__cmd_str(&cmd, worker_id);
    queue__cmd_str(&cmd, q->claim_id);
    return queue__op_send(q, &cmd, op_timeout(q), handle_claim, (void *)cb, data, NULL);
}

int queue_heartbeat(queue_t *q, const char *worker_id, const char *gen_id, uint64_t token,
                    queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_HEARTBEAT);
    queue__cmd_str(&cmd, gen_id);
    queue__cmd_int(&cmd, (long long)token);
    queue__cmd_str(&cmd, worker_id);
    return queue__op_send(q, &cmd, op_timeout(q), handle_heartbeat, (void *)cb, data, NULL);
}

int queue_finish(queue_t *q, const char *gen_id, uint64_t token, queue_outcome_t outcome,
                 const char *detail, queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_finish(&cmd, &q->conf, gen_id, token, outcome, detail);
    return queue__batch_add(q, QUEUE_BATCH_FINISH, &cmd, cb, data);
}

int queue_cancel(queue_t *q, const char *gen_id, queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_CANCEL);
    queue__cmd_str(&cmd, gen_id);
    return queue__op_send(q, &cmd, op_timeout(q), handle_cancel, (void *)cb, data, NULL);
}

int queue_expire(queue_t *q, const char *gen_id, queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_CANCEL);
    queue__cmd_str(&cmd, gen_id);
    queue__cmd_str(&cmd, "expired");
    return queue__op_send(q, &cmd, op_timeout(q), handle_cancel, (void *)cb, data, NULL);
}

int queue_event_append(queue_t *q, const char *gen_id, uint64_t token, const char *type,
                       const char *data_json, queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_event(&cmd, &q->conf, gen_id, token, type, data_json);
    return queue__op_send(q, &cmd, op_timeout(q), handle_event, (void *)cb, data, NULL);
}

int queue_events_read(queue_t *q, const char *gen_id, uint64_t after_id, int max,
                      queue_events_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__op_t *op;
    queue__cmd_gen_events(&cmd, &q->conf, gen_id, after_id, max);
    int rc = queue__op_send(q, &cmd, op_timeout(q), handle_events, (void *)cb, data, &op);
    if (rc == 0)
        op->after_id = after_id;
    return rc;
}

int queue_user_events_read(queue_t *q, const char *user_id, const char *after, int max,
                           queue_events_cb cb, void *data)
{
    char key[256], start[64];
    queue__cmd_t cmd;
    queue__op_t *op;
    queue__cmd_user_events(&cmd, &q->conf, user_id, after, max, key, sizeof(key), start,
                           sizeof(start));
    int rc = queue__op_send(q, &cmd, op_timeout(q), handle_events, (void *)cb, data, &op);
    if (rc == 0)
        op->after_id = UINT64_MAX; /* marks a user stream read */
    return rc;
}

int queue_position(queue_t *q, const char *gen_id, queue_result_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_POSITION);
    queue__cmd_str(&cmd, gen_id);
    return queue__op_send(q, &cmd, op_timeout(q), handle_position, (void *)cb, data, NULL);
}

int queue_positions(queue_t *q, const char *const *gen_ids, size_t n, queue_positions_cb cb,
                    void *data)
{
    queue__cmd_t cmd;
    queue__op_t *op;
    gf_buf_t ids = {0};
    int rc = queue__cmd_positions(&cmd, &q->conf, gen_ids, n, &ids, NULL);
    if (rc == 0) /* the op copies its arguments */
        rc = queue__op_send(q, &cmd, op_timeout(q), handle_positions, (void *)cb, data, &op);
    if (rc == 0)
        op->n_ids = n;
    gf_buf_dispose(&ids);
    return rc;
}

int queue_ratelimit(queue_t *q, const char *bucket, long per_minute, long burst,
                    const char *cap_user, const char *cap_tier, queue_result_cb cb, void *data)
{
    if (per_minute < 1 || burst < 1 || (cap_user && cap_tier == NULL))
        return GF_EINVAL;
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_RATELIMIT);
    queue__cmd_str(&cmd, bucket);
    queue__cmd_int(&cmd, per_minute);
    queue__cmd_int(&cmd, burst);
    queue__cmd_str(&cmd, cap_user ? cap_user : "");
    queue__cmd_str(&cmd, cap_user ? cap_tier : "");
    return queue__batch_add(q, QUEUE_BATCH_RATELIMIT, &cmd, cb, data);
}

int queue_stats(queue_t *q, queue_stats_cb cb, void *data)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &q->conf, QS_STATS);
    return queue__op_send(q, &cmd, op_timeout(q), handle_stats, (void *)cb, data, NULL);
}
