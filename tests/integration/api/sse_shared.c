/*
 * tests/integration/api/sse_shared.c - many listeners on one generation, as
 * they see it, against a real farm-api process: every listener gets the
 * live event and then the same terminal event once, named after the status
 * Postgres recorded (the queue says 'done'; the only image failed, so
 * Postgres says 'failed'), with the whole record, and its stream ends. And
 * the terminal event costs one Postgres read whatever the number of
 * listeners: farm_sse_terminal_reads_total on /metrics grows by one for a
 * generation with one listener and by one for a generation with forty.
 * Another user's stream on the generation is a 404 all along.
 * The test plays the worker's part through the queue and store APIs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "played_worker.h"
#include "support.h"

#define LISTENERS 40

static int setup(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_SSE_MAX_PER_USER=100", NULL};
    return pw_setup(extra);
}

static int teardown(void **state)
{
    (void)state;
    return pw_teardown();
}

/* One listener: a raw socket and everything it has read. */
typedef struct {
    int fd;
    gf_buf_t got;
    int eof;
} listener_t;

static void listener_open(listener_t *l, const char *tok, const char *gen)
{
    l->fd = pw_connect();
    char req[2600];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/generations/%s/events HTTP/1.1\r\nHost: t\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     gen, tok);
    assert_int_equal(write(l->fd, req, (size_t)n), n);
}

static int has(const listener_t *l, const char *needle)
{
    return l->got.p && strstr(l->got.p, needle) != NULL;
}

/* Reads every listener until each has `needle` (or its stream ended, when NULL); 1 if all did. */
static int read_until(listener_t *ls, int n, const char *needle, double timeout_s)
{
    double end = ts_now() + timeout_s;
    for (;;) {
        int waiting = 0;
        struct pollfd pf[LISTENERS];
        for (int i = 0; i < n; i++) {
            int done = needle ? has(&ls[i], needle) : ls[i].eof || has(&ls[i], "\r\n0\r\n\r\n");
            pf[i] = (struct pollfd){.fd = done || ls[i].eof ? -1 : ls[i].fd, .events = POLLIN};
            waiting += !done;
        }
        if (waiting == 0)
            return 1;
        if (ts_now() > end)
            return 0;
        if (poll(pf, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[8192];
            ssize_t r = read(ls[i].fd, buf, sizeof(buf) - 1);
            if (r <= 0)
                ls[i].eof = 1;
            else
                gf_buf_append(&ls[i].got, buf, (size_t)r);
        }
    }
}

/* farm_sse_terminal_reads_total as /metrics shows it. */
static long terminal_reads(void)
{
    ts_http_t r = au_call("GET", "/metrics", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *line = strstr(r.body, "\nfarm_sse_terminal_reads_total ");
    assert_non_null(line);
    long v = strtol(line + strlen("\nfarm_sse_terminal_reads_total "), NULL, 10);
    ts_http_dispose(&r);
    return v;
}

/* The data line of the terminal event `name` in a listener's stream (a new string). */
static char *terminal_data(const listener_t *l, const char *name)
{
    char head[64];
    snprintf(head, sizeof(head), "\nevent: %s\ndata: ", name);
    const char *p = strstr(l->got.p, head);
    assert_non_null(p);
    p += strlen(head);
    return strndup(p, strcspn(p, "\n"));
}

/*
 * `n` listeners follow a generation from its start; the worker starts it,
 * publishes one progress event, its only image fails, and it finishes (the
 * queue's word: 'done'). Checks what every listener saw; returns how many
 * terminal reads the api made meanwhile.
 */
static long follow_one_generation(int n)
{
    char *tok = au_token(NULL, "pro", NULL, NULL), id[37];
    au_create(tok, "{\"kind\":\"avatar\",\"prompt\":\"a crowd of foxes\"}", id);
    long before = terminal_reads();
    listener_t ls[LISTENERS];
    memset(ls, 0, sizeof(ls));
    for (int i = 0; i < n; i++)
        listener_open(&ls[i], tok, id);
    assert_true(read_until(ls, n, "id: 1\nevent: queued\n", 20));
    /* Another user is still told there is no such generation while its owner's streams follow it.
     */
    char *other = au_token(NULL, "pro", NULL, NULL), path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    ts_http_t r = au_call("GET", path, other, NULL, NULL);
    au_expect(&r, 404, NULL);
    free(other);

    gf_err_t err = {0};
    uint64_t qtok = pw_start(id);
    queue_result_t qr = {0};
    const char *progress = "{\"status\":\"running\",\"stage\":\"generating\",\"progress\":40}";
    assert_int_equal(queue_sync_event_append(pw_qs, id, qtok, "progress", progress, &qr, &err), 0);
    assert_true(read_until(ls, n, "event: progress\n", 20));
    pw_settle_and_finish(id, qtok, 0,
                         "{\"code\":\"provider_error\",\"message\":\"no\",\"retryable\":false}");
    assert_int_equal(queue_sync_finish(pw_qs, id, qtok, QUEUE_DONE, "{}", &qr, &err), 0);
    /* Every stream ends by itself after its terminal event. */
    assert_true(read_until(ls, n, NULL, 20));

    char *first = terminal_data(&ls[0], "failed");
    /* Its id: the queue's, the last of the generation's events (queued, progress, then it). */
    const char *term = strstr(ls[0].got.p, "\nevent: failed\n");
    const char *idline = term;
    while (idline > ls[0].got.p && strncmp(idline, "id: ", 4) != 0)
        idline--;
    char want[64];
    snprintf(want, sizeof(want), "id: %ld\nevent: failed\n", strtol(idline + 4, NULL, 10));
    assert_non_null(strstr(ls[0].got.p, "id: 3\nevent: failed\n"));
    assert_non_null(strstr(first, "\"status\":\"failed\""));
    assert_non_null(strstr(first, "\"released\":10"));
    assert_non_null(strstr(first, id));
    for (int i = 0; i < n; i++) {
        const char *got = ls[i].got.p;
        assert_true(strncmp(got, "HTTP/1.1 200", 12) == 0);
        assert_int_equal(pw_count_of(got, "\nevent: progress\n"), 1);
        assert_int_equal(pw_count_of(got, "\nevent: failed\n"), 1);
        assert_null(strstr(got, "event: succeeded")); /* the queue's 'done' is not a success */
        /* The same terminal event, under the same id, for everyone. */
        assert_non_null(strstr(got, want));
        char *data = terminal_data(&ls[i], "failed");
        assert_string_equal(data, first);
        free(data);
        close(ls[i].fd);
        gf_buf_dispose(&ls[i].got);
    }
    free(first);
    free(tok);
    return terminal_reads() - before;
}

static void test_every_listener_gets_the_one_terminal_event_from_postgres(void **state)
{
    (void)state;
    assert_int_equal(follow_one_generation(LISTENERS), 1);
}

static void test_the_terminal_read_does_not_grow_with_listeners(void **state)
{
    (void)state;
    long one = follow_one_generation(1);
    long many = follow_one_generation(LISTENERS);
    assert_int_equal(one, 1);
    assert_int_equal(many, one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_listener_gets_the_one_terminal_event_from_postgres),
        cmocka_unit_test(test_the_terminal_read_does_not_grow_with_listeners),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
