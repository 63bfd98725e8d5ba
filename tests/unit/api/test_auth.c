/*
 * tests/unit/api/test_auth.c - api__token_verify() on tokens made by libjwt
 * directly (not by our own issuer): exp, nbf and iat, algorithms, claims;
 * and api__token_cache_verify, the verified tokens remembered until their exp.
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
#define OTHER  "not-the-secret-0123456789" /* a wrong secret: only a remembered token passes */

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

/* err.detail of verifying `t` (freed) with `secret`, which must refuse it. */
static long refused_detail(const char *secret, char *t)
{
    api_principal_t p;
    gf_err_t err = {0};
    assert_true(api__token_verify(secret, t, &p, &err) < 0);
    free(t);
    return err.detail;
}

/* A token of ours refused by a claim says so (the gate answers it 401 without the anonymous
 * bucket); one that is not ours does not. */
static void test_a_refused_token_of_ours_is_told_apart(void **state)
{
    (void)state;
    assert_int_equal(refused_detail(SECRET, token(-1, LONG_MIN, LONG_MIN)), API_TOKEN_SIGNED);
    assert_int_equal(refused_detail(SECRET, token(7200, 3600, LONG_MIN)), API_TOKEN_SIGNED);
    assert_int_equal(refused_detail(OTHER, token(600, LONG_MIN, LONG_MIN)), 0);
    assert_int_equal(refused_detail(SECRET, strdup("not.a.token")), 0);
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

/* api__token_cache_verify of `t` with `secret` at `now`: its result, the message in `why`. */
static int cached(api_token_cache_t *c, const char *secret, const char *t, long now, char why[256])
{
    api_principal_t p;
    gf_err_t err = {0};
    int rc = api__token_cache_verify(c, secret, t, now, &p, &err);
    snprintf(why, 256, "%s", err.msg);
    if (rc == 0)
        assert_string_equal(p.sub, SUB);
    return rc;
}

/*
 * The fixture of the cache tests that start from one remembered token: a
 * cache of 16 that has verified `t` (exp in 600 s) at `now`; in *state.
 */
typedef struct {
    api_token_cache_t *c;
    char *t;
    long now;
} remembered_t;

static int remembered_setup(void **state)
{
    remembered_t *r = calloc(1, sizeof(*r));
    char why[256];
    r->c = api__token_cache_new(16);
    r->t = token(600, LONG_MIN, LONG_MIN);
    r->now = (long)time(NULL);
    *state = r;
    assert_int_equal(cached(r->c, SECRET, r->t, r->now, why), 0);
    return 0;
}

static int remembered_teardown(void **state)
{
    remembered_t *r = *state;
    free(r->t);
    api__token_cache_free(r->c);
    free(r);
    return 0;
}

/* What `farm token` makes, farm-api takes: a plan it would refuse, or a secret it would not
 * start with, is refused when issuing, not in every request that carries the token. */
static void test_issue_refuses_what_the_api_would(void **state)
{
    (void)state;
    gf_err_t err = {0};
    api_claims_t c = {.sub = SUB, .plan = "pro", .ttl_s = 60};
    char *t = api_token_issue(SECRET, &c, &err);
    assert_non_null(t);
    api_principal_t p;
    assert_int_equal(api__token_verify(SECRET, t, &p, &err), 0);
    assert_string_equal(p.plan, "pro");
    free(t);
    static const char *const bad_plans[] = {"Pro", "", "pro plan", "pro.x",
                                            "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof(bad_plans) / sizeof(bad_plans[0]); i++) {
        c.plan = bad_plans[i];
        err = (gf_err_t){0};
        assert_null(api_token_issue(SECRET, &c, &err));
        assert_int_equal(err.code, GF_EINVAL);
        assert_non_null(strstr(err.msg, "plan"));
    }
    c.plan = "abcdefghijklmnopqrstuvwxyz012345"; /* 32: the longest */
    t = api_token_issue(SECRET, &c, &err);
    assert_non_null(t);
    assert_int_equal(api__token_verify(SECRET, t, &p, &err), 0);
    free(t);
    c.plan = NULL;
    err = (gf_err_t){0};
    assert_null(api_token_issue("fifteen-chars-x", &c, &err));
    assert_non_null(strstr(err.msg, "FARM_JWT_SECRET"));
    t = api_token_issue("sixteen-chars-xy", &c, &err);
    assert_non_null(t);
    free(t);
}

/* A remembered token is answered without the secret: a wrong one shows the cache answered. */
static void test_cache_answers_a_verified_token_again(void **state)
{
    remembered_t *r = *state;
    char why[256];
    assert_int_equal(cached(r->c, OTHER, r->t, r->now, why), 0);
    /* a refusal is not remembered: a bad signature is refused each time */
    char *u = token(900, LONG_MIN, LONG_MIN);
    assert_true(cached(r->c, OTHER, u, r->now, why) < 0);
    assert_non_null(strstr(why, "signature"));
    assert_int_equal(cached(r->c, SECRET, u, r->now, why), 0);
    free(u);
}

/* Only the whole text matches: one changed signature byte is verified, and refused. */
static void test_cache_matches_the_whole_token(void **state)
{
    remembered_t *r = *state;
    char why[256];
    size_t n = strlen(r->t);
    r->t[n - 2] = r->t[n - 2] == 'A' ? 'B' : 'A';
    assert_true(cached(r->c, SECRET, r->t, r->now, why) < 0);
    r->t[n - 2] = '\0'; /* a prefix of a remembered token is not it either */
    assert_true(cached(r->c, SECRET, r->t, r->now, why) < 0);
}

/* At its exp a remembered token is refused as expired, and forgotten. */
static void test_cache_refuses_at_exp(void **state)
{
    remembered_t *r = *state;
    char why[256];
    assert_int_equal(cached(r->c, OTHER, r->t, r->now + 598, why), 0);
    api_principal_t p;
    gf_err_t err = {0};
    assert_true(api__token_cache_verify(r->c, SECRET, r->t, r->now + 601, &p, &err) < 0);
    assert_non_null(strstr(err.msg, "expired"));
    assert_int_equal(err.detail, API_TOKEN_SIGNED); /* it was ours */
    /* forgotten: the next check verifies it again (and a wrong secret fails it) */
    assert_true(cached(r->c, OTHER, r->t, r->now, why) < 0);
}

/* Bounded: a token takes its slot from another; one over the size limit is never kept. */
static void test_cache_is_bounded(void **state)
{
    (void)state;
    api_token_cache_t *c = api__token_cache_new(1);
    char *a = token(600, LONG_MIN, LONG_MIN), *b = token(700, LONG_MIN, LONG_MIN), why[256];
    long now = (long)time(NULL);
    assert_int_equal(cached(c, SECRET, a, now, why), 0);
    assert_int_equal(cached(c, SECRET, b, now, why), 0);
    assert_true(cached(c, OTHER, a, now, why) < 0);
    assert_int_equal(cached(c, OTHER, b, now, why), 0);
    free(a);
    free(b);
    /* a token longer than API_TOKEN_CACHE_TOKEN_MAX */
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET));
    jwt_add_grant(jwt, "sub", SUB);
    jwt_add_grant_int(jwt, "exp", now + 600);
    char pad[API_TOKEN_CACHE_TOKEN_MAX + 1];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    jwt_add_grant(jwt, "pad", pad);
    char *big = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_true(strlen(big) > API_TOKEN_CACHE_TOKEN_MAX);
    assert_int_equal(cached(c, SECRET, big, now, why), 0);
    assert_true(cached(c, OTHER, big, now, why) < 0);
    free(big);
    api__token_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_token_passes),
        cmocka_unit_test(test_nbf_in_the_future_is_refused),
        cmocka_unit_test(test_iat_in_the_future_is_refused),
        cmocka_unit_test(test_expired_is_refused),
        cmocka_unit_test(test_a_refused_token_of_ours_is_told_apart),
        cmocka_unit_test(test_nbf_of_wrong_type_is_refused),
        cmocka_unit_test(test_issue_refuses_what_the_api_would),
        cmocka_unit_test_setup_teardown(test_cache_answers_a_verified_token_again, remembered_setup,
                                        remembered_teardown),
        cmocka_unit_test_setup_teardown(test_cache_matches_the_whole_token, remembered_setup,
                                        remembered_teardown),
        cmocka_unit_test_setup_teardown(test_cache_refuses_at_exp, remembered_setup,
                                        remembered_teardown),
        cmocka_unit_test(test_cache_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
