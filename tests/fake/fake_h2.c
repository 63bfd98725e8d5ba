/*
 * tests/fake/fake_h2.c - farm-fake-provider's HTTP/2 over plain TCP (h2c, prior
 * knowledge), on its one port: core/httpd hands over every connection whose
 * first bytes are the client preface (httpd__set_h2c), and libnghttp2 speaks
 * the protocol here.
 *
 * Each stream becomes a request of core/httpd that no connection carries
 * (httpd__req_detached): the same routes, faults and delayed answers as over
 * HTTP/1.1, the answer coming back through a sink (on_answer) as one HEADERS
 * frame and the body in DATA frames. What differs, because HTTP/2 has no
 * such bytes: a raw answer that cuts the connection (reset, truncated,
 * chunked_abort) resets the stream instead (RST_STREAM INTERNAL_ERROR), and a
 * stalled one (stall_body) sends nothing until the client resets the stream.
 * A streamed answer (SSE) is not served: the stream is reset.
 *
 * With --tls-port-file the fake also listens on a second port for h2 over
 * TLS (ALPN "h2" only), with a certificate for 127.0.0.1 it makes at start
 * and writes to --tls-cert: the path the farm takes to real providers
 * (https, ALPN). TLS runs through memory BIOs: bytes read go into OpenSSL,
 * what it decrypts into nghttp2, and what nghttp2 sends out through
 * SSL_write and the socket.
 *
 * Invariants: a stream's request is the handler's from httpd__req_run() until
 * its answer reaches the sink; when the stream or the connection goes first,
 * the request's sink is cleared (its answer is then dropped) and its on_close
 * runs, as for a connection that closed. Frames are sent only outside of
 * nghttp2's callbacks (h2_flush after nghttp2_session_mem_recv returns, or
 * from the loop when a delayed answer lands).
 */
#include "fake.h"
#include "httpd_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What one connection may carry at once (SETTINGS_MAX_CONCURRENT_STREAMS), about what
 * CDNs in front of the real providers announce; curl's own limit (100) is lower. */
#define H2_MAX_STREAMS 256
/* The window of a stream's request body: a submit with reference images in one go. */
#define H2_WINDOW (16 * 1024 * 1024)

typedef struct h2_conn h2_conn_t;

typedef struct h2_stream {
    struct h2_stream *prev, *next;
    h2_conn_t *conn;
    int32_t id;
    char method[16];
    gf_buf_t target;  /* :path */
    gf_http_req_t *r; /* built as the stream arrives; the handler's once running */
    int running;
    char *out; /* the answer's body */
    size_t out_len, out_off;
} h2_stream_t;

struct h2_conn {
    h2_conn_t *prev, *next;
    fake_t *f;
    uv_tcp_t tcp;
    nghttp2_session *s;
    h2_stream_t *streams;
    int in_recv; /* inside nghttp2_session_mem_recv: frames wait for h2_flush */
    int closing;
    SSL *ssl; /* the TLS port's connections; NULL: h2c */
};

typedef struct {
    uv_write_t w;
    h2_conn_t *c;
    char data[];
} h2_write_t;

static struct {
    fake_t *f;
    h2_conn_t *conns;
    unsigned long connections, streams; /* since start (or the last /__fake/reset) */
    SSL_CTX *tls;                       /* the TLS port's, NULL when it is not open */
    uv_tcp_t tls_listener;
} g;

static char h2_readbuf[65536];

static void h2_close(h2_conn_t *c);

/* --- streams -------------------------------------------------------------------------- */

/* The stream or its connection ended before the answer: the handler keeps the request. */
static void stream_detach(h2_stream_t *st)
{
    gf_http_req_t *r = st->r;
    st->r = NULL;
    if (r == NULL)
        return;
    if (!st->running) {
        httpd__req_free(r); /* still arriving: no handler owns it */
        return;
    }
    r->sink = NULL;
    if (r->on_close)
        r->on_close(r, r->on_close_data);
}

static void stream_free(h2_stream_t *st)
{
    h2_conn_t *c = st->conn;
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    stream_detach(st);
    gf_buf_dispose(&st->target);
    free(st->out);
    free(st);
}

/* The request of a stream whose pseudo-headers are in (they come first). */
static gf_http_req_t *stream_req(h2_stream_t *st);

/* --- writing -------------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    h2_write_t *hw = (h2_write_t *)w;
    h2_conn_t *c = hw->c;
    free(hw);
    if (status < 0)
        h2_close(c);
}

/* Writes bytes to the socket (copied); 0, or < 0 when the connection is closed. */
static int conn_send(h2_conn_t *c, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    h2_write_t *hw = gf_xmalloc(sizeof(*hw) + n);
    hw->c = c;
    memcpy(hw->data, p, n);
    uv_buf_t buf = uv_buf_init(hw->data, (unsigned int)n);
    if (uv_write(&hw->w, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        free(hw);
        h2_close(c);
        return -1;
    }
    return 0;
}

/* Sends what OpenSSL has ready for the peer (handshake records, encrypted frames). */
static int tls_drain(h2_conn_t *c)
{
    char tmp[16384];
    BIO *wb = SSL_get_wbio(c->ssl);
    int n;
    while ((n = BIO_read(wb, tmp, sizeof(tmp))) > 0)
        if (conn_send(c, tmp, (size_t)n) < 0)
            return -1;
    return 0;
}

/* Sends what nghttp2 has queued; closes the connection when both sides are done. */
static void h2_flush(h2_conn_t *c)
{
    if (c->closing || c->in_recv)
        return;
    if (c->ssl && !SSL_is_init_finished(c->ssl))
        return; /* the frames wait for the handshake */
    gf_buf_t b = {0};
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->s, &data);
        if (n < 0) {
            gf_buf_dispose(&b);
            h2_close(c);
            return;
        }
        if (n == 0)
            break;
        gf_buf_append(&b, (const char *)data, (size_t)n);
    }
    int rc = 0;
    if (b.len > 0 && c->ssl) {
        /* Memory BIOs take every byte: SSL_write writes it all or fails. */
        rc = SSL_write(c->ssl, b.p, (int)b.len) == (int)b.len ? tls_drain(c) : -1;
        if (rc < 0)
            h2_close(c);
    } else if (b.len > 0) {
        rc = conn_send(c, b.p, b.len);
    }
    gf_buf_dispose(&b);
    if (rc < 0)
        return;
    if (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s))
        h2_close(c);
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)s;
    (void)id;
    (void)user;
    h2_stream_t *st = src->ptr;
    size_t n = st->out_len - st->out_off;
    if (n > length)
        n = length;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

/* core/httpd's sink (httpd_sink_cb): the answer of a stream's request. */
static void on_answer(gf_http_req_t *r, int status, const char *ctype, const char *body, size_t len,
                      void *data)
{
    h2_stream_t *st = data;
    h2_conn_t *c = st->conn;
    st->r = NULL; /* core/httpd frees it once this returns */
    if (status == 0) {
        nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        h2_flush(c);
        return;
    }
    /* The headers set on the request ("Name: value\r\n" lines), names in lower case. */
    char *extra = gf_xstrndup(r->out_headers.p ? r->out_headers.p : "", r->out_headers.len);
    nghttp2_nv nva[40];
    size_t n = 0;
    char st_text[8], cl[24];
    snprintf(st_text, sizeof(st_text), "%d", status);
    nva[n++] = nv(":status", st_text);
    if (ctype)
        nva[n++] = nv("content-type", ctype);
    if (strcmp(r->method, "HEAD") != 0) {
        snprintf(cl, sizeof(cl), "%zu", len);
        nva[n++] = nv("content-length", cl);
    }
    nva[n++] = nv("x-request-id", r->id);
    for (char *line = extra; *line && n < sizeof(nva) / sizeof(nva[0]);) {
        char *end = strstr(line, "\r\n");
        if (end == NULL)
            break;
        *end = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            for (char *p = line; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            nva[n++] = nv(line, v);
        }
        line = end + 2;
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    if (len > 0) {
        st->out = gf_xmalloc(len);
        memcpy(st->out, body, len);
        st->out_len = len;
    }
    if (nghttp2_submit_response(c->s, st->id, nva, n, len > 0 ? &prd : NULL) != 0)
        nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    free(extra);
    h2_flush(c);
}

static gf_http_req_t *stream_req(h2_stream_t *st)
{
    if (st->r == NULL && !st->running) {
        const char *target = st->target.len ? st->target.p : "";
        st->r = httpd__req_detached(st->conn->f->httpd, st->method, target, on_answer, st);
    }
    return st->r;
}

/* --- nghttp2's callbacks ---------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    h2_conn_t *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_stream_t *st = gf_xcalloc(1, sizeof(*st));
    st->conn = c;
    st->id = frame->hd.stream_id;
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    g.streams++;
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st == NULL || st->running)
        return 0;
    const char *n = (const char *)name, *v = (const char *)value;
    if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
        snprintf(st->method, sizeof(st->method), "%.*s", (int)valuelen, v);
    } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
        gf_buf_append(&st->target, v, valuelen);
    } else if (namelen == 10 && memcmp(n, ":authority", 10) == 0) {
        httpd__kv_add(&stream_req(st)->headers, "host", 4, v, valuelen);
    } else if (namelen > 0 && n[0] != ':') {
        /* Pseudo-headers come first (nghttp2 checks it): method and path are known. */
        httpd__kv_add(&stream_req(st)->headers, n, namelen, v, valuelen);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *user)
{
    (void)flags;
    (void)user;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st == NULL || st->running)
        return 0;
    gf_http_req_t *r = stream_req(st);
    gf_buf_append(&r->body, (const char *)data, len);
    return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st == NULL || st->running)
        return 0;
    gf_http_req_t *r = stream_req(st);
    st->running = 1;
    httpd__req_run(r); /* may answer at once (on_answer), or later from a timer */
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    (void)code;
    (void)user;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st != NULL) {
        nghttp2_session_set_stream_user_data(s, id, NULL);
        stream_free(st);
    }
    return 0;
}

/* --- connections ------------------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void h2_close(h2_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        g.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    while (c->streams)
        stream_free(c->streams);
    nghttp2_session_del(c->s);
    c->s = NULL;
    SSL_free(c->ssl);
    c->ssl = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Feeds bytes to nghttp2; < 0 when the connection had to close. */
static int h2_recv(h2_conn_t *c, const char *data, size_t len)
{
    c->in_recv = 1;
    ssize_t n = nghttp2_session_mem_recv(c->s, (const uint8_t *)data, len);
    c->in_recv = 0;
    if (n < 0) {
        h2_close(c);
        return -1;
    }
    return 0;
}

/* Bytes from the socket: through TLS first on the TLS port; then what nghttp2 answers. */
static void h2_input(h2_conn_t *c, const char *data, size_t len)
{
    if (c->ssl == NULL) {
        if (h2_recv(c, data, len) == 0)
            h2_flush(c);
        return;
    }
    BIO_write(SSL_get_rbio(c->ssl), data, (int)len);
    char tmp[16384];
    for (;;) {
        int n = SSL_read(c->ssl, tmp, sizeof(tmp)); /* drives the handshake too */
        if (n > 0) {
            if (h2_recv(c, tmp, (size_t)n) < 0)
                return;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            tls_drain(c); /* an alert, if any */
            h2_close(c);
            return;
        }
        break;
    }
    if (tls_drain(c) == 0)
        h2_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(h2_readbuf, sizeof(h2_readbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h2_conn_t *c = s->data;
    if (nread < 0) {
        h2_close(c);
        return;
    }
    if (nread > 0)
        h2_input(c, buf->base, (size_t)nread);
}

static int conn_start(h2_conn_t *c);

/* core/httpd's hand-over (httpd_h2c_cb): a connection that opened with the preface. */
static void on_h2c(gf_httpd_t *h, int fd, const char *bytes, size_t len, void *data)
{
    (void)h;
    fake_t *f = data;
    h2_conn_t *c = gf_xcalloc(1, sizeof(*c));
    c->f = f;
    uv_tcp_init(f->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_tcp_open(&c->tcp, fd) < 0) {
        close(fd);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (conn_start(c) == 0)
        h2_input(c, bytes, len); /* the preface, and whatever came with it */
}

/* A connection whose socket is open: its session, settings, and reading. 0 or -1 (closed). */
static int conn_start(h2_conn_t *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    int rc = nghttp2_session_server_new(&c->s, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return -1;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, H2_WINDOW);
    c->next = g.conns;
    if (g.conns)
        g.conns->prev = c;
    g.conns = c;
    g.connections++;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    return 0;
}

/* --- the TLS port ------------------------------------------------------------------------- */

/* ALPN: h2 or nothing (this port serves no HTTP/1.1). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    if (nghttp2_select_next_protocol((unsigned char **)out, outlen, in, inlen) != 1)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static void on_tls_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    h2_conn_t *c = gf_xcalloc(1, sizeof(*c));
    c->f = g.f;
    uv_tcp_init(g.f->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->ssl = SSL_new(g.tls);
    SSL_set_bio(c->ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_accept_state(c->ssl);
    conn_start(c);
}

/* A self-signed certificate for 127.0.0.1 and localhost (P-256, a week), into the context. */
static int tls_cert(SSL_CTX *ctx, const char *cert_path)
{
    int ok = 0;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fp = NULL;
    if (key == NULL || x == NULL)
        goto done;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        X509_EXTENSION_free(ext);
        goto done;
    }
    X509_EXTENSION_free(ext);
    if (!X509_sign(x, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, x) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1)
        goto done;
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s.tmp", cert_path);
    fp = fopen(tmp, "w");
    ok = fp != NULL && PEM_write_X509(fp, x) == 1;
    if (fp != NULL && fclose(fp) != 0)
        ok = 0;
    ok = ok && rename(tmp, cert_path) == 0;
done:
    X509_free(x);
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}

int fake_h2_tls_listen(fake_t *f, const char *cert_path, int *port)
{
    g.f = f;
    g.tls = SSL_CTX_new(TLS_server_method());
    if (g.tls == NULL || tls_cert(g.tls, cert_path) < 0) {
        fprintf(stderr, "farm-fake-provider: TLS: %s\n", ERR_error_string(ERR_get_error(), NULL));
        SSL_CTX_free(g.tls);
        g.tls = NULL;
        return -1;
    }
    SSL_CTX_set_min_proto_version(g.tls, TLS1_2_VERSION);
    SSL_CTX_set_alpn_select_cb(g.tls, on_alpn, NULL);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(f->loop, &g.tls_listener);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    int rc = uv_tcp_bind(&g.tls_listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&g.tls_listener, 4096, on_tls_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&g.tls_listener, (struct sockaddr *)&ss, &sl);
    if (rc < 0) {
        fprintf(stderr, "farm-fake-provider: TLS port: %s\n", uv_strerror(rc));
        uv_close((uv_handle_t *)&g.tls_listener, NULL);
        SSL_CTX_free(g.tls);
        g.tls = NULL;
        return -1;
    }
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* --- what the rest of the fake uses -------------------------------------------------------- */

void fake_h2_start(fake_t *f)
{
    g.f = f;
    httpd__set_h2c(f->httpd, on_h2c, f);
}

void fake_h2_stop(void)
{
    while (g.conns) {
        h2_conn_t *c = g.conns;
        nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->s), NGHTTP2_NO_ERROR, NULL,
                              0);
        h2_flush(c);
        h2_close(c);
    }
    if (g.tls) {
        uv_close((uv_handle_t *)&g.tls_listener, NULL);
        SSL_CTX_free(g.tls); /* the connections' SSLs are freed: no one holds it */
        g.tls = NULL;
    }
}

int fake_h2_owns(const gf_http_req_t *r)
{
    return r->conn == NULL && r->sink == on_answer;
}

int fake_h2_reset(gf_http_req_t *r)
{
    if (!fake_h2_owns(r))
        return 0;
    h2_stream_t *st = r->sink_data;
    st->r = NULL;
    r->sink = NULL;
    nghttp2_submit_rst_stream(st->conn->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    h2_flush(st->conn);
    gf_http_respond(r, 500, "text/plain", "", 0); /* finishes `r`: nothing more is sent */
    return 1;
}

const char *fake_protocol(const gf_http_req_t *r)
{
    if (fake_h2_owns(r))
        return "h2";
    return r->http_minor ? "http/1.1" : "http/1.0";
}

json_t *fake_h2_counts(void)
{
    return json_pack("{s:I,s:I}", "connections", (json_int_t)g.connections, "streams",
                     (json_int_t)g.streams);
}

void fake_h2_reset_counts(void)
{
    g.connections = g.streams = 0;
}
