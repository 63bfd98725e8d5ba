/*
 * storage/storage_int.h - what storage.c, local.c and s3.c share: one
 * operation in flight, and the backend's table of calls.
 */
#ifndef STORAGE_INT_H
#define STORAGE_INT_H

#include "net.h"
#include "storage.h"

#include <stdint.h>

#define STORAGE_DOMAIN  "storage"
#define STORAGE_KEY_MAX 512

typedef enum { OP_PUT, OP_GET, OP_DELETE, OP_CHECK } storage_op_kind;

typedef struct storage_op storage_op_t;
struct storage_op {
    storage_t *s;
    storage_op_kind kind;
    char *key; /* NULL for OP_CHECK */
    unsigned char *body;
    size_t len;
    char *ctype;
    storage_done_cb done;
    storage_get_cb got;
    void *data;
    gf_err_t err;
    storage_object_t obj;
    uint64_t t0;
    uint64_t timeout_ms; /* OP_CHECK's; 0: FARM_STORAGE_TIMEOUT_MS */
    storage_op_t *prev, *next;
    void *b; /* the backend */
    /* local */
    uv_work_t work;
    /* s3 */
    net_xfer_t *xfer;
    uv_timer_t timer; /* the retry backoff; closed before the op is freed */
    int timer_init;
    int attempts;
};

typedef struct {
    const char *name;
    void *(*open)(storage_t *s, const gf_config_t *cfg, gf_err_t *err);
    /* Starts `op`; its end calls storage__finish(). Never fails. */
    void (*start)(void *b, storage_op_t *op);
    /* Stops what `op` waits on; storage__finish() is then the caller's. */
    void (*cancel)(void *b, storage_op_t *op);
    char *(*read_url)(void *b, const char *key, long long expires_unix_s, gf_err_t *err);
    /* Frees the backend; `cb` once its handles are closed (NULL: at once). */
    void (*close)(void *b, void (*cb)(void *data), void *data);
    int threaded; /* ops run on the thread pool and cannot be stopped */
} storage_backend_t;

extern const storage_backend_t storage__local;
extern const storage_backend_t storage__s3;

uv_loop_t *storage__loop(storage_t *s);
const gf_config_t *storage__cfg(storage_t *s);
/* Delivers `op`'s result (op->err, op->obj) and frees it. From the loop only. */
void storage__finish(storage_op_t *op);

/*
 * What an S3 reply to an operation of `kind` means, from the reply alone
 * (storage/s3.c; pure, fuzzed by tests/fuzz/fuzz_s3_reply.c): GF_OK for a
 * 2xx, and for a 404 to a DELETE (already gone); GF_ETOOBIG for a body over
 * the bound; GF_ETIMEDOUT or GF_EUNAVAIL when no answer came; else
 * GF_EUNAVAIL (5xx, 429), GF_ENOTFOUND (404) or GF_EINVAL. `retry`: whether
 * another attempt may succeed (no answer, 5xx, 429). `code` (`n` bytes):
 * an answered failure's S3 error <Code> ("SignatureDoesNotMatch"), else
 * "HTTP <status>"; "" otherwise.
 */
int storage__s3_judge(const net_resp_t *r, storage_op_kind kind, int *retry, char *code, size_t n);

/* Whether `key` is a relative path of [0-9a-z_.-] names, none empty or starting with '.'. */
int storage__key_ok(const char *key);

#endif
