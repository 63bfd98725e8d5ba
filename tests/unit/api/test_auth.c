/*
 * tests/unit/api/test_auth.c - api__token_verify() on tokens made by libjwt
 * directly (not by our own issuer): exp, nbf and iat, algorithms, claims.
 */
#include "api_int.h"

#include <jwt.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define SECRET "unit-auth-secret-0123456789"
#define SUB    "7d1b3c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"

/* A token with exp = now+exp_in and, when `nbf_in` or `iat_in` is not LONG_MIN, those too. */
static char *token(long exp_in, long nbf_in, long iat_in)
{
    jwt_t *jwt = NULL;
    long now = (long)time(NULL);
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET)),
                     0);
    assert_int_equal(jwt_add_grant(jwt, "sub", SUB), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", now + exp_in), 0);
    if (nbf_in != LONG_MIN)
        assert_int_equal(jwt_add_grant_int(jwt, "nbf", now + nbf_in), 0);
    if (iat_in != LONG_MIN)
        assert_int_equal(jwt_add_grant_int(jwt, "iat", now + iat_in), 0);
    char *t = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(t);
    return t;
}

static int verify(char *t, char why[256])
{
    api_principal_t p;
    gf_err_t err = {0};
    int rc = api__token_verify(SECRET, t, &p, &err);
    snprintf(why, 256, "%s", err.msg);
    if (rc == 0)
        assert_string_equal(p.sub, SUB);
    free(t);
    return rc;
}

static void test_plain_token_passes(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(verify(token(600, LONG_MIN, LONG_MIN), why), 0);
    assert_int_equal(verify(token(600, -10, -10), why), 0);
}

static void test_nbf_in_the_future_is_refused(void **state)
{
    (void)state;
    char why[256];
    assert_true(verify(token(7200, 3600, LONG_MIN), why) < 0);
    assert_non_null(strstr(why, "nbf"));
    /* within the allowed skew it passes */
    assert_int_equal(verify(token(7200, API_TOKEN_SKEW_S / 2, LONG_MIN), why), 0);
}

static void test_iat_in_the_future_is_refused(void **state)
{
    (void)state;
    char why[256];
    assert_true(verify(token(7200, LONG_MIN, 3600), why) < 0);
    assert_non_null(strstr(why, "iat"));
}

static void test_expired_is_refused(void **state)
{
    (void)state;
    char why[256];
    assert_true(verify(token(-1, LONG_MIN, LONG_MIN), why) < 0);
    assert_non_null(strstr(why, "expired"));
}

static void test_nbf_of_wrong_type_is_refused(void **state)
{
    (void)state;
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET));
    jwt_add_grant(jwt, "sub", SUB);
    jwt_add_grant_int(jwt, "exp", (long)time(NULL) + 600);
    jwt_add_grant(jwt, "nbf", "tomorrow");
    char *t = jwt_encode_str(jwt);
    jwt_free(jwt);
    char why[256];
    assert_true(verify(t, why) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_token_passes),
        cmocka_unit_test(test_nbf_in_the_future_is_refused),
        cmocka_unit_test(test_iat_in_the_future_is_refused),
        cmocka_unit_test(test_expired_is_refused),
        cmocka_unit_test(test_nbf_of_wrong_type_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
