/*
 * tests/fuzz/fuzz_http.c - bytes through core/httpd as a client sends them:
 * the connection (reading, pipelining, back-pressure, lingering close), the
 * parser callbacks, the router, the request accessors and the responses.
 *
 * No network and no change to core/: the server's own listener handle listens
 * on an abstract AF_UNIX socket (private to this process), and each connection
 * is handed to httpd__conn_accept(), exactly as the server's own on_connection
 * does for TCP. Per input, one client connects, sends the input, half-closes,
 * and reads every answer until the server closes; the loop runs until the
 * connection is gone, so a request the server leaves hanging is a libFuzzer
 * timeout, and memory it keeps is a leak.
 *
 * The routes have API.md's shapes: path parameters, a query, bodies with
 * their own limits, a streamed answer (SSE), an answer given later from a
 * timer (as handlers that wait for Postgres or Redis do), a large download.
 *
 * What must hold, else abort: what the server writes first (after an
 * interim 100 Continue) is an HTTP/1.x response whose head carries an
 * X-Request-Id. Later responses on the connection are not split out and
 * checked: only the sanitizers and the leak check watch them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpd_int.h"

static uv_loop_t loop;
static gf_httpd_t *httpd;
static gf_metrics_t *metrics;
static struct sockaddr_un addr;
static socklen_t addr_len;
static char big[100000];

/* --- the routes ------------------------------------------------------------------ */

static void on_health(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_http_respond(r, 200, "text/plain", "ok\n", 3);
}

static void on_get(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_buf_t b = {0};
    const char *q = gf_http_req_query(r, "cursor");
    const char *a = gf_http_req_header(r, "authorization");
    gf_buf_printf(&b, "{\"id\":\"%s\",\"cursor\":%d,\"auth\":%d,\"route\":\"%s\",\"peer\":%d}",
                  gf_http_req_param(r, "id"), q != NULL, a != NULL, gf_http_req_route(r),
                  gf_http_req_peer(r) != NULL);
    gf_http_set_header(r, "Cache-Control", "no-store");
    gf_http_respond(r, 200, "application/json", b.p, b.len);
    gf_buf_dispose(&b);
}

static void on_post(gf_http_req_t *r, void *data)
{
    (void)data;
    size_t len;
    const char *body = gf_http_req_body(r, &len);
    const char *ct = gf_http_req_header(r, "content-type");
    if (ct == NULL || strncmp(ct, "application/json", 16) != 0) {
        gf_http_respond_error(r, 415, "unsupported_media_type", "JSON only", "Content-Type");
        return;
    }
    char out[64];
    int n = snprintf(out, sizeof(out), "{\"bytes\":%zu,\"first\":%d}", len,
                     len ? (unsigned char)body[0] : -1);
    gf_http_respond(r, 202, "application/json", out, (size_t)n);
}

static void on_events(gf_http_req_t *r, void *data)
{
    (void)data;
    const char *last = gf_http_req_header(r, "last-event-id");
    if (gf_http_stream_start(r, 200, "text/event-stream") == 0) {
        char ev[160];
        int n = snprintf(ev, sizeof(ev), "id: 1\nevent: queued\ndata: {\"after\":%d}\n\n",
                         last != NULL);
        if (gf_http_stream_write(r, ev, (size_t)n) == 0)
            gf_http_stream_write(r, "id: 2\nevent: done\ndata: {}\n\n", 29);
    }
    gf_http_stream_end(r);
}

static void on_file(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_http_set_header(r, "Content-Disposition", "attachment");
    gf_http_respond(r, 200, "image/png", big, sizeof(big));
}

/* A handler that answers later, from the loop, as one waiting for a store call does. */
typedef struct {
    uv_timer_t t;
    gf_http_req_t *r;
} later_t;

static void on_later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_later(uv_timer_t *t)
{
    later_t *l = t->data;
    if (gf_http_req_is_connected(l->r))
        gf_http_respond(l->r, 204, NULL, NULL, 0);
    else
        gf_http_respond_error(l->r, 503, "unavailable", "gone", NULL);
    uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static void on_later_client_gone(gf_http_req_t *r, void *data)
{
    (void)r;
    (void)data; /* the timer answers anyway: the request stays valid until then */
}

static void on_delete(gf_http_req_t *r, void *data)
{
    (void)data;
    later_t *l = gf_xcalloc(1, sizeof(*l));
    l->r = r;
    uv_timer_init(&loop, &l->t);
    l->t.data = l;
    gf_http_req_on_close(r, on_later_client_gone, l);
    uv_timer_start(&l->t, on_later, 0, 0);
}

static void on_response(gf_http_req_t *r, int status, void *data)
{
    (void)data;
    if (status >= 400)
        gf_http_set_header(r, "Vary", "Origin");
    gf_http_set_header(r, "Access-Control-Allow-Origin", "*");
}

/* --- the listener ---------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
    (void)server;
    if (status == 0)
        httpd__conn_accept(httpd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gf_log_min_level = GF_LOG_ERROR + 1;
    memset(big, 'x', sizeof(big));
    uv_loop_init(&loop);
    gf_httpd_opts_t o;
    gf_httpd_opts_default(&o);
    o.name = "fuzz";
    o.max_header_bytes = 4096;
    o.max_body_bytes = 1024;
    o.stream_max_queued_bytes = 4096;
    o.metrics = metrics = gf_metrics_new();
    gf_err_t err = {0};
    httpd = gf_httpd_new(&loop, &o, &err);
    if (httpd == NULL)
        abort();
    gf_httpd_route(httpd, "GET", "/healthz", 0, on_health, NULL);
    gf_httpd_route(httpd, "GET", "/v1/generations/:id", 0, on_get, NULL);
    gf_httpd_route(httpd, "DELETE", "/v1/generations/:id", 0, on_delete, NULL);
    gf_httpd_route(httpd, "POST", "/v1/generations", 8192, on_post, NULL);
    gf_httpd_route(httpd, "GET", "/v1/generations/:id/events", 0, on_events, NULL);
    gf_httpd_route(httpd, "GET", "/v1/files/:user/:name", 0, on_file, NULL);
    gf_httpd_route(httpd, "POST", "/v1/uploads", 65536, on_post, NULL);
    gf_httpd_set_response_hook(httpd, on_response, NULL);

    /* An abstract socket (Linux): no file, gone with the process; the pid keeps -jobs apart. */
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "genfarm-fuzz-http-%d",
                     (int)getpid());
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, addr_len) != 0)
        abort();
    uv_tcp_init(&loop, &httpd->listener);
    httpd->listener.data = httpd;
    httpd->listening = 1;
    if (uv_tcp_open(&httpd->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&httpd->listener, 16, on_connection) != 0)
        abort();
    return 0;
}

/* --- the client ------------------------------------------------------------------ */

typedef struct {
    uv_pipe_t pipe;
    uv_write_t w;
    uv_shutdown_t sh;
    int closed;
    char head[8192]; /* the first bytes answered, for the checks */
    size_t head_len, total;
} client_t;

static void on_client_closed(uv_handle_t *h)
{
    ((client_t *)h->data)->closed = 1;
}

static void on_shut(uv_shutdown_t *sh, int status)
{
    (void)sh;
    (void)status; /* the server may have closed first */
}

static void on_written(uv_write_t *w, int status)
{
    client_t *c = w->data;
    if (status == 0)
        uv_shutdown(&c->sh, (uv_stream_t *)&c->pipe, on_shut);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    static char rbuf[65536];
    (void)suggested;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = s->data;
    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_client_closed);
        return;
    }
    size_t take = (size_t)nread;
    if (take > sizeof(c->head) - c->head_len)
        take = sizeof(c->head) - c->head_len;
    memcpy(c->head + c->head_len, buf->base, take);
    c->head_len += take;
    c->total += (size_t)nread;
}

static void check_answer(const client_t *c)
{
    /* An interim 100 Continue (Expect: 100-continue) carries no headers. */
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const char *head = c->head;
    size_t len = c->head_len;
    if (len >= sizeof(cont) - 1 && memcmp(head, cont, sizeof(cont) - 1) == 0) {
        head += sizeof(cont) - 1;
        len -= sizeof(cont) - 1;
    }
    if (len == 0)
        return;
    if (len < 9 || memcmp(head, "HTTP/1.", 7) != 0) {
        fprintf(stderr, "the server answered something that is not HTTP/1.x: %.*s\n",
                (int)(len < 64 ? len : 64), head);
        abort();
    }
    const char *eoh = memmem(head, len, "\r\n\r\n", 4);
    if (eoh != NULL && memmem(head, (size_t)(eoh - head), "\r\nX-Request-Id: ", 16) == NULL) {
        fprintf(stderr, "a response without X-Request-Id\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    client_t *c = gf_xcalloc(1, sizeof(*c));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, addr_len) != 0)
        abort();
    uv_pipe_init(&loop, &c->pipe, 0);
    c->pipe.data = c;
    c->w.data = c;
    if (uv_pipe_open(&c->pipe, fd) != 0)
        abort();
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_client_read);
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned int)size);
    if (size > 0)
        uv_write(&c->w, (uv_stream_t *)&c->pipe, &buf, 1, on_written);
    else
        uv_shutdown(&c->sh, (uv_stream_t *)&c->pipe, on_shut);
    /* Until the client saw the end and the server closed every connection. */
    while (!c->closed || httpd->nconns > 0)
        uv_run(&loop, UV_RUN_ONCE);
    check_answer(c);
    free(c);
    return 0;
}
