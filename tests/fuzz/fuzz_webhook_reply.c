/*
 * tests/fuzz/fuzz_webhook_reply.c - a webhook receiver's answer through
 * what webhooks/ decides from it (webhooks/policy.c): the Retry-After value
 * (webhook_retry_after_ms: delta-seconds or an HTTP-date) and the verdict
 * on the attempt (webhook_decide: delivered, retried when, or failed for
 * good), with the attempt built from the reply as deliver.c's on_response
 * builds it (the retry-after header by net_header).
 *
 * Input: byte 0 flags (bit 0 timed out, bit 1 the address was refused,
 * bit 2 no answer), byte 1 the attempts made, bytes 2-3 the HTTP status
 * (mod 600), bytes 4-5 how long ago the first attempt was (minutes,
 * mod 2 days), then header lines "name: value\n" up to an empty line, then
 * the transport's error text.
 *
 * What must hold, else abort: a 2xx is delivered and nothing else is; a
 * refused address and a 410 fail at once; a retry comes after the
 * schedule's delay (or Retry-After when longer) but never after the 24 h
 * window; a failure says why; Retry-After is -1 or a delay, and a
 * delta-seconds value is its seconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply_cut.h"
#include "net.h"
#include "webhooks.h"

#define NOW_MS 1764900000000LL /* 2025-12-05: HTTP-dates are judged against a fixed clock */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_webhook_reply: %s\n", what);
    abort();
}

static void check_retry_after(const char *v, long long now_ms)
{
    long long ms = webhook_retry_after_ms(v, now_ms);
    if (ms < -1)
        die("Retry-After below -1");
    if (v == NULL && ms != -1)
        die("a Retry-After without a header");
    if (v != NULL) {
        const char *d = v + strspn(v, " \t");
        size_t digits = strspn(d, "0123456789");
        if (digits > 0 && digits <= 9 && d[digits + strspn(d + digits, " \t")] == '\0' &&
            ms != atoll(d) * 1000)
            die("delta-seconds are not their seconds");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6 || size > 65536)
        return 0;
    int timed_out = data[0] & 1, refused = (data[0] >> 1) & 1, no_answer = (data[0] >> 2) & 1;
    int attempts = data[1];
    long status = no_answer || refused ? 0 : ((long)data[2] << 8 | data[3]) % 600;
    long long ago_ms = (((long long)data[4] << 8 | data[5]) % (48 * 60)) * 60000;
    fz_reply_t rest;
    fz_reply_parse(&rest, data + 6, size - 6, 0);
    net_resp_t r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.refused = refused;
    r.headers = rest.headers;
    r.nheaders = rest.nheaders;
    snprintf(r.curl_msg, sizeof(r.curl_msg), "%s", rest.body);

    webhook_attempt_t a = {
        .attempts = attempts + 1,
        .now_ms = NOW_MS,
        .first_attempt_ms = NOW_MS - ago_ms,
        .status = r.status,
        .timed_out = timed_out,
        .refused = r.refused,
        .retry_after = net_header(&r, "retry-after"),
        .error = r.curl_msg,
    };
    check_retry_after(a.retry_after, a.now_ms);
    check_retry_after(a.retry_after, 0);
    check_retry_after(a.retry_after, (long long)INT64_MAX / 2);

    webhook_decision_t d;
    memset(&d, 'x', sizeof(d));
    webhook_decide(&a, &d);
    if (memchr(d.reason, '\0', sizeof(d.reason)) == NULL)
        die("the reason is not NUL-terminated");
    int ok = a.status >= 200 && a.status < 300;
    long long window_end = a.first_attempt_ms + WEBHOOK_WINDOW_MS;
    switch (d.verdict) {
    case WEBHOOK_DELIVERED:
        if (!ok)
            die("delivered without a 2xx");
        if (d.reason[0] != '\0')
            die("a delivered attempt with a reason");
        break;
    case WEBHOOK_RETRY: {
        if (ok || a.refused || a.status == 410)
            die("a retry of a 2xx, a refused address or a 410");
        if (d.next_ms < 0 || a.now_ms + d.next_ms > window_end)
            die("a retry outside the 24 h window");
        long long want = webhook_backoff_ms(a.attempts);
        if (a.now_ms + want > window_end)
            want = window_end - a.now_ms;
        if (d.next_ms < want)
            die("a retry sooner than the schedule");
        if (d.reason[0] == '\0')
            die("a retry without a reason");
        break;
    }
    case WEBHOOK_FAILED:
        if (ok)
            die("a 2xx failed");
        if (d.reason[0] == '\0')
            die("a failure without a reason");
        break;
    default:
        die("a verdict webhook_decide does not document");
    }
    fz_reply_dispose(&rest);
    return 0;
}
