/*
 * tests/support/storage_util.c - one storage call's result recorded and
 * waited for (storage_util.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "storage_util.h"

void su_on_done(storage_t *s, const gf_err_t *err, void *data)
{
    (void)s;
    su_result_t *r = data;
    assert_false(r->in_call); /* never inside the call that started it */
    r->err = *err;
    r->done++;
}

void su_on_got(storage_t *s, const gf_err_t *err, storage_object_t *obj, void *data)
{
    (void)s;
    su_result_t *r = data;
    assert_false(r->in_call);
    r->err = *err;
    r->done++;
    if (err->code == 0) {
        r->data = storage_object_take(obj, &r->len);
        snprintf(r->etag, sizeof(r->etag), "%s", obj->etag);
    } else {
        assert_null(obj);
    }
}

void su_wait(uv_loop_t *loop, su_result_t *r)
{
    r->in_call = 0;
    while (!r->done)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(r->done, 1);
}
