/*
 * unit_storage_sigv4: SigV4 against the worked examples AWS publishes
 * (docs.aws.amazon.com, "Signature Calculations for the Authorization Header"
 * and "Authenticating Requests: Using Query Parameters"; the signing key of
 * the general reference's "Examples of how to derive a signing key").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sigv4.h"

#define AKID    "AKIAIOSFODNN7EXAMPLE"
#define SECRET  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST    "examplebucket.s3.amazonaws.com"
#define AMZDATE "20130524T000000Z"

static const sigv4_creds creds = {AKID, SECRET, "us-east-1", "s3"};

static void test_uri_encode(void **state)
{
    (void)state;
    gf_buf_t b = {0};
    sigv4_uri_encode(&b, "a b/c~d_e-f.g$h+i%j=k&l\xc3\xa9", 1);
    assert_string_equal(b.p, "a%20b/c~d_e-f.g%24h%2Bi%25j%3Dk%26l%C3%A9");
    gf_buf_dispose(&b);
    sigv4_uri_encode(&b, "AKID/20130524/us-east-1/s3/aws4_request", 0);
    assert_string_equal(b.p, "AKID%2F20130524%2Fus-east-1%2Fs3%2Faws4_request");
    gf_buf_dispose(&b);
}

static void test_signing_key(void **state)
{
    (void)state;
    unsigned char key[32];
    char hex[65];
    static const char digits[] = "0123456789abcdef";
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
                      key);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[key[i] >> 4];
        hex[2 * i + 1] = digits[key[i] & 15];
    }
    hex[64] = '\0';
    assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

/* GET Object with a Range header. */
static void test_get_object(void **state)
{
    (void)state;
    const sigv4_kv h[] = {{"Host", HOST},
                          {"Range", "bytes=0-9"},
                          {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
                          {"x-amz-date", AMZDATE}};
    char *canonical =
        sigv4_canonical_request("GET", "/test.txt", NULL, 0, h, 4, SIGV4_EMPTY_SHA256);
    assert_string_equal(canonical,
                        "GET\n/test.txt\n\n"
                        "host:" HOST "\nrange:bytes=0-9\n"
                        "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
                        "x-amz-date:" AMZDATE "\n\n"
                        "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
    char *sts = sigv4_string_to_sign(AMZDATE, "20130524/us-east-1/s3/aws4_request", canonical);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n" AMZDATE "\n20130524/us-east-1/s3/aws4_request\n"
                             "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    free(sts);
    free(canonical);
    char *auth =
        sigv4_authorization(&creds, AMZDATE, "GET", "/test.txt", NULL, 0, h, 4, SIGV4_EMPTY_SHA256);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=" AKID "/20130524/us-east-1/s3/"
                              "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;"
                              "x-amz-date,Signature="
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(auth);
}

/* PUT Object: a '$' in the key, a body, a header out of order. */
static void test_put_object(void **state)
{
    (void)state;
    const char *payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    const sigv4_kv h[] = {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                          {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                          {"Host", HOST},
                          {"x-amz-date", AMZDATE},
                          {"x-amz-content-sha256", payload}};
    char *auth =
        sigv4_authorization(&creds, AMZDATE, "PUT", "/test$file.text", NULL, 0, h, 5, payload);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=" AKID "/20130524/us-east-1/s3/"
                              "aws4_request,SignedHeaders=date;host;x-amz-content-sha256;"
                              "x-amz-date;x-amz-storage-class,Signature="
                              "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    free(auth);
}

/* GET Bucket (list objects): the query is sorted and encoded. */
static void test_list_objects(void **state)
{
    (void)state;
    const sigv4_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    const sigv4_kv h[] = {
        {"host", HOST}, {"x-amz-date", AMZDATE}, {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
    char *canonical = sigv4_canonical_request("GET", "/", q, 2, h, 3, SIGV4_EMPTY_SHA256);
    assert_non_null(strstr(canonical, "GET\n/\nmax-keys=2&prefix=J\n"));
    free(canonical);
    char *auth = sigv4_authorization(&creds, AMZDATE, "GET", "/", q, 2, h, 3, SIGV4_EMPTY_SHA256);
    assert_non_null(
        strstr(auth, "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    free(auth);
}

/* A presigned GET valid 86400 s. */
static void test_presign(void **state)
{
    (void)state;
    char *q = sigv4_presign_query(&creds, AMZDATE, 86400, "GET", "/test.txt", HOST);
    assert_string_equal(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
                           "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=" AMZDATE
                           "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
                           "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(q);
}

static void test_amz_date(void **state)
{
    (void)state;
    char d[17];
    sigv4_amz_date(1369353600LL, d);
    assert_string_equal(d, AMZDATE);
    sigv4_amz_date(0, d);
    assert_string_equal(d, "19700101T000000Z");
}

/* Header values are trimmed and inner runs of spaces folded; names lower-cased. */
static void test_header_trim(void **state)
{
    (void)state;
    const sigv4_kv h[] = {{"X-Amz-Meta-A", "  a   b  "}, {"host", "h"}};
    char *c = sigv4_canonical_request("GET", "/k", NULL, 0, h, 2, "x");
    assert_string_equal(c, "GET\n/k\n\nhost:h\nx-amz-meta-a:a b\n\nhost;x-amz-meta-a\nx");
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_encode),   cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_get_object),   cmocka_unit_test(test_put_object),
        cmocka_unit_test(test_list_objects), cmocka_unit_test(test_presign),
        cmocka_unit_test(test_amz_date),     cmocka_unit_test(test_header_trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
