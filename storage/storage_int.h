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

typedef enum { OP_PUT, OP_GET, OP_DELETE, OP_CHECK, OP_LIST } storage_op_kind;

/* The most objects one listing page holds (S3's own bound). */
#define STORAGE_LIST_MAX 1000

/* One object of a local storage_put_many() op (owned). */
typedef struct {
    char *key;
    unsigned char *body;
    size_t len;
} storage_item_t;

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
    storage_list_cb listed;
    void *data;
    gf_err_t err;
    storage_object_t obj;
    /* OP_LIST: the page asked for (cursor NULL: the first) and the page read */
    char *cursor;
    size_t max;
    storage_entry_t *entries; /* their keys owned */
    size_t n_entries;
    char *next_cursor; /* NULL: the last page */
    /* OP_PUT of storage_put_many() on a threaded backend: its objects (`key` is the
     * first one's, `body` unused); counted as n_items puts in the metrics */
    storage_item_t *items;
    size_t n_items;
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
 * 2xx, and for a DELETE's 404 that says the key is missing (already gone);
 * GF_ETOOBIG for a body over the bound; GF_ETIMEDOUT or GF_EUNAVAIL when no
 * answer came; else GF_EUNAVAIL (5xx, 429, 400 RequestTimeout),
 * GF_ENOTFOUND (a 404; to a GET, only one that says the key is missing) or
 * GF_EINVAL. A 404 says the key is missing when its <Code> is NoSuchKey or
 * it has no body; NoSuchBucket, or another server's page, does not.
 * `retry`: whether another attempt may succeed (no answer, 5xx, 429, a 400
 * whose <Code> is RequestTimeout). `code` (`n` bytes):
 * an answered failure's S3 error <Code> ("SignatureDoesNotMatch"), else
 * "HTTP <status>"; "" otherwise.
 */
int storage__s3_judge(const net_resp_t *r, storage_op_kind kind, int *retry, char *code, size_t n);

/* Whether `key` is a relative path of [0-9a-z_.-] names, none empty or starting with '.'. */
int storage__key_ok(const char *key);
/*
 * Whether `key` names a put's temporary object: a key whose last name is
 * ".{name}.tmp.{suffix}", `name` a valid name and `suffix` letters and digits
 * (local.c's temp files; what a writer killed mid-put leaves).
 */
int storage__temp_key_ok(const char *key);
/* Adds an object to op's listing page (the key copied), unless its key is neither
 * storage__key_ok() nor storage__temp_key_ok(), or the page is full. */
void storage__list_add(storage_op_t *op, const char *key, long long mtime_unix_s, long long size);

#endif
