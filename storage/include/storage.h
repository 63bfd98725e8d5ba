/*
 * storage/include/storage.h - where image files live (docs/storage.md): one
 * interface, put, get, delete, list and a signed read URL, over two backends:
 * `local` (a directory, FARM_STORAGE_DIR) and `s3` (any S3-compatible
 * service, FARM_S3_*, over net/ with SigV4).
 *
 * Keys are the layout imaging builds (img_storage_key(),
 * img_storage_upload_key()): "{user}/{generation}/{index}-{variant}.{ext}"
 * and "{user}/uploads/{upload}.{ext}". The same key always names the same
 * object, so a retried put overwrites it; a reader never sees a partial
 * object (local: temp file and rename; s3: one PUT, checked by its SHA-256).
 *
 * The async contract of docs/architecture.md: a call that fails at once
 * returns its negative gf_status and never runs its callback; a call that
 * returns 0 runs its callback exactly once, on the loop, never inside the
 * call; storage_close() delivers GF_ECANCELED to what is still in flight.
 * Every completion carries a `const gf_err_t *`: GF_ENOTFOUND (no such
 * object, or bucket; a get's names the object only: on s3, a 404 that does
 * not say the key is missing, NoSuchBucket say, is GF_EINVAL), GF_EUNAVAIL
 * (the service is down or answered 5xx/429 after every retry),
 * GF_ETIMEDOUT, GF_EINVAL (a request the service
 * refused, a bad signature say; `err->detail` is the HTTP status),
 * GF_ETOOBIG, GF_EIO.
 * Calls are made on the loop's thread.
 */
#ifndef STORAGE_H
#define STORAGE_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

typedef struct storage storage_t;

/* An object read back; valid until the callback returns unless taken. */
typedef struct {
    unsigned char *data;
    size_t len;
    char etag[80]; /* a strong HTTP entity tag, quotes included */
} storage_object_t;

typedef void (*storage_done_cb)(storage_t *s, const gf_err_t *err, void *data);
typedef void (*storage_get_cb)(storage_t *s, const gf_err_t *err, storage_object_t *obj,
                               void *data);

/*
 * The backend FARM_STORAGE names, its settings checked together: with s3,
 * FARM_S3_ENDPOINT (http or https, no path), FARM_S3_BUCKET,
 * FARM_S3_ACCESS_KEY_ID and FARM_S3_SECRET_ACCESS_KEY are required;
 * virtual-hosted addressing needs a host name; a prefix ends with '/';
 * FARM_S3_ENDPOINT, _BUCKET, _PREFIX, the keys or FARM_S3_SERVE=proxy set
 * while FARM_STORAGE=local are refused (they would be ignored). GF_EINVAL
 * with `err` naming the variable. `metrics` (may be NULL) gets
 * farm_storage_requests_total{op,outcome} and farm_storage_request_seconds{op}.
 */
storage_t *storage_new(uv_loop_t *loop, const gf_config_t *cfg, gf_metrics_t *metrics,
                       gf_err_t *err);
/* The settings storage_new() refuses (FARM_STORAGE's backend and its variables), without
 * I/O: 0, or GF_EINVAL with `err`. */
int storage_config_check(const gf_config_t *cfg, gf_err_t *err);

/*
 * At a process's start, blocking (on a private loop): with s3, one HEAD of
 * the bucket; GF_EINVAL (a bad setting) naming FARM_S3_BUCKET when it does
 * not exist.
 * Any other answer (a refused signature, the service down) is logged and
 * left to the requests and /readyz to report. Local: 0.
 */
int storage_start_check(const gf_config_t *cfg, gf_err_t *err);

/* Cancels what is in flight (GF_ECANCELED), then frees; `cb` runs once, from the loop. */
void storage_close(storage_t *s, void (*cb)(void *data), void *data);

/* "local" or "s3". */
const char *storage_backend(const storage_t *s);

/*
 * Stores a copy of `len` bytes under `key`, replacing what was there.
 * GF_ETOOBIG (no callback): `len` is over FARM_STORAGE_MAX_OBJECT_BYTES, which
 * bounds reads, so the object could never be read back.
 */
int storage_put(storage_t *s, const char *key, const void *data, size_t len,
                const char *content_type, storage_done_cb cb, void *cb_data);
/* One object of storage_put_many(). */
typedef struct {
    const char *key;
    const void *data;
    size_t len;
    const char *content_type;
} storage_put_t;
/*
 * Stores `n` objects (n > 0; copied), as n storage_put() calls would, with
 * one callback once each is stored or has failed (`err`: the first
 * failure). Every key and size is checked before anything starts (GF_EINVAL,
 * GF_ETOOBIG as storage_put(); no callback). local: one thread-pool job writes them all and syncs
 * each directory once, after the renames of its objects (the outputs of an image share one), where
 * n puts would sync it n times; objects with the same bytes in one directory are one file under two
 * names; s3: n PUTs.
 */
int storage_put_many(storage_t *s, const storage_put_t *puts, size_t n, storage_done_cb cb,
                     void *cb_data);
/* Reads the object of `key` (at most FARM_STORAGE_MAX_OBJECT_BYTES). */
int storage_get(storage_t *s, const char *key, storage_get_cb cb, void *cb_data);
/* Deletes the object of `key` (or a temporary object storage_list() named); one that is
 * already gone is a success (on s3: a 204, or a 404 saying NoSuchKey or with no body; a
 * 404 saying anything else, NoSuchBucket say, is GF_EINVAL, detail 404). */
int storage_delete(storage_t *s, const char *key, storage_done_cb cb, void *cb_data);
/*
 * The result of storage_delete_keys(): `deleted` (valid during the call)
 * holds the keys whose objects are gone (already gone included); `err` is
 * the first failure among the others, GF_OK when there was none.
 */
typedef void (*storage_batch_cb)(storage_t *s, const gf_err_t *err, const char *const *deleted,
                                 size_t n_deleted, void *data);
/*
 * Deletes the objects of `n` keys (n > 0; copied), a few at a time; `cb`
 * runs once when each has been tried. Fails at once (no callback) only when
 * no delete could be started.
 */
int storage_delete_keys(storage_t *s, const char *const *keys, size_t n, storage_batch_cb cb,
                        void *cb_data);
/*
 * Readiness: the bucket answers within `timeout_ms` and accepts our signature
 * (one try, no retry; local: the root is a writable directory).
 */
int storage_check(storage_t *s, uint64_t timeout_ms, storage_done_cb cb, void *cb_data);

/* One object of a listing page. */
typedef struct {
    const char *key;        /* relative to the root (after FARM_S3_PREFIX) */
    long long mtime_unix_s; /* when it was last written */
    long long size;         /* bytes */
    int temp;               /* a put's temporary object, left by a writer that died mid-put */
} storage_entry_t;

/*
 * A listing page: `entries` (valid during the call) in the backend's order;
 * `next` the cursor of the page after it, NULL on the last page.
 */
typedef void (*storage_list_cb)(storage_t *s, const gf_err_t *err, const storage_entry_t *entries,
                                size_t n, const char *next, void *data);
/*
 * Lists one page of at most `max` (1..1000) objects: from the start when
 * `cursor` is NULL, else after the page that returned `cursor` as its
 * `next`. Local: a depth-first walk of FARM_STORAGE_DIR (regular files,
 * names sorted in each directory); s3: one ListObjectsV2 request (retried as
 * the others). Objects whose key storage would refuse (another client's)
 * are skipped, except a put's temporary objects (`temp`), which
 * storage_delete() accepts.
 */
int storage_list(storage_t *s, const char *cursor, size_t max, storage_list_cb cb, void *cb_data);

/* Takes the data out of an object (the caller frees it). */
unsigned char *storage_object_take(storage_object_t *obj, size_t *len);

/*
 * A URL anyone may GET the object of `key` with until `expires_unix_s` (a
 * presigned S3 GET, 1 s to 7 days ahead). New string, or NULL with GF_EINVAL
 * when the backend has no such URLs (local) or the time is out of range.
 */
char *storage_read_url(storage_t *s, const char *key, long long expires_unix_s, gf_err_t *err);

#endif
