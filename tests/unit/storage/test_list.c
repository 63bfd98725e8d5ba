/*
 * unit_storage_list: storage_list() on the `local` backend, on a temp
 * directory: pages of 1, 2 and 1000 objects, each resumed from the last
 * page's cursor, list every object once, in the same order, with its size
 * and modification time; a put's temp file is listed as temp and
 * storage_delete() removes it; names storage would refuse are skipped;
 * an empty or missing root lists nothing; bad arguments fail at the call;
 * the async contract (never inside the call).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local_fixture.h"
#include "storage.h"

/* The objects of this test, in the order a listing gives (names sorted in each folder). */
static const char *const stored[] = {
    "a/g/.0-full.a2.webp.tmp.Xy12Zq", "a/g/0-full.a1.webp", "a/g/0-thumb.a1.webp",
    "a/g-2/1-full.a1.webp",           "a/uploads/u1.png",   "b/g/0-full.webp",
};
#define N_STORED (sizeof(stored) / sizeof(stored[0]))

typedef struct {
    int done, in_call;
    gf_err_t err;
    char keys[16][128];
    long long sizes[16];
    long long mtimes[16];
    int temps[16];
    size_t n;
    char next[256];
    int has_next;
} page_t;

static void on_listed(storage_t *s, const gf_err_t *err, const storage_entry_t *e, size_t n,
                      const char *next, void *data)
{
    (void)s;
    page_t *p = data;
    assert_false(p->in_call);
    p->err = *err;
    p->done++;
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        snprintf(p->keys[i], sizeof(p->keys[i]), "%s", e[i].key);
        p->sizes[i] = e[i].size;
        p->mtimes[i] = e[i].mtime_unix_s;
        p->temps[i] = e[i].temp;
    }
    p->n = n;
    p->has_next = next != NULL;
    if (next)
        snprintf(p->next, sizeof(p->next), "%s", next);
}

static void on_done(storage_t *s, const gf_err_t *err, void *data)
{
    (void)s;
    (void)err;
    (*(int *)data)++;
}

static page_t list(const char *cursor, size_t max)
{
    page_t p = {.in_call = 1};
    assert_int_equal(storage_list(st, cursor, max, on_listed, &p), 0);
    p.in_call = 0;
    while (!p.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(p.err.code, 0);
    return p;
}

static void write_file(const char *key, const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/objects/%s", root, key);
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\" && printf '%%s' '%s' > '%s'", path,
             text, path);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    return local_fixture_setup("list");
}

static int teardown(void **state)
{
    (void)state;
    return local_fixture_teardown();
}

static void test_nothing_stored_lists_nothing(void **state)
{
    (void)state;
    page_t p = list(NULL, 10); /* the root does not exist yet */
    assert_int_equal(p.n, 0);
    assert_false(p.has_next);
}

static void test_bad_arguments_fail_at_the_call(void **state)
{
    (void)state;
    page_t p = {0};
    assert_int_equal(storage_list(st, NULL, 0, on_listed, &p), GF_EINVAL);
    assert_int_equal(storage_list(st, NULL, 1001, on_listed, &p), GF_EINVAL);
    assert_int_equal(storage_list(st, "", 10, on_listed, &p), GF_EINVAL);
    assert_int_equal(storage_list(st, NULL, 10, NULL, &p), GF_EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(p.done, 0);
}

/* Pages of `max`, each from the last one's cursor, give every object once, in order. */
static void check_pages(size_t max)
{
    char cursor[256] = "";
    size_t seen = 0;
    for (int pages = 0; pages < 20; pages++) {
        page_t p = list(cursor[0] ? cursor : NULL, max);
        assert_true(p.n <= max);
        for (size_t i = 0; i < p.n; i++) {
            assert_true(seen < N_STORED);
            assert_string_equal(p.keys[i], stored[seen]);
            assert_int_equal(p.temps[i], strstr(stored[seen], ".tmp.") != NULL);
            assert_int_equal(p.sizes[i], (long long)strlen(stored[seen]));
            seen++;
        }
        if (!p.has_next) {
            assert_int_equal(seen, N_STORED);
            return;
        }
        snprintf(cursor, sizeof(cursor), "%s", p.next);
    }
    fail_msg("pages of %zu never ended", max);
}

static void test_pages_list_every_object_once(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STORED; i++)
        write_file(stored[i], stored[i]); /* each file holds its key: its size is known */
    /* Names storage refuses are skipped: a hidden file that is no temp file, upper case. */
    write_file("a/g/.hidden", "x");
    write_file("a/G/0-full.webp", "x");
    check_pages(1);
    check_pages(2);
    check_pages(1000);
    page_t p = list(NULL, 1);
    assert_true(p.mtimes[0] > 1700000000LL);
    assert_true(p.mtimes[0] <= (long long)time(NULL));
}

static void test_a_temp_file_can_be_deleted(void **state)
{
    (void)state;
    int done = 0;
    assert_int_equal(storage_delete(st, stored[0], on_done, &done), 0);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    page_t p = list(NULL, 1000);
    assert_int_equal(p.n, N_STORED - 1);
    assert_string_equal(p.keys[0], stored[1]);
    /* get and put still refuse temp names */
    assert_int_equal(storage_put(st, stored[0], "x", 1, NULL, on_done, &done), GF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_stored_lists_nothing),
        cmocka_unit_test(test_bad_arguments_fail_at_the_call),
        cmocka_unit_test(test_pages_list_every_object_once),
        cmocka_unit_test(test_a_temp_file_can_be_deleted),
    };
    return cmocka_run_group_tests_name("unit_storage_list", tests, setup, teardown);
}
