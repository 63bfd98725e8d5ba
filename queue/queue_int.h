/*
 * queue/queue_int.h - what the files of queue/ share and nobody else sees:
 * the script table, the settings every script takes, command building, and
 * the translation of hiredis replies into queue.h's types and gf_status.
 */
#ifndef QUEUE_INT_H
#define QUEUE_INT_H

#include "queue.h"

#include <hiredis/hiredis.h>

/* The operations, in the order of queue_lua.c (generated from queue/lua/ by CMake). */
typedef enum {
    QS_ENQUEUE,
    QS_CLAIM,
    QS_HEARTBEAT,
    QS_FINISH,
    QS_CANCEL,
    QS_EVENT,
    QS_EVENTS,
    QS_POSITION,
    QS_STATS,
    QS_DEAD,
    QS_RATELIMIT,
    QS__COUNT
} queue__script;

/* The library's shared part (common.lua), each operation's body and name. */
extern const char queue__lua_common[];
extern const char *const queue__lua_body[QS__COUNT];
extern const char *const queue__script_name[QS__COUNT];

#define QUEUE_TIERS_MAX 8
/* FCALL name 1 tag, then the operation's own arguments. */
#define QUEUE_ARGV_MAX 16
#define QUEUE_CMD_HEAD 4

/*
 * What every call needs, computed once from the config: the hash tag, the
 * function library with the settings compiled in as constants (see
 * queue/lua/common.lua), and each operation's function name in it.
 */
typedef struct {
    char *tag; /* "{farm}" */
    char *lib; /* the library's text, for FUNCTION LOAD */
    char lib_name[32];
    char fname[QS__COUNT][48];
    int64_t op_timeout_ms;
    int64_t connect_timeout_ms;
} queue__conf_t;

int queue__conf_init(queue__conf_t *c, const gf_config_t *cfg, gf_err_t *err);
void queue__conf_dispose(queue__conf_t *c);

/* A command as an argv. Strings are borrowed from the caller. */
typedef struct {
    int argc;
    const char *argv[QUEUE_ARGV_MAX];
    size_t len[QUEUE_ARGV_MAX];
    char num[4][24]; /* storage for numeric arguments */
    int nnum;
    queue__script script; /* QS__COUNT for a plain command */
} queue__cmd_t;

void queue__cmd_script(queue__cmd_t *cmd, const queue__conf_t *c, queue__script s);
void queue__cmd_plain(queue__cmd_t *cmd, const char *name);
void queue__cmd_str(queue__cmd_t *cmd, const char *s);
void queue__cmd_int(queue__cmd_t *cmd, long long v);

/* Turns a random number into the jitter fraction argument of finish.lua. */
void queue__cmd_jitter(queue__cmd_t *cmd);

/*
 * Whether a reply says our function is missing (FUNCTION FLUSH, or a Redis
 * that lost its data): nothing ran, so loading the library and calling again
 * is safe.
 */
int queue__reply_needs_load(const redisReply *r);

/* Whether a FUNCTION LOAD answer means the library is there (new or already loaded). */
int queue__reply_loaded(const redisReply *r);
/*
 * Whether an answer is Redis's OOM refusal (maxmemory reached): FUNCTION LOAD
 * is refused then even when the library is there, which a FUNCTION LIST
 * LIBRARYNAME answer tells (queue__reply_lists_library).
 */
int queue__reply_is_oom(const redisReply *r);
int queue__reply_lists_library(const redisReply *r);

/*
 * Translates a missing or error reply: NULL -> GF_EUNAVAIL, an error reply ->
 * GF_EINVAL ("EINVAL ..." from our scripts) or GF_EUNAVAIL (OOM, LOADING,
 * BUSY, anything else). Returns 0 for any other reply.
 */
int queue__reply_check(const redisReply *r, gf_err_t *err);

/* Parsers, one per operation; each returns 0 or a negative gf_status with `err`. */
int queue__parse_enqueue(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_claim(const redisReply *r, queue_claim_t *out, gf_err_t *err);
int queue__parse_heartbeat(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_finish(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_cancel(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_event(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_position(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_ratelimit(const redisReply *r, queue_result_t *res, gf_err_t *err);
int queue__parse_stats(const redisReply *r, queue_stats_t *out, gf_err_t *err);
int queue__parse_gen_events(const redisReply *r, uint64_t after_id, queue_events_t *out,
                            gf_err_t *err);
int queue__parse_user_events(const redisReply *r, queue_events_t *out, gf_err_t *err);
int queue__parse_dead_list(const redisReply *r, queue_dead_list_t *out, gf_err_t *err);
int queue__parse_count(const redisReply *r, gf_err_t *err);

/*
 * Builds the command of each operation (shared by the two clients). An
 * enqueue's job data is one argument packed into `d`, which must outlive the
 * command's sending; the caller disposes of it.
 */
int queue__cmd_enqueue(queue__cmd_t *cmd, const queue__conf_t *c, const queue_enqueue_req_t *req,
                       gf_buf_t *d, gf_err_t *err);
void queue__cmd_finish(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id,
                       uint64_t token, queue_outcome_t outcome, const char *detail);
void queue__cmd_gen_events(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id,
                           uint64_t after_id, int max);
void queue__cmd_user_events(queue__cmd_t *cmd, const queue__conf_t *c, const char *user_id,
                            const char *after, int max, char *keybuf, size_t keylen, char *startbuf,
                            size_t startlen);

/* The outcome word finish.lua takes. */
const char *queue__outcome_name(queue_outcome_t o);

#endif

/* ------------------------------------------------------------------------ */
/* The async client's insides (redis.c: connections; ops.c; watch.c).        */
/* ------------------------------------------------------------------------ */

#include <hiredis/async.h>

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

/* batch.c: the enqueues or finishes of one loop iteration, sent as one call. */
#define QUEUE_BATCH_MAX   64 /* calls per FCALL */
#define QUEUE_BATCH_ARITY 5  /* the most arguments per call (enqueue takes 4, finish 5) */
typedef int (*queue__result_parser)(const redisReply *r, queue_result_t *res, gf_err_t *err);
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
enum { QUEUE_BATCH_ENQUEUE, QUEUE_BATCH_FINISH, QUEUE_BATCH__COUNT };

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
/* Fails what is not sent yet with GF_ECANCELED and closes the flusher. */
void queue__batch_close(queue_t *q);

/* ops.c: sends a command with a timeout; `handle` runs exactly once (r NULL when status < 0). */
typedef struct queue__op queue__op_t;
typedef void (*queue__op_handler)(queue__op_t *op, int status, redisReply *r, gf_err_t *err);
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
void queue__watches_cancel_all(queue_t *q);
