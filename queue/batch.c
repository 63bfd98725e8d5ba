/*
 * queue/batch.c - the async client's enqueues, finishes and rate limits made
 * during one loop iteration go to Redis together, each kind as one FCALL
 * with one answer per call, when the iteration ends (a uv_prepare handle
 * runs just before the loop waits for I/O). An api accepting many requests
 * at once, or a worker ending many jobs, then costs Redis one call's fixed
 * price per iteration instead of per job; a lone call goes out in the same
 * iteration as before, so nothing waits for company.
 *
 * Invariants:
 * - Every call added runs its callback exactly once: with its own answer,
 *   with the batch's failure (connection lost, timeout), or with
 *   GF_ECANCELED when the queue closes before the batch is sent.
 * - No callback ever runs inside queue_enqueue, queue_finish,
 *   queue_ratelimit or queue_close: a batch that cannot be sent (a full one
 *   is sent at once, from inside the 64th call) waits in `fails` for the
 *   flusher's next run, and the watches' GF_ECANCELED of a close waits for
 *   its last run (queue.h's contract).
 * - A batch is moved out of the queue before any callback runs, so a callback
 *   may add calls (they start the next batch) or close the queue.
 * - The flusher holds a reference on the loop while anything waits for it.
 */
#include "async.h"

#include <stdlib.h>
#include <string.h>

/* A batch on its way: the callbacks, in the order of the answers. */
typedef struct queue__sent {
    struct queue__sent *next; /* in q->fails */
    queue__result_parser parse;
    int n;
    queue__batch_item_t items[QUEUE_BATCH_MAX];
} sent_t;

static sent_t *take(queue__batch_t *b)
{
    sent_t *s = gf_xmalloc(sizeof(*s));
    s->next = NULL;
    s->parse = b->parse;
    s->n = b->n;
    memcpy(s->items, b->items, sizeof(b->items[0]) * (size_t)b->n);
    b->n = 0;
    b->args.len = 0;
    return s;
}

/* Gives every call of `s` the batch's failure `err`, then frees it. */
static void fail_all(queue_t *q, sent_t *s, const gf_err_t *err)
{
    for (int i = 0; i < s->n; i++) {
        queue_result_t res = {0};
        s->items[i].cb(q, err, &res, s->items[i].data);
    }
    free(s);
}

static void on_flusher_closed(uv_handle_t *h)
{
    queue_t *q = h->data;
    q->flusher_closed = 1;
    for (int i = 0; i < QUEUE_BATCH__COUNT; i++)
        gf_buf_dispose(&q->batch[i].args);
    queue__maybe_closed(q);
}

static void handle_batch(queue__op_t *op, gf_err_t *err, redisReply *r)
{
    sent_t *s = op->data;
    if (err->code == GF_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)s->n))
        gf_err_set(err, GF_EUNAVAIL, "queue", "unexpected reply from redis to a batch");
    if (err->code < 0) {
        fail_all(op->q, s, err);
        return;
    }
    for (int i = 0; i < s->n; i++) {
        queue_result_t res = {0};
        gf_err_t e = {0};
        s->parse(r->element[i], &res, &e); /* its status is in `e` (reply.h) */
        s->items[i].cb(op->q, &e, &res, s->items[i].data);
    }
    free(s);
}

static void on_flush(uv_prepare_t *h);

/* Makes the flusher run at the end of this loop iteration (and keep the loop alive till then). */
static void flusher_arm(queue_t *q)
{
    if (uv_is_closing((uv_handle_t *)&q->flusher) || uv_is_active((uv_handle_t *)&q->flusher))
        return;
    uv_ref((uv_handle_t *)&q->flusher);
    uv_prepare_start(&q->flusher, on_flush);
}

static void flush(queue_t *q, queue__batch_t *b)
{
    if (b->n == 0)
        return;
    const char *argv[QUEUE_CMD_HEAD + QUEUE_BATCH_MAX * QUEUE_BATCH_ARITY];
    size_t len[QUEUE_CMD_HEAD + QUEUE_BATCH_MAX * QUEUE_BATCH_ARITY];
    queue__cmd_t head;
    queue__cmd_script(&head, &q->conf, b->script);
    for (int i = 0; i < QUEUE_CMD_HEAD; i++) {
        argv[i] = head.argv[i];
        len[i] = head.len[i];
    }
    int argc = QUEUE_CMD_HEAD + b->n * b->arity;
    for (int i = QUEUE_CMD_HEAD; i < argc; i++) {
        argv[i] = b->args.p + b->off[i - QUEUE_CMD_HEAD];
        len[i] = b->len[i - QUEUE_CMD_HEAD];
    }
    queue__script script = b->script;
    sent_t *s = take(b);
    /* op_send copies the arguments before take()'s buffer can be reused. */
    if (queue__op_send_argv(q, script, argc, argv, len, (uint64_t)q->conf.op_timeout_ms,
                            handle_batch, NULL, s, NULL) < 0) {
        s->next = q->fails; /* failed at the flusher's next run, never inside a call */
        q->fails = s;
        flusher_arm(q);
    }
}

static void on_flush(uv_prepare_t *h)
{
    queue_t *q = h->data;
    for (int i = 0; i < QUEUE_BATCH__COUNT; i++)
        flush(q, &q->batch[i]);
    /* Callbacks may add calls or fail more: take the list each time round. */
    while (q->fails) {
        sent_t *s = q->fails;
        q->fails = s->next;
        gf_err_t err = {0};
        if (q->closing)
            gf_err_set(&err, GF_ECANCELED, "queue", "queue closed before the call was sent");
        else
            gf_err_set(&err, GF_EUNAVAIL, "queue",
                       "redis connection lost before the call was sent");
        fail_all(q, s, &err);
    }
    if (q->closing)
        queue__watches_cancel_all(q); /* their final GF_ECANCELED, after queue_close returned */
    int waiting = 0;
    for (int i = 0; i < QUEUE_BATCH__COUNT; i++)
        waiting |= q->batch[i].n > 0;
    if (waiting)
        return; /* a callback added calls: run again at the next iteration's end */
    uv_prepare_stop(h);
    uv_unref((uv_handle_t *)h);
    if (q->closing && !uv_is_closing((uv_handle_t *)h))
        uv_close((uv_handle_t *)h, on_flusher_closed);
}

void queue__batch_init(queue_t *q)
{
    q->batch[QUEUE_BATCH_ENQUEUE].script = QS_ENQUEUE;
    q->batch[QUEUE_BATCH_ENQUEUE].parse = queue__parse_enqueue;
    q->batch[QUEUE_BATCH_ENQUEUE].arity = 5;
    q->batch[QUEUE_BATCH_FINISH].script = QS_FINISH;
    q->batch[QUEUE_BATCH_FINISH].parse = queue__parse_finish;
    q->batch[QUEUE_BATCH_FINISH].arity = 5;
    q->batch[QUEUE_BATCH_RATELIMIT].script = QS_RATELIMIT;
    q->batch[QUEUE_BATCH_RATELIMIT].parse = queue__parse_ratelimit;
    q->batch[QUEUE_BATCH_RATELIMIT].arity = 5;
    uv_prepare_init(q->loop, &q->flusher);
    q->flusher.data = q;
    uv_unref((uv_handle_t *)&q->flusher);
}

int queue__batch_add(queue_t *q, int which, const queue__cmd_t *cmd, queue_result_cb cb, void *data)
{
    if (q->closing || !q->cmd.ready || q->cmd.ac == NULL)
        return GF_EUNAVAIL;
    queue__batch_t *b = &q->batch[which];
    /* The command is the function's head and then this call's arguments. */
    if (cmd->argc != QUEUE_CMD_HEAD + b->arity)
        abort();
    int base = b->n * b->arity;
    for (int i = 0; i < b->arity; i++) {
        const int a = QUEUE_CMD_HEAD + i;
        b->off[base + i] = b->args.len;
        b->len[base + i] = cmd->len[a];
        gf_buf_append(&b->args, cmd->argv[a], cmd->len[a]);
        gf_buf_append(&b->args, "", 1);
    }
    b->items[b->n].cb = cb;
    b->items[b->n].data = data;
    b->n++;
    if (b->n == QUEUE_BATCH_MAX)
        flush(q, b);
    else
        flusher_arm(q);
    return 0;
}

void queue__batch_close(queue_t *q)
{
    /* What was never sent fails with GF_ECANCELED at the flusher's last run,
     * which also ends the watches and then closes the flusher. */
    for (int i = 0; i < QUEUE_BATCH__COUNT; i++)
        if (q->batch[i].n > 0) {
            sent_t *s = take(&q->batch[i]);
            s->next = q->fails;
            q->fails = s;
        }
    flusher_arm(q);
}
