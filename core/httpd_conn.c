/*
 * core/httpd_conn.c - one HTTP connection: reading, feeding libhttp-parser
 * (its callbacks are httpd_parse.c), handing requests to handlers one at a
 * time, writing, timeouts, back-pressure and closing (the lingering close is
 * httpd_linger.c).
 *
 * Invariants:
 * - At most one request per connection is parsed or handled at a time; bytes
 *   of pipelined requests wait in `in` and are parsed once the previous
 *   response is queued, so answers leave in request order.
 * - A connection is freed only from the close callback of its last handle;
 *   write callbacks always run before it (libuv cancels pending writes first).
 * - Parser callbacks never answer; they record why they refused a request and
 *   the code after http_parser_execute() answers, so nothing re-enters the parser.
 *   The check hook, too, runs after the parser returned (paused at the end of
 *   the headers); a request in CONN_CHECKING has had none of its body parsed.
 * - out_bytes is what this connection's pending writes hold; no new request is
 *   parsed while it is over the bound (conn_output_ok), and each completed
 *   write lets held connections go on.
 */
#include "httpd_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* A write in flight: its bytes copied into data[], or held by a reference to a shared frame. */
typedef struct {
    uv_write_t w;
    httpd_conn_t *c;
    size_t len;
    gf_http_frame_t *frame; /* NULL: the bytes are in data[] */
    int stream;             /* an event stream's bytes: not counted in out_total */
    char data[];
} wreq_t;

static void conn_process(httpd_conn_t *c);
static void on_timeout(uv_timer_t *t);
static void conn_fail(httpd_conn_t *c, int status, const char *code, const char *msg);

/*
 * Whether the answers already queued leave room for another request: over
 * max_queued_bytes to this client, its next request waits, so a client that
 * pipelines and never reads holds a bounded amount of memory; over
 * max_queued_total to all clients, every connection's next request waits,
 * a fresh one's too (else each of many connections that never read would
 * hold one whole answer).
 */
static int conn_output_ok(httpd_conn_t *c)
{
    const gf_httpd_opts_t *o = &c->h->opts;
    if (c->h->out_total >= o->max_queued_total) {
        c->out_held = 1;
        c->h->out_blocked = 1;
        return 0;
    }
    if (c->out_bytes >= o->max_queued_bytes) {
        c->out_held = 1;
        return 0;
    }
    return 1;
}

/*
 * Whether another pipelined request may start in this loop turn: after
 * HTTPD_TURN_REQUESTS the connection yields, and its timer resumes it on a
 * later turn, so one client's pipeline never starves the others.
 */
static int conn_turn_ok(httpd_conn_t *c)
{
    if (c->resume_pending)
        return 0;
    uint64_t now = uv_now(c->h->loop);
    if (c->turn_ms != now) {
        c->turn_ms = now;
        c->turn_requests = 0;
    }
    if (c->turn_requests < HTTPD_TURN_REQUESTS)
        return 1;
    c->resume_pending = 1;
    /* 1 ms, not 0: libuv runs a 0 ms timer started by a timer in the same pass,
     * so the connections would resume each other and the loop never poll. */
    uv_timer_start(&c->timer, on_timeout, 1, 0);
    return 0;
}

static int conn_can_parse(httpd_conn_t *c)
{
    if (c->closing || c->close_after_write || c->state > CONN_BODY)
        return 0;
    /* a request begun is read on */
    return c->state != CONN_IDLE || (conn_output_ok(c) && conn_turn_ok(c));
}

/* The most bytes kept unparsed before reading pauses (pipelining back-pressure). */
static size_t conn_in_cap(const httpd_conn_t *c)
{
    return c->h->opts.max_header_bytes + c->h->opts.max_body_bytes + HTTPD_READ_CHUNK;
}

/* Frees the bytes kept unparsed: the body of a request refused at its headers. */
static void in_drop(httpd_conn_t *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

/* --- writing ------------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    wreq_t *wr = (wreq_t *)w;
    httpd_conn_t *c = wr->c;
    gf_httpd_t *h = c->h;
    c->out_bytes -= wr->len;
    if (!wr->stream)
        h->out_total -= wr->len;
    gf_http_frame_unref(wr->frame);
    free(wr);
    c->writes_pending--;
    if (status < 0) {
        httpd__conn_close(c, 1);
    } else if (c->close_after_write && c->writes_pending == 0) {
        httpd__conn_end(c);
    } else if (c->out_held && c->state == CONN_IDLE && !c->closing &&
               c->out_bytes < h->opts.max_queued_bytes) {
        c->out_held = 0;
        conn_process(c); /* requests held back by this client's output may go on */
    }
    if (h->out_blocked && h->out_total < h->opts.max_queued_total) {
        h->out_blocked = 0;
        for (httpd_conn_t *o = h->conns, *next; o != NULL; o = next) {
            next = o->next;
            if (o->out_held && o->state == CONN_IDLE && !o->close_after_write) {
                o->out_held = 0;
                conn_process(o);
            }
        }
    }
}

int httpd__conn_direct_fd(httpd_conn_t *c, uv_os_fd_t *fd)
{
    if (c->writes_pending > 0)
        return 0; /* behind queued bytes: order first */
    if (!uv_is_writable((uv_stream_t *)&c->tcp) || uv_fileno((uv_handle_t *)&c->tcp, fd) < 0) {
        c->close_after_write = 1;
        return GF_EIO;
    }
    return 1;
}

/*
 * Writes what it can at once when nothing is queued before it (the common
 * case: one syscall, nothing allocated). Returns the bytes written, or < 0
 * when the socket is unusable: closing here would pull the request from
 * under a response in progress, so the connection is marked instead, and
 * httpd__req_done() closes it once the request is finished.
 *
 * It is uv_try_write()'s job done with sendmsg() on the socket instead of
 * writev() (httpd__send): the socket call skips the file layer a write()
 * goes through, which an SSE fan-out (one write per listener) pays once per
 * listener. With nothing queued (writes_pending == 0, so libuv's write queue
 * is empty too) libuv has nothing of its own to order these bytes behind.
 */
static ssize_t conn_try_write(httpd_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    uv_os_fd_t fd;
    int direct = httpd__conn_direct_fd(c, &fd);
    if (direct <= 0)
        return direct;
    ssize_t rc = httpd__send(fd, bufs, n);
    if (rc >= 0)
        return rc;
    c->close_after_write = 1;
    return GF_EIO;
}

/* Queues `wr` (its len and bytes set); takes it. */
static int conn_queue(httpd_conn_t *c, wreq_t *wr, char *base)
{
    wr->c = c;
    uv_buf_t buf = uv_buf_init(base, (unsigned int)wr->len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write) < 0) {
        gf_http_frame_unref(wr->frame);
        free(wr);
        c->close_after_write = 1; /* as in conn_try_write */
        return GF_EIO;
    }
    c->writes_pending++;
    c->out_bytes += wr->len;
    /* A stream's queue has its own bound (stream_max_queued_bytes, then it is
     * dropped); counted here, a few slow readers of long-lived streams would
     * hold every other client's requests. */
    wr->stream = c->state == CONN_STREAMING;
    if (!wr->stream)
        c->h->out_total += wr->len;
    return 0;
}

int httpd__conn_writev(httpd_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->closing)
        return GF_ECANCELED;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    ssize_t done = conn_try_write(c, bufs, n);
    if (done < 0)
        return (int)done;
    if ((size_t)done == total)
        return 0;
    /* The rest is copied: the caller's bytes are its own once this returns. */
    wreq_t *wr = gf_xmalloc(sizeof(*wr) + total - (size_t)done);
    wr->len = total - (size_t)done;
    wr->frame = NULL;
    char *o = wr->data;
    size_t skip = (size_t)done;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(o, bufs[i].base + skip, l - skip);
        o += l - skip;
        skip = 0;
    }
    return conn_queue(c, wr, wr->data);
}

int httpd__conn_write(httpd_conn_t *c, const char *a, size_t alen, const char *b, size_t blen)
{
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned int)alen),
                        uv_buf_init((char *)b, (unsigned int)blen)};
    return httpd__conn_writev(c, bufs, blen ? 2 : 1);
}

int httpd__conn_write_frame(httpd_conn_t *c, gf_http_frame_t *f, const char *p, size_t len)
{
    if (c->closing)
        return GF_ECANCELED;
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned int)len);
    return httpd__conn_frame_rest(c, f, p, len, conn_try_write(c, &buf, 1));
}

int httpd__conn_frame_rest(httpd_conn_t *c, gf_http_frame_t *f, const char *p, size_t len,
                           ssize_t done)
{
    if (done < 0) {
        c->close_after_write = 1; /* as in conn_try_write */
        return GF_EIO;
    }
    if ((size_t)done == len)
        return 0;
    /* The rest stays in the frame: the write holds a reference, not a copy. */
    wreq_t *wr = gf_xmalloc(sizeof(*wr));
    wr->len = len - (size_t)done;
    wr->frame = gf_http_frame_ref(f);
    return conn_queue(c, wr, (char *)p + done);
}

/* --- timers --------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
    httpd_conn_t *c = t->data;
    if (c->lingering) {
        httpd__conn_close(c, 1);
        return;
    }
    if (c->resume_pending) {
        /* A new turn for a pipelining client (conn_turn_ok). */
        c->resume_pending = 0;
        c->turn_requests = 0;
        c->turn_ms = uv_now(c->h->loop);
        httpd__conn_timer(c, c->h->opts.idle_timeout_ms);
        conn_process(c);
        return;
    }
    switch (c->state) {
    case CONN_IDLE:
        httpd__conn_close(c, 1); /* an idle keep-alive connection: no answer owed */
        break;
    case CONN_HEADERS:
    case CONN_BODY:
        conn_fail(c, 408, "request_timeout", "the request did not arrive in time");
        break;
    case CONN_CHECKING:
    case CONN_HANDLING:
    case CONN_STREAMING:
        break;
    }
}

void httpd__conn_timer(httpd_conn_t *c, uint64_t ms)
{
    if (c->closing)
        return;
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timeout, ms, 0);
}

void httpd__req_done(httpd_conn_t *c, int keep)
{
    gf_http_req_t *r = c->req;
    c->req = NULL;
    httpd__req_free(r);
    c->header_bytes = 0;
    c->state = CONN_IDLE;
    if (!keep || c->close_after_write || httpd__input_done(c)) {
        c->close_after_write = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (c->writes_pending == 0)
            httpd__conn_end(c);
        return;
    }
    httpd__conn_timer(c, c->h->opts.idle_timeout_ms);
    if (!c->in_dispatch)
        conn_process(c);
}

/* Answers a request that cannot be handled (bad, too big, too slow) and closes. */
static void conn_fail(httpd_conn_t *c, int status, const char *code, const char *msg)
{
    if (c->req == NULL)
        c->req = httpd__req_new(c);
    c->req->keep_alive = 0;
    c->state = CONN_HANDLING;
    httpd__conn_timer(c, 0);
    gf_http_respond_error(c->req, status, code, msg, NULL);
}

/* The headers are accepted: the body may come (100 Continue when asked for). */
void httpd__conn_body_begin(httpd_conn_t *c)
{
    gf_http_req_t *r = c->req;
    const char *expect = gf_http_req_header(r, "expect");
    if (r->refuse_status == 0 && expect && strcasecmp(expect, "100-continue") == 0 &&
        r->http_minor >= 1)
        httpd__conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, NULL, 0);
    c->state = CONN_BODY;
    httpd__conn_timer(c, c->h->opts.body_timeout_ms);
}

/* --- dispatching ------------------------------------------------------------------ */

static void conn_dispatch(httpd_conn_t *c)
{
    gf_http_req_t *r = c->req;
    c->state = CONN_HANDLING;
    httpd__conn_timer(c, 0);
    r->keep_alive = http_should_keep_alive(&c->parser) && !c->parser.upgrade;
    r->start_ns = uv_hrtime();
    httpd__req_ensure_id(r);
    c->turn_requests++;
    c->in_dispatch = 1;
    if (r->refuse_status != 0)
        gf_http_respond_error(r, r->refuse_status, r->refuse_code, r->refuse_msg, r->refuse_field);
    else if (r->route != NULL)
        r->route->cb(r, r->route->data);
    else if (r->method_not_allowed) {
        gf_http_set_header(r, "Allow", r->allow);
        gf_http_respond_error(r, 405, "method_not_allowed", "this method is not allowed here",
                              NULL);
    } else
        gf_http_respond_error(r, 404, "not_found", "no such route", NULL);
    c->in_dispatch = 0;
}

static void conn_refuse(httpd_conn_t *c, enum http_errno e)
{
    gf_http_req_t *r = c->req;
    if (r != NULL && r->error_status == 405)
        gf_http_set_header(r, "Allow", r->allow);
    if (r != NULL && r->error_status != 0) {
        conn_fail(c, r->error_status, r->error_code, r->error_msg);
        return;
    }
    if (e == HPE_HEADER_OVERFLOW)
        conn_fail(c, 431, "headers_too_large", "the request line and headers exceed the limit");
    else
        conn_fail(c, 400, "invalid_request", "malformed HTTP request");
}

/* Runs the server's check hook on a request whose headers are complete. */
static void conn_check(httpd_conn_t *c)
{
    gf_http_req_t *r = c->req;
    httpd__conn_timer(c, 0);
    r->start_ns = uv_hrtime();
    httpd__req_ensure_id(r);
    c->in_dispatch = 1; /* an answer or a proceed from inside the hook must not re-enter parsing */
    c->h->check(r, c->h->check_data);
    c->in_dispatch = 0;
    /* No body byte is read while the hook decides: reading stays on, but on_alloc
     * lends no buffer meanwhile, and on_read stops reading only when bytes do come
     * (conn_process resumes it). Stopping here and starting again after the hook
     * would cost the loop two or three epoll_ctl calls per request. */
}

void httpd__conn_checked(httpd_conn_t *c)
{
    gf_http_req_t *r = c->req;
    if (r->refuse_status != 0 && httpd__req_has_body(&c->parser)) {
        /* Refused before its body: answer now, never keep the body, end with a lingering close. */
        r->keep_alive = 0;
        c->discarding = 1;
        if (!c->in_dispatch)
            in_drop(c); /* else conn_process or on_read drops them after the hook */
        c->state = CONN_HANDLING;
        http_parser_pause(&c->parser, 0);
        gf_http_respond_error(r, r->refuse_status, r->refuse_code, r->refuse_msg, r->refuse_field);
        return;
    }
    /* Accepted (or refused with no body to wait for: answered at dispatch, keep-alive kept). */
    http_parser_pause(&c->parser, 0);
    httpd__conn_body_begin(c);
    if (!c->in_dispatch)
        conn_process(c);
}

/* Feeds bytes to the parser; returns how many it consumed. */
static size_t conn_parse(httpd_conn_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &httpd__parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        if (c->state == CONN_CHECKING) {
            conn_check(c);
            return n;
        }
        http_parser_pause(&c->parser, 0);
        conn_dispatch(c);
        return n;
    }
    if (e != HPE_OK) {
        conn_refuse(c, e);
        return len; /* nothing after a broken request can be trusted */
    }
    return n;
}

static void in_append(httpd_conn_t *c, const char *data, size_t n)
{
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n)
            cap *= 2;
        c->in = gf_xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, n);
    c->in_len += n;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

static void conn_process(httpd_conn_t *c)
{
    while (conn_can_parse(c) && c->in_len > 0) {
        size_t n = conn_parse(c, c->in, c->in_len);
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
    }
    if (c->discarding) {
        in_drop(c);
        return;
    }
    if (c->in_len == 0 && c->in != NULL)
        in_drop(c); /* emptied: a request whose bytes came in two reads no longer holds it */
    if (httpd__input_done(c) && c->state <= CONN_BODY && !c->closing) {
        /* The client's input is all answered (a request it cut short is dropped). */
        c->close_after_write = 1;
        if (c->writes_pending == 0)
            httpd__conn_end(c);
        return;
    }
    if (!c->reading && !c->closing && !c->close_after_write && !c->read_eof &&
        c->state != CONN_CHECKING && c->in_len < conn_in_cap(c))
        httpd__conn_read_start(c);
}

/* What a lingering connection reads into the buffer; httpd_linger.c drops the rest. */
#define LINGER_READ_BYTES 512

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    httpd_conn_t *c = handle->data;
    gf_httpd_t *h = c->h;
    (void)suggested;
    /* One buffer per server: each read is consumed or copied before the next. */
    size_t n = sizeof(h->readbuf);
    if (c->lingering || c->discarding)
        n = LINGER_READ_BYTES;
    else if (c->state == CONN_CHECKING)
        n = 0; /* nothing is read while the check hook decides: on_read stops reading */
    else if (c->state <= CONN_HEADERS && h->opts.max_header_bytes < n)
        /* Until the check hook has decided, read no more than a request's headers: the
         * body bytes that come with them wait in c->in, so this bounds what a request
         * refused at its headers ever holds. */
        n = h->opts.max_header_bytes;
    *buf = uv_buf_init(h->readbuf, n);
}

void httpd__conn_read_start(httpd_conn_t *c)
{
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void httpd__set_h2c(gf_httpd_t *h, httpd_h2c_cb cb, void *data)
{
    h->h2c = cb;
    h->h2c_data = data;
}

/* An h2c client (httpd__set_h2c): a duplicate of the socket goes to the hook, ours closes. */
static void conn_hand_over(httpd_conn_t *c, const char *bytes, size_t len)
{
    uv_os_fd_t fd;
    int dup_fd = -1;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd >= 0)
        c->h->h2c(c->h, dup_fd, bytes, len, c->h->h2c_data);
    httpd__conn_close(c, 0);
}

/*
 * At the end of the client's input: whether it is still owed answers (a
 * request being checked or handled, pipelined ones buffered, an answer
 * being written). The connection then ends after them: httpd__req_done()
 * or conn_process() once nothing is left to parse, on_write() once the
 * bytes are out. A request being received is cut short: dropped, once what
 * was answered before it is written. A stream owes nothing more: the
 * client is gone.
 */
static int conn_owes_answers(httpd_conn_t *c)
{
    if (c->state == CONN_CHECKING || c->state == CONN_HANDLING)
        return 1;
    if (c->state == CONN_STREAMING)
        return 0;
    if (c->state == CONN_IDLE && c->in_len > 0)
        return 1;
    if (c->writes_pending == 0)
        return 0;
    c->close_after_write = 1;
    return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    httpd_conn_t *c = s->data;
    if (c->lingering || c->discarding) { /* input after a refusal or the answer: dropped */
        if (nread < 0)
            httpd__linger_eof(c);
        else
            httpd__linger_input(c, (size_t)nread);
        return;
    }
    if (nread == UV_ENOBUFS && c->state == CONN_CHECKING) {
        uv_read_stop(s); /* bytes wait in the socket until the hook has decided */
        c->reading = 0;
        return;
    }
    if (nread < 0) {
        uv_read_stop(s);
        c->reading = 0;
        c->read_eof = 1;
        /* A client may half-close after its requests and still read the answers. */
        if (nread == UV_EOF && conn_owes_answers(c))
            return;
        httpd__conn_close(c, 1);
        return;
    }
    if (c->close_after_write)
        return; /* the connection is ending: input is ignored */
    if (c->h->h2c && c->state == CONN_IDLE && c->in_len == 0 &&
        (size_t)nread >= HTTPD_H2_PREFACE_LEN &&
        memcmp(buf->base, HTTPD_H2_PREFACE, HTTPD_H2_PREFACE_LEN) == 0) {
        conn_hand_over(c, buf->base, (size_t)nread);
        return;
    }
    size_t off = 0, len = (size_t)nread;
    if (c->in_len == 0) {
        /* The common case: parse straight from the read buffer, keep only leftovers. */
        while (off < len && conn_can_parse(c))
            off += conn_parse(c, buf->base + off, len - off);
    }
    if (off < len && c->discarding && !c->closing) {
        httpd__linger_input(c, len - off); /* the body of a request refused at its headers */
        return;
    }
    if (off < len && !c->closing && !c->close_after_write) {
        in_append(c, buf->base + off, len - off);
        conn_process(c);
    }
    if (c->reading && c->in_len >= conn_in_cap(c)) {
        uv_read_stop(s);
        c->reading = 0;
    }
}

/* --- accepting and closing ------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *handle)
{
    httpd_conn_t *c = handle->data;
    if (--c->open_handles > 0)
        return;
    gf_httpd_t *h = c->h;
    if (c->refusing)
        h->nrefusing--;
    free(c->in);
    gf_slab_free(&h->conn_slab, c);
    h->nconns--;
    if (h->m_connections)
        gf_metric_add(h->m_connections, -1);
    httpd__conn_closed(h);
}

static void on_rejected_closed(uv_handle_t *handle)
{
    httpd_conn_t *c = handle->data;
    gf_slab_free(&c->h->conn_slab, c);
}

void httpd__conn_accept(gf_httpd_t *h)
{
    httpd_conn_t *c = gf_slab_alloc(&h->conn_slab);
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    c->tcp.data = c;
    /* Over the cap a client is told so (API.md: 503 at a capacity bound), while fewer than
     * HTTPD_REFUSING_MAX such answers are still going out; past that it is closed. */
    int over = h->nconns - h->nrefusing >= h->opts.max_connections;
    if (uv_accept((uv_stream_t *)&h->listener, (uv_stream_t *)&c->tcp) < 0 || h->stopping ||
        (over && h->nrefusing >= HTTPD_REFUSING_MAX)) {
        if (h->m_rejected && !h->stopping)
            gf_metric_inc(h->m_rejected);
        uv_close((uv_handle_t *)&c->tcp, on_rejected_closed);
        return;
    }
    uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (h->m_connections)
        gf_metric_add(h->m_connections, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
    }
    if (over) {
        c->refusing = 1;
        h->nrefusing++;
        if (h->m_rejected)
            gf_metric_inc(h->m_rejected);
        /* Answered before its request is read; the request is dropped unread while the
         * connection lingers (httpd__conn_end), so the client reads the 503, not a reset. */
        c->req = httpd__req_new(c);
        c->req->http_minor = 1; /* its version is unread: answered in HTTP/1.1, ours */
        /* Not a request: no access-log line nor request metrics for each of a flood. */
        c->req->refused_at_accept = 1;
        gf_http_set_header(c->req, "Retry-After", "1");
        conn_fail(c, 503, "unavailable", "the server is at its connection limit; retry");
        return;
    }
    httpd__conn_read_start(c);
    httpd__conn_timer(c, h->opts.header_timeout_ms);
}

void httpd__conn_close(httpd_conn_t *c, int notify)
{
    if (c->closing)
        return;
    c->closing = 1;
    gf_httpd_t *h = c->h;
    httpd__drain_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    gf_http_req_t *r = c->req;
    c->req = NULL;
    if (r == NULL)
        return;
    r->conn = NULL;
    if (c->state != CONN_CHECKING && c->state != CONN_HANDLING && c->state != CONN_STREAMING) {
        httpd__req_free(r); /* still being parsed: no handler owns it */
        return;
    }
    /* The handler owns the request; tell it, and it finishes the request when it can. */
    if (notify && r->on_close)
        r->on_close(r, r->on_close_data);
}

void httpd__conn_stop(httpd_conn_t *c)
{
    switch (c->state) {
    case CONN_IDLE:
        if (c->in_len == 0 || c->lingering)
            httpd__conn_close(c, 1);
        break;
    case CONN_STREAMING:
        /* End the stream cleanly, tell its handler, close once the bytes are out. */
        if (c->req && c->req->http_minor >= 1)
            httpd__conn_write(c, "0\r\n\r\n", 5, NULL, 0);
        c->close_after_write = 1;
        if (c->writes_pending == 0) {
            httpd__conn_close(c, 1);
        } else if (c->req) {
            gf_http_req_t *r = c->req;
            c->req = NULL;
            c->state = CONN_IDLE;
            r->conn = NULL;
            if (r->on_close)
                r->on_close(r, r->on_close_data);
        }
        break;
    case CONN_HEADERS:
    case CONN_BODY:
    case CONN_CHECKING:
    case CONN_HANDLING:
        break; /* answered with Connection: close, bounded by the timers and the stop timeout */
    }
}
