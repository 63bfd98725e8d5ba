/*
 * storage/batch.c - storage_delete_keys(): the objects of many keys
 * deleted with a bounded number of deletes in flight (the lifecycle's
 * deletes: a generation's outputs, the sweeper's batches).
 *
 * Invariant: the callback runs once, when every key has been tried, from a
 * delete's completion (never inside storage_delete_keys()); a call whose
 * every delete failed at once returns that failure and runs no callback.
 */
#include "storage_int.h"

#include <stdlib.h>

/* Deletes in flight at once for one batch. */
#define BATCH_PARALLEL 8

typedef struct batch batch_t;

/* One key of a batch: the callback data of its delete. */
typedef struct {
    batch_t *b;
    char *key;
} batch_key_t;

struct batch {
    storage_t *s;
    batch_key_t *keys;
    size_t n, next, inflight, n_deleted;
    const char **deleted; /* the keys whose delete succeeded */
    gf_err_t first_err;
    storage_batch_cb cb;
    void *data;
};

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->keys[i].key);
    free(b->keys);
    free(b->deleted);
    free(b);
}

static void on_one(storage_t *s, const gf_err_t *err, void *data);

/* Starts deletes until BATCH_PARALLEL are in flight or every key is started. */
static void pump(batch_t *b)
{
    while (b->inflight < BATCH_PARALLEL && b->next < b->n) {
        batch_key_t *k = &b->keys[b->next++];
        int rc = storage_delete(b->s, k->key, on_one, k);
        if (rc == 0)
            b->inflight++;
        else if (b->first_err.code == 0)
            gf_err_set(&b->first_err, rc, STORAGE_DOMAIN, "cannot delete %s: %s", k->key,
                       gf_status_name(rc));
    }
}

static void on_one(storage_t *s, const gf_err_t *err, void *data)
{
    batch_key_t *k = data;
    batch_t *b = k->b;
    b->inflight--;
    if (err->code == 0)
        b->deleted[b->n_deleted++] = k->key;
    else if (b->first_err.code == 0)
        b->first_err = *err;
    pump(b);
    if (b->inflight > 0)
        return;
    b->cb(s, &b->first_err, b->deleted, b->n_deleted, b->data);
    batch_free(b);
}

int storage_delete_keys(storage_t *s, const char *const *keys, size_t n, storage_batch_cb cb,
                        void *cb_data)
{
    if (s == NULL || keys == NULL || n == 0 || cb == NULL)
        return GF_EINVAL;
    batch_t *b = gf_xcalloc(1, sizeof(*b));
    b->s = s;
    b->n = n;
    b->keys = gf_xcalloc(n, sizeof(*b->keys));
    b->deleted = gf_xcalloc(n, sizeof(*b->deleted));
    b->cb = cb;
    b->data = cb_data;
    for (size_t i = 0; i < n; i++) {
        b->keys[i].b = b;
        b->keys[i].key = gf_xstrdup(keys[i]);
    }
    pump(b);
    if (b->inflight > 0)
        return 0;
    int rc = b->first_err.code;
    batch_free(b);
    return rc;
}
