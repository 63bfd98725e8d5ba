/*
 * providers/url.c - which URLs from a provider's reply the adapters may
 * follow (provider__url_allowed(), provider_int.h).
 */
#include "provider_int.h"

#include <curl/curl.h>
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
