/*
 * tests/support/storage_util.h - what the storage tests share: one call's
 * result as its callback delivered it, the callbacks that record it
 * (checking the async contract: never inside the call that started it), and
 * the wait for it on the test's loop.
 */
#ifndef GF_TESTS_STORAGE_UTIL_H
#define GF_TESTS_STORAGE_UTIL_H

#include <uv.h>

#include "storage.h"

typedef struct {
    int done;    /* how many times the callback ran */
    int in_call; /* set while the call that starts it runs */
    gf_err_t err;
    unsigned char *data; /* a get's object (free() it) */
    size_t len;
    char etag[80];
} su_result_t;

/* storage_done_cb recording into the su_result_t `data`. */
void su_on_done(storage_t *s, const gf_err_t *err, void *data);
/* storage_get_cb recording into the su_result_t `data`: the object's bytes and ETag taken
 * on success; on failure, no object. */
void su_on_got(storage_t *s, const gf_err_t *err, storage_object_t *obj, void *data);
/* The end of a call started with `r` as its callback's data: runs `loop` until the
 * callback ran, and checks it ran once. */
void su_wait(uv_loop_t *loop, su_result_t *r);

#endif
