/*
 * tests/fuzz/fuzz_provider_reply.c - a provider's reply through the parsers
 * the hf, fal and bfl adapters run on it (providers/fault.c, url.c, call.c):
 * the fault classification of status and body, the wait a 429/503 asks for
 * (Retry-After, RateLimit, x-ratelimit-reset), the error text and HF's
 * estimated_time of a JSON body, the image sniffing, the log-safe copy, and
 * the URLs a reply hands back (fal's status/response/cancel URLs, bfl's
 * polling_url and result.sample, hf's output[0]) against the adapter's host.
 *
 * Input: byte 0 the curl code (0 unless its high bit is set), bytes 1-2 the
 * HTTP status (mod 600), then header lines "name: value\n" up to an empty
 * line, then the body.
 *
 * What must hold, else abort: every fault has its table row; the sanitized
 * copy is printable ASCII and NUL-terminated; a URL that passes the host
 * check starts with the base URL's scheme.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider_int.h"

#define NOW_S 1764900000 /* 2025-12-05: HTTP-dates are judged against a fixed clock */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_provider_reply: %s\n", what);
    abort();
}

/* The value of header `name` among `lines` (borrowed into `out`), or NULL. */
static const char *header(char *const *names, char *const *values, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(names[i], name) == 0)
            return values[i];
    return NULL;
}

static void check_url(const char *base, const char *url)
{
    if (url == NULL)
        return;
    for (int creds = 0; creds <= 1; creds++)
        if (provider__url_allowed(base, url, creds) &&
            strncasecmp(url, base, strcspn(base, ":") + 1) != 0)
            die("a URL of another scheme passed the host check");
}

static void check_body_urls(const char *body, size_t len)
{
    json_t *root = provider__json_load(body, len);
    if (root == NULL)
        return;
    static const char *const fal[] = {"status_url", "response_url", "cancel_url"};
    for (size_t i = 0; i < 3; i++)
        check_url("https://queue.fal.run", json_string_value(json_object_get(root, fal[i])));
    check_url("https://fal.media", json_string_value(json_object_get(
                                       json_array_get(json_object_get(root, "images"), 0), "url")));
    check_url("https://api.bfl.ai", json_string_value(json_object_get(root, "polling_url")));
    check_url("https://api.bfl.ai",
              json_string_value(json_object_get(json_object_get(root, "result"), "sample")));
    check_url("https://router.huggingface.co",
              json_string_value(json_array_get(json_object_get(root, "output"), 0)));
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > PROVIDER_JSON_MAX_BYTES + 4096)
        return 0;
    int curl_code = data[0] & 0x80 ? data[0] & 0x7f : 0;
    long status = ((long)data[1] << 8 | data[2]) % 600;
    /* A NUL-terminated copy of the rest, cut into header lines and the body. */
    size_t n = size - 3;
    char *rest = malloc(n + 1);
    memcpy(rest, data + 3, n);
    rest[n] = '\0';
    char *names[16], *values[16];
    int nh = 0;
    char *p = rest, *end = rest + n;
    while (p < end && *p != '\n') {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && nh < 16) {
            *colon = '\0';
            *line_end = '\0';
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            names[nh] = p;
            values[nh++] = v;
        }
        p = nl ? nl + 1 : end;
    }
    if (p < end && *p == '\n')
        p++;
    const char *body = p;
    size_t len = (size_t)(end - p);

    provider_fault f = provider__classify(curl_code, status, body, len);
    if (provider__fault_info(f) == NULL)
        die("a fault without its table row");
    provider__retry_after_ms(header(names, values, nh, "retry-after"),
                             header(names, values, nh, "ratelimit"),
                             header(names, values, nh, "x-ratelimit-reset"), NOW_S);
    provider__looks_json(body, len);
    provider__sniff_image((const unsigned char *)body, len);
    provider__hf_estimated_time(body, len);
    free(provider__json_error_text(body, len));
    char safe[128];
    provider__sanitize(safe, sizeof(safe), body, len);
    size_t sl = strnlen(safe, sizeof(safe));
    if (sl == sizeof(safe))
        die("the sanitized copy is not terminated");
    for (size_t i = 0; i < sl; i++)
        if (!isprint((unsigned char)safe[i]))
            die("the sanitized copy holds a byte that is not printable ASCII");
    const char *rid = header(names, values, nh, "x-request-id");
    if (rid)
        provider__sanitize(safe, sizeof(safe), rid, strlen(rid));
    check_body_urls(body, len);
    free(rest);
    return 0;
}
