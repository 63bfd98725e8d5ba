/*
 * providers/fault.c - the fault table of providers.md section 5 and the pure
 * policy around it: classifying an exchange, backoff with jitter, reading
 * Retry-After / RateLimit / x-ratelimit-reset, the poll cadence, sniffing
 * image magic bytes and reading error bodies.
 *
 * Nothing here does I/O or keeps state, so tests/unit/providers checks every
 * row directly.
 */
#include "provider_int.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define R 1 /* retryable */
#define F 1 /* failover */
#define B 1 /* breaker */

/*
 * One row per fault. `retryable` says whether the job may run again (a new
 * submit); transient faults are first retried inside the adapter (GETs up to
 * FARM_PROVIDER_MAX_RETRIES, a POST only when no job was created) and reach
 * this table only when those retries ran out.
 */
static const provider_fault_info_t fault_table[PROVIDER_F_COUNT] = {
    [PROVIDER_F_NONE] = {"none", PROVIDER_E_NONE, GF_OK, 0, 0, 0},
    [PROVIDER_F_MODEL_LOADING] = {"model_loading", PROVIDER_E_TIMEOUT, GF_ETIMEDOUT, R, F, B},
    [PROVIDER_F_RATE_LIMIT] = {"rate_limit", PROVIDER_E_PROVIDER_ERROR, GF_EUNAVAIL, R, F, B},
    /* Permanent for this provider: fail over, and the breaker opens for long. */
    [PROVIDER_F_CREDITS] = {"credits", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER, 0, F, B},
    [PROVIDER_F_AUTH] = {"auth", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER, 0, F, B},
    /* The caller's input: no other provider will like it better. */
    [PROVIDER_F_BAD_INPUT] = {"bad_input", PROVIDER_E_PROVIDER_ERROR, GF_EINVAL, 0, 0, 0},
    [PROVIDER_F_MODEL_UNAVAILABLE] = {"model_unavailable", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER,
                                      0, F, B},
    [PROVIDER_F_MODERATION_INPUT] = {"moderation_input", PROVIDER_E_CONTENT_REJECTED, GF_EINVAL, 0,
                                     0, 0},
    /* At most one retry with a new seed (provider_error_t.new_seed). */
    [PROVIDER_F_MODERATION_OUTPUT] = {"moderation_output", PROVIDER_E_CONTENT_REJECTED,
                                      GF_EPROVIDER, R, 0, 0},
    [PROVIDER_F_SERVER] = {"server", PROVIDER_E_PROVIDER_ERROR, GF_EUNAVAIL, R, F, B},
    [PROVIDER_F_NETWORK] = {"network", PROVIDER_E_PROVIDER_ERROR, GF_EUNAVAIL, R, F, B},
    [PROVIDER_F_STALLED] = {"stalled", PROVIDER_E_TIMEOUT, GF_ETIMEDOUT, R, F, B},
    [PROVIDER_F_BAD_BODY] = {"bad_body", PROVIDER_E_INVALID_OUTPUT, GF_EPROVIDER, R, F, B},
    /* The provider made the job (a 2xx, or the image itself): another provider would
     * be paid for it again. */
    [PROVIDER_F_TOO_BIG] = {"too_big", PROVIDER_E_INVALID_OUTPUT, GF_ETOOBIG, 0, 0, B},
    [PROVIDER_F_DEADLINE] = {"deadline", PROVIDER_E_TIMEOUT, GF_ETIMEDOUT, R, 0, B},
    /* Resubmit at most once (the worker counts). */
    [PROVIDER_F_LOST_JOB] = {"lost_job", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER, R, 0, 0},
    /* Resubmit the job; never re-poll for a new URL. */
    [PROVIDER_F_URL_EXPIRED] = {"url_expired", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER, R, 0, 0},
    [PROVIDER_F_CANCELED] = {"canceled", PROVIDER_E_CANCELED, GF_ECANCELED, 0, 0, 0},
    /* A reply that breaks the protocol after the provider took the job (no ids,
     * URLs off its hosts, no image URL, a download refused for its address):
     * the job may be paid for, so neither another provider nor a run of the
     * job again, which would pay for the image a second time. */
    [PROVIDER_F_PROTOCOL] = {"protocol", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER, 0, 0, B},
    [PROVIDER_F_UNCONFIGURED] = {"unconfigured", PROVIDER_E_PROVIDER_ERROR, GF_EPROVIDER, 0, F, 0},
    [PROVIDER_F_BREAKER_OPEN] = {"breaker_open", PROVIDER_E_PROVIDER_ERROR, GF_EUNAVAIL, R, F, 0},
};

const provider_fault_info_t *provider__fault_info(provider_fault f)
{
    if ((int)f < 0 || f >= PROVIDER_F_COUNT)
        f = PROVIDER_F_PROTOCOL;
    return &fault_table[f];
}

const char *provider_fault_name(provider_fault f)
{
    return provider__fault_info(f)->name;
}

const char *provider_error_code_name(provider_error_code code)
{
    switch (code) {
    case PROVIDER_E_NONE:
        return "none";
    case PROVIDER_E_PROVIDER_ERROR:
        return "provider_error";
    case PROVIDER_E_TIMEOUT:
        return "provider_timeout";
    case PROVIDER_E_CONTENT_REJECTED:
        return "content_rejected";
    case PROVIDER_E_INVALID_OUTPUT:
        return "invalid_output";
    case PROVIDER_E_CANCELED:
        return "canceled";
    }
    return "provider_error";
}

provider_fault provider__resp_fault(const net_resp_t *r)
{
    /* Not a broken body, which is retried: a 2xx submit cut off at the JSON
     * bound (a prediction echoing its input images) made a job, and sending
     * the POST again would pay for a second one. */
    if (r->too_big)
        return PROVIDER_F_TOO_BIG;
    return provider__classify(r->curl_code, r->status, r->body, r->len);
}

provider_fault provider__classify(int curl_code, long status, const char *body, size_t len)
{
    if (curl_code != 0 && status == 0) {
        if (net_timed_out(curl_code))
            return PROVIDER_F_STALLED;
        return PROVIDER_F_NETWORK;
    }
    if (curl_code != 0) { /* a response started and did not complete */
        if (net_timed_out(curl_code))
            return PROVIDER_F_STALLED;
        return PROVIDER_F_BAD_BODY;
    }
    if (status >= 200 && status < 300)
        return PROVIDER_F_NONE;
    switch (status) {
    case 400:
    case 422:
        return PROVIDER_F_BAD_INPUT;
    case 401:
    case 403:
        return PROVIDER_F_AUTH;
    case 402:
        return PROVIDER_F_CREDITS;
    case 404:
    case 410:
        return PROVIDER_F_MODEL_UNAVAILABLE;
    case 408:
        return PROVIDER_F_STALLED;
    case 429:
        return PROVIDER_F_RATE_LIMIT;
    case 503:
        return provider__hf_estimated_time(body, len) >= 0 ? PROVIDER_F_MODEL_LOADING
                                                           : PROVIDER_F_SERVER;
    default:
        /* A redirect, never followed: the endpoint is not where it is configured (moved,
         * retired, behind a login). Nothing was taken, so the next provider may serve;
         * a protocol fault would stop the chain here. */
        return status >= 500   ? PROVIDER_F_SERVER
               : status >= 400 ? PROVIDER_F_BAD_INPUT
               : status >= 300 ? PROVIDER_F_MODEL_UNAVAILABLE
                               : PROVIDER_F_PROTOCOL;
    }
}

uint64_t provider__backoff_ms(int attempt, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd)
{
    if (attempt < 1)
        attempt = 1;
    uint64_t d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    /* ±25%: d * (0.75 + 0.5 * rnd / 2^32) */
    double j = 0.75 + 0.5 * ((double)rnd / 4294967296.0);
    return (uint64_t)((double)d * j);
}

/* A provider's wait hint counts for a day at most: more than any deadline. */
#define HINT_MAX_S ((int64_t)86400)

static int64_t parse_delta(const char *s)
{
    while (*s == ' ')
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    double v = strtod(s, &end);
    while (*end == ' ')
        end++;
    if (*end != '\0' && *end != ';' && *end != ',')
        return -1;
    /* The cap also keeps the cast defined (inf, 1e30). */
    return v > (double)HINT_MAX_S ? HINT_MAX_S * 1000 : (int64_t)(v * 1000.0);
}

/* Milliseconds from `now` until the epoch second `at`: 0 when past, HINT_MAX_S at most. */
static int64_t ms_until(int64_t at, int64_t now)
{
    return at <= now ? 0 : at - now > HINT_MAX_S ? HINT_MAX_S * 1000 : (at - now) * 1000;
}

int64_t provider__retry_after_ms(const char *retry_after, const char *ratelimit,
                                 const char *reset_epoch, int64_t now)
{
    if (retry_after && *retry_after) {
        int64_t ms = parse_delta(retry_after);
        if (ms >= 0)
            return ms;
        struct tm tm = {0};
        const char *end = strptime(retry_after, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end != NULL) {
            int64_t at = (int64_t)timegm(&tm);
            return ms_until(at, now);
        }
    }
    if (ratelimit && *ratelimit) {
        /* IETF draft: "api";r=0;t=55 - wait t seconds when nothing remains. */
        const char *t = strstr(ratelimit, ";t=");
        const char *r = strstr(ratelimit, ";r=");
        if (t && (!r || atoll(r + 3) == 0)) {
            int64_t ms = parse_delta(t + 3);
            if (ms >= 0)
                return ms;
        }
    }
    if (reset_epoch && *reset_epoch) {
        int64_t at = atoll(reset_epoch);
        if (at > 0)
            return ms_until(at, now);
    }
    return -1;
}

uint64_t provider__poll_next_ms(uint64_t cur_ms, uint64_t max_ms)
{
    uint64_t n = cur_ms + cur_ms / 2;
    if (n == cur_ms)
        n = cur_ms + 1;
    return n > max_ms ? max_ms : n;
}

const char *provider__sniff_image(const unsigned char *b, size_t n)
{
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return "image/jpeg";
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return "image/webp";
    return NULL;
}

int provider__looks_json(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)b[i]))
            continue;
        return b[i] == '{' || b[i] == '[';
    }
    return 0;
}

json_t *provider__json_load(const char *body, size_t len)
{
    return body && len <= PROVIDER_JSON_MAX_BYTES ? json_loadb(body, len, 0, NULL) : NULL;
}

json_t *provider__json_load_inline(const char *body, size_t len)
{
    if (body == NULL)
        return NULL;
    if (len <= PROVIDER_JSON_MAX_BYTES)
        return provider__json_load(body, len);
    /* Every value costs a separator or a bracket: few of them, few values. */
    size_t marks = 0;
    for (size_t i = 0; i < len; i++)
        marks += body[i] == ',' || body[i] == ':' || body[i] == '[' || body[i] == '{';
    return marks <= 64 ? json_loadb(body, len, 0, NULL) : NULL;
}

char *provider__json_error_text(const char *body, size_t len)
{
    if (body == NULL || !provider__looks_json(body, len))
        return NULL;
    json_t *root = provider__json_load(body, len);
    if (root == NULL)
        return NULL;
    char *out = NULL;
    static const char *keys[] = {"error", "detail", "message", "title"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !out; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (json_is_string(v))
            out = gf_xstrdup(json_string_value(v));
        else if (json_is_array(v) && json_array_size(v) > 0) {
            /* FastAPI: detail[0].loc + msg */
            json_t *d = json_array_get(v, 0);
            const char *msg = json_string_value(json_object_get(d, "msg"));
            json_t *loc = json_object_get(d, "loc");
            const char *last = json_string_value(json_array_get(loc, json_array_size(loc) - 1));
            if (msg) {
                gf_buf_t b = {0};
                gf_buf_printf(&b, "%s%s%s", last ? last : "", last ? ": " : "", msg);
                out = b.p;
            }
        }
    }
    json_decref(root);
    return out;
}

double provider__hf_estimated_time(const char *body, size_t len)
{
    if (body == NULL || !provider__looks_json(body, len))
        return -1;
    json_t *root = provider__json_load(body, len);
    json_t *v = json_object_get(root, "estimated_time");
    double t = json_is_number(v) ? json_number_value(v) : -1;
    json_decref(root);
    return t;
}

void provider__sanitize(char *dst, size_t n, const char *s, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; s && i < len && j + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
    }
    if (n)
        dst[j] = '\0';
}

char *provider__base64(const unsigned char *b, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = gf_xmalloc(4 * ((n + 2) / 3) + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            v |= b[i + 2];
        out[j++] = tab[(v >> 18) & 63];
        out[j++] = tab[(v >> 12) & 63];
        out[j++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[j] = '\0';
    return out;
}

json_t *provider__data_url(const unsigned char *b, size_t n)
{
    char *b64 = provider__base64(b, n);
    const char *mime = provider__sniff_image(b, n);
    gf_buf_t s = {0};
    gf_buf_printf(&s, "data:%s;base64,%s", mime ? mime : "image/png", b64);
    free(b64);
    json_t *v = json_string(s.p);
    gf_buf_dispose(&s);
    return v;
}

unsigned char *provider__base64_decode(const char *s, size_t n, size_t max, size_t *len)
{
    if (n / 4 * 3 > max + 3 || n > (size_t)INT32_MAX)
        return NULL;
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (ctx == NULL)
        return NULL;
    unsigned char *out = gf_xmalloc(n / 4 * 3 + 4);
    int a = 0, b = 0;
    EVP_DecodeInit(ctx);
    int ok = EVP_DecodeUpdate(ctx, out, &a, (const unsigned char *)s, (int)n) >= 0 &&
             EVP_DecodeFinal(ctx, out + a, &b) == 1;
    EVP_ENCODE_CTX_free(ctx);
    if (!ok || (size_t)(a + b) > max || a + b == 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)(a + b);
    return out;
}
