/*
 * tests/support/http_harness.c - a core/httpd server with test routes
 * on its own loop thread (see http_harness.h; the client side is http_client.c).
 *
 * Invariants: every route finishes its request exactly once and closes its
 * own handles, so after gf_httpd_stop() the loop runs out of handles and
 * uv_loop_close() can return 0; the async handle that srv_call() uses is
 * closed only by the stopped callback.
 */
#include "http_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct slow slow_t;

struct srv {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    gf_httpd_t *h;
    gf_httpd_opts_t opts;
    int port;
    gf_err_t err;
    srv_stats_t stats;
    /* srv_call and the thread's start and end, under mu */
    uv_mutex_t mu;
    uv_cond_t cv;
    void (*call_fn)(srv_t *, void *);
    void *call_arg;
    int call_done, started, done, stop_called;
    int loop_close_rc;
    /* routes' state: touched on the loop thread only */
    slow_t *held;
    gf_http_req_t **parked;
    int nparked, gate_n;
    uv_timer_t gate_timer;
    int check_ms;        /* srv_check_after */
    gf_http_req_t **fan; /* the open /fanout streams */
    size_t nfan, fan_cap;
};

/* --- routes (loop thread) ---------------------------------------------------------- */

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

static void on_echo(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_buf_t b = {0};
    gf_buf_printf(&b, "id=%s\nq=%s\nh=%s\nmethod=%s\npath=%s\nroute=%s\n",
                  or_dash(gf_http_req_param(r, "id")), or_dash(gf_http_req_query(r, "q")),
                  or_dash(gf_http_req_header(r, "X-Test")), gf_http_req_method(r),
                  gf_http_req_path(r), or_dash(gf_http_req_route(r)));
    gf_http_respond(r, 200, "text/plain", b.p, b.len);
    gf_buf_dispose(&b);
}

static void on_body(gf_http_req_t *r, void *data)
{
    (void)data;
    size_t len;
    const char *body = gf_http_req_body(r, &len);
    gf_http_respond(r, 200, "application/octet-stream", body, len);
}

/* GET /big?bytes=N: N bytes of 'x' (at most 16 MiB), answered at once. */
static void on_big(gf_http_req_t *r, void *data)
{
    (void)data;
    const char *n_s = gf_http_req_query(r, "bytes");
    size_t n = n_s ? strtoull(n_s, NULL, 10) : 0;
    if (n > (16u << 20))
        n = 16u << 20;
    char *p = gf_xmalloc(n + 1);
    memset(p, 'x', n);
    gf_http_respond(r, 200, "text/plain", p, n);
    free(p);
}

static void on_healthz(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_http_respond(r, 200, "text/plain", "ok\n", 3);
}

struct slow {
    srv_t *s;
    gf_http_req_t *req;
    size_t bytes; /* the answer: "slow\n", or this many 'x' */
    uv_timer_t timer;
    slow_t *next; /* in s->held */
};

static void on_slow_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_slow_timer(uv_timer_t *t)
{
    slow_t *sl = t->data;
    for (slow_t **p = &sl->s->held; *p; p = &(*p)->next)
        if (*p == sl) {
            *p = sl->next;
            break;
        }
    atomic_fetch_add(&sl->s->stats.slow_answered, 1);
    if (sl->bytes == 0) {
        gf_http_respond(sl->req, 200, "text/plain", "slow\n", 5);
    } else {
        char *p = gf_xmalloc(sl->bytes);
        memset(p, 'x', sl->bytes);
        gf_http_respond(sl->req, 200, "text/plain", p, sl->bytes);
        free(p);
    }
    uv_close((uv_handle_t *)&sl->timer, on_slow_closed);
}

static void on_slow(gf_http_req_t *r, void *data)
{
    srv_t *s = data;
    slow_t *sl = gf_xcalloc(1, sizeof(*sl));
    sl->s = s;
    sl->req = r;
    uv_timer_init(&s->loop, &sl->timer);
    sl->timer.data = sl;
    const char *ms = gf_http_req_query(r, "ms");
    uint64_t wait = ms ? strtoull(ms, NULL, 10) : 300;
    const char *bytes = gf_http_req_query(r, "bytes");
    sl->bytes = bytes ? strtoull(bytes, NULL, 10) : 0;
    if (sl->bytes > (16u << 20))
        sl->bytes = 16u << 20;
    if (gf_http_req_query(r, "hold") != NULL) {
        wait = 30000;
        sl->next = s->held;
        s->held = sl;
    }
    /* A client that leaves does not end the request: it is answered (into the void) later. */
    uv_timer_start(&sl->timer, on_slow_timer, wait, 0);
    atomic_fetch_add(&s->stats.slow_started, 1);
}

typedef struct {
    srv_t *s;
    gf_http_req_t *req;
    uv_timer_t timer;
    char *chunk;
    size_t size;
    int burst;
    unsigned long ticks;
    int in_write, gone, ended;
} stream_t;

static void on_stream_closed(uv_handle_t *h)
{
    stream_t *st = h->data;
    free(st->chunk);
    free(st);
}

static void stream_finish(stream_t *st)
{
    if (st->ended)
        return;
    st->ended = 1;
    gf_http_stream_end(st->req);
    st->req = NULL;
    atomic_fetch_sub(&st->s->stats.streams_open, 1);
    uv_close((uv_handle_t *)&st->timer, on_stream_closed);
}

static void on_stream_gone(gf_http_req_t *r, void *data)
{
    stream_t *st = data;
    (void)r;
    atomic_fetch_add(&st->s->stats.stream_on_close, 1);
    if (st->in_write) {
        st->gone = 1; /* the write that is running finishes the stream */
        return;
    }
    stream_finish(st);
}

static void on_stream_tick(uv_timer_t *t)
{
    stream_t *st = t->data;
    for (int i = 0; i < st->burst; i++) {
        char tick[64];
        const char *p = st->chunk;
        size_t n = st->size;
        if (p == NULL) {
            n = (size_t)snprintf(tick, sizeof(tick), "data: tick %lu\n\n", st->ticks);
            p = tick;
        }
        st->ticks++;
        st->in_write = 1;
        int rc = gf_http_stream_write(st->req, p, n);
        st->in_write = 0;
        if (rc == GF_ETOOBIG)
            atomic_fetch_add(&st->s->stats.stream_toobig, 1);
        else if (rc == GF_ECANCELED)
            atomic_fetch_add(&st->s->stats.stream_canceled, 1);
        if (rc < 0 || st->gone) {
            stream_finish(st);
            return;
        }
    }
}

static void on_stream(gf_http_req_t *r, void *data)
{
    srv_t *s = data;
    stream_t *st = gf_xcalloc(1, sizeof(*st));
    st->s = s;
    st->req = r;
    const char *v;
    st->size = (v = gf_http_req_query(r, "size")) ? strtoull(v, NULL, 10) : 0;
    st->burst = (v = gf_http_req_query(r, "burst")) ? atoi(v) : 1;
    uint64_t every = (v = gf_http_req_query(r, "every")) ? strtoull(v, NULL, 10) : 20;
    if (st->size > 0) {
        st->chunk = gf_xmalloc(st->size);
        memset(st->chunk, 'x', st->size);
    }
    uv_timer_init(&s->loop, &st->timer);
    st->timer.data = st;
    atomic_fetch_add(&s->stats.streams_started, 1);
    atomic_fetch_add(&s->stats.streams_open, 1);
    gf_http_req_on_close(r, on_stream_gone, st);
    if (gf_http_stream_start(r, 200, "text/event-stream") < 0) {
        stream_finish(st);
        return;
    }
    uv_timer_start(&st->timer, on_stream_tick, every, every);
}

static void gate_open(srv_t *s)
{
    uv_timer_stop(&s->gate_timer);
    for (int i = 0; i < s->nparked; i++)
        gf_http_respond(s->parked[i], 200, "text/plain", "gate\n", 5);
    s->nparked = 0;
}

static void on_gate_timer(uv_timer_t *t)
{
    gate_open(t->data);
}

static void on_gate_gone(gf_http_req_t *r, void *data)
{
    srv_t *s = data;
    for (int i = 0; i < s->nparked; i++)
        if (s->parked[i] == r) {
            s->parked[i] = s->parked[--s->nparked];
            gf_http_respond(r, 200, "text/plain", "gate\n", 5); /* discarded: finishes it */
            return;
        }
}

static void on_gate(gf_http_req_t *r, void *data)
{
    srv_t *s = data;
    if (s->nparked == 0)
        uv_timer_start(&s->gate_timer, on_gate_timer, 30000, 0);
    s->parked = gf_xrealloc(s->parked, (size_t)(s->nparked + 1) * sizeof(*s->parked));
    s->parked[s->nparked++] = r;
    gf_http_req_on_close(r, on_gate_gone, s);
    if (s->nparked > atomic_load(&s->stats.gate_max))
        atomic_store(&s->stats.gate_max, s->nparked);
    if (s->nparked >= s->gate_n)
        gate_open(s);
}

/* --- the server thread --------------------------------------------------------------- */

static void on_stopped(gf_httpd_t *h, void *data)
{
    srv_t *s = data;
    (void)h;
    atomic_fetch_add(&s->stats.stopped_cb, 1);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_close((uv_handle_t *)&s->gate_timer, NULL);
}

static void on_wake(uv_async_t *a)
{
    srv_t *s = a->data;
    uv_mutex_lock(&s->mu);
    void (*fn)(srv_t *, void *) = s->call_fn;
    void *arg = s->call_arg;
    s->call_fn = NULL;
    uv_mutex_unlock(&s->mu);
    if (fn == NULL)
        return;
    fn(s, arg);
    uv_mutex_lock(&s->mu);
    s->call_done = 1;
    uv_cond_broadcast(&s->cv);
    uv_mutex_unlock(&s->mu);
}

static void set_flag(srv_t *s, int *flag)
{
    uv_mutex_lock(&s->mu);
    *flag = 1;
    uv_cond_broadcast(&s->cv);
    uv_mutex_unlock(&s->mu);
}

/* --- /fanout: streams fed together (gf_http_stream_write_frame_all) ------------------ */

static void fan_remove(srv_t *s, gf_http_req_t *r)
{
    for (size_t i = 0; i < s->nfan; i++)
        if (s->fan[i] == r) {
            s->fan[i] = s->fan[--s->nfan];
            gf_http_stream_end(r);
            atomic_fetch_sub(&s->stats.fan_open, 1);
            return;
        }
}

static void on_fan_gone(gf_http_req_t *r, void *data)
{
    fan_remove(data, r);
}

static void on_fanout(gf_http_req_t *r, void *data)
{
    srv_t *s = data;
    if (gf_http_stream_start(r, 200, "text/event-stream") < 0) {
        gf_http_stream_end(r);
        return;
    }
    gf_http_req_on_close(r, on_fan_gone, s);
    if (s->nfan == s->fan_cap) {
        s->fan_cap = s->fan_cap ? 2 * s->fan_cap : 64;
        s->fan = gf_xrealloc(s->fan, s->fan_cap * sizeof(*s->fan));
    }
    s->fan[s->nfan++] = r;
    atomic_fetch_add(&s->stats.fan_open, 1);
}

size_t srv_fan_data(int i, size_t size, char *out)
{
    int n = snprintf(out, size + 1, "%d:", i);
    for (size_t k = (size_t)n; k < size; k++)
        out[k] = (char)('a' + i % 26);
    return size;
}

typedef struct {
    int first, frames;
    size_t size;
} fan_call_t;

static void fan_write(srv_t *s, void *arg)
{
    fan_call_t *fc = arg;
    char *data = gf_xmalloc(fc->size + 1);
    int *rc = gf_xmalloc((s->nfan ? s->nfan : 1) * sizeof(*rc));
    for (int i = fc->first; i < fc->first + fc->frames && s->nfan > 0; i++) {
        gf_http_frame_t *f = gf_http_frame_new(data, srv_fan_data(i, fc->size, data));
        size_t n = s->nfan;
        gf_http_stream_write_frame_all(s->fan, n, f, rc);
        gf_http_frame_unref(f);
        for (size_t k = n; k-- > 0;) /* from the end: fan_remove moves the last into k */
            if (rc[k] < 0) {
                atomic_fetch_add(&s->stats.fan_failed, 1);
                fan_remove(s, s->fan[k]);
            }
    }
    free(rc);
    free(data);
}

void srv_fanout(srv_t *s, int first, int frames, size_t size)
{
    fan_call_t fc = {first, frames, size};
    srv_call(s, fan_write, &fc);
}

static int add_routes(srv_t *s)
{
    gf_httpd_t *h = s->h;
    int rc = 0;
    rc |= gf_httpd_route(h, "GET", "/echo/:id", 0, on_echo, s);
    rc |= gf_httpd_route(h, "POST", "/body", 1024, on_body, s);
    rc |= gf_httpd_route(h, "GET", "/slow", 0, on_slow, s);
    rc |= gf_httpd_route(h, "GET", "/stream", 0, on_stream, s);
    rc |= gf_httpd_route(h, "GET", "/gate", 0, on_gate, s);
    rc |= gf_httpd_route(h, "GET", "/healthz", 0, on_healthz, s);
    rc |= gf_httpd_route(h, "GET", "/big", 0, on_big, s);
    rc |= gf_httpd_route(h, "GET", "/fanout", 0, on_fanout, s);
    return rc;
}

static void srv_thread(void *arg)
{
    srv_t *s = arg;
    s->h = gf_httpd_new(&s->loop, &s->opts, &s->err);
    if (s->h == NULL || add_routes(s) != 0 || gf_httpd_listen(s->h, &s->err) < 0) {
        gf_err_set(&s->err, GF_EIO, "test", "cannot start the server");
        uv_close((uv_handle_t *)&s->wake, NULL);
        uv_close((uv_handle_t *)&s->gate_timer, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        s->loop_close_rc = uv_loop_close(&s->loop);
        gf_httpd_free(s->h);
        s->h = NULL;
        set_flag(s, &s->started);
        set_flag(s, &s->done);
        return;
    }
    s->port = gf_httpd_port(s->h);
    set_flag(s, &s->started);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    s->loop_close_rc = uv_loop_close(&s->loop);
    gf_httpd_free(s->h);
    set_flag(s, &s->done);
}

srv_t *srv_start(const gf_httpd_opts_t *opts, int gate_n)
{
    srv_t *s = gf_xcalloc(1, sizeof(*s));
    s->opts = opts != NULL ? *opts : srv_opts();
    s->opts.host = "127.0.0.1";
    s->opts.port = 0;
    s->opts.name = "test";
    s->gate_n = gate_n > 0 ? gate_n : 1;
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->wake, on_wake), 0);
    s->wake.data = s;
    uv_timer_init(&s->loop, &s->gate_timer);
    s->gate_timer.data = s;
    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cv);
    assert_int_equal(uv_thread_create(&s->thread, srv_thread, s), 0);
    uv_mutex_lock(&s->mu);
    while (!s->started)
        uv_cond_wait(&s->cv, &s->mu);
    uv_mutex_unlock(&s->mu);
    if (s->port == 0) {
        uv_thread_join(&s->thread);
        char msg[sizeof(s->err.msg)];
        memcpy(msg, s->err.msg, sizeof(msg));
        uv_mutex_destroy(&s->mu);
        uv_cond_destroy(&s->cv);
        free(s);
        fail_msg("server did not start: %s", msg);
    }
    return s;
}

int srv_port(const srv_t *s)
{
    return s->port;
}

srv_stats_t *srv_stats(srv_t *s)
{
    return &s->stats;
}

void srv_call(srv_t *s, void (*fn)(srv_t *, void *), void *arg)
{
    uv_mutex_lock(&s->mu);
    s->call_fn = fn;
    s->call_arg = arg;
    s->call_done = 0;
    uv_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);
    uv_mutex_lock(&s->mu);
    while (!s->call_done)
        uv_cond_wait(&s->cv, &s->mu);
    uv_mutex_unlock(&s->mu);
}

static void do_count(srv_t *s, void *arg)
{
    *(size_t *)arg = gf_httpd_connections(s->h);
}

typedef struct {
    uv_timer_t timer;
    gf_http_req_t *req;
    srv_t *srv;
} check_wait_t;

static void on_check_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_check_timer(uv_timer_t *t)
{
    check_wait_t *w = t->data;
    atomic_fetch_add(&w->srv->stats.checked, 1);
    gf_http_req_proceed(w->req);
    uv_close((uv_handle_t *)&w->timer, on_check_closed);
}

static void on_check_hook(gf_http_req_t *r, void *data)
{
    srv_t *s = data;
    check_wait_t *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->req = r;
    w->srv = s;
    uv_timer_init(&s->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_check_timer, (uint64_t)s->check_ms, 0);
}

static void do_check_after(srv_t *s, void *arg)
{
    s->check_ms = *(int *)arg;
    gf_httpd_set_check(s->h, on_check_hook, s);
}

void srv_check_after(srv_t *s, int ms)
{
    srv_call(s, do_check_after, &ms);
}

size_t srv_connections(srv_t *s)
{
    size_t n = 0;
    srv_call(s, do_count, &n);
    return n;
}

static void do_release(srv_t *s, void *arg)
{
    (void)arg;
    for (slow_t *sl = s->held; sl; sl = sl->next)
        uv_timer_start(&sl->timer, on_slow_timer, 0, 0);
}

void srv_release_slow(srv_t *s)
{
    srv_call(s, do_release, NULL);
}

static void do_stop(srv_t *s, void *arg)
{
    (void)arg;
    gf_httpd_stop(s->h, on_stopped, s);
}

void srv_stop(srv_t *s)
{
    if (s->stop_called)
        return;
    s->stop_called = 1;
    srv_call(s, do_stop, NULL);
}

static void stats_copy(srv_stats_t *to, srv_stats_t *from)
{
    atomic_store(&to->slow_started, atomic_load(&from->slow_started));
    atomic_store(&to->slow_answered, atomic_load(&from->slow_answered));
    atomic_store(&to->streams_started, atomic_load(&from->streams_started));
    atomic_store(&to->streams_open, atomic_load(&from->streams_open));
    atomic_store(&to->stream_on_close, atomic_load(&from->stream_on_close));
    atomic_store(&to->stream_toobig, atomic_load(&from->stream_toobig));
    atomic_store(&to->stream_canceled, atomic_load(&from->stream_canceled));
    atomic_store(&to->gate_max, atomic_load(&from->gate_max));
    atomic_store(&to->stopped_cb, atomic_load(&from->stopped_cb));
    atomic_store(&to->fan_open, atomic_load(&from->fan_open));
    atomic_store(&to->fan_failed, atomic_load(&from->fan_failed));
    atomic_store(&to->checked, atomic_load(&from->checked));
}

int srv_join(srv_t *s, int timeout_ms, srv_stats_t *final)
{
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000ULL;
    uv_mutex_lock(&s->mu);
    while (!s->done) {
        uint64_t t = uv_hrtime();
        if (t >= end || uv_cond_timedwait(&s->cv, &s->mu, end - t) == UV_ETIMEDOUT) {
            if (!s->done) {
                uv_mutex_unlock(&s->mu);
                return -1;
            }
        }
    }
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->thread);
    int rc = s->loop_close_rc;
    if (final != NULL)
        stats_copy(final, &s->stats);
    uv_mutex_destroy(&s->mu);
    uv_cond_destroy(&s->cv);
    free(s->parked);
    free(s->fan);
    free(s);
    return rc;
}

void srv_shutdown(srv_t *s)
{
    if (s == NULL)
        return;
    srv_stop(s);
    if (srv_join(s, 30000, NULL) == -1) {
        fprintf(stderr, "the test server did not stop within 30 s\n");
        abort();
    }
}

gf_httpd_opts_t srv_opts(void)
{
    gf_httpd_opts_t o;
    gf_httpd_opts_default(&o);
    o.shutdown_timeout_ms = 10000;
    return o;
}

int srv_finish(srv_t **sp)
{
    srv_t *s = *sp;
    if (s == NULL)
        return 0;
    *sp = NULL;
    srv_stop(s);
    int rc = srv_join(s, 30000, NULL);
    if (rc != 0)
        fprintf(stderr, "uv_loop_close() returned %d (-1: the server did not stop)\n", rc);
    return rc == 0 ? 0 : -1;
}

int srv_setup(void **state)
{
    *state = srv_start(NULL, 0);
    return 0;
}

srv_t *srv_start_in(void **state, const gf_httpd_opts_t *opts, int gate_n)
{
    *state = srv_start(opts, gate_n);
    return *state;
}

int srv_teardown(void **state)
{
    srv_t *s = *state;
    *state = NULL;
    return srv_finish(&s);
}
