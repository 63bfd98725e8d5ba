/*
 * providers/fetch.c - the steps every adapter shares: accepting an image from
 * a response, failing a call with what its response says, downloading a
 * result URL, taking a submit's answer, and retrying a failed GET or POST.
 *
 * The acceptance rule of providers.md: an image only after a 2xx, the whole
 * body (libcurl finished with no error) and PNG/JPEG/WEBP magic bytes; the
 * declared Content-Type is not trusted, and JSON on a 200 is an error.
 */
#include "provider_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void provider__accept_image(provider_call_t *c, net_resp_t *r)
{
    const char *mime = provider__sniff_image((const unsigned char *)r->body, r->len);
    if (mime != NULL) {
        size_t len;
        char *b = net_take_body(r, &len);
        provider__call_succeed(c, (unsigned char *)b, len);
        return;
    }
    if (provider__looks_json(r->body, r->len)) {
        char *text = provider__json_error_text(r->body, r->len);
        char safe[160];
        provider__sanitize(safe, sizeof(safe), text ? text : "", text ? strlen(text) : 0);
        free(text);
        provider__call_fail(c, PROVIDER_F_SERVER, r->status, "JSON instead of an image on %ld: %s",
                            r->status, safe);
        return;
    }
    provider__call_fail(c, PROVIDER_F_BAD_BODY, r->status,
                        "the %zu-byte body on %ld is not a PNG, JPEG or WEBP image", r->len,
                        r->status);
}

void provider__call_fail_resp(provider_call_t *c, net_resp_t *r, provider_fault f, const char *what)
{
    char *text = r->too_big ? NULL : provider__json_error_text(r->body, r->len);
    char safe[160];
    if (r->too_big)
        snprintf(safe, sizeof(safe), "the reply is larger than its bound");
    else if (text == NULL && r->curl_code)
        provider__sanitize(safe, sizeof(safe), r->curl_msg, strlen(r->curl_msg));
    else
        provider__sanitize(safe, sizeof(safe), text ? text : "", text ? strlen(text) : 0);
    free(text);
    if (what)
        provider__call_fail(c, f, r->status, "%s: HTTP %ld: %s", what, r->status, safe);
    else
        provider__call_fail(c, f, r->status, "HTTP %ld: %s", r->status, safe);
}

/* How long a retry waits: the provider's hint, else exponential backoff. */
static uint64_t retry_wait_ms(provider_call_t *c, net_resp_t *r, int attempt)
{
    const gf_config_t *cfg = c->p->cfg;
    int64_t hint = -1;
    if (r != NULL)
        hint = provider__retry_after_ms(net_header(r, "retry-after"), net_header(r, "ratelimit"),
                                        net_header(r, "x-ratelimit-reset"), (int64_t)time(NULL));
    if (hint >= 0) {
        /* +-25% jitter on top, so a crowd told "1 s" does not come back at once. */
        uint64_t j = (uint64_t)hint / 4 + 1;
        return (uint64_t)hint + provider__rand() % j;
    }
    return provider__backoff_ms(attempt, (uint64_t)cfg->provider_backoff_base_ms,
                                (uint64_t)cfg->provider_backoff_cap_ms, provider__rand());
}

int provider__call_retry_get(provider_call_t *c, net_resp_t *r, provider_fault f,
                             void (*again)(provider_call_t *c))
{
    switch (f) {
    case PROVIDER_F_SERVER:
    case PROVIDER_F_NETWORK:
    case PROVIDER_F_STALLED:
    case PROVIDER_F_BAD_BODY:
    case PROVIDER_F_RATE_LIMIT:
        break;
    default:
        return 0;
    }
    if (c->get_failures >= c->p->cfg->provider_max_retries)
        return 0;
    c->get_failures++;
    uint64_t ms = retry_wait_ms(c, r, c->get_failures);
    if (ms >= provider__call_remaining(c))
        return 0;
    provider__call_wait(c, ms, again);
    return 1;
}

uint64_t provider__retry_wait(provider_call_t *c, net_resp_t *r, int attempt)
{
    return retry_wait_ms(c, r, attempt);
}

static void on_download(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    c->xfer = NULL;
    c->last_status = r->status;
    if (r->too_big) {
        provider__call_fail(c, PROVIDER_F_TOO_BIG, r->status,
                            "the result is larger than %lld bytes",
                            c->p->cfg->provider_max_image_bytes);
        return;
    }
    /* A private address is the reply's doing, not the network's: no retry, no
     * other provider (that would pay for the image again). */
    if (r->refused) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, 0, "downloading the result: %s", r->curl_msg);
        return;
    }
    provider_fault f = provider__resp_fault(r);
    if (f == PROVIDER_F_NONE) {
        const char *mime = provider__sniff_image((const unsigned char *)r->body, r->len);
        if (mime == NULL &&
            provider__call_retry_get(c, r, PROVIDER_F_BAD_BODY, provider__fetch_image))
            return;
        provider__accept_image(c, r);
        return;
    }
    /* A signed result URL that answers 403/404/410 has expired: resubmit, never re-poll. */
    if (r->status == 403 || r->status == 404 || r->status == 410) {
        provider__call_fail(c, PROVIDER_F_URL_EXPIRED, r->status,
                            "the result URL answered %ld (expired)", r->status);
        return;
    }
    if (provider__call_retry_get(c, r, f, provider__fetch_image))
        return;
    provider__call_fail(c, f, r->status, "downloading the result failed: %s",
                        r->curl_code ? r->curl_msg : "bad status");
}

void provider__fetch_image(provider_call_t *c)
{
    const gf_config_t *cfg = c->p->cfg;
    provider__call_progress(c, -1, "downloading");
    /* Data URLs (fal sync_mode) carry the image inline. */
    if (strncmp(c->image_url, "data:", 5) == 0) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, 0, "data: URLs are not requested");
        return;
    }
    if (!provider__url_allowed(c->a->base_url, c->image_url, 0)) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, 0,
                            "the result URL is not https (or http like the base URL)");
        return;
    }
    static const char *const headers[] = {"Accept: image/*", NULL};
    /* With a real (https) provider the result lives on its CDN: a reply that
     * names a private address (cloud metadata, the farm's own services) is
     * not fetched. A local http fake serves its own images. */
    net_req_t req = {.method = "GET",
                     .url = c->image_url,
                     .headers = headers,
                     .public_only = strncasecmp(c->a->base_url, "https://", 8) == 0};
    provider__http_defaults(c, &req, (uint64_t)cfg->provider_download_timeout_s * 1000);
    provider__call_http(c, &req, on_download);
}

int provider__call_retry_post(provider_call_t *c, net_resp_t *r, provider_fault f,
                              void (*again)(provider_call_t *c))
{
    long max = c->p->cfg->provider_max_retries;
    int no_job = f == PROVIDER_F_RATE_LIMIT || (f == PROVIDER_F_SERVER && r->status == 503) ||
                 (f == PROVIDER_F_NETWORK && net_not_sent(r->curl_code));
    int maybe_job = f == PROVIDER_F_SERVER || f == PROVIDER_F_NETWORK || f == PROVIDER_F_STALLED ||
                    f == PROVIDER_F_BAD_BODY;
    if (no_job ? c->submits > max : !(maybe_job && c->submits < 2))
        return 0;
    uint64_t ms = retry_wait_ms(c, r, c->submits);
    if (ms >= provider__call_remaining(c))
        return 0;
    provider__call_wait(c, ms, again);
    return 1;
}

int provider__call_submit_answered(provider_call_t *c, net_resp_t *r,
                                   void (*again)(provider_call_t *c))
{
    c->xfer = NULL;
    c->last_status = r->status;
    provider_fault f = provider__resp_fault(r);
    if (f == PROVIDER_F_NONE)
        return 1;
    if (!provider__call_retry_post(c, r, f, again))
        provider__call_fail_resp(c, r, f, "submit");
    return 0;
}

void provider__call_poll_later(provider_call_t *c, net_resp_t *r, void (*poll)(provider_call_t *c))
{
    const gf_config_t *cfg = c->p->cfg;
    uint64_t min = (uint64_t)cfg->provider_poll_min_ms, max = (uint64_t)cfg->provider_poll_max_ms;
    if (c->poll_ms == 0) {
        int64_t hint = r ? provider__retry_after_ms(net_header(r, "retry-after"), NULL, NULL,
                                                    (int64_t)time(NULL))
                         : -1;
        c->poll_ms = hint > (int64_t)min ? (uint64_t)hint : min;
        if (c->poll_ms > max)
            c->poll_ms = max;
    } else {
        c->poll_ms = provider__poll_next_ms(c->poll_ms, max);
    }
    provider__call_wait(c, c->poll_ms, poll);
}
