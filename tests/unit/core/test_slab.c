/*
 * tests/unit/core/test_slab.c - core/slab.c, where the api keeps what each
 * open connection and SSE stream holds: zeroed, aligned, distinct objects,
 * freed ones reused first, chunks added as objects run out, and the count
 * of objects in use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slab.h"

typedef struct {
    char bytes[200];
} obj_t;

static void test_objects_are_zeroed_aligned_and_distinct(void **state)
{
    (void)state;
    gf_slab_t s;
    gf_slab_init(&s, sizeof(obj_t));
    obj_t *a = gf_slab_alloc(&s), *b = gf_slab_alloc(&s);
    assert_true(a != b);
    assert_int_equal((uintptr_t)a % 16, 0);
    assert_int_equal((uintptr_t)b % 16, 0);
    /* No overlap: b starts at least one object past a, or before it. */
    assert_true((char *)b >= (char *)a + sizeof(obj_t) || (char *)a >= (char *)b + sizeof(obj_t));
    for (size_t i = 0; i < sizeof(obj_t); i++)
        assert_int_equal(a->bytes[i], 0);
    memset(a->bytes, 0x5a, sizeof(a->bytes));
    memset(b->bytes, 0xa5, sizeof(b->bytes));
    assert_int_equal((unsigned char)a->bytes[199], 0x5a); /* b did not write over a */
    assert_int_equal(gf_slab_in_use(&s), 2);
    gf_slab_free(&s, a);
    gf_slab_free(&s, b);
    gf_slab_free(&s, NULL); /* a no-op */
    assert_int_equal(gf_slab_in_use(&s), 0);
    gf_slab_dispose(&s);
}

static void test_a_freed_object_is_reused_first_and_zeroed_again(void **state)
{
    (void)state;
    gf_slab_t s;
    gf_slab_init(&s, sizeof(obj_t));
    obj_t *a = gf_slab_alloc(&s);
    memset(a->bytes, 0x77, sizeof(a->bytes));
    gf_slab_free(&s, a);
    obj_t *again = gf_slab_alloc(&s);
    assert_ptr_equal(again, a);
    for (size_t i = 0; i < sizeof(obj_t); i++)
        assert_int_equal(again->bytes[i], 0);
    gf_slab_free(&s, again);
    gf_slab_dispose(&s);
}

static void test_many_objects_span_chunks_and_all_stay_usable(void **state)
{
    (void)state;
    enum { N = 5000 }; /* ~1 MiB of 208-byte objects: many 64 KiB chunks */
    gf_slab_t s;
    gf_slab_init(&s, sizeof(obj_t));
    static obj_t *objs[N];
    for (int i = 0; i < N; i++) {
        objs[i] = gf_slab_alloc(&s);
        memset(objs[i]->bytes, i & 0xff, sizeof(objs[i]->bytes));
    }
    assert_int_equal(gf_slab_in_use(&s), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal((unsigned char)objs[i]->bytes[0], i & 0xff);
        assert_int_equal((unsigned char)objs[i]->bytes[199], i & 0xff);
    }
    for (int i = 0; i < N; i += 2)
        gf_slab_free(&s, objs[i]);
    assert_int_equal(gf_slab_in_use(&s), N / 2);
    /* The freed half is handed out again before any new chunk. */
    static obj_t *freed[N / 2];
    for (int i = 0; i < N; i += 2)
        freed[i / 2] = objs[i];
    for (int i = 0; i < N; i += 2) {
        obj_t *o = gf_slab_alloc(&s);
        int found = 0;
        for (int j = 0; j < N / 2 && !found; j++)
            found = freed[j] == o;
        assert_true(found);
        objs[i] = o;
    }
    for (int i = 0; i < N; i++)
        gf_slab_free(&s, objs[i]);
    assert_int_equal(gf_slab_in_use(&s), 0);
    gf_slab_dispose(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_are_zeroed_aligned_and_distinct),
        cmocka_unit_test(test_a_freed_object_is_reused_first_and_zeroed_again),
        cmocka_unit_test(test_many_objects_span_chunks_and_all_stay_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
