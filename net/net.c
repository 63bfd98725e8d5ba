/*
 * net/net.c - a curl multi handle driven by libuv (see net.h).
 *
 * Wired as curl's docs/examples/multi-uv.c: curl tells us which sockets to
 * watch (CURLMOPT_SOCKETFUNCTION -> a uv_poll_t per socket) and when to wake
 * (CURLMOPT_TIMERFUNCTION -> one uv_timer_t); libuv tells curl what happened
 * with curl_multi_socket_action(). Finished transfers are collected after each
 * action and their callbacks run outside of any curl callback, so a callback
 * may start or abort transfers freely.
 *
 * Invariants: every easy handle in the multi is a net_xfer_t (its
 * CURLOPT_PRIVATE); an easy handle is removed from the multi before
 * curl_easy_cleanup(); the engine is freed only from the last close callback.
 */
#include "net.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ctype.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/*
 * The idle easy handles an engine keeps. A new handle costs curl_easy_init()'s
 * allocation and set-up of curl's whole per-transfer state, and
 * curl_easy_cleanup() its teardown; curl_easy_reset() clears every option and
 * keeps the handle, so a reused handle starts as a new one does (net_start
 * sets every option it uses). One loop turn's completions are handed to the
 * next turn's starts. An idle handle holds a few KiB (curl 7.88 allocates its
 * 16 KiB download buffer per transfer, reused handle or not).
 */
#define NET_EASY_POOL_MAX 256

struct net {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int closing, pending_closes;
    void (*closed_cb)(void *data);
    void *closed_data;
    net_xfer_t *xfers;      /* live transfers */
    struct poll_ctx *polls; /* watched sockets */
    /* Transfers started but not yet in the multi, oldest first: the feeder
     * adds NET_FEED_BATCH of them per loop turn (see net_start). */
    net_xfer_t *queue_head, *queue_tail;
    uv_idle_t feeder;
    uv_idle_t kick; /* curl's 0 ms timeouts, run on the next loop turn (on_curl_timer) */
    net_http2_t http2;
    char *ca_file; /* net_set_ca_file, NULL: the system's */
    int openssl;   /* libcurl's TLS is OpenSSL (tls_is_openssl) */
    /* Easy handles of finished transfers, reset, for the next net_start()
     * (easy_take, easy_give); at most NET_EASY_POOL_MAX. */
    CURL *pool[NET_EASY_POOL_MAX];
    int npool;
};

struct net_xfer {
    net_t *h;
    net_xfer_t *prev, *next;
    net_xfer_t *queue_next;
    int queued; /* in h's queue, not yet in the multi */
    CURL *easy;
    struct curl_slist *req_headers;
    char *body_out;
    net_resp_t resp;
    size_t cap, max_bytes;
    int header_reset;
    net_done_cb cb;
    void *data;
    char refused[96];  /* set by open_public: why a public_only transfer did not connect */
    int opened_public; /* open_public opened a socket to a public address of the name */
};

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    net_t *h;
    struct poll_ctx *prev, *next;
} poll_ctx_t;

static void check_multi_info(net_t *h);

/* --- libcurl -> libuv ------------------------------------------------------------ */

static void maybe_free(net_t *h);

static void on_poll_closed(uv_handle_t *handle)
{
    poll_ctx_t *pc = handle->data;
    net_t *h = pc->h;
    free(pc);
    h->pending_closes--;
    if (h->closing)
        maybe_free(h);
}

static void poll_close(poll_ctx_t *pc)
{
    net_t *h = pc->h;
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        h->polls = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    uv_poll_stop(&pc->poll);
    uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    poll_ctx_t *pc = poll->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(pc->h->multi, pc->fd, flags, &running);
    check_multi_info(pc->h);
}

static int on_socket(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
    (void)easy;
    net_t *h = userp;
    poll_ctx_t *pc = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (pc != NULL) {
            poll_close(pc);
            curl_multi_assign(h->multi, s, NULL);
        }
        return 0;
    }
    if (pc == NULL) {
        pc = gf_xcalloc(1, sizeof(*pc));
        pc->fd = s;
        pc->h = h;
        if (uv_poll_init_socket(h->loop, &pc->poll, s) < 0) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        h->pending_closes++;
        pc->next = h->polls;
        if (h->polls)
            h->polls->prev = pc;
        h->polls = pc;
        curl_multi_assign(h->multi, s, pc);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&pc->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    net_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(h);
}

static void on_kick(uv_idle_t *idle)
{
    net_t *h = idle->data;
    uv_idle_stop(idle);
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(h);
}

/*
 * A 0 ms timeout is run from the loop, not from inside curl: on the next
 * loop turn, after its I/O (an idle handle), not after a 1 ms timer
 * (multi-uv.c's trick). curl wakes the transfers that wait for a connection
 * (CURLOPT_PIPEWAIT, a cap of connections per host) one at a time, each
 * with a 0 ms timeout once the one before it has a connection: at 1 ms each,
 * 2,000 of them took 2 s.
 */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    net_t *h = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&h->timer);
        uv_idle_stop(&h->kick);
        return 0;
    }
    if (timeout_ms == 0) {
        uv_timer_stop(&h->timer);
        uv_idle_start(&h->kick, on_kick);
        return 0;
    }
    uv_idle_stop(&h->kick);
    uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* --- body and headers --------------------------------------------------------------- */

/*
 * The first allocation of a body: its Content-Length when the response gives
 * one within max_bytes (a 1.5 MB image is then one allocation, not seven
 * doublings and copies), else 16 KiB.
 */
static size_t first_cap(net_xfer_t *x)
{
    curl_off_t cl = -1;
    if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl > 0 &&
        (size_t)cl <= x->max_bytes)
        return (size_t)cl + 1;
    return 16384;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userp)
{
    net_xfer_t *x = userp;
    size_t n = size * nmemb;
    if (x->resp.len + n > x->max_bytes) {
        x->resp.too_big = 1;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (x->resp.len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : first_cap(x);
        while (cap < x->resp.len + n + 1)
            cap *= 2;
        x->resp.body = gf_xrealloc(x->resp.body, cap);
        x->cap = cap;
    }
    memcpy(x->resp.body + x->resp.len, ptr, n);
    x->resp.len += n;
    x->resp.body[x->resp.len] = '\0';
    return n;
}

static void headers_clear(net_resp_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    GF_FREE(r->headers);
    r->nheaders = 0;
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *userp)
{
    net_xfer_t *x = userp;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        headers_clear(&x->resp); /* a new response (after 100 or a redirect): keep the last */
        return n;
    }
    const char *colon = memchr(ptr, ':', n);
    if (colon == NULL || x->resp.nheaders >= 64)
        return n;
    size_t len = n;
    while (len > 0 && (ptr[len - 1] == '\r' || ptr[len - 1] == '\n'))
        len--;
    char *line = gf_xstrndup(ptr, len);
    for (char *c = line; *c && *c != ':'; c++)
        *c = (char)tolower((unsigned char)*c);
    x->resp.headers = gf_xrealloc(x->resp.headers, (x->resp.nheaders + 1) * sizeof(char *));
    x->resp.headers[x->resp.nheaders++] = line;
    return n;
}

const char *net_header(const net_resp_t *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *h = r->headers[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

char *net_take_body(net_resp_t *r, size_t *len)
{
    char *b = r->body;
    *len = r->len;
    r->body = NULL;
    r->len = 0;
    return b;
}

const char *net_env_https_proxy(void)
{
    static const char *const names[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                        NULL};
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v != NULL && *v != '\0')
            return names[i];
    }
    return NULL;
}

/*
 * CURLOPT_SSL_CTX_FUNCTION: a TLS connection keeps its read and write buffers
 * (about 34 KiB) while it lives. curl sets SSL_MODE_RELEASE_BUFFERS, so
 * OpenSSL allocated and freed a 17 KiB buffer around every SSL_write and
 * SSL_read, on fresh heap pages each time when thousands of calls were in
 * flight: a quarter of the CPU of 2,000 h2 calls at once (scripts/bench
 * providers). Connections are few (curl's cache bounds the idle ones).
 */
/* Whether libcurl's TLS is OpenSSL, whose SSL_CTX keep_tls_buffers() is given (with
 * another backend the pointer is that library's). */
static int tls_is_openssl(void)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return v->ssl_version != NULL && strncmp(v->ssl_version, "OpenSSL/", 8) == 0;
}

static CURLcode keep_tls_buffers(CURL *e, void *ssl_ctx, void *data)
{
    (void)e;
    (void)data;
    SSL_CTX_clear_mode((SSL_CTX *)ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    return CURLE_OK;
}

/* CURLOPT_OPENSOCKETFUNCTION of a public_only transfer: no socket to a private address. */
static curl_socket_t open_public(void *data, curlsocktype purpose, struct curl_sockaddr *addr)
{
    net_xfer_t *x = data;
    (void)purpose;
    if (!net_addr_is_public(&addr->addr)) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const void *raw = addr->family == AF_INET6
                              ? (const void *)&((struct sockaddr_in6 *)&addr->addr)->sin6_addr
                              : (const void *)&((struct sockaddr_in *)&addr->addr)->sin_addr;
        inet_ntop(addr->family, raw, ip, sizeof(ip));
        snprintf(x->refused, sizeof(x->refused), "refused to connect to %s: not a public address",
                 ip);
        return CURL_SOCKET_BAD;
    }
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd != CURL_SOCKET_BAD)
        x->opened_public = 1; /* a family this host has no socket for was not tried */
    return fd;
}

int net_not_sent(int code)
{
    return code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_RESOLVE_PROXY ||
           code == CURLE_COULDNT_CONNECT || code == CURLE_SSL_CONNECT_ERROR;
}

int net_timed_out(int code)
{
    return code == CURLE_OPERATION_TIMEDOUT;
}

int net_partial(int code)
{
    return code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING ||
           code == CURLE_SEND_ERROR;
}

/* --- transfers ------------------------------------------------------------------- */

static void queue_remove(net_xfer_t *x)
{
    net_t *h = x->h;
    net_xfer_t **pp = &h->queue_head, *prev = NULL;
    while (*pp && *pp != x)
        prev = *pp, pp = &(*pp)->queue_next;
    if (*pp == NULL)
        return;
    *pp = x->queue_next;
    if (h->queue_tail == x)
        h->queue_tail = prev;
    x->queue_next = NULL;
    x->queued = 0;
}

/* An easy handle for a new transfer: an idle one of the engine's, else a new one. */
static CURL *easy_take(net_t *h)
{
    if (h->npool > 0)
        return h->pool[--h->npool];
    CURL *e = curl_easy_init();
    if (e == NULL) {
        fprintf(stderr, "curl_easy_init failed\n");
        abort(); /* only on memory exhaustion */
    }
    return e;
}

/* Takes back the easy handle of a finished transfer (out of the multi). */
static void easy_give(net_t *h, CURL *e)
{
    if (h->closing || h->npool == NET_EASY_POOL_MAX) {
        curl_easy_cleanup(e);
        return;
    }
    curl_easy_reset(e);
    h->pool[h->npool++] = e;
}

static void xfer_free(net_xfer_t *x)
{
    net_t *h = x->h;
    if (x->queued)
        queue_remove(x);
    if (x->prev)
        x->prev->next = x->next;
    else
        h->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    curl_multi_remove_handle(h->multi, x->easy);
    easy_give(h, x->easy);
    curl_slist_free_all(x->req_headers);
    free(x->body_out);
    free(x->resp.body);
    headers_clear(&x->resp);
    free(x);
}

static void check_multi_info(net_t *h)
{
    CURLMsg *msg;
    int pending;
    while ((msg = curl_multi_info_read(h->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        net_xfer_t *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->resp.curl_code = (int)msg->data.result;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp.status);
        /* Refused only when every address curl tried was private: a name with a public
         * address too that did not answer failed as any unreachable receiver does. */
        if (x->resp.curl_code == CURLE_COULDNT_CONNECT && x->refused[0] && !x->opened_public) {
            snprintf(x->resp.curl_msg, sizeof(x->resp.curl_msg), "%s", x->refused);
            x->resp.refused = 1;
        } else if (x->resp.curl_code != CURLE_OK && x->resp.curl_msg[0] == '\0')
            snprintf(x->resp.curl_msg, sizeof(x->resp.curl_msg), "%s",
                     curl_easy_strerror(msg->data.result));
        /* Detach from the multi before the callback, so it may start new transfers. */
        curl_multi_remove_handle(h->multi, x->easy);
        if (x->cb)
            x->cb(&x->resp, x->data);
        if (h->closing)
            return; /* net_close() in the callback freed x with the others, and the multi */
        xfer_free(x);
    }
}

/*
 * A transfer curl refused to take (curl_multi_add_handle failed: out of
 * memory, or the multi marked dead by a callback) ends here with
 * CURLE_FAILED_INIT and curl's reason. This runs from the feeder, a later
 * loop turn than its net_start() and outside of any curl callback, as every
 * completion does.
 */
static void add_failed(net_xfer_t *x, CURLMcode mc)
{
    net_t *h = x->h;
    x->resp.curl_code = CURLE_FAILED_INIT;
    snprintf(x->resp.curl_msg, sizeof(x->resp.curl_msg), "curl_multi_add_handle: %s",
             curl_multi_strerror(mc));
    if (x->cb)
        x->cb(&x->resp, x->data);
    if (!h->closing)
        xfer_free(x); /* else net_close() freed it with the others */
}

/*
 * How queued transfers reach curl: NET_FEED_BATCH at a time, until one loop
 * turn has spent NET_FEED_BUDGET_NS on them; the rest wait for the next turn.
 * curl starts every transfer it is given in one curl_multi_socket_action(),
 * so 2,000 calls started together were 2,000 connects in one turn and no
 * request left before the last connect. Fed by time, the loop turns between
 * the slices: the requests of the first are sent, and the server works on
 * them, while the next ones connect; transfers that reuse a connection cost
 * little, and many of them fit in one turn.
 */
#define NET_FEED_BATCH     16
#define NET_FEED_BUDGET_NS 2000000

static void on_feed(uv_idle_t *idle)
{
    net_t *h = idle->data;
    uint64_t start = uv_hrtime();
    do {
        for (int i = 0; i < NET_FEED_BATCH && h->queue_head; i++) {
            net_xfer_t *x = h->queue_head;
            h->queue_head = x->queue_next;
            if (h->queue_head == NULL)
                h->queue_tail = NULL;
            x->queue_next = NULL;
            x->queued = 0;
            CURLMcode mc = curl_multi_add_handle(h->multi, x->easy);
            if (mc != CURLM_OK)
                add_failed(x, mc);
        }
        if (h->closing)
            break; /* a callback closed the engine */
        int running;
        curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_multi_info(h);
    } while (h->queue_head && !h->closing && uv_hrtime() - start < NET_FEED_BUDGET_NS);
    if (h->queue_head == NULL && !h->closing)
        uv_idle_stop(&h->feeder);
}

void net_set_http2(net_t *h, net_http2_t mode, long max_host_connections)
{
    h->http2 = mode;
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
}

int net_http2_check(net_http2_t mode, char *why, size_t why_len)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (mode != NET_HTTP2_PRIOR_KNOWLEDGE)
        return 0; /* the others fall back to HTTP/1.1 where h2 is not to be had */
    if (!(v->features & CURL_VERSION_HTTP2)) {
        snprintf(why, why_len, "libcurl %s is built without HTTP/2", v->version);
        return GF_EINVAL;
    }
    /* Before 8.0.0, libcurl set a second HTTP/2 layer on a reused h2c connection and
     * every request after the first failed (curl issue 10634, fixed by pull 10643). */
    if (v->version_num < 0x080000) {
        snprintf(why, why_len,
                 "libcurl %s fails h2c on a reused connection (curl issue 10634, fixed in "
                 "8.0.0)",
                 v->version);
        return GF_EINVAL;
    }
    return 0;
}

void net_set_ca_file(net_t *h, const char *path)
{
    free(h->ca_file);
    h->ca_file = path ? gf_xstrdup(path) : NULL;
}

/*
 * The HTTP version and the wait to multiplex of one transfer (net.h,
 * net_http2_t). Waiting (CURLOPT_PIPEWAIT) is asked only where the
 * connection can be h2: on plain http in NET_HTTP2_AUTO the connection is
 * HTTP/1.1, and waiting would only hold every transfer behind the first
 * connect. The streams one connection carries are curl's default
 * (CURLMOPT_MAX_CONCURRENT_STREAMS, 100) or fewer when the server says so;
 * a transfer that finds every connection full opens another, within the
 * engine's cap of connections per host (net_set_http2).
 */
static void http2_setopts(const net_t *h, CURL *e, const char *url)
{
    switch (h->http2) {
    case NET_HTTP2_CURL:
        break;
    case NET_HTTP2_AUTO:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        if (strncasecmp(url, "https://", 8) == 0)
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        break;
    case NET_HTTP2_PRIOR_KNOWLEDGE:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        break;
    case NET_HTTP2_OFF:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        break;
    }
}

net_xfer_t *net_start(net_t *h, const net_req_t *req, net_done_cb cb, void *data)
{
    net_xfer_t *x = gf_xcalloc(1, sizeof(*x));
    x->h = h;
    x->cb = cb;
    x->data = data;
    x->max_bytes = req->max_bytes ? req->max_bytes : 64 * 1024 * 1024;
    x->easy = easy_take(h);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    if (h->openssl)
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, keep_tls_buffers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->resp.curl_msg);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 0L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->public_only) {
        /* No proxy, not even one from the environment (https_proxy, all_proxy):
         * then the address open_public checks is the destination's own, and a
         * proxy cannot carry the request to a private one. */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_public);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    }
    http2_setopts(h, e, req->url);
    if (h->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    if (req->low_speed_time_s > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, req->low_speed_time_s);
    }
    for (const char *const *hd = req->headers; hd && *hd; hd++)
        x->req_headers = curl_slist_append(x->req_headers, *hd);
    /* No "Expect: 100-continue" round trip on POSTs with bodies. */
    x->req_headers = curl_slist_append(x->req_headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_headers);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "DELETE") == 0 && req->body_len == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else if (strcmp(req->method, "GET") != 0) {
        x->body_out = gf_xmalloc(req->body_len + 1);
        if (req->body_len)
            memcpy(x->body_out, req->body, req->body_len);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body_out);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    x->next = h->xfers;
    if (h->xfers)
        h->xfers->prev = x;
    h->xfers = x;
    x->queued = 1;
    if (h->queue_tail)
        h->queue_tail->queue_next = x;
    else
        h->queue_head = x;
    h->queue_tail = x;
    uv_idle_start(&h->feeder, on_feed);
    return x;
}

void net_abort(net_xfer_t *x)
{
    if (x != NULL)
        xfer_free(x);
}

net_t *net_new(uv_loop_t *loop, gf_err_t *err)
{
    static int global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            gf_err_set(err, GF_EIO, "net", "curl_global_init failed");
            return NULL;
        }
        global_done = 1;
    }
    net_t *h = gf_xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->openssl = tls_is_openssl();
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        gf_err_set(err, GF_ENOMEM, "net", "curl_multi_init failed");
        return NULL;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_idle_init(loop, &h->feeder);
    h->feeder.data = h;
    uv_idle_init(loop, &h->kick);
    h->kick.data = h;
    h->pending_closes = 3; /* the timer, the feeder and the kick */
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    /* CURLMOPT_MAXCONNECTS is left to curl: four times the transfers in
     * the multi. A fixed cap below the transfers in flight (it was 1024)
     * closed the connections of every finished transfer above it, so the
     * next ones connected anew, and each return to a full cache scanned all
     * connections for the oldest (docs/providers.md, "Calls in flight"). */
    return h;
}

static void maybe_free(net_t *h)
{
    if (h->pending_closes > 0)
        return;
    void (*cb)(void *) = h->closed_cb;
    void *data = h->closed_data;
    free(h->ca_file);
    free(h);
    if (cb)
        cb(data);
}

static void on_timer_closed(uv_handle_t *handle)
{
    net_t *h = handle->data;
    h->pending_closes--;
    maybe_free(h);
}

void net_close(net_t *h, void (*cb)(void *data), void *data)
{
    if (h->closing)
        return;
    h->closing = 1;
    h->closed_cb = cb;
    h->closed_data = data;
    for (net_xfer_t *x = h->queue_head; x; x = x->queue_next)
        x->queued = 0; /* freed below with the others, not one by one off the queue */
    h->queue_head = h->queue_tail = NULL;
    while (h->xfers)
        xfer_free(h->xfers);
    while (h->npool > 0)
        curl_easy_cleanup(h->pool[--h->npool]);
    /* Sockets curl still watches (kept-alive connections) are closed here. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    /* Sockets the cleanup did not report removed are closed here. */
    while (h->polls)
        poll_close(h->polls);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
    uv_close((uv_handle_t *)&h->feeder, on_timer_closed);
    uv_close((uv_handle_t *)&h->kick, on_timer_closed);
}
