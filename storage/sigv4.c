/*
 * storage/sigv4.c - AWS Signature Version 4 (see sigv4.h), over OpenSSL's
 * HMAC and SHA-256. Debian's libcurl 7.88 signs headers but canonicalises
 * some queries wrongly and cannot presign, so the farm signs for itself.
 */
#include "sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALGORITHM "AWS4-HMAC-SHA256"

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256_hex(const char *s, size_t n, char hex[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, n, d);
    hex_of(d, sizeof(d), hex);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

void sigv4_uri_encode(gf_buf_t *out, const char *s, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            gf_buf_append(out, (const char *)p, 1);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
            gf_buf_append(out, esc, 3);
        }
    }
}

typedef struct {
    char *name, *value; /* encoded (query) or lower-case and trimmed (headers) */
} pair_t;

static int pair_cmp(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *encoded(const char *s)
{
    gf_buf_t b = {0};
    gf_buf_puts(&b, "");
    sigv4_uri_encode(&b, s ? s : "", 0);
    return b.p;
}

/* A header value with its ends trimmed and inner runs of spaces made one. */
static char *trimmed(const char *v)
{
    gf_buf_t b = {0};
    gf_buf_puts(&b, "");
    const char *p = v + strspn(v, " \t");
    while (*p) {
        size_t n = strcspn(p, " \t");
        gf_buf_append(&b, p, n);
        p += n;
        p += strspn(p, " \t");
        if (*p)
            gf_buf_append(&b, " ", 1);
    }
    return b.p;
}

static char *lower(const char *s)
{
    char *l = gf_xstrdup(s);
    for (char *p = l; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return l;
}

static pair_t *sorted_headers(const sigv4_kv *headers, size_t n)
{
    pair_t *h = gf_xcalloc(n ? n : 1, sizeof(*h));
    for (size_t i = 0; i < n; i++) {
        h[i].name = lower(headers[i].name);
        h[i].value = trimmed(headers[i].value);
    }
    qsort(h, n, sizeof(*h), pair_cmp);
    return h;
}

static void pairs_free(pair_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

char *sigv4_signed_headers(const sigv4_kv *headers, size_t nheaders)
{
    pair_t *h = sorted_headers(headers, nheaders);
    gf_buf_t b = {0};
    gf_buf_puts(&b, "");
    for (size_t i = 0; i < nheaders; i++)
        gf_buf_printf(&b, "%s%s", i ? ";" : "", h[i].name);
    pairs_free(h, nheaders);
    return b.p;
}

char *sigv4_canonical_request(const char *method, const char *path, const sigv4_kv *query,
                              size_t nquery, const sigv4_kv *headers, size_t nheaders,
                              const char *payload_hash)
{
    gf_buf_t b = {0};
    gf_buf_printf(&b, "%s\n", method);
    sigv4_uri_encode(&b, path && *path ? path : "/", 1);
    gf_buf_puts(&b, "\n");
    pair_t *q = gf_xcalloc(nquery ? nquery : 1, sizeof(*q));
    for (size_t i = 0; i < nquery; i++) {
        q[i].name = encoded(query[i].name);
        q[i].value = encoded(query[i].value);
    }
    qsort(q, nquery, sizeof(*q), pair_cmp);
    for (size_t i = 0; i < nquery; i++)
        gf_buf_printf(&b, "%s%s=%s", i ? "&" : "", q[i].name, q[i].value);
    pairs_free(q, nquery);
    gf_buf_puts(&b, "\n");
    pair_t *h = sorted_headers(headers, nheaders);
    for (size_t i = 0; i < nheaders; i++)
        gf_buf_printf(&b, "%s:%s\n", h[i].name, h[i].value);
    gf_buf_puts(&b, "\n");
    for (size_t i = 0; i < nheaders; i++)
        gf_buf_printf(&b, "%s%s", i ? ";" : "", h[i].name);
    pairs_free(h, nheaders);
    gf_buf_printf(&b, "\n%s", payload_hash);
    return b.p;
}

void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32])
{
    gf_buf_t k = {0};
    gf_buf_printf(&k, "AWS4%s", secret);
    unsigned char a[32], b[32];
    hmac(k.p, k.len, date8, a);
    OPENSSL_cleanse(k.p, k.len);
    gf_buf_dispose(&k);
    hmac(a, 32, region, b);
    hmac(b, 32, service, a);
    hmac(a, 32, "aws4_request", key);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
}

char *sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical)
{
    char hex[65];
    sha256_hex(canonical, strlen(canonical), hex);
    gf_buf_t b = {0};
    gf_buf_printf(&b, ALGORITHM "\n%s\n%s\n%s", amz_date, scope, hex);
    return b.p;
}

void sigv4_amz_date(long long unix_s, char out[17])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* "20130524/us-east-1/s3/aws4_request" */
static void scope_of(const sigv4_creds *c, const char *amz_date, char *out, size_t n)
{
    snprintf(out, n, "%.8s/%s/%s/aws4_request", amz_date, c->region, c->service);
}

void sigv4_sign(const sigv4_creds *c, const char *amz_date, const char *canonical, char hex[65])
{
    char scope[200], date8[9];
    unsigned char key[32], sig[32];
    scope_of(c, amz_date, scope, sizeof(scope));
    snprintf(date8, sizeof(date8), "%.8s", amz_date);
    char *sts = sigv4_string_to_sign(amz_date, scope, canonical);
    sigv4_signing_key(c->secret, date8, c->region, c->service, key);
    hmac(key, sizeof(key), sts, sig);
    OPENSSL_cleanse(key, sizeof(key));
    free(sts);
    hex_of(sig, sizeof(sig), hex);
}

char *sigv4_authorization(const sigv4_creds *c, const char *amz_date, const char *method,
                          const char *path, const sigv4_kv *query, size_t nquery,
                          const sigv4_kv *headers, size_t nheaders, const char *payload_hash)
{
    char *canonical =
        sigv4_canonical_request(method, path, query, nquery, headers, nheaders, payload_hash);
    char *signed_headers = sigv4_signed_headers(headers, nheaders);
    char sig[65], scope[200];
    sigv4_sign(c, amz_date, canonical, sig);
    scope_of(c, amz_date, scope, sizeof(scope));
    gf_buf_t b = {0};
    gf_buf_printf(&b, ALGORITHM " Credential=%s/%s,SignedHeaders=%s,Signature=%s", c->access_key,
                  scope, signed_headers, sig);
    free(canonical);
    free(signed_headers);
    return b.p;
}

char *sigv4_presign_query(const sigv4_creds *c, const char *amz_date, long expires_s,
                          const char *method, const char *path, const char *host)
{
    char scope[200], credential[400], expires[24], sig[65];
    scope_of(c, amz_date, scope, sizeof(scope));
    snprintf(credential, sizeof(credential), "%s/%s", c->access_key, scope);
    snprintf(expires, sizeof(expires), "%ld", expires_s);
    const sigv4_kv q[] = {
        {"X-Amz-Algorithm", ALGORITHM}, {"X-Amz-Credential", credential}, {"X-Amz-Date", amz_date},
        {"X-Amz-Expires", expires},     {"X-Amz-SignedHeaders", "host"},
    };
    const sigv4_kv h[] = {{"host", host}};
    size_t nq = sizeof(q) / sizeof(q[0]);
    char *canonical = sigv4_canonical_request(method, path, q, nq, h, 1, "UNSIGNED-PAYLOAD");
    sigv4_sign(c, amz_date, canonical, sig);
    free(canonical);
    /* The parameters in the canonical order, which is also a valid URL order. */
    gf_buf_t b = {0};
    gf_buf_puts(&b, "");
    for (size_t i = 0; i < nq; i++) {
        gf_buf_printf(&b, "%s%s=", i ? "&" : "", q[i].name);
        sigv4_uri_encode(&b, q[i].value, 0);
    }
    gf_buf_printf(&b, "&X-Amz-Signature=%s", sig);
    return b.p;
}
