/*
 * queue/script.h - the calling side of the Lua functions (script.c), shared
 * by the async and the blocking client and internal to queue/: the function
 * library with this process's settings compiled in, and each operation's
 * command as an argv.
 */
#ifndef QUEUE_SCRIPT_H
#define QUEUE_SCRIPT_H

#include "queue.h"

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
    QS_POSITIONS,
    QS_STATS,
    QS_DEAD,
    QS_RATELIMIT,
    QS__COUNT
} queue__script;

/* The library's shared part (common.lua), each operation's body and name. */
extern const char queue__lua_common[];
extern const char *const queue__lua_body[QS__COUNT];
extern const char *const queue__script_name[QS__COUNT];

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
 * Builds the command of each operation (shared by the two clients). An
 * enqueue's job data is one argument packed into `d`, which must outlive the
 * command's sending; the caller disposes of it.
 */
int queue__cmd_enqueue(queue__cmd_t *cmd, const queue__conf_t *c, const queue_enqueue_req_t *req,
                       gf_buf_t *d, gf_err_t *err);
void queue__cmd_finish(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id,
                       uint64_t token, queue_outcome_t outcome, const char *detail);
void queue__cmd_event(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id, uint64_t token,
                      const char *type, const char *data_json);
void queue__cmd_gen_events(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id,
                           uint64_t after_id, int max);
void queue__cmd_user_events(queue__cmd_t *cmd, const queue__conf_t *c, const char *user_id,
                            const char *after, int max, char *keybuf, size_t keylen, char *startbuf,
                            size_t startlen);

/*
 * positions.lua's one argument: each of the `n` ids followed by a newline,
 * into `ids` (the caller disposes of it). GF_EINVAL (in `err`) for n out of
 * 1 .. QUEUE_POSITIONS_MAX, an empty id or one with a newline.
 */
int queue__cmd_positions(queue__cmd_t *cmd, const queue__conf_t *c, const char *const *gen_ids,
                         size_t n, gf_buf_t *ids, gf_err_t *err);

/* The outcome word finish.lua takes. */
const char *queue__outcome_name(queue_outcome_t o);

#endif
