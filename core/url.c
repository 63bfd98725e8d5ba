/*
 * core/url.c - the URL parser of the configuration's URLs (FARM_REDIS_URL,
 * FARM_DATABASE_URL, the provider base URLs). It splits and %-decodes; it
 * does not resolve or normalise. Its errors carry the domain "config": every
 * URL it reads is a setting.
 */
#include "url.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void url_free_parts(gf_url_t *u)
{
    GF_FREE(u->scheme);
    GF_FREE(u->user);
    GF_FREE(u->password);
    GF_FREE(u->password_raw);
    GF_FREE(u->host);
    GF_FREE(u->path);
}

void gf_url_dispose(gf_url_t *url)
{
    if (url != NULL)
        url_free_parts(url);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A new copy of s[0..n) with %XX decoded; NULL when an escape is bad or decodes to a
 * control character (the raw value's are refused too). */
static char *url_decode(const char *s, size_t n)
{
    char *out = gf_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = i + 2 < n ? hex_value(s[i + 1]) : -1;
        int b = i + 2 < n ? hex_value(s[i + 2]) : -1;
        if (a < 0 || b < 0 || a * 16 + b < 0x20 || a * 16 + b == 0x7f) {
            free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = '\0';
    return out;
}

int gf_url_parse(const char *s, gf_url_t *u, gf_err_t *err)
{
    memset(u, 0, sizeof(*u));
    const char *sep = strstr(s, "://");
    if (sep == NULL || sep == s)
        return gf_err_set(err, GF_EINVAL, "config", "no scheme:// prefix");
    for (const char *c = s; c < sep; c++)
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.')
            return gf_err_set(err, GF_EINVAL, "config", "bad character in the scheme");
    u->scheme = gf_xstrndup(s, (size_t)(sep - s));
    const char *auth = sep + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(end - auth));
    const char *host = auth;
    if (at != NULL) {
        /* Readers disagree on which '@' ends a user info holding another
         * (libpq takes the first), so there may be one only. */
        if (memchr(at + 1, '@', (size_t)(end - at - 1)) != NULL) {
            url_free_parts(u);
            return gf_err_set(err, GF_EINVAL, "config",
                              "more than one '@' (write one in a user or password as %%40)");
        }
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *uend = colon ? colon : at;
        u->user = url_decode(auth, (size_t)(uend - auth));
        if (colon != NULL) {
            u->password = url_decode(colon + 1, (size_t)(at - colon - 1));
            u->password_raw = gf_xstrndup(colon + 1, (size_t)(at - colon - 1));
        }
        if (u->user == NULL || (colon != NULL && u->password == NULL)) {
            url_free_parts(u);
            return gf_err_set(err, GF_EINVAL, "config", "a bad %%-escape in the user or password");
        }
        host = at + 1;
    }
    const char *hend = end;
    const char *pcolon = NULL;
    if (*host == '[') { /* [ipv6]:port */
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (rb == NULL)
            goto bad_host;
        u->host = gf_xstrndup(host + 1, (size_t)(rb - host - 1));
        pcolon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (rb + 1 < end && pcolon == NULL)
            goto bad_host;
    } else {
        pcolon = memchr(host, ':', (size_t)(end - host));
        hend = pcolon ? pcolon : end;
        u->host = gf_xstrndup(host, (size_t)(hend - host));
    }
    if (u->host[0] == '\0')
        goto bad_host;
    for (const char *c = u->host; *c; c++)
        if (isspace((unsigned char)*c) || *c == '@')
            goto bad_host;
    if (pcolon != NULL) {
        const char *p = pcolon + 1;
        long port = 0;
        if (p == end)
            goto bad_port;
        for (; p < end; p++) {
            if (!isdigit((unsigned char)*p))
                goto bad_port;
            port = port * 10 + (*p - '0');
            if (port > 65535)
                goto bad_port;
        }
        if (port == 0)
            goto bad_port;
        u->port = (int)port;
    }
    u->path = gf_xstrdup(end);
    return 0;
bad_host:
    url_free_parts(u);
    return gf_err_set(err, GF_EINVAL, "config", "missing or malformed host");
bad_port:
    url_free_parts(u);
    return gf_err_set(err, GF_EINVAL, "config", "port is not a number in 1..65535");
}
