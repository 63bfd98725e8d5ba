/*
 * webhooks/policy.c - the pure parts of webhook delivery: the Standard
 * Webhooks signature, the retry schedule, Retry-After, the verdict on one
 * answer, and the body. No I/O, no loop: tests/unit/webhooks/test_policy.c.
 */
#include "webhooks.h"
#include "imaging.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int webhook_key_decode(const char *secret, unsigned char key[WEBHOOK_KEY_MAX], size_t *len,
                       gf_err_t *err)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n == 0)
        return gf_err_set(err, GF_EINVAL, "webhooks", "FARM_WEBHOOK_SECRET is empty");
    if (strncmp(secret, "whsec_", 6) != 0) {
        if (n > WEBHOOK_KEY_MAX)
            return gf_err_set(err, GF_EINVAL, "webhooks",
                              "FARM_WEBHOOK_SECRET is longer than %d bytes", WEBHOOK_KEY_MAX);
        if (n < GF_SECRET_MIN)
            return gf_err_set(err, GF_EINVAL, "webhooks",
                              "FARM_WEBHOOK_SECRET is shorter than %d bytes: anyone could forge "
                              "its signatures",
                              GF_SECRET_MIN);
        memcpy(key, secret, n);
        *len = n;
        return 0;
    }
    const char *b64 = secret + 6;
    size_t b64_len = n - 6;
    /* EVP_DecodeBlock writes 3 bytes per 4 characters and counts the padding as zeros. */
    if (b64_len == 0 || b64_len % 4 != 0 || b64_len / 4 * 3 > WEBHOOK_KEY_MAX)
        return gf_err_set(err, GF_EINVAL, "webhooks",
                          "FARM_WEBHOOK_SECRET: whsec_ must be followed by base64 of 1..%d bytes",
                          WEBHOOK_KEY_MAX);
    int got = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)b64_len);
    if (got < 0)
        return gf_err_set(err, GF_EINVAL, "webhooks",
                          "FARM_WEBHOOK_SECRET: whsec_ must be followed by base64");
    size_t pad = (b64[b64_len - 1] == '=') + (b64[b64_len - 2] == '=');
    *len = (size_t)got - pad;
    if (*len < GF_SECRET_MIN) /* Standard Webhooks' secrets are 24 to 64 bytes */
        return gf_err_set(err, GF_EINVAL, "webhooks",
                          "FARM_WEBHOOK_SECRET: a whsec_ key of %zu bytes, fewer than %d: anyone "
                          "could forge its signatures",
                          *len, GF_SECRET_MIN);
    return 0;
}

void webhook_sign(const unsigned char *key, size_t key_len, const char *id, long long timestamp,
                  const char *body, size_t body_len, char *out, size_t out_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char prefix[128];
    int n = snprintf(prefix, sizeof(prefix), "%s.%lld.", id, timestamp);
    /* The signed content is "<id>.<timestamp>.<body>", in one buffer for HMAC(). */
    unsigned char *msg = gf_xmalloc((size_t)n + body_len);
    memcpy(msg, prefix, (size_t)n);
    memcpy(msg + n, body, body_len);
    HMAC(EVP_sha256(), key, (int)key_len, msg, (size_t)n + body_len, mac, &mac_len);
    free(msg);
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock(b64, mac, (int)mac_len);
    snprintf(out, out_len, "v1,%s", (const char *)b64);
}

long long webhook_backoff_ms(int attempts)
{
    static const long long s[] = {5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600};
    int n = (int)(sizeof(s) / sizeof(s[0]));
    if (attempts < 1)
        attempts = 1;
    return s[attempts <= n ? attempts - 1 : n - 1] * 1000;
}

long long webhook_retry_after_ms(const char *value, long long now_ms)
{
    if (value == NULL)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t digits = strspn(value, "0123456789");
    if (digits > 0 && digits <= 9 && value[digits + strspn(value + digits, " \t")] == '\0')
        return atoll(value) * 1000;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || end[strspn(end, " \t")] != '\0')
        return -1;
    long long at = (long long)timegm(&tm) * 1000;
    return at > now_ms ? at - now_ms : 0;
}

void webhook_decide(const webhook_attempt_t *a, webhook_decision_t *d)
{
    memset(d, 0, sizeof(*d));
    if (a->status >= 200 && a->status < 300) {
        d->verdict = WEBHOOK_DELIVERED;
        return;
    }
    d->verdict = WEBHOOK_FAILED;
    if (a->refused) {
        snprintf(d->reason, sizeof(d->reason), "%s",
                 a->error && a->error[0] ? a->error : "refused: not a public address");
        return;
    }
    if (a->status == 410) {
        snprintf(d->reason, sizeof(d->reason), "the receiver answered 410 Gone");
        return;
    }
    if (a->status > 0)
        snprintf(d->reason, sizeof(d->reason), "the receiver answered %ld", a->status);
    else
        snprintf(d->reason, sizeof(d->reason), "%s",
                 a->timed_out ? "no answer within the timeout"
                              : (a->error && a->error[0] ? a->error : "no answer"));
    long long window_end = a->first_attempt_ms + WEBHOOK_WINDOW_MS;
    if (a->now_ms >= window_end) {
        size_t n = strlen(d->reason);
        snprintf(d->reason + n, sizeof(d->reason) - n, "; retried for 24 h");
        return;
    }
    long long delay = webhook_backoff_ms(a->attempts);
    long long after = a->status > 0 ? webhook_retry_after_ms(a->retry_after, a->now_ms) : -1;
    if (after > delay)
        delay = after;
    /* The last attempt is at the window's end, whether the backoff or a
     * Retry-After points past it: API.md promises retries for 24 h. */
    if (a->now_ms + delay > window_end)
        delay = window_end - a->now_ms;
    d->verdict = WEBHOOK_RETRY;
    d->next_ms = delay;
}

/* Each output's storage key becomes its signed URL, as GET /v1/generations/{id} shows it
 * (api__sign_outputs()): null for an output whose file was deleted, which alone keeps its
 * "deleted": true. */
static void sign_outputs(json_t *data, const char *secret, long exp)
{
    json_t *outputs = json_object_get(data, "outputs");
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o)
    {
        const char *key = json_string_value(json_object_get(o, "storage_key"));
        json_t *url = json_null();
        if (key != NULL) {
            char sig[65], text[1200];
            img_file_sig(secret, key, exp, sig);
            snprintf(text, sizeof(text), "/v1/files/%s?exp=%ld&sig=%s", key, exp, sig);
            url = json_string(text);
        }
        json_object_set_new(o, "url", url);
        json_object_del(o, "storage_key");
        if (json_is_false(json_object_get(o, "deleted"))) /* GET names only deleted ones */
            json_object_del(o, "deleted");
    }
}

char *webhook_body(const char *event, long long created_ms, const char *data,
                   const char *file_secret, long long url_ttl_s, long long now_ms)
{
    json_t *d = data ? json_loads(data, JSON_DECODE_ANY, NULL) : NULL;
    if (d == NULL)
        return NULL;
    sign_outputs(d, file_secret ? file_secret : "", (long)(now_ms / 1000 + url_ttl_s));
    char ts[32];
    gf_clock_rfc3339(created_ms, ts);
    json_t *body = json_object();
    json_object_set_new(body, "type", json_string(event));
    json_object_set_new(body, "timestamp", json_string(ts));
    json_object_set_new(body, "data", d);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    return text;
}
