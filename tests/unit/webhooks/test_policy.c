/*
 * tests/unit/webhooks/test_policy.c - webhooks/policy.c: the Standard
 * Webhooks signature (against the spec's own test vector and one computed by
 * the standardwebhooks npm package), the retry schedule and its 24 h window,
 * Retry-After, the verdict on each kind of answer, the body; and net/'s
 * net_url_check, which refuses a webhook_url at submit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "imaging.h"
#include "net.h"
#include "webhooks.h"

#define S 1000LL
#define H (3600 * S)

static void sign_with(const char *secret, const char *id, long long ts, const char *body, char *out)
{
    unsigned char key[WEBHOOK_KEY_MAX];
    size_t len = 0;
    gf_err_t err = {0};
    assert_int_equal(webhook_key_decode(secret, key, &len, &err), 0);
    webhook_sign(key, len, id, ts, body, strlen(body), out, 128);
}

static void test_signature_matches_the_spec(void **state)
{
    (void)state;
    char sig[128];
    /* The Standard Webhooks test vector (also what `standardwebhooks` 1.1.1 signs). */
    sign_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
              "{\"test\": 2432232314}", sig);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* A secret without whsec_ is used as its bytes: what the npm package computes for
     * new Webhook(base64("plain-secret-0123456")). */
    sign_with("plain-secret-0123456", "id1", 1700000000, "{}", sig);
    assert_string_equal(sig, "v1,QPA5e7ImqYzqQZyrBMKkWwMNgnskZib3/ObtqHbN43A=");
    /* One byte of the body changed: another signature. */
    sign_with("plain-secret-0123456", "id1", 1700000000, "{ }", sig);
    assert_string_not_equal(sig, "v1,QPA5e7ImqYzqQZyrBMKkWwMNgnskZib3/ObtqHbN43A=");
}

static void test_bad_secrets_refused(void **state)
{
    (void)state;
    unsigned char key[WEBHOOK_KEY_MAX];
    size_t len;
    gf_err_t err = {0};
    assert_int_equal(webhook_key_decode("", key, &len, &err), GF_EINVAL);
    assert_int_equal(webhook_key_decode("whsec_", key, &len, &err), GF_EINVAL);
    assert_int_equal(webhook_key_decode("whsec_abc", key, &len, &err), GF_EINVAL); /* not 4n */
    assert_int_equal(webhook_key_decode("whsec_ab!d", key, &len, &err), GF_EINVAL);
    /* A key anyone could guess: 4 bytes, or a plain secret of 12. */
    assert_int_equal(webhook_key_decode("whsec_YWJjZA==", key, &len, &err), GF_EINVAL);
    assert_int_equal(webhook_key_decode("plain-secret", key, &len, &err), GF_EINVAL);
    /* base64("abcdefghijklmnop"): 16 bytes, the least taken. */
    assert_int_equal(webhook_key_decode("whsec_YWJjZGVmZ2hpamtsbW5vcA==", key, &len, &err), 0);
    assert_int_equal(len, 16);
    assert_memory_equal(key, "abcdefghijklmnop", 16);
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    assert_int_equal(webhook_backoff_ms(1), 5 * S);
    assert_int_equal(webhook_backoff_ms(2), 5 * 60 * S);
    assert_int_equal(webhook_backoff_ms(3), 30 * 60 * S);
    assert_int_equal(webhook_backoff_ms(4), 2 * H);
    assert_int_equal(webhook_backoff_ms(5), 5 * H);
    assert_int_equal(webhook_backoff_ms(6), 10 * H);
    assert_int_equal(webhook_backoff_ms(9), 10 * H);
}

static void test_retry_after(void **state)
{
    (void)state;
    long long now = 1700000000000LL; /* Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(webhook_retry_after_ms("120", now), 120 * S);
    assert_int_equal(webhook_retry_after_ms(" 7 ", now), 7 * S);
    assert_int_equal(webhook_retry_after_ms("Tue, 14 Nov 2023 22:14:20 GMT", now), 60 * S);
    assert_int_equal(webhook_retry_after_ms("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
    assert_int_equal(webhook_retry_after_ms(NULL, now), -1);
    assert_int_equal(webhook_retry_after_ms("soon", now), -1);
    assert_int_equal(webhook_retry_after_ms("-5", now), -1);
    assert_int_equal(webhook_retry_after_ms("12abc", now), -1);
}

static webhook_decision_t decide(int attempts, long long since_first, long status,
                                 const char *retry_after)
{
    long long first = 1700000000000LL;
    webhook_attempt_t a = {.attempts = attempts,
                           .first_attempt_ms = first,
                           .now_ms = first + since_first,
                           .status = status,
                           .timed_out = status == 0,
                           .retry_after = retry_after};
    webhook_decision_t d;
    webhook_decide(&a, &d);
    return d;
}

static void test_verdicts(void **state)
{
    (void)state;
    assert_int_equal(decide(1, 0, 200, NULL).verdict, WEBHOOK_DELIVERED);
    assert_int_equal(decide(3, 2 * H, 204, NULL).verdict, WEBHOOK_DELIVERED);
    webhook_decision_t d = decide(1, 0, 500, NULL);
    assert_int_equal(d.verdict, WEBHOOK_RETRY);
    assert_int_equal(d.next_ms, 5 * S);
    assert_non_null(strstr(d.reason, "500"));
    d = decide(2, 5 * S, 0, NULL); /* a timeout */
    assert_int_equal(d.verdict, WEBHOOK_RETRY);
    assert_int_equal(d.next_ms, 5 * 60 * S);
    assert_non_null(strstr(d.reason, "timeout"));
    /* 410 stops at once; so does a 3xx? No: a redirect is not followed, it is retried. */
    d = decide(1, 0, 410, NULL);
    assert_int_equal(d.verdict, WEBHOOK_FAILED);
    assert_non_null(strstr(d.reason, "410"));
    assert_int_equal(decide(1, 0, 301, NULL).verdict, WEBHOOK_RETRY);
    /* Retry-After longer than the backoff wins; shorter does not. */
    d = decide(1, 0, 429, "120");
    assert_int_equal(d.next_ms, 120 * S);
    d = decide(2, 5 * S, 503, "1");
    assert_int_equal(d.next_ms, 5 * 60 * S);
    /* A Retry-After past the window's end: the last attempt at the window's end, as
     * without the header (API.md: retried for 24 h). */
    d = decide(2, 20 * H, 503, "86400");
    assert_int_equal(d.verdict, WEBHOOK_RETRY);
    assert_int_equal(d.next_ms, 4 * H);
    d = decide(6, 20 * H, 503, "86400"); /* the same as the 10 h backoff would */
    assert_int_equal(d.verdict, WEBHOOK_RETRY);
    assert_int_equal(d.next_ms, decide(6, 20 * H, 503, NULL).next_ms);
    d = decide(2, 20 * H, 503, "Thu, 16 Nov 2023 22:13:20 GMT"); /* first + 48 h */
    assert_int_equal(d.verdict, WEBHOOK_RETRY);
    assert_int_equal(d.next_ms, 4 * H);
    /* 7 attempts made by 17 h 35 min: the 8th is at 24 h, not 10 h later. */
    d = decide(7, 17 * H + 35 * 60 * S, 500, NULL);
    assert_int_equal(d.verdict, WEBHOOK_RETRY);
    assert_int_equal(d.next_ms, 24 * H - (17 * H + 35 * 60 * S));
    /* At (or past) 24 h after the first attempt: failed for good. */
    d = decide(8, 24 * H, 500, NULL);
    assert_int_equal(d.verdict, WEBHOOK_FAILED);
    assert_non_null(strstr(d.reason, "24 h"));
    /* A refused address: failed at once, never retried. */
    webhook_attempt_t a = {.attempts = 1,
                           .now_ms = 5,
                           .first_attempt_ms = 5,
                           .refused = 1,
                           .error = "refused to connect to 127.0.0.1: not a public address"};
    webhook_decide(&a, &d);
    assert_int_equal(d.verdict, WEBHOOK_FAILED);
    assert_non_null(strstr(d.reason, "127.0.0.1"));
    /* Without the transport's text, the reason still says why (fuzz_webhook_reply found it
     * empty). */
    a.error = "";
    webhook_decide(&a, &d);
    assert_int_equal(d.verdict, WEBHOOK_FAILED);
    assert_string_equal(d.reason, "refused: not a public address");
}

static void test_whole_schedule_spans_24_hours(void **state)
{
    (void)state;
    long long t = 0;
    int attempts = 0;
    webhook_decision_t d;
    do {
        attempts++;
        d = decide(attempts, t, 500, NULL);
        if (d.verdict == WEBHOOK_RETRY)
            t += d.next_ms;
    } while (d.verdict == WEBHOOK_RETRY);
    assert_int_equal(d.verdict, WEBHOOK_FAILED);
    assert_int_equal(t, 24 * H);   /* the last attempt exactly at the window's end */
    assert_int_equal(attempts, 8); /* 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h later, then 24 h */
}

static void test_body(void **state)
{
    (void)state;
    char *b = webhook_body("succeeded", 1700000000123LL,
                           "{\"id\":\"g\",\"status\":\"succeeded\",\"outputs\":[{\"index\":0,"
                           "\"storage_key\":\"u/g/0/full.webp\",\"deleted\":false}]}",
                           "file-secret", 3600, 1700000000000LL);
    assert_non_null(b);
    /* type, timestamp, data: in that order (API.md). */
    const char *prefix =
        "{\"type\":\"succeeded\",\"timestamp\":\"2023-11-14T22:13:20.123Z\",\"data\":{";
    if (strncmp(b, prefix, strlen(prefix)) != 0)
        fail_msg("body: %s", b);
    json_t *j = json_loads(b, 0, NULL);
    json_t *o = json_array_get(json_object_get(json_object_get(j, "data"), "outputs"), 0);
    assert_null(json_object_get(o, "storage_key"));
    assert_null(json_object_get(o, "deleted")); /* as GET: only a deleted one says so */
    char want[200], sig[65];
    img_file_sig("file-secret", "u/g/0/full.webp", 1700003600, sig);
    snprintf(want, sizeof(want), "/v1/files/u/g/0/full.webp?exp=1700003600&sig=%s", sig);
    assert_string_equal(json_string_value(json_object_get(o, "url")), want);
    json_decref(j);
    free(b);
    /* An output whose file was deleted: "url": null, as GET shows it. */
    b = webhook_body("succeeded", 0,
                     "{\"outputs\":[{\"index\":0,\"storage_key\":null,\"deleted\":true}]}",
                     "file-secret", 3600, 0);
    assert_non_null(b);
    j = json_loads(b, 0, NULL);
    o = json_array_get(json_object_get(json_object_get(j, "data"), "outputs"), 0);
    assert_true(json_is_null(json_object_get(o, "url")));
    assert_true(json_is_true(json_object_get(o, "deleted")));
    assert_null(json_object_get(o, "storage_key"));
    json_decref(j);
    free(b);
    assert_null(webhook_body("image", 0, "not json", "", 60, 0));
}

static int url_ok(const char *url, int allow_private)
{
    char host[256], reason[128];
    return net_url_check(url, allow_private, allow_private, host, sizeof(host), reason,
                         sizeof(reason));
}

static void test_url_check(void **state)
{
    (void)state;
    /* The list: refused at submit. */
    assert_int_equal(url_ok("http://example.com/hook", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://127.0.0.1/hook", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://[::1]/hook", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://10.0.0.1/hook", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://169.254.169.254/latest/meta-data", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://[::ffff:127.0.0.1]/hook", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://192.168.1.1:8443/", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://[fe80::1]/", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://0.0.0.0/", 0), GF_EINVAL);
    assert_int_equal(url_ok("ftp://example.com/", 0), GF_EINVAL);
    assert_int_equal(url_ok("https://", 0), GF_EINVAL);
    assert_int_equal(url_ok("not a url", 0), GF_EINVAL);
    /* Public addresses and names pass (a name is checked when dialed). */
    assert_int_equal(url_ok("https://example.com/hook?x=1", 0), 0);
    assert_int_equal(url_ok("https://93.184.215.14/hook", 0), 0);
    assert_int_equal(url_ok("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", 0), 0);
    assert_int_equal(url_ok("https://localhost/", 0), 0);
    /* FARM_WEBHOOK_ALLOW_PRIVATE=1: loopback and http:// for test receivers. */
    assert_int_equal(url_ok("http://127.0.0.1:9999/hook", 1), 0);
    assert_int_equal(url_ok("https://[::1]/hook", 1), 0);
    assert_int_equal(url_ok("ftp://127.0.0.1/", 1), GF_EINVAL);
    char host[256], reason[128];
    assert_int_equal(
        net_url_check("https://[::1]:8443/x", 1, 1, host, sizeof(host), reason, sizeof(reason)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(
        net_url_check("https://10.0.0.1/", 0, 0, host, sizeof(host), reason, sizeof(reason)),
        GF_EINVAL);
    assert_non_null(strstr(reason, "private"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_matches_the_spec),
        cmocka_unit_test(test_bad_secrets_refused),
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_whole_schedule_spans_24_hours),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_url_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
