/*
 * queue/async.h - the insides of the async client (queue_t), internal to
 * queue/: its Redis connections (redis.c), its operations (ops.c), the
 * batches of one loop iteration (batch.c) and the watches (watch.c).
 *
 * How queue.h's async contract is kept: an operation that cannot be sent
 * fails at once with its status and never runs its callback; one that was
 * sent runs it from a hiredis reply callback or a timer; and anything that
 * fails without reaching Redis after the call returned (a batch that cannot
 * be sent, a close) is delivered by the flusher, a uv_prepare handle that
 * runs at the end of the loop iteration. So no callback runs inside a
 * queue_* call.
 */
#ifndef QUEUE_ASYNC_H
#define QUEUE_ASYNC_H

#include <hiredis/async.h>

#include "reply.h"
#include "script.h"

typedef struct queue__conn queue__conn_t;

/*
 * One async Redis connection that reconnects by itself. The command
 * connection is `ready` once its scripts are loaded; the subscriber once its
 * SUBSCRIBE is confirmed. Each (re)connection starts with AUTH, SELECT and
 * the connection's own setup commands, queued before anything else.
 */
struct queue__conn {
    queue_t *q;
    const char *name; /* "commands" or "events" */
    int subscriber;
    redisAsyncContext *ac;
    int connected; /* TCP up */
    int ready;     /* setup answered: usable */
    uv_timer_t reconnect;
    uint64_t backoff_ms;
    int down_logged;
    int timer_open;
    int setup_pending; /* setup replies still awaited */
};

#define QUEUE_WATCH_BUCKETS 1024

/* batch.c: the enqueues, finishes or rate limits of one loop iteration, sent as one call. */
#define QUEUE_BATCH_MAX   64 /* calls per FCALL */
#define QUEUE_BATCH_ARITY 5  /* the most arguments per call (enqueue 5, finish 5, ratelimit 5) */
/* One call waiting in a batch: whom to tell. */
typedef struct {
    queue_result_cb cb;
    void *data;
} queue__batch_item_t;

typedef struct {
    queue__script script;
    queue__result_parser parse;
    int arity; /* arguments per call */
    int n;
    queue__batch_item_t items[QUEUE_BATCH_MAX];
    size_t off[QUEUE_BATCH_MAX * QUEUE_BATCH_ARITY], len[QUEUE_BATCH_MAX * QUEUE_BATCH_ARITY];
    gf_buf_t args; /* the arguments' bytes, each NUL-terminated, at off[] */
} queue__batch_t;
enum { QUEUE_BATCH_ENQUEUE, QUEUE_BATCH_FINISH, QUEUE_BATCH_RATELIMIT, QUEUE_BATCH__COUNT };

struct queue {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    queue__conf_t conf;
    gf_url_t url;
    int db;
    queue__conn_t cmd;
    queue__conn_t sub;
    int sub_started;
    int sub_events, sub_cancel; /* the channels wanted: "{q}:ev", "{q}:cx" */
    int closing;
    queue_closed_cb closed_cb;
    void *closed_data;
    queue_watch_t *watches[QUEUE_WATCH_BUCKETS];
    queue_cancel_cb cancel_cb;
    void *cancel_data;
    char channel[96];
    char cx_channel[96];
    char probe_channel[128]; /* this process's own: the subscriber's liveness probe */
    uv_timer_t probe;
    uint64_t probe_sent_ms; /* when the outstanding probe went out; 0: none */
    int probe_closed;
    queue__batch_t batch[QUEUE_BATCH__COUNT];
    uv_prepare_t flusher;      /* sends the batches when the loop iteration ends */
    struct queue__sent *fails; /* batches that could not be sent, failed by the flusher */
    int flusher_closed;
    /* queue_metrics(): farm_redis_command_seconds by operation; NULL until then. */
    gf_mfamily_t *m_cmd;
    gf_metric_t *m_cmd_script[QS__COUNT];
    /* queue_claim(): the id of the last claim and its worker; asked again while
     * claim_again says its answer did not come (queue/lua/claim.lua). */
    char claim_id[37];
    char claim_wid[128];
    int claim_again;
};

/* redis.c */
void queue__conn_init(queue_t *q, queue__conn_t *c, const char *name, int subscriber);
void queue__conn_start(queue__conn_t *c);
void queue__conn_close(queue__conn_t *c);
int queue__conn_closed(const queue__conn_t *c);
/* Frees the queue once everything it owns is closed (after queue_close). */
void queue__maybe_closed(queue_t *q);
/* Subscribes to the events (0) or cancel (1) channel from now on (once). */
void queue__sub_want(queue_t *q, int cancel);

/* batch.c */
void queue__batch_init(queue_t *q);
/* Adds one call (the operation's arguments of `cmd`, after its head); 0 or GF_EUNAVAIL. */
int queue__batch_add(queue_t *q, int which, const queue__cmd_t *cmd, queue_result_cb cb,
                     void *data);
/*
 * queue_close: the flusher runs once more, at the end of this iteration: it
 * fails what was not sent yet with GF_ECANCELED, ends the watches
 * (queue__watches_cancel_all), and closes.
 */
void queue__batch_close(queue_t *q);

/*
 * ops.c: sends a command with a timeout; `handle` runs exactly once, never
 * inside queue__op_send, with `err` (err->code 0 or the failure) and the
 * reply (NULL when err->code < 0). The handler may add to `err` (a parser's
 * failure) before passing it on.
 */
typedef struct queue__op queue__op_t;
typedef void (*queue__op_handler)(queue__op_t *op, gf_err_t *err, redisReply *r);
struct queue__op {
    queue_t *q;
    uv_timer_t timer;
    int done;
    int refs; /* the pending hiredis callback and the timer close */
    int retried;
    queue__script script;
    int argc;
    const char **argv;
    size_t *len;
    queue__op_handler handle;
    void *cb;
    void *data;
    uint64_t after_id; /* gen event reads */
    size_t n_ids;      /* positions: how many ids were asked */
    uint64_t sent_ns;  /* uv_hrtime() when first sent: its latency (queue_metrics) */
};
int queue__op_send(queue_t *q, queue__cmd_t *cmd, uint64_t timeout_ms, queue__op_handler handle,
                   void *cb, void *data, queue__op_t **out);
int queue__op_send_argv(queue_t *q, queue__script script, int argc, const char **argv,
                        const size_t *len, uint64_t timeout_ms, queue__op_handler handle, void *cb,
                        void *data, queue__op_t **out);

/* watch.c: the pub/sub side. */
void queue__sub_on_ready(queue_t *q);
void queue__cmd_on_ready(queue_t *q);
/* Reads again the watches whose last read failed (called every probe tick). */
void queue__watches_retry(queue_t *q);
void queue__sub_on_message(queue_t *q, const char *msg, size_t len);
/*
 * The flusher's last run, after queue_close: every watch not stopped gets its
 * final GF_ECANCELED (from queue_close on, a watch delivers no more events).
 */
void queue__watches_cancel_all(queue_t *q);

#endif
