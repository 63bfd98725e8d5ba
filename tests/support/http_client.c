/*
 * tests/support/http_client.c - the client side of the http_* tests:
 * time helpers, a raw-socket HTTP/1.1 client for what libcurl will not send
 * (pipelining, garbage, slow or oversized requests, a reader that stalls),
 * libcurl helpers and the assertions the tests share.
 *
 * Everything here runs on the test thread; cmocka assertions are allowed.
 */
#include "http_harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void http_test_init(void)
{
    /* 1,000 client sockets plus 1,000 server sockets live in one test process. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* A peer that closed must not kill the process with SIGPIPE when libuv writes. */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_test_cleanup(void)
{
    curl_global_cleanup();
}

int http_run_group(const char *name, const struct CMUnitTest *tests, size_t n)
{
    http_test_init();
    int failed = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    http_test_cleanup();
    return failed;
}

/* --- raw client ------------------------------------------------------------------------ */

int rawc_connect(rawc_t *c, int port, int rcvbuf)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    gf_buf_puts(&c->in, "");
    return 0;
}

void rawc_close(rawc_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    gf_buf_dispose(&c->in);
}

int rawc_send(rawc_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int rawc_sends(rawc_t *c, const char *s)
{
    return rawc_send(c, s, strlen(s));
}

int rawc_fill(rawc_t *c, int timeout_ms)
{
    if (c->eof)
        return 0;
    long long end = now_ms() + timeout_ms;
    for (;;) {
        long long left = end - now_ms();
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&p, 1, left > 0 ? (int)left : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            return -1;
        char tmp[65536];
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n > 0) {
            gf_buf_append(&c->in, tmp, (size_t)n);
            return (int)n;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        c->eof = 1; /* FIN, or RST (ECONNRESET): the server closed either way */
        return 0;
    }
}

static void consume(rawc_t *c, size_t n)
{
    memmove(c->in.p, c->in.p + n, c->in.len - n + 1);
    c->in.len -= n;
}

/* Waits until `in` holds `what`; returns its offset or -1. */
static long wait_for(rawc_t *c, const char *what, long long end)
{
    for (;;) {
        char *hit = c->in.len ? strstr(c->in.p, what) : NULL;
        if (hit != NULL)
            return hit - c->in.p;
        long long left = end - now_ms();
        if (left <= 0 || rawc_fill(c, (int)left) <= 0)
            return -1;
    }
}

/* Waits until `in` holds n bytes; 0 or -1. */
static int wait_bytes(rawc_t *c, size_t n, long long end)
{
    while (c->in.len < n) {
        long long left = end - now_ms();
        if (left <= 0 || rawc_fill(c, (int)left) <= 0)
            return -1;
    }
    return 0;
}

int rawc_head(rawc_t *c, http_resp_t *r, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    long long end = now_ms() + timeout_ms;
    long at = wait_for(c, "\r\n\r\n", end);
    if (at < 0)
        return -1;
    char *head = gf_xstrndup(c->in.p, (size_t)at);
    consume(c, (size_t)at + 4);
    char *line = head, *next;
    int minor;
    if (sscanf(head, "HTTP/1.%d %d", &minor, &r->status) != 2) {
        free(head);
        return -1;
    }
    gf_buf_puts(&r->body, "");
    for (; line && (next = strstr(line, "\r\n")) != NULL; line = next) {
        next += 2;
        char *eol = strstr(next, "\r\n");
        size_t len = eol ? (size_t)(eol - next) : strlen(next);
        char *colon = memchr(next, ':', len);
        if (colon == NULL || r->nh == 48)
            continue;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        r->hname[r->nh] = gf_xstrndup(next, (size_t)(colon - next));
        r->hval[r->nh] = gf_xstrndup(v, len - (size_t)(v - next));
        r->nh++;
    }
    free(head);
    const char *te = resp_header(r, "Transfer-Encoding");
    r->chunked = te && strcasecmp(te, "chunked") == 0;
    return 0;
}

long rawc_chunk(rawc_t *c, http_resp_t *r, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    long at = wait_for(c, "\r\n", end);
    if (at < 0)
        return -1;
    long size = strtol(c->in.p, NULL, 16);
    consume(c, (size_t)at + 2);
    if (size < 0 || wait_bytes(c, (size_t)size + 2, end) < 0)
        return -1;
    gf_buf_append(&r->body, c->in.p, (size_t)size);
    consume(c, (size_t)size + 2);
    return size;
}

int rawc_response(rawc_t *c, http_resp_t *r, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    if (rawc_head(c, r, timeout_ms) < 0)
        return -1;
    const char *cl = resp_header(r, "Content-Length");
    if (r->chunked) {
        long n;
        while ((n = rawc_chunk(c, r, (int)(end - now_ms()))) > 0)
            ;
        return n == 0 ? 0 : -1;
    }
    if (cl != NULL) {
        size_t n = strtoull(cl, NULL, 10);
        if (wait_bytes(c, n, end) < 0)
            return -1;
        gf_buf_append(&r->body, c->in.p, n);
        consume(c, n);
        return 0;
    }
    while (!c->eof) /* neither: the body ends at the close */
        if (rawc_fill(c, (int)(end - now_ms())) < 0)
            return -1;
    gf_buf_append(&r->body, c->in.p, c->in.len);
    consume(c, c->in.len);
    return 0;
}

int rawc_wait_eof(rawc_t *c, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    while (!c->eof) {
        long long left = end - now_ms();
        if (left <= 0 || rawc_fill(c, (int)left) < 0)
            return 0;
        consume(c, c->in.len);
    }
    return 1;
}

const char *resp_header(const http_resp_t *r, const char *name)
{
    for (int i = 0; i < r->nh; i++)
        if (strcasecmp(r->hname[i], name) == 0)
            return r->hval[i];
    return NULL;
}

void resp_dispose(http_resp_t *r)
{
    for (int i = 0; i < r->nh; i++) {
        free(r->hname[i]);
        free(r->hval[i]);
    }
    r->nh = 0;
    gf_buf_dispose(&r->body);
}

/* --- libcurl ------------------------------------------------------------------------------ */

size_t curl_buf_write(char *p, size_t size, size_t n, void *data)
{
    gf_buf_append(data, p, size * n);
    return size * n;
}

static size_t on_curl_header(char *p, size_t size, size_t n, void *data)
{
    cresp_t *r = data;
    if (size * n > 12 && strncmp(p, "HTTP/1.1 100", 12) == 0)
        r->saw_continue = 1;
    if (size * n > 5 && strncmp(p, "HTTP/", 5) == 0)
        r->head.len = 0; /* a new response starts */
    gf_buf_append(&r->head, p, size * n);
    return size * n;
}

/* A response header's value (copied into out), or NULL. */
const char *cresp_header(const cresp_t *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *l = r->head.p; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, n, "%.*s", (int)len, v);
            return out;
        }
    }
    return NULL;
}

void cresp_dispose(cresp_t *r)
{
    gf_buf_dispose(&r->body);
    gf_buf_dispose(&r->head);
}

/* Prepares `e` for a request to the server; the caller adds method specifics. */
void curl_setup(CURL *e, srv_t *s, const char *path, cresp_t *r, struct curl_slist *hdrs)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv_port(s), path);
    memset(r, 0, sizeof(*r));
    gf_buf_puts(&r->body, "");
    gf_buf_puts(&r->head, "");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
}

/* Performs a request on `e` (kept for reuse); asserts the transfer itself worked. */
void curl_run(CURL *e, cresp_t *r)
{
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK)
        fail_msg("curl: %s", curl_easy_strerror(rc));
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
}

/* One GET on a fresh handle; returns the status. */
long curl_get(srv_t *s, const char *path, struct curl_slist *hdrs, cresp_t *r)
{
    CURL *e = curl_easy_init();
    assert_non_null(e);
    curl_setup(e, s, path, r, hdrs);
    curl_run(e, r);
    curl_easy_cleanup(e);
    return r->status;
}

/* --- shared assertions ---------------------------------------------------------------------- */

/* Asserts a body is the JSON error shape of API.md with this code. */
void assert_json_error(const char *body, size_t len, const char *code)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (root == NULL)
        fail_msg("error body is not JSON (%s): %.*s", jerr.text, (int)len, body);
    json_t *err = json_object_get(root, "error");
    assert_true(json_is_object(err));
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_true(json_is_string(json_object_get(err, "message")));
    assert_non_null(json_object_get(err, "field"));
    json_decref(root);
}

/* A lowercase UUID v4: 8-4-4-4-12 hex with version 4 and variant 10xx. */
int is_uuid4(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!strchr("0123456789abcdef", s[i])) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* Sends `req` on a new connection, reads one response, requires the close after it. */
void assert_refused(srv_t *s, const char *req, size_t len, int status, const char *code)
{
    rawc_t c;
    assert_int_equal(rawc_connect(&c, srv_port(s), 0), 0);
    assert_int_equal(rawc_send(&c, req, len), 0);
    http_resp_t r;
    assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, status);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_non_null(resp_header(&r, "X-Request-Id"));
    assert_non_null(strstr(resp_header(&r, "Content-Type"), "application/json"));
    assert_json_error(r.body.p, r.body.len, code);
    resp_dispose(&r);
    assert_true(rawc_wait_eof(&c, WAIT_MS));
    rawc_close(&c);
}
