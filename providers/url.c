/*
 * providers/url.c - which URLs from a provider's reply the adapters may
 * follow (provider__url_allowed(), provider_int.h), and the URLs of a resume
 * token (provider__call_resume_urls()).
 */
#include "provider_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static char *url_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    return curl_url_get(u, what, &v, what == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0) == CURLUE_OK
               ? v
               : NULL;
}

static int host_is_literal(const char *h)
{
    if (strchr(h, ':') || h[0] == '[' || strchr(h, '.') == NULL)
        return 1; /* IPv6, or a single label (localhost) */
    return strspn(h, "0123456789.") == strlen(h);
}

int provider__url_allowed(const char *base, const char *url, int creds)
{
    if (base == NULL || url == NULL)
        return 0;
    CURLU *b = curl_url(), *u = curl_url();
    int ok = 0;
    char *bs = NULL, *bh = NULL, *bp = NULL, *us = NULL, *uh = NULL, *up = NULL;
    if (curl_url_set(b, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    bs = url_part(b, CURLUPART_SCHEME), bh = url_part(b, CURLUPART_HOST);
    bp = url_part(b, CURLUPART_PORT);
    us = url_part(u, CURLUPART_SCHEME), uh = url_part(u, CURLUPART_HOST);
    up = url_part(u, CURLUPART_PORT);
    if (!bs || !bh || !bp || !us || !uh || !up)
        goto out;
    if (strcasecmp(us, "https") != 0 &&
        !(strcasecmp(us, "http") == 0 && strcasecmp(bs, "http") == 0))
        goto out;
    if (!creds) {
        ok = 1;
        goto out;
    }
    if (strcasecmp(us, bs) != 0 || strcmp(up, bp) != 0)
        goto out;
    if (strcasecmp(uh, bh) == 0) {
        ok = 1;
        goto out;
    }
    if (host_is_literal(bh))
        goto out;
    const char *parent = strchr(bh, '.') + 1; /* api.bfl.ai -> bfl.ai */
    if (strchr(parent, '.') == NULL)
        parent = bh; /* bfl.ai itself: its subdomains */
    size_t hl = strlen(uh), pl = strlen(parent);
    ok = hl > pl + 1 && uh[hl - pl - 1] == '.' && strcasecmp(uh + hl - pl, parent) == 0;
out:
    curl_free(bs), curl_free(bh), curl_free(bp), curl_free(us), curl_free(uh), curl_free(up);
    curl_url_cleanup(b);
    curl_url_cleanup(u);
    return ok;
}

int provider__call_resume_urls(provider_call_t *c, const char *name, int n, char (*urls)[1024])
{
    static const char *const count[] = {"", "one", "two", "three"};
    const char *p = c->req.resume;
    for (int i = 0; i < n; i++) {
        int used = 0;
        if (sscanf(p, "%1023s%n", urls[i], &used) != 1) {
            provider__call_fail(c, PROVIDER_F_PROTOCOL, 0, "a %s resume token is %s URLs", name,
                                count[n]);
            return -1;
        }
        p += used;
    }
    const char *base = c->a->base_url;
    for (int i = 0; i < n; i++) {
        if (i == n - 1 && strcmp(urls[i], "-") == 0)
            break;
        if (!provider__url_allowed(base, urls[i], 1)) {
            provider__call_fail(c, PROVIDER_F_PROTOCOL, 0,
                                "a %s resume URL is off the provider's hosts", name);
            return -1;
        }
    }
    return 0;
}
