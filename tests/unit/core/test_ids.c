/*
 * tests/unit/core/test_ids.c - core/ids.c and core/clock.c: the ids and
 * timestamps other modules store and compare as text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
        cmocka_unit_test(test_uuid_check_refuses_what_is_not_a_lowercase_uuid),
        cmocka_unit_test(test_rfc3339_has_milliseconds_in_utc),
        cmocka_unit_test(test_unix_ms_is_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
