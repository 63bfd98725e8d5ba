/*
 * net.h - outbound HTTP on the process's loop: one libcurl multi handle per
 * engine, driven by libuv, used by providers/, storage/ and webhook delivery.
 *
 * A transfer holds its request and response bodies in memory, bounded by
 * `max_bytes`; it never follows redirects; `public_only` refuses, at connect
 * time, every address that is not public (see net_addr_is_public()).
 *
 * Contract: net_start() never fails and never runs its callback before it
 * returns; the transfer reaches curl from the loop (a later turn when many
 * were started at once: net.c, on_feed); the callback runs once, from the
 * loop, outside of any curl callback, so it may start or abort transfers;
 * net_abort() means the callback never runs.
 */
#ifndef NET_H
#define NET_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct net net_t;
typedef struct net_xfer net_xfer_t;

/* A request; every pointer is borrowed and copied by net_start(). */
typedef struct {
    const char *method; /* "GET", "POST", "PUT"; "DELETE"; "HEAD" (no body is read) */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" */
    const char *body;
    size_t body_len;
    uint64_t timeout_ms;         /* total time of the transfer */
    uint64_t connect_timeout_ms; /* CURLOPT_CONNECTTIMEOUT_MS */
    long low_speed_time_s;       /* abort below 1 byte/s over this long */
    size_t max_bytes;            /* a longer body fails with too_big */
    /* Connect only to public addresses, checked on the address actually
     * dialed (after DNS, so a rebinding name cannot get round it). Such a
     * transfer never goes through a proxy: the environment's (https_proxy,
     * all_proxy) is ignored, so the address checked is the destination's. */
    int public_only;
} net_req_t;

/* A finished transfer; owned by the engine, valid until the callback returns. */
typedef struct {
    int curl_code; /* a CURLcode, 0 when the exchange completed */
    char curl_msg[256];
    long status; /* 0 when no response arrived */
    char *body;  /* NUL-terminated (the NUL is not counted in len) */
    size_t len;
    int too_big;
    int refused;    /* a public_only transfer found only private addresses (curl_msg says which) */
    char **headers; /* "name: value" of the last response, lower-case names */
    size_t nheaders;
} net_resp_t;

typedef void (*net_done_cb)(net_resp_t *resp, void *data);

net_t *net_new(uv_loop_t *loop, gf_err_t *err);

/*
 * HTTP/2 of an engine's transfers. A new engine keeps curl's own default
 * (NET_HTTP2_CURL: h2 when TLS's ALPN agrees, HTTP/1.1 on http, and a
 * transfer that finds no free connection opens one). The others make
 * transfers wait to multiplex (CURLOPT_PIPEWAIT) where h2 is possible:
 * without it, transfers started together each open a connection before the
 * first has said it can carry them all.
 */
typedef enum {
    NET_HTTP2_CURL,            /* curl's default, no waiting (storage, webhooks) */
    NET_HTTP2_AUTO,            /* h2 by ALPN on https, where transfers wait to multiplex */
    NET_HTTP2_PRIOR_KNOWLEDGE, /* h2 without asking, on http too (h2c); all wait */
    NET_HTTP2_OFF,             /* HTTP/1.1 only */
} net_http2_t;
/*
 * Applies to the transfers started from now on. `max_host_connections`
 * (CURLMOPT_MAX_HOST_CONNECTIONS, 0: no cap) bounds the connections to one
 * host: with libcurl 7.88, transfers waiting to multiplex still open a
 * connection each once the first connection's streams are taken, unless
 * a cap makes them wait (docs/providers.md, "Calls in flight").
 */
void net_set_http2(net_t *h, net_http2_t mode, long max_host_connections);
/* Whether this libcurl can do `mode` (only prior knowledge can fail: the others fall back
 * to HTTP/1.1): 0, or GF_EINVAL with the reason in `why`. */
int net_http2_check(net_http2_t mode, char *why, size_t why_len);
/* The CA certificates (a PEM file, copied path) that https transfers trust instead of the
 * system's; NULL: the system's. */
void net_set_ca_file(net_t *h, const char *path);
/* Starts a transfer; `cb` (NULL: fire and forget) runs once, from the loop. Never fails. */
net_xfer_t *net_start(net_t *h, const net_req_t *req, net_done_cb cb, void *data);
/* Aborts a transfer; its callback never runs. */
void net_abort(net_xfer_t *x);
/* Aborts every transfer, closes the handles; `cb` runs once all are closed. */
void net_close(net_t *h, void (*cb)(void *data), void *data);
/* A response header by case-insensitive name, or NULL. Borrowed. */
const char *net_header(const net_resp_t *r, const char *name);
/* Takes the body out of the response (the caller frees it). */
char *net_take_body(net_resp_t *r, size_t *len);
/*
 * Whether a download may connect to this address: not loopback, private
 * (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, where
 * clouds answer metadata requests, fe80::/10), CGNAT, unspecified,
 * multicast, reserved, or an IPv4-mapped one of those.
 */
int net_addr_is_public(const struct sockaddr *sa);
/*
 * Checks a URL before anything is sent to it (webhooks): libcurl's own
 * parser reads it; its scheme must be https (or http when `allow_http`), it
 * must have a host, and a host written as an address (IPv4, IPv6, an
 * IPv4-mapped IPv6) must be public by net_addr_is_public() unless
 * `allow_private`. A name is not resolved here: public_only checks the
 * address it resolves to at connect time. Writes the host (no brackets)
 * into `host` (may be NULL). 0, or GF_EINVAL with `reason` (for a client).
 */
int net_url_check(const char *url, int allow_http, int allow_private, char *host, size_t host_len,
                  char *reason, size_t reason_len);
/* Whether the CURLcode means the connection never got to send the request. */
int net_not_sent(int curl_code);
/* Whether the CURLcode is a timeout (operation or low-speed). */
int net_timed_out(int curl_code);
/* Whether the CURLcode means a partial body (truncated, reset mid-body). */
int net_partial(int curl_code);

/*
 * The proxy variable of the environment that libcurl would use for https
 * (https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY), or NULL when none is
 * set: `public_only` transfers ignore it, which a process says at start.
 */
const char *net_env_https_proxy(void);

#endif
