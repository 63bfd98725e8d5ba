/*
 * tests/integration/core/http_stop.c - stopping core/httpd: gf_httpd_stop() with
 * an in-flight request and an open stream (the request is answered, the
 * stream ends, the stopped callback runs, uv_loop_close() returns 0), the
 * shutdown timeout cutting what is left, and a real process (http_testserver)
 * that gets SIGTERM with a stream open and exits 0, LeakSanitizer-clean.
 *
 * Timing: waits are bounded generously (seconds) and only ever assert an
 * upper bound on something that should happen, or a lower bound that a
 * timer guarantees, so a loaded 2-core machine cannot make them flake.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_harness.h"

#ifndef HTTP_TESTSERVER_BIN
#error "HTTP_TESTSERVER_BIN must name the http_testserver program"
#endif

extern char **environ;

static void test_graceful_stop_answers_inflight_request_and_ends_streams(void **state)
{
    srv_t *srv = *state;
    srv_stats_t *st = srv_stats(srv);
    int port = srv_port(srv);

    rawc_t stream;
    assert_int_equal(rawc_connect(&stream, port, 0), 0);
    assert_int_equal(rawc_sends(&stream, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_resp_t sr;
    assert_int_equal(rawc_head(&stream, &sr, WAIT_MS), 0);
    assert_true(rawc_chunk(&stream, &sr, WAIT_MS) > 0);

    rawc_t slow;
    assert_int_equal(rawc_connect(&slow, port, 0), 0);
    assert_int_equal(rawc_sends(&slow, "GET /slow?hold=1 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    WAIT_UNTIL(atomic_load(&st->slow_started) == 1, WAIT_MS);
    assert_int_equal(atomic_load(&st->slow_started), 1);

    srv_stop(srv);

    /* No new connections. */
    rawc_t late;
    assert_int_equal(rawc_connect(&late, port, 0), -ECONNREFUSED);

    /* The stream ends cleanly (last chunk, then close)... */
    long n;
    while ((n = rawc_chunk(&stream, &sr, WAIT_MS)) > 0)
        ;
    assert_int_equal(n, 0);
    assert_true(rawc_wait_eof(&stream, WAIT_MS));
    resp_dispose(&sr);
    rawc_close(&stream);
    assert_true(atomic_load(&st->stream_on_close) >= 1);

    /* ...while the held request keeps the server from finishing its stop. */
    sleep_ms(100);
    assert_int_equal(atomic_load(&st->stopped_cb), 0);
    assert_int_equal(atomic_load(&st->slow_answered), 0);
    srv_release_slow(srv);
    http_resp_t r;
    assert_int_equal(rawc_response(&slow, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "slow\n");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    resp_dispose(&r);
    assert_true(rawc_wait_eof(&slow, WAIT_MS));
    rawc_close(&slow);

    /* Then the stopped callback runs and the loop closes with nothing left open. */
    srv_t *s = srv;
    *state = NULL; /* joined here, not by the teardown */
    srv_stats_t final;
    assert_int_equal(srv_join(s, 30000, &final), 0);
    assert_int_equal(atomic_load(&final.stopped_cb), 1);
    assert_int_equal(atomic_load(&final.slow_answered), 1);
}

static void test_stop_cuts_what_is_left_after_the_shutdown_timeout(void **state)
{
    gf_httpd_opts_t o = srv_opts();
    o.shutdown_timeout_ms = 300;
    srv_t *srv = srv_start_in(state, &o, 0);
    srv_stats_t *st = srv_stats(srv);
    rawc_t slow;
    assert_int_equal(rawc_connect(&slow, srv_port(srv), 0), 0);
    assert_int_equal(rawc_sends(&slow, "GET /slow?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    WAIT_UNTIL(atomic_load(&st->slow_started) == 1, WAIT_MS);
    assert_int_equal(atomic_load(&st->slow_started), 1);
    srv_stop(srv);
    /* The connection is cut after 300 ms, long before the 5 s handler answers: no response. */
    http_resp_t r;
    assert_int_equal(rawc_head(&slow, &r, WAIT_MS), -1);
    assert_true(slow.eof);
    assert_int_equal(slow.in.len, 0);
    rawc_close(&slow);
    WAIT_UNTIL(atomic_load(&st->stopped_cb) == 1, WAIT_MS);
    assert_int_equal(atomic_load(&st->stopped_cb), 1);
    /* The handler still finishes its (detached) request, then the loop closes empty. */
    srv_t *s = srv;
    *state = NULL; /* joined here, not by the teardown */
    srv_stats_t final;
    assert_int_equal(srv_join(s, 30000, &final), 0);
    assert_int_equal(atomic_load(&final.slow_answered), 1);
}

/* Spawns the test server; returns its pid and fills *port from its first stdout line. */
static pid_t spawn_testserver(int *port)
{
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *argv[] = {HTTP_TESTSERVER_BIN, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, HTTP_TESTSERVER_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0)
        fail_msg("cannot run %s: %s", HTTP_TESTSERVER_BIN, strerror(rc));
    char line[64] = "";
    size_t len = 0;
    long long end = now_ms() + 30000;
    while (len < sizeof(line) - 1 && !strchr(line, '\n') && now_ms() < end) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(out[0], line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        line[len] = '\0';
    }
    close(out[0]);
    *port = atoi(line);
    if (*port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the test server printed no port: \"%s\"", line);
    }
    return pid;
}

/* Waits up to timeout_ms for `pid` to exit; returns its wait status, or -1 (then kills it). */
static int wait_exit(pid_t pid, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    int status;
    while (now_ms() < end) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void test_sigterm_with_an_open_stream_exits_cleanly(void **state)
{
    (void)state;
    int port;
    pid_t pid = spawn_testserver(&port);
    rawc_t c;
    assert_int_equal(rawc_connect(&c, port, 0), 0);
    assert_int_equal(rawc_sends(&c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"),
                     0);
    http_resp_t r;
    assert_int_equal(rawc_response(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    assert_int_equal(rawc_head(&c, &r, WAIT_MS), 0);
    assert_int_equal(r.status, 200);
    assert_true(rawc_chunk(&c, &r, WAIT_MS) > 0); /* the stream is flowing */

    assert_int_equal(kill(pid, SIGTERM), 0);
    long n;
    while ((n = rawc_chunk(&c, &r, WAIT_MS)) > 0)
        ;
    int ended = n == 0 && rawc_wait_eof(&c, WAIT_MS);
    resp_dispose(&r);
    rawc_close(&c);
    int status = wait_exit(pid, 20000);
    assert_true(ended); /* the client saw the last chunk, then the close */
    assert_true(status != -1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the test server ended with wait status 0x%x", status);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_graceful_stop_answers_inflight_request_and_ends_streams, srv_setup, srv_teardown),
        cmocka_unit_test_teardown(test_stop_cuts_what_is_left_after_the_shutdown_timeout,
                                  srv_teardown),
        cmocka_unit_test(test_sigterm_with_an_open_stream_exits_cleanly),
    };
    return http_run_tests(tests);
}
