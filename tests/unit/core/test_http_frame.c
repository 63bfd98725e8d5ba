/*
 * tests/unit/core/test_http_frame.c - the shared stream frame of
 * core/httpd.h: made once with its chunked framing (an independent decoder
 * here reads it back), its data alone for HTTP/1.0 streams, and counted by
 * reference (ASan, in the test build, reports a leak or a double free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpd.h"

/* Decodes one HTTP/1.1 chunk: its size line, data and CRLF; the data's length, -1 if malformed. */
static long decode_chunk(const char *wire, size_t len, const char **data)
{
    char *end;
    long n = strtol(wire, &end, 16);
    if (end == wire || end + 2 > wire + len || memcmp(end, "\r\n", 2) != 0)
        return -1;
    *data = end + 2;
    if (*data + n + 2 != wire + len || memcmp(*data + n, "\r\n", 2) != 0)
        return -1;
    return n;
}

static void test_a_frame_is_one_chunk_of_its_data(void **state)
{
    (void)state;
    static const char ev[] = "id: 7\nevent: progress\ndata: {\"progress\":40}\n\n";
    gf_http_frame_t *f = gf_http_frame_new(ev, strlen(ev));
    size_t wlen, dlen;
    const char *wire = gf_http_frame_wire(f, &wlen), *data = gf_http_frame_data(f, &dlen), *got;
    assert_int_equal(decode_chunk(wire, wlen, &got), (long)strlen(ev));
    assert_memory_equal(got, ev, strlen(ev));
    assert_ptr_equal(got, data); /* the HTTP/1.0 bytes are the same bytes, not a copy */
    assert_int_equal(dlen, strlen(ev));
    gf_http_frame_unref(f);
}

static void test_a_large_frame_has_a_multi_digit_size(void **state)
{
    (void)state;
    size_t n = 70000; /* 0x11170 */
    char *big = malloc(n);
    memset(big, 'x', n);
    gf_http_frame_t *f = gf_http_frame_new(big, n);
    size_t wlen;
    const char *wire = gf_http_frame_wire(f, &wlen), *got;
    assert_true(strncmp(wire, "11170\r\n", 7) == 0);
    assert_int_equal(decode_chunk(wire, wlen, &got), (long)n);
    assert_memory_equal(got, big, n);
    gf_http_frame_unref(f);
    free(big);
}

static void test_a_frame_lives_until_its_last_reference_goes(void **state)
{
    (void)state;
    gf_http_frame_t *f = gf_http_frame_new("a", 1);
    assert_ptr_equal(gf_http_frame_ref(f), f);
    assert_ptr_equal(gf_http_frame_ref(f), f);
    gf_http_frame_unref(f);
    gf_http_frame_unref(f);
    size_t dlen;
    assert_memory_equal(gf_http_frame_data(f, &dlen), "a", 1); /* one reference left */
    gf_http_frame_unref(f);
    gf_http_frame_unref(NULL); /* a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_frame_is_one_chunk_of_its_data),
        cmocka_unit_test(test_a_large_frame_has_a_multi_digit_size),
        cmocka_unit_test(test_a_frame_lives_until_its_last_reference_goes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
