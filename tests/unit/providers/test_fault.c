/*
 * tests/unit/providers/test_fault.c - the pure policy of providers/: the fault
 * table (providers.md section 5), classification, backoff, Retry-After, poll
 * cadence, magic bytes, error bodies, and the breaker state machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "provider_int.h"

static void test_classify_maps_statuses_to_fault_rows(void **state)
{
    (void)state;
    const char *loading = "{\"error\":\"Model X is currently loading\",\"estimated_time\":20.0}";
    assert_int_equal(provider__classify(0, 200, "", 0), PROVIDER_F_NONE);
    assert_int_equal(provider__classify(0, 503, loading, strlen(loading)),
                     PROVIDER_F_MODEL_LOADING);
    assert_int_equal(provider__classify(0, 503, "{}", 2), PROVIDER_F_SERVER);
    assert_int_equal(provider__classify(0, 429, "", 0), PROVIDER_F_RATE_LIMIT);
    assert_int_equal(provider__classify(0, 402, "", 0), PROVIDER_F_CREDITS);
    assert_int_equal(provider__classify(0, 401, "", 0), PROVIDER_F_AUTH);
    assert_int_equal(provider__classify(0, 403, "", 0), PROVIDER_F_AUTH);
    assert_int_equal(provider__classify(0, 400, "", 0), PROVIDER_F_BAD_INPUT);
    assert_int_equal(provider__classify(0, 422, "", 0), PROVIDER_F_BAD_INPUT);
    assert_int_equal(provider__classify(0, 404, "", 0), PROVIDER_F_MODEL_UNAVAILABLE);
    assert_int_equal(provider__classify(0, 410, "", 0), PROVIDER_F_MODEL_UNAVAILABLE);
    /* redirects are not followed: the endpoint moved, and the next provider may serve */
    assert_int_equal(provider__classify(0, 301, "", 0), PROVIDER_F_MODEL_UNAVAILABLE);
    assert_int_equal(provider__classify(0, 307, "", 0), PROVIDER_F_MODEL_UNAVAILABLE);
    assert_int_equal(provider__classify(0, 502, "<h1>", 4), PROVIDER_F_SERVER);
    assert_int_equal(provider__classify(7 /* COULDNT_CONNECT */, 0, NULL, 0), PROVIDER_F_NETWORK);
    assert_int_equal(provider__classify(28 /* TIMEDOUT */, 0, NULL, 0), PROVIDER_F_STALLED);
    assert_int_equal(provider__classify(18 /* PARTIAL_FILE */, 200, NULL, 0), PROVIDER_F_BAD_BODY);
}

static void test_fault_table_retry_and_failover_decisions(void **state)
{
    (void)state;
    const provider_fault_info_t *i;
    i = provider__fault_info(PROVIDER_F_CREDITS);
    assert_false(i->retryable);
    assert_true(i->failover);
    i = provider__fault_info(PROVIDER_F_BAD_INPUT);
    assert_false(i->retryable);
    assert_false(i->failover);
    assert_false(i->breaker);
    i = provider__fault_info(PROVIDER_F_MODERATION_INPUT);
    assert_int_equal(i->code, PROVIDER_E_CONTENT_REJECTED);
    assert_false(i->retryable);
    i = provider__fault_info(PROVIDER_F_MODERATION_OUTPUT);
    assert_true(i->retryable);
    i = provider__fault_info(PROVIDER_F_PROTOCOL);
    assert_false(i->retryable);
    assert_false(i->failover);
    assert_true(i->breaker);
    i = provider__fault_info(PROVIDER_F_BAD_BODY);
    assert_int_equal(i->code, PROVIDER_E_INVALID_OUTPUT);
    i = provider__fault_info(PROVIDER_F_STALLED);
    assert_int_equal(i->code, PROVIDER_E_TIMEOUT);
    assert_string_equal(provider_error_code_name(PROVIDER_E_TIMEOUT), "provider_timeout");
    for (int f = 0; f < PROVIDER_F_COUNT; f++)
        assert_non_null(provider__fault_info((provider_fault)f)->name);
}

static void test_backoff_doubles_caps_and_jitters_25_percent(void **state)
{
    (void)state;
    assert_int_equal(provider__backoff_ms(1, 1000, 60000, 0), 750);
    assert_int_equal(provider__backoff_ms(1, 1000, 60000, 0x80000000u), 1000);
    assert_int_equal(provider__backoff_ms(3, 1000, 60000, 0x80000000u), 4000);
    assert_int_equal(provider__backoff_ms(20, 1000, 60000, 0x80000000u), 60000);
    assert_true(provider__backoff_ms(20, 1000, 60000, 0xFFFFFFFFu) <= 75000);
}

static void test_retry_after_forms(void **state)
{
    (void)state;
    assert_int_equal(provider__retry_after_ms("7", NULL, NULL, 0), 7000);
    assert_int_equal(provider__retry_after_ms(NULL, "\"api\";r=0;t=55", NULL, 0), 55000);
    assert_int_equal(provider__retry_after_ms(NULL, "\"api\";r=5;t=55", NULL, 0), -1);
    assert_int_equal(provider__retry_after_ms(NULL, NULL, "1000", 990), 10000);
    assert_int_equal(provider__retry_after_ms("Thu, 01 Jan 1970 00:00:30 GMT", NULL, NULL, 10),
                     20000);
    assert_int_equal(provider__retry_after_ms("soon", NULL, NULL, 0), -1);
    /* Absurd hints are a day at most (and never an overflow: UBSan checks). */
    assert_int_equal(provider__retry_after_ms("1e400", NULL, NULL, 0), 86400000);
    assert_int_equal(provider__retry_after_ms("99999999999999999999", NULL, NULL, 0), 86400000);
    assert_int_equal(provider__retry_after_ms(NULL, NULL, "9223372036854775807", 10), 86400000);
    assert_int_equal(provider__retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", NULL, NULL, 10),
                     86400000);
}

static void test_poll_cadence_grows_to_max(void **state)
{
    (void)state;
    assert_int_equal(provider__poll_next_ms(500, 5000), 750);
    assert_int_equal(provider__poll_next_ms(4000, 5000), 5000);
    assert_int_equal(provider__poll_next_ms(5000, 5000), 5000);
}

static void test_sniff_and_error_bodies(void **state)
{
    (void)state;
    assert_string_equal(provider__sniff_image((const unsigned char *)"\xFF\xD8\xFF\xE0", 4),
                        "image/jpeg");
    assert_string_equal(provider__sniff_image((const unsigned char *)"\x89PNG\r\n\x1a\n", 8),
                        "image/png");
    assert_string_equal(provider__sniff_image((const unsigned char *)"RIFF1234WEBPVP8 ", 16),
                        "image/webp");
    assert_null(provider__sniff_image((const unsigned char *)"{\"error\":1}", 11));
    const char *fastapi = "{\"detail\":[{\"loc\":[\"body\",\"width\"],\"msg\":\"too big\"}]}";
    char *t = provider__json_error_text(fastapi, strlen(fastapi));
    assert_string_equal(t, "width: too big");
    free(t);
    t = provider__json_error_text("{\"error\":\"bad\"}", 15);
    assert_string_equal(t, "bad");
    free(t);
    assert_null(provider__json_error_text("<h1>504</h1>", 12));
    char *b = provider__base64((const unsigned char *)"hello", 5);
    assert_string_equal(b, "aGVsbG8=");
    free(b);
}

/* Base64 from HF's b64_json: decoded by OpenSSL, refused when it is not base64 or too big. */
static void test_base64_decode_bounds_and_refuses(void **state)
{
    (void)state;
    unsigned char bytes[1000];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i * 7 + 3);
    char *b = provider__base64(bytes, sizeof(bytes));
    size_t n = 0;
    unsigned char *d = provider__base64_decode(b, strlen(b), sizeof(bytes), &n);
    assert_non_null(d);
    assert_int_equal(n, sizeof(bytes));
    assert_memory_equal(d, bytes, n);
    free(d);
    assert_null(provider__base64_decode(b, strlen(b), sizeof(bytes) - 1, &n)); /* above max */
    b[10] = '!';
    assert_null(provider__base64_decode(b, strlen(b), sizeof(bytes), &n));
    free(b);
    assert_null(provider__base64_decode("", 0, 100, &n));
}

/* Above 256 KiB a JSON reply is parsed only when it holds few values (one long string). */
static void test_inline_json_above_the_limit_needs_few_values(void **state)
{
    (void)state;
    size_t big = PROVIDER_JSON_MAX_BYTES + 1000;
    char *s = malloc(big + 64);
    int k = snprintf(s, 64, "{\"data\":[{\"b64_json\":\"");
    memset(s + k, 'A', big);
    strcpy(s + k + big, "\"}]}");
    json_t *root = provider__json_load_inline(s, strlen(s));
    assert_non_null(root);
    assert_int_equal(json_string_length(json_object_get(
                         json_array_get(json_object_get(root, "data"), 0), "b64_json")),
                     big);
    json_decref(root);
    assert_null(provider__json_load(s, strlen(s))); /* the ordinary limit */
    /* The same size in small values: refused before jansson sees it. */
    size_t o = 0;
    s[o++] = '[';
    while (o + 4 < big) {
        s[o++] = '0';
        s[o++] = ',';
    }
    s[o++] = '0';
    s[o++] = ']';
    assert_null(provider__json_load_inline(s, o));
    free(s);
}

static void test_breaker_state_machine(void **state)
{
    (void)state;
    provider_breaker_t b;
    provider__breaker_init(&b, 3, 1000);
    assert_true(provider__breaker_allow(&b, 0));
    provider__breaker_failure(&b, 0, 0);
    provider__breaker_failure(&b, 0, 0);
    assert_string_equal(provider__breaker_name(&b, 0), "closed");
    provider__breaker_success(&b); /* consecutive failures only */
    for (int i = 0; i < 3; i++)
        provider__breaker_failure(&b, 100, 0);
    assert_string_equal(provider__breaker_name(&b, 100), "open");
    assert_false(provider__breaker_allow(&b, 500));
    assert_true(provider__breaker_allow(&b, 1100)); /* the one probe */
    assert_false(provider__breaker_allow(&b, 1100));
    provider__breaker_failure(&b, 1200, 0);
    assert_string_equal(provider__breaker_name(&b, 1300), "open");
    assert_true(provider__breaker_allow(&b, 2300));
    provider__breaker_release(&b); /* a probe with no verdict lets the next one probe */
    assert_true(provider__breaker_allow(&b, 2300));
    provider__breaker_success(&b);
    assert_string_equal(provider__breaker_name(&b, 2300), "closed");
    /* A long cool-down (402) opens at once. */
    provider__breaker_failure(&b, 3000, 60000);
    assert_false(provider__breaker_allow(&b, 30000));
}

/*
 * Whether a breaker refuses calls now (the farm_provider_breaker_open gauge): open within its
 * cooldown, and half-open while its probe is out; not when the cooldown is over and no probe
 * went (the next call goes: a fallback adapter nothing calls reads 0, not 1 for ever).
 */
static void test_breaker_refusing(void **state)
{
    (void)state;
    provider_breaker_t b;
    provider__breaker_init(&b, 1, 1000);
    assert_false(provider__breaker_refusing(&b, 0));
    provider__breaker_failure(&b, 100, 0);
    assert_true(provider__breaker_refusing(&b, 500));
    assert_false(provider__breaker_refusing(&b, 1100)); /* cooldown over, nothing sent */
    assert_false(provider__breaker_refusing(&b, 99999));
    assert_true(provider__breaker_allow(&b, 1100)); /* the probe goes */
    assert_true(provider__breaker_refusing(&b, 1200));
    provider__breaker_release(&b); /* no verdict: the next call probes */
    assert_false(provider__breaker_refusing(&b, 1200));
    assert_true(provider__breaker_allow(&b, 1200));
    provider__breaker_success(&b);
    assert_false(provider__breaker_refusing(&b, 1300));
}

/* URLs from a reply: where the adapter's key may go, and where an image may be fetched. */
static void test_reply_urls_stay_on_the_providers_hosts(void **state)
{
    (void)state;
    const char *bfl = "https://api.bfl.ai", *fal = "https://queue.fal.run/fal-ai/flux/dev";
    /* With the key: the base host, or a host under its parent domain, same scheme and port. */
    assert_true(provider__url_allowed(bfl, "https://api.bfl.ai/v1/get_result?id=1", 1));
    assert_true(provider__url_allowed(bfl, "https://api.us1.bfl.ai/v1/get_result?id=1", 1));
    assert_true(provider__url_allowed(fal, "https://queue.fal.run/fal-ai/flux/requests/r1", 1));
    assert_false(provider__url_allowed(bfl, "https://evil.example/v1/get_result", 1));
    assert_false(provider__url_allowed(bfl, "https://bfl.ai.evil.example/x", 1));
    assert_false(provider__url_allowed(bfl, "https://notbfl.ai/x", 1));
    assert_false(provider__url_allowed(bfl, "http://api.us1.bfl.ai/x", 1));   /* a downgrade */
    assert_false(provider__url_allowed(bfl, "https://api.bfl.ai:8443/x", 1)); /* another port */
    assert_false(provider__url_allowed(bfl, "http://169.254.169.254/latest/meta-data/", 1));
    assert_false(provider__url_allowed(bfl, "file:///etc/passwd", 1));
    assert_false(provider__url_allowed(bfl, "not a url", 1));
    /* No space or tab (a fal resume token is space-separated URLs). */
    assert_false(provider__url_allowed(fal, "https://queue.fal.run/a b", 1));
    assert_false(provider__url_allowed(fal, "https://queue.fal.run/a\tb", 1));
    /* A local fake (an IP literal over http): that host and port exactly. */
    const char *fake = "http://127.0.0.1:8090/bfl";
    assert_true(provider__url_allowed(fake, "http://127.0.0.1:8090/bfl-region/v1/get_result", 1));
    assert_false(provider__url_allowed(fake, "http://127.0.0.2:8090/steal", 1));
    assert_false(provider__url_allowed(fake, "http://127.0.0.1:8091/steal", 1));
    /* Without the key (an image download): https anywhere, http only from an http base. */
    assert_true(provider__url_allowed(bfl, "https://delivery.cdn.example/sample.jpeg", 0));
    assert_false(provider__url_allowed(bfl, "http://delivery.cdn.example/sample.jpeg", 0));
    assert_true(provider__url_allowed(fake, "http://127.0.0.1:8090/cdn/x.png", 0));
    assert_false(provider__url_allowed(bfl, "ftp://cdn.example/x.png", 0));
}

/* Where a download may connect: public addresses only (with a real, https provider). */
static int v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return net_addr_is_public((struct sockaddr *)&a);
}

static int v6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return net_addr_is_public((struct sockaddr *)&a);
}

static void test_downloads_reach_public_addresses_only(void **state)
{
    (void)state;
    static const char *const private4[] = {
        "127.0.0.1",  "10.1.2.3", "172.16.0.1", "172.31.255.255",  "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0",  "224.0.0.1",  "255.255.255.255", "198.18.0.1",  "192.0.0.8"};
    for (size_t i = 0; i < sizeof(private4) / sizeof(private4[0]); i++)
        assert_false(v4(private4[i]));
    static const char *const public4[] = {"8.8.8.8",     "1.1.1.1",     "172.32.0.1",
                                          "100.128.0.1", "169.253.1.1", "203.0.114.1"};
    for (size_t i = 0; i < sizeof(public4) / sizeof(public4[0]); i++)
        assert_true(v4(public4[i]));
    static const char *const private6[] = {
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
        "::ffff:169.254.169.254", "fec0::1",
        /* NAT64 and 6to4 of private v4 addresses */
        "64:ff9b::a9fe:a9fe", "2002:0a00:0001::1",
        /* SIIT-translated, local-use NAT64, Teredo,
         * documentation, discard-only */
        "::ffff:0:10.0.0.1", "64:ff9b:1::a00:1", "64:ff9b:1:ffff::808:808", "2001:0:4136:e378::1",
        "2001:db8::1", "100::1"};
    for (size_t i = 0; i < sizeof(private6) / sizeof(private6[0]); i++)
        assert_false(v6(private6[i]));
    assert_true(v6("2606:4700:4700::1111"));
    assert_true(v6("::ffff:8.8.8.8"));
    assert_true(v6("64:ff9b::808:808"));
    assert_true(v6("2002:0808:0808::1"));
    assert_true(v6("::ffff:0:8.8.8.8"));
    assert_true(v6("2001:4860:4860::8888")); /* 2001::/16 is not all Teredo */
}

static void on_refused(net_resp_t *r, void *data)
{
    *(char **)data = strdup(r->refused ? r->curl_msg : "not flagged as refused");
}

/* A public_only transfer to a private address never connects, and says why. */
static void test_a_public_only_transfer_refuses_a_private_address(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    net_t *h = net_new(&loop, NULL);
    assert_non_null(h);
    char *msg = NULL;
    net_req_t req = {.method = "GET",
                     .url = "http://127.0.0.1:9/secret",
                     .timeout_ms = 5000,
                     .connect_timeout_ms = 5000,
                     .public_only = 1};
    net_start(h, &req, on_refused, &msg);
    while (msg == NULL)
        uv_run(&loop, UV_RUN_ONCE);
    assert_non_null(strstr(msg, "refused to connect to 127.0.0.1: not a public address"));
    free(msg);
    net_close(h, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_maps_statuses_to_fault_rows),
        cmocka_unit_test(test_fault_table_retry_and_failover_decisions),
        cmocka_unit_test(test_backoff_doubles_caps_and_jitters_25_percent),
        cmocka_unit_test(test_retry_after_forms),
        cmocka_unit_test(test_poll_cadence_grows_to_max),
        cmocka_unit_test(test_sniff_and_error_bodies),
        cmocka_unit_test(test_base64_decode_bounds_and_refuses),
        cmocka_unit_test(test_inline_json_above_the_limit_needs_few_values),
        cmocka_unit_test(test_breaker_state_machine),
        cmocka_unit_test(test_breaker_refusing),
        cmocka_unit_test(test_reply_urls_stay_on_the_providers_hosts),
        cmocka_unit_test(test_downloads_reach_public_addresses_only),
        cmocka_unit_test(test_a_public_only_transfer_refuses_a_private_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
