/*
 * core/httpd_linger.c - the end of an HTTP connection whose client may still
 * be sending: the lingering close (half-close, then drop what comes until the
 * client's EOF, linger_ms or linger_max_bytes) and the dropping of a refused
 * request's body, both without copying the bytes (MSG_TRUNC), within a loop
 * turn's budgets (HTTPD_TURN_DRAIN_BYTES dropped, HTTPD_TURN_CLOSES closes);
 * connections past them wait, not reading, for a later turn.
 *
 * httpd_conn.c reads and hands the dropped input here (httpd__linger_input,
 * httpd__linger_eof) and ends a connection through httpd__conn_end.
 */
#include "httpd_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Takes `c` off the list of connections waiting for a turn's drain budget. */
void httpd__drain_unlink(httpd_conn_t *c)
{
    gf_dueq_remove(&c->h->drain_waiting, &c->drain);
}

/* `c` has more to drop than this turn's budget: it stops reading and waits for the next turn. */
static void drain_wait(httpd_conn_t *c)
{
    gf_httpd_t *h = c->h;
    if (h->stopping) {
        httpd__conn_close(c, 1); /* a stopping server waits for nobody */
        return;
    }
    if (!h->drain_timer_open) {
        uv_timer_init(h->loop, &h->drain_timer);
        h->drain_timer.data = h;
        h->drain_timer_open = 1;
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (!c->drain.queued)
        gf_dueq_push(&h->drain_waiting, &c->drain, 0); /* all due at 0: after the last one */
    /* 1 ms, not 0: a later turn, as conn_turn_ok's timer (libuv runs a 0 ms timer
     * started by a timer in the same pass). */
    if (!uv_is_active((uv_handle_t *)&h->drain_timer))
        uv_timer_start(&h->drain_timer, httpd__drain_turn, 1, 0);
}

/* This turn's drain budget left (HTTPD_TURN_DRAIN_BYTES at the start of a turn). */
static size_t drain_budget(gf_httpd_t *h)
{
    uint64_t now = uv_now(h->loop);
    if (h->drain_turn_ms != now) {
        h->drain_turn_ms = now;
        h->drain_left = HTTPD_TURN_DRAIN_BYTES;
    }
    return h->drain_left;
}

static void drain_spend(gf_httpd_t *h, size_t n)
{
    h->drain_left -= n < h->drain_left ? n : h->drain_left;
}

/* Whether one more connection may close in this loop turn (HTTPD_TURN_CLOSES). */
static int close_budget(gf_httpd_t *h)
{
    uint64_t now = uv_now(h->loop);
    if (h->close_turn_ms != now) {
        h->close_turn_ms = now;
        h->closes_left = HTTPD_TURN_CLOSES;
    }
    if (h->closes_left == 0)
        return 0;
    h->closes_left--;
    return 1;
}

/*
 * The client's EOF (or reset) on a connection whose input is dropped. A
 * lingering one closes, or, past this turn's HTTPD_TURN_CLOSES, waits for
 * a later turn with the connections waiting to drop input.
 */
void httpd__linger_eof(httpd_conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    c->read_eof = 1;
    if (!c->lingering)
        return; /* the answer is still going out: conn_end closes */
    if (close_budget(c->h))
        httpd__conn_close(c, 1); /* the client read the answer and closed, or reset */
    else
        drain_wait(c);
}

/*
 * Drops what a refused or lingering connection has queued without copying
 * it: with MSG_TRUNC, Linux frees a TCP socket's unread bytes in the
 * kernel. Hundreds of clients still sending refused 10 MiB bodies then cost
 * the loop a few syscalls each, not a copy of every byte. And all of them
 * together drop at most HTTPD_TURN_DRAIN_BYTES in one loop turn: a
 * connection with more waits, not reading, for a later turn (drain_wait), so
 * other clients are not kept waiting behind the drops (scripts/bench edge);
 * on loopback a drop also pays for the sender's next bytes. Closes at the
 * client's EOF once lingering (before, while the answer is still being
 * written, the EOF only ends reading: conn_end closes), or once more than
 * linger_max_bytes were dropped. 0 when `c` reads on, -1 when it waits or
 * is closed.
 */
static int linger_drop(httpd_conn_t *c)
{
    gf_httpd_t *h = c->h;
    size_t max = h->opts.linger_max_bytes;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        while (c->linger_bytes <= max) {
            size_t left = drain_budget(h), want = max - c->linger_bytes + 1;
            if (left == 0) {
                drain_wait(c);
                return -1;
            }
            ssize_t r = recv(fd, NULL, want < left ? want : left, MSG_TRUNC | MSG_DONTWAIT);
            if (r == 0) {
                httpd__linger_eof(c);
                return -1;
            }
            if (r < 0)
                break; /* nothing more now; an error shows at libuv's next read */
            c->linger_bytes += (size_t)r;
            drain_spend(h, (size_t)r);
        }
    }
    if (c->linger_bytes > max) {
        httpd__conn_close(c, 1); /* enough dropped: the bound holds even for a fast sender */
        return -1;
    }
    return 0;
}

/* `n` bytes of input `c` read while it drops its input: counted, then the rest dropped. */
void httpd__linger_input(httpd_conn_t *c, size_t n)
{
    c->linger_bytes += n;
    drain_spend(c->h, n);
    linger_drop(c);
}

/* The drain timer: a new turn's budget for the connections that waited, in arrival order. */
void httpd__drain_turn(uv_timer_t *t)
{
    gf_httpd_t *h = t->data;
    while (h->drain_waiting.head != NULL) {
        httpd_conn_t *c =
            (httpd_conn_t *)((char *)h->drain_waiting.head - offsetof(httpd_conn_t, drain));
        if (c->read_eof) { /* its EOF came in a turn that had closed enough */
            if (!close_budget(h))
                break;
            httpd__conn_close(c, 1);
            continue;
        }
        if (drain_budget(h) == 0)
            break;
        httpd__drain_unlink(c);
        if (linger_drop(c) == 0 && !c->reading && !c->read_eof)
            httpd__conn_read_start(c); /* all dropped: wait for more, or the EOF, with the loop */
    }
    if (h->drain_waiting.head != NULL && !uv_is_active((uv_handle_t *)t))
        uv_timer_start(t, httpd__drain_turn, 1, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* a failed half-close ends with the close that follows */
    free(req);    /* runs before the connection's close callback, even when canceled */
}

/*
 * The answer is out and the connection ends. A client may still be sending
 * (a body refused at its headers, a request pipelined behind the last one):
 * closing now, with its bytes unread, makes the kernel reset the
 * connection, and the client loses the answer it has not read yet. So, as
 * nginx's lingering close does, half-close (FIN after the answer), read and
 * drop what still comes for at most linger_ms, and close at its EOF or then.
 */
void httpd__conn_end(httpd_conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    if (c->read_eof || c->h->opts.linger_ms == 0 || c->h->stopping) {
        httpd__conn_close(c, 1);
        return;
    }
    /* Allocated here, not in every connection: only an ending one needs it. */
    uv_shutdown_t *sd = gf_xmalloc(sizeof(*sd));
    if (uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(sd);
        httpd__conn_close(c, 1);
        return;
    }
    c->lingering = 1;
    httpd__conn_timer(c, c->h->opts.linger_ms);
    if (!c->reading && !c->drain.queued) /* a waiting one reads again after its drop */
        httpd__conn_read_start(c);
}
