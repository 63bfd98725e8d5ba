/*
 * tests/unit/core/test_ids.c - core/ids.c and core/clock.c: the ids and
 * timestamps other modules store and compare as text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ids.h"

static void test_uuid4_is_a_lowercase_version_4_uuid(void **state)
{
    (void)state;
    char a[37], b[37];
    gf_uuid4(a);
    gf_uuid4(b);
    assert_true(gf_uuid_is_valid(a));
    assert_true(gf_uuid_is_valid(b));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Many ids (the random pool refilled many times over) are valid v4 ids, all different. */
static void test_uuid4_many_are_all_different(void **state)
{
    (void)state;
    enum { N = 5000 };
    char(*ids)[37] = calloc(N, sizeof(*ids));
    for (int i = 0; i < N; i++) {
        gf_uuid4(ids[i]);
        assert_true(gf_uuid_is_valid(ids[i]));
        assert_int_equal(ids[i][14], '4');
        assert_non_null(strchr("89ab", ids[i][19]));
    }
    qsort(ids, N, sizeof(*ids), cmp_ids);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

/* A forked child does not hand out the parent's next id (their pools are not shared). */
static void test_uuid4_differs_after_fork(void **state)
{
    (void)state;
    char mine[37], theirs[37] = {0};
    gf_uuid4(mine); /* the pool is filled before the fork */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[37];
        gf_uuid4(id);
        _exit(write(fd[1], id, sizeof(id)) == (ssize_t)sizeof(id) ? 0 : 1);
    }
    close(fd[1]);
    assert_int_equal(read(fd[0], theirs, sizeof(theirs)), (ssize_t)sizeof(theirs));
    close(fd[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    gf_uuid4(mine);
    assert_true(gf_uuid_is_valid(theirs));
    assert_string_not_equal(mine, theirs);
}

static void test_uuid_check_refuses_what_is_not_a_lowercase_uuid(void **state)
{
    (void)state;
    assert_true(gf_uuid_is_valid("0f8fad5b-d9cb-469f-a165-70867728950e"));
    static const char *const bad[] = {
        "",
        "0F8FAD5B-D9CB-469F-A165-70867728950E",  /* upper case */
        "0f8fad5b-d9cb-469f-a165-70867728950",   /* short */
        "0f8fad5b-d9cb-469f-a165-70867728950e0", /* long */
        "0f8fad5bd-9cb-469f-a165-70867728950e",  /* a dash out of place */
        "0f8fad5b-d9cb-469f-a165-70867728950g",  /* not hex */
        "{f8fad5b-d9cb-469f-a165-70867728950e",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(gf_uuid_is_valid(bad[i]));
    assert_false(gf_uuid_is_valid(NULL));
}

static void test_rfc3339_has_milliseconds_in_utc(void **state)
{
    (void)state;
    char out[32];
    gf_clock_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    gf_clock_rfc3339(1714564800123, out);
    assert_string_equal(out, "2024-05-01T12:00:00.123Z");
}

static void test_unix_ms_is_now(void **state)
{
    (void)state;
    int64_t ms = gf_clock_unix_ms();
    assert_true(ms > 1700000000000LL);            /* after November 2023 */
    assert_true(gf_clock_unix_ms() - ms < 60000); /* and it does not jump */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid4_is_a_lowercase_version_4_uuid),
        cmocka_unit_test(test_uuid4_many_are_all_different),
        cmocka_unit_test(test_uuid4_differs_after_fork),
        cmocka_unit_test(test_uuid_check_refuses_what_is_not_a_lowercase_uuid),
        cmocka_unit_test(test_rfc3339_has_milliseconds_in_utc),
        cmocka_unit_test(test_unix_ms_is_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
