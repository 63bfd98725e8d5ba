/*
 * core/httpd_req.c - a request as handlers see it: its accessors, whole
 * responses, streamed responses and the JSON error shape.
 *
 * Invariant: a request owned by a handler outlives its connection (it is
 * detached, conn == NULL), so a late response is discarded harmlessly.
 */
#include "httpd_int.h"
#include "ids.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const gf_log_ctx *conn_log(const httpd_conn_t *c, gf_log_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->component = c->h->name;
    ctx->request_id = c->req && c->req->id[0] ? c->req->id : NULL;
    return ctx;
}

/* --- requests --------------------------------------------------------------- */

gf_http_req_t *httpd__req_new(httpd_conn_t *c)
{
    gf_http_req_t *r = gf_slab_alloc(&c->h->req_slab);
    r->conn = c;
    r->h = c->h;
    r->max_body = c->h->opts.max_body_bytes;
    r->keep_alive = 0;
    return r;
}

/* Frees what only reading the request needed (its answer has begun); accessors then read absent. */
static void req_strip(gf_http_req_t *r)
{
    gf_buf_dispose(&r->url);
    gf_buf_dispose(&r->body);
    gf_buf_dispose(&r->out_headers);
    httpd__kv_dispose(&r->headers);
    httpd__kv_dispose(&r->params);
    httpd__kv_dispose(&r->query);
    free(r->path);
    free(r->query_raw);
    free(r->refuse_code);
    free(r->refuse_msg);
    free(r->refuse_field);
    free(r->allow);
    r->allow = NULL;
    r->path = r->query_raw = r->refuse_code = r->refuse_msg = r->refuse_field = NULL;
    r->query_parsed = 1; /* nothing left to parse */
}

void httpd__req_free(gf_http_req_t *r)
{
    if (r->streaming) {
        r->h->nstreams--;
        if (r->h->m_streams)
            gf_metric_add(r->h->m_streams, -1);
    }
    req_strip(r);
    if (r->user_free)
        r->user_free(r->user);
    gf_slab_free(&r->h->req_slab, r);
}

void gf_http_req_set_user(gf_http_req_t *r, void *user, void (*free_fn)(void *user))
{
    if (r->user_free)
        r->user_free(r->user);
    r->user = user;
    r->user_free = free_fn;
}

void gf_http_req_set_log_user(gf_http_req_t *r, const char *user)
{
    snprintf(r->log_user, sizeof(r->log_user), "%s", user ? user : "");
}

void *gf_http_req_user(const gf_http_req_t *r)
{
    return r->user;
}

void gf_http_req_proceed(gf_http_req_t *r)
{
    if (r->conn == NULL) {
        httpd__req_free(r); /* the client left while the check ran */
        return;
    }
    httpd__conn_checked(r->conn);
}

void gf_http_req_refuse(gf_http_req_t *r, int status, const char *code, const char *message,
                        const char *field)
{
    r->refuse_status = status;
    r->refuse_code = gf_xstrdup(code);
    r->refuse_msg = gf_xstrdup(message);
    r->refuse_field = field ? gf_xstrdup(field) : NULL;
    gf_http_req_proceed(r);
}

static int id_is_sane(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:-", *s))
            return 0;
    return 1;
}

void httpd__req_ensure_id(gf_http_req_t *r)
{
    if (r->id[0])
        return;
    const char *given = gf_http_req_header(r, "x-request-id");
    if (given && id_is_sane(given))
        snprintf(r->id, sizeof(r->id), "%s", given);
    else
        gf_uuid4(r->id);
}

/* Decodes %XX (and '+' when plus_space); returns NULL if the result would hold a NUL. */
char *httpd__pct_decode(const char *s, size_t n, int plus_space)
{
    char *out = gf_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            *o = (char)strtol(hex, NULL, 16);
            if (*o == '\0') {
                free(out);
                return NULL;
            }
            o++;
            i += 2;
        } else if (plus_space && s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

gf_http_req_t *httpd__req_detached(gf_httpd_t *h, const char *method, const char *target,
                                   httpd_sink_cb sink, void *data)
{
    gf_http_req_t *r = gf_slab_alloc(&h->req_slab);
    r->h = h;
    r->max_body = h->opts.max_body_bytes;
    r->http_minor = 1;
    r->keep_alive = 1;
    snprintf(r->method, sizeof(r->method), "%s", method);
    gf_buf_append(&r->url, target, strlen(target));
    r->sink = sink;
    r->sink_data = data;
    return r;
}

void httpd__req_run(gf_http_req_t *r)
{
    r->start_ns = uv_hrtime();
    httpd__req_ensure_id(r);
    if (httpd__split_url(r) < 0) {
        gf_http_respond_error(r, 400, "invalid_request", "malformed request target", NULL);
        return;
    }
    if (httpd__query_parse(r) < 0) {
        gf_http_respond_error(r, 400, "invalid_request", HTTPD_BAD_QUERY, NULL);
        return;
    }
    int method_allowed;
    r->route = httpd__route_match(r->h, r, &method_allowed);
    if (r->route && r->route->max_body)
        r->max_body = r->route->max_body;
    if (r->route != NULL && r->h->check != NULL)
        gf_http_respond_error(r, 501, "not_implemented",
                              "this server checks requests only on its connections", NULL);
    else if (r->body.len > r->max_body)
        gf_http_respond_error(r, 413, "payload_too_large", "the request body exceeds the limit",
                              NULL);
    else if (r->route != NULL)
        r->route->cb(r, r->route->data);
    else if (!method_allowed) {
        gf_http_set_header(r, "Allow", r->allow);
        gf_http_respond_error(r, 405, "method_not_allowed", "this method is not allowed here",
                              NULL);
    } else
        gf_http_respond_error(r, 404, "not_found", "no such route", NULL);
}

/* --- writing ---------------------------------------------------------------- */

/* A HEAD request is answered with the head of what GET would send, and no body. */
static int is_head(const gf_http_req_t *r)
{
    return strcmp(r->method, "HEAD") == 0;
}

static void build_head(gf_buf_t *b, gf_http_req_t *r, int status, const char *ctype,
                       long long content_length, int keep_alive)
{
    httpd__req_ensure_id(r);
    if (r->h->hook)
        r->h->hook(r, status, r->h->hook_data);
    gf_buf_printf(b, "HTTP/1.%d %d %s\r\n", r->http_minor ? 1 : 0, status,
                  httpd__status_text(status));
    if (ctype)
        gf_buf_printf(b, "Content-Type: %s\r\n", ctype);
    if (status == 204 || status == 304)
        ; /* no body by definition, and no length (RFC 9110 8.6: a 304's would be the 200's) */
    else if (content_length >= 0)
        gf_buf_printf(b, "Content-Length: %lld\r\n", content_length);
    else if (r->http_minor >= 1)
        gf_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    gf_buf_printf(b, "X-Request-Id: %s\r\n", r->id);
    if (!keep_alive)
        gf_buf_puts(b, "Connection: close\r\n");
    else if (r->http_minor == 0)
        gf_buf_puts(b, "Connection: keep-alive\r\n");
    if (r->out_headers.len)
        gf_buf_append(b, r->out_headers.p, r->out_headers.len);
    gf_buf_puts(b, "\r\n");
}

/* Whether the answer says the connection stays open: not once the client's
 * input is done (after pipelined requests the connection still closes after
 * the last answer, which may not have said so: httpd__input_done()). */
static int req_keep_alive(const gf_http_req_t *r)
{
    const httpd_conn_t *c = r->conn;
    return r->keep_alive && !c->h->stopping && !httpd__input_done(c);
}

void gf_http_set_header(gf_http_req_t *r, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return; /* never let a value split the response */
    gf_buf_printf(&r->out_headers, "%s: %s\r\n", name, value);
}

/*
 * Whether the answer to a read must give way to the output bound: the
 * answers queued to all clients are at max_queued_total already. Requests
 * are not parsed past it (conn_output_ok), but those parsed before it was
 * reached answer later (a file read from storage): each would add a whole
 * answer. A read is refused instead (503); an answer to a request that
 * changed something is sent (small, and a 503 would say nothing was done).
 */
static int over_output_bound(const gf_http_req_t *r)
{
    const httpd_conn_t *c = r->conn;
    return (strcmp(r->method, "GET") == 0 || is_head(r)) &&
           c->h->out_total >= c->h->opts.max_queued_total;
}

static void respond_over_bound(gf_http_req_t *r)
{
    gf_buf_dispose(&r->out_headers); /* the refused answer's own headers */
    gf_http_set_header(r, "Retry-After", "1");
    gf_http_respond_error(r, 503, "unavailable", "the server is at its output bound; retry", NULL);
}

void gf_http_respond(gf_http_req_t *r, int status, const char *content_type, const char *body,
                     size_t len)
{
    if (r->conn && status < 400 && over_output_bound(r)) {
        respond_over_bound(r);
        return;
    }
    httpd__req_ensure_id(r); /* the access log names it */
    if (!r->refused_at_accept)
        httpd__record(r->h, r, status, is_head(r) ? 0 : len);
    httpd_conn_t *c = r->conn;
    if (c == NULL) {
        if (r->sink) {
            if (r->h->hook)
                r->h->hook(r, status, r->h->hook_data);
            r->sink(r, status, content_type, is_head(r) ? NULL : body, is_head(r) ? 0 : len,
                    r->sink_data);
        }
        httpd__req_free(r);
        return;
    }
    int keep = req_keep_alive(r);
    gf_buf_t head = {0};
    build_head(&head, r, status, content_type, (long long)len, keep);
    int head_only = is_head(r);
    httpd__conn_write(c, head.p, head.len, head_only ? NULL : body, head_only ? 0 : len);
    gf_buf_dispose(&head);
    httpd__req_done(c, keep);
}

void gf_http_respond_error(gf_http_req_t *r, int status, const char *code, const char *message,
                           const char *field)
{
    gf_buf_t b = {0};
    gf_buf_puts(&b, "{\"error\":{\"code\":\"");
    gf_buf_json_escape(&b, code);
    gf_buf_puts(&b, "\",\"message\":\"");
    gf_buf_json_escape(&b, message);
    gf_buf_puts(&b, "\",\"field\":");
    if (field) {
        gf_buf_puts(&b, "\"");
        gf_buf_json_escape(&b, field);
        gf_buf_puts(&b, "\"}}");
    } else {
        gf_buf_puts(&b, "null}}");
    }
    gf_http_respond(r, status, "application/json; charset=utf-8", b.p, b.len);
    gf_buf_dispose(&b);
}

int gf_http_stream_start(gf_http_req_t *r, int status, const char *content_type)
{
    httpd_conn_t *c = r->conn;
    r->streaming = status;
    r->h->nstreams++;
    if (r->h->m_streams)
        gf_metric_add(r->h->m_streams, 1);
    if (c == NULL)
        return GF_ECANCELED;
    if (r->http_minor == 0)
        r->keep_alive = 0; /* no chunked encoding: the end of the stream is the close */
    gf_buf_t head = {0};
    build_head(&head, r, status, content_type, -1, req_keep_alive(r));
    c->state = CONN_STREAMING;
    int rc = httpd__conn_write(c, head.p, head.len, NULL, 0);
    gf_buf_dispose(&head);
    req_strip(r); /* an open stream keeps only what its answer needs */
    if (rc == 0 && is_head(r))
        return GF_ECANCELED; /* the head was the whole answer */
    return rc;
}

/*
 * Whether `len` more bytes may be queued on the stream: 0, or the error
 * gf_http_stream_write() answers. A client that stopped reading is dropped
 * when what waits for it, plus this, passes the cap. A write onto an empty
 * queue always goes: the client is keeping up, and an event larger than the
 * cap (a terminal event carries a whole generation) could otherwise never be sent.
 */
static int stream_writable(gf_http_req_t *r, size_t len)
{
    httpd_conn_t *c = r->conn;
    if (c == NULL || c->closing || is_head(r))
        return GF_ECANCELED;
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (queued > 0 && queued + len > c->h->opts.stream_max_queued_bytes) {
        gf_log_ctx ctx;
        GF_LOG(GF_LOG_WARN, conn_log(c, &ctx),
               "dropping a stream to %s: its client stopped reading (%zu bytes queued)", c->peer,
               queued);
        httpd__conn_close(c, 0);
        return GF_ETOOBIG;
    }
    return 0;
}

int gf_http_stream_write(gf_http_req_t *r, const char *data, size_t len)
{
    if (len == 0)
        return r->conn == NULL || r->conn->closing || is_head(r) ? GF_ECANCELED : 0;
    int rc = stream_writable(r, len);
    if (rc < 0)
        return rc;
    r->sent += len;
    if (r->http_minor == 0)
        return httpd__conn_write(r->conn, data, len, NULL, 0);
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    uv_buf_t bufs[3] = {uv_buf_init(size, (unsigned int)n),
                        uv_buf_init((char *)data, (unsigned int)len), uv_buf_init("\r\n", 2)};
    return httpd__conn_writev(r->conn, bufs, 3);
}

gf_http_frame_t *gf_http_frame_new(const char *data, size_t len)
{
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    gf_http_frame_t *f = gf_xmalloc(sizeof(*f) + (size_t)n + len + 2);
    f->refs = 1;
    f->off = (size_t)n;
    f->dlen = len;
    f->len = (size_t)n + len + 2;
    memcpy(f->wire, size, (size_t)n);
    if (len)
        memcpy(f->wire + n, data, len);
    memcpy(f->wire + n + len, "\r\n", 2);
    return f;
}

gf_http_frame_t *gf_http_frame_ref(gf_http_frame_t *f)
{
    f->refs++;
    return f;
}

void gf_http_frame_unref(gf_http_frame_t *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

const char *gf_http_frame_wire(const gf_http_frame_t *f, size_t *len)
{
    *len = f->len;
    return f->wire;
}

const char *gf_http_frame_data(const gf_http_frame_t *f, size_t *len)
{
    *len = f->dlen;
    return f->wire + f->off;
}

/* The bytes of `f` that stream `r` sends: chunked, or for HTTP/1.0 the data alone. */
static const char *frame_bytes(const gf_http_req_t *r, gf_http_frame_t *f, size_t *len)
{
    if (r->http_minor == 0) { /* HTTP/1.0 has no chunks: the data, from inside the same frame */
        *len = f->dlen;
        return f->wire + f->off;
    }
    *len = f->len;
    return f->wire;
}

int gf_http_stream_write_frame(gf_http_req_t *r, gf_http_frame_t *f)
{
    if (f->dlen == 0)
        return gf_http_stream_write(r, NULL, 0);
    int rc = stream_writable(r, f->dlen);
    if (rc < 0)
        return rc;
    r->sent += f->dlen;
    size_t len;
    const char *p = frame_bytes(r, f, &len);
    return httpd__conn_write_frame(r->conn, f, p, len);
}

void gf_http_stream_write_frame_all(gf_http_req_t **reqs, size_t n, gf_http_frame_t *f, int *rc)
{
    gf_httpd_t *h = n > 0 ? reqs[0]->h : NULL;
    if (n < HTTPD_FANOUT_SPLIT || f->dlen == 0 || h->opts.write_threads <= 0 || h->writers_failed) {
        for (size_t i = 0; i < n; i++)
            rc[i] = gf_http_stream_write_frame(reqs[i], f);
        return;
    }
    /* The checks and the cap first, on the loop thread; then the sends, shared. */
    httpd_send_t *sends = gf_xmalloc(n * sizeof(*sends));
    for (size_t i = 0; i < n; i++) {
        gf_http_req_t *r = reqs[i];
        httpd_send_t *s = &sends[i];
        s->fd = -1;
        s->sent = 0;
        s->p = frame_bytes(r, f, &s->len);
        rc[i] = stream_writable(r, f->dlen);
        if (rc[i] < 0)
            continue;
        r->sent += f->dlen;
        uv_os_fd_t fd;
        int direct = httpd__conn_direct_fd(r->conn, &fd);
        if (direct < 0)
            rc[i] = direct;
        else if (direct > 0)
            s->fd = fd;
    }
    if (httpd__writers_run(h, sends, n) < 0)
        for (size_t i = 0; i < n; i++)
            if (sends[i].fd >= 0) {
                uv_buf_t b = uv_buf_init((char *)sends[i].p, (unsigned int)sends[i].len);
                sends[i].sent = httpd__send(sends[i].fd, &b, 1);
            }
    /* What a socket did not take, queued in order; a failed one marked to close. */
    for (size_t i = 0; i < n; i++)
        if (rc[i] == 0)
            rc[i] =
                httpd__conn_frame_rest(reqs[i]->conn, f, sends[i].p, sends[i].len, sends[i].sent);
    free(sends);
}

void gf_http_stream_end(gf_http_req_t *r)
{
    httpd__record(r->h, r, r->streaming ? r->streaming : 200, r->sent);
    httpd_conn_t *c = r->conn;
    if (c == NULL) {
        if (r->sink)
            r->sink(r, 0, NULL, NULL, 0, r->sink_data); /* no answer was sent */
        httpd__req_free(r);
        return;
    }
    int keep = req_keep_alive(r);
    if (r->http_minor >= 1 && !is_head(r))
        httpd__conn_write(c, "0\r\n\r\n", 5, NULL, 0);
    httpd__req_done(c, keep);
}

void gf_http_req_on_close(gf_http_req_t *r, gf_http_close_cb cb, void *data)
{
    r->on_close = cb;
    r->on_close_data = data;
}

size_t gf_http_req_queued_bytes(const gf_http_req_t *r)
{
    return r->conn ? uv_stream_get_write_queue_size((const uv_stream_t *)&r->conn->tcp) : 0;
}

/* --- accessors ---------------------------------------------------------------- */

const char *gf_http_req_method(const gf_http_req_t *r)
{
    return r->method;
}

const char *gf_http_req_path(const gf_http_req_t *r)
{
    return r->path ? r->path : "/";
}

const char *gf_http_req_route(const gf_http_req_t *r)
{
    return r->route ? r->route->pattern : NULL;
}

const char *gf_http_req_id(const gf_http_req_t *r)
{
    httpd__req_ensure_id((gf_http_req_t *)r);
    return r->id;
}

static const char *kv_get(const httpd_kvs_t *kv, const char *name)
{
    for (size_t i = 0; i < kv->n; i++)
        if (strcasecmp(kv->items[i].name, name) == 0)
            return kv->items[i].value;
    return NULL;
}

const char *gf_http_req_param(const gf_http_req_t *r, const char *name)
{
    return kv_get(&r->params, name);
}

const char *gf_http_req_header(const gf_http_req_t *r, const char *name)
{
    return kv_get(&r->headers, name);
}

/* Whether s[0..n) escapes well: every '%' is followed by two hex digits. */
static int pct_well_formed(const char *s, size_t n)
{
    for (const char *p = memchr(s, '%', n); p; p = memchr(p + 3, '%', (size_t)(s + n - p - 3)))
        if ((size_t)(p - s) + 2 >= n || !isxdigit((unsigned char)p[1]) ||
            !isxdigit((unsigned char)p[2]))
            return 0;
    return 1;
}

int httpd__query_parse(gf_http_req_t *r)
{
    if (r->query_parsed || r->query_raw == NULL)
        return 0;
    r->query_parsed = 1;
    for (const char *p = r->query_raw; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        if (n > 0) { /* an empty one ("a=1&&b=2", a last '&') names nothing */
            char *k = kn > 0 && pct_well_formed(p, n) ? httpd__pct_decode(p, kn, 1) : NULL;
            char *v = eq ? httpd__pct_decode(eq + 1, n - kn - 1, 1) : gf_xstrdup("");
            int repeated = r->query.n >= HTTPD_QUERY_MAX;
            for (size_t i = 0; k && i < r->query.n && !repeated; i++)
                repeated = strcmp(r->query.items[i].name, k) == 0;
            /* A name sent twice: a route reads one value, so the other would be dropped.
             * (More than HTTPD_QUERY_MAX: no route reads that many, and the check stays
             * cheap at the headers, before any authentication.) */
            if (k == NULL || v == NULL || repeated) {
                free(k);
                free(v);
                return -1;
            }
            httpd__kv_add(&r->query, k, strlen(k), v, strlen(v));
            free(k);
            free(v);
        }
        p += n + (p[n] == '&');
    }
    return 0;
}

/* Splits the query into r->query, once, when a parameter is first asked for (a request
 * whose query does not parse was refused before its route saw it). */
static void query_parse(const gf_http_req_t *r)
{
    (void)httpd__query_parse((gf_http_req_t *)r);
}

const char *gf_http_req_query(const gf_http_req_t *r, const char *name)
{
    query_parse(r);
    for (size_t i = 0; i < r->query.n; i++)
        if (strcmp(r->query.items[i].name, name) == 0)
            return r->query.items[i].value;
    return NULL;
}

const char *gf_http_req_query_name(const gf_http_req_t *r, size_t i)
{
    query_parse(r);
    return i < r->query.n ? r->query.items[i].name : NULL;
}

const char *gf_http_req_body(const gf_http_req_t *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.p ? r->body.p : "";
}

const char *gf_http_req_peer(const gf_http_req_t *r)
{
    return r->conn ? r->conn->peer : "";
}

int gf_http_req_is_connected(const gf_http_req_t *r)
{
    return r->conn != NULL && !r->conn->closing;
}
