/*
 * tests/support/http_testserver.c - the smallest real process built on
 * core/httpd, for http_stop.c's SIGTERM test: it serves /healthz and a
 * /stream that ticks every 50 ms, prints its port on stdout, and on SIGTERM
 * stops the server gracefully and exits 0 once uv_loop_close() succeeds.
 *
 * Invariant: every handle is closed by the time the httpd reports it stopped
 * (streams close their timers when told the connection ended), so a clean
 * exit is also a LeakSanitizer-clean one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "core.h"

typedef struct {
    gf_http_req_t *req;
    uv_timer_t timer;
    unsigned long ticks;
    int ended;
} tick_stream_t;

static uv_signal_t sigterm;

static void on_healthz(gf_http_req_t *r, void *data)
{
    (void)data;
    gf_http_respond(r, 200, "text/plain", "ok\n", 3);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void stream_finish(tick_stream_t *s)
{
    if (s->ended)
        return;
    s->ended = 1;
    gf_http_stream_end(s->req);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void on_stream_gone(gf_http_req_t *r, void *data)
{
    (void)r;
    stream_finish(data);
}

static void on_tick(uv_timer_t *t)
{
    tick_stream_t *s = t->data;
    char line[64];
    int n = snprintf(line, sizeof(line), "data: tick %lu\n\n", s->ticks++);
    if (gf_http_stream_write(s->req, line, (size_t)n) < 0)
        stream_finish(s);
}

static void on_stream(gf_http_req_t *r, void *data)
{
    uv_loop_t *loop = data;
    tick_stream_t *s = gf_xcalloc(1, sizeof(*s));
    s->req = r;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    gf_http_req_on_close(r, on_stream_gone, s);
    if (gf_http_stream_start(r, 200, "text/event-stream") < 0) {
        stream_finish(s);
        return;
    }
    uv_timer_start(&s->timer, on_tick, 50, 50);
}

static void on_stopped(gf_httpd_t *h, void *data)
{
    (void)h;
    (void)data;
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_sigterm(uv_signal_t *sig, int signum)
{
    (void)signum;
    gf_httpd_stop(sig->data, on_stopped, NULL);
}

int main(void)
{
    /* If the test that spawned us dies (a timeout, a crash), do not outlive it. */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        return 1;
    signal(SIGPIPE, SIG_IGN); /* a client that left must not kill us mid-write */
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    gf_httpd_opts_t opts;
    gf_httpd_opts_default(&opts);
    opts.port = 0;
    opts.name = "testserver";
    opts.shutdown_timeout_ms = 5000;
    gf_err_t err = {0};
    gf_httpd_t *h = gf_httpd_new(&loop, &opts, &err);
    if (h == NULL || gf_httpd_route(h, "GET", "/healthz", 0, on_healthz, NULL) != 0 ||
        gf_httpd_route(h, "GET", "/stream", 0, on_stream, &loop) != 0 ||
        gf_httpd_listen(h, &err) < 0) {
        fprintf(stderr, "http_testserver: %s\n", err.msg);
        return 1;
    }
    uv_signal_init(&loop, &sigterm);
    sigterm.data = h;
    uv_signal_start(&sigterm, on_sigterm, SIGTERM);
    printf("%d\n", gf_httpd_port(h));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    gf_httpd_free(h);
    if (rc != 0) {
        fprintf(stderr, "http_testserver: uv_loop_close: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
