/*
 * tests/integration/api/user_events.c - the user's event stream, GET
 * /v1/events (API.md "Progress over Server-Sent Events"), as a client sees
 * it against a real farm-api process: the per-user limit on streams, each
 * generation's terminal event named after the status Postgres recorded, a
 * long history replayed whole while a terminal event waits for its record,
 * and a generation deleted since it ended passed over. The test plays the
 * worker's part through the queue and store APIs. (A generation's own
 * stream: events.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "played_worker.h"
#include "support.h"

static const char *AVATAR = "{\"kind\":\"avatar\",\"prompt\":\"a watercolor fox\"}";

static int setup(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_SSE_HEARTBEAT_S=1", "FARM_RATE_LIMIT_BURST=1000",
                                        NULL};
    return pw_setup(extra);
}

static int teardown(void **state)
{
    (void)state;
    return pw_teardown();
}

/* Opens GET /v1/events on a raw socket; returns the fd and the response's status (0 if none). */
static int sse_open_raw(const char *tok, int *status)
{
    int fd = pw_connect();
    char req[2300];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n", tok);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[64] = {0};
    size_t got = 0;
    double end = ts_now() + 5;
    while (got < 12 && ts_now() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) == 1) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    *status = got >= 12 ? atoi(buf + 9) : 0; /* "HTTP/1.1 200" */
    return fd;
}

static void test_event_streams_are_limited_per_user(void **state)
{
    (void)state;
    /* FARM_SSE_MAX_PER_USER is 20 (the default): the 21st is refused, another
     * user is not, and a closed stream frees its place. */
    char *t = au_token(NULL, "pro", NULL, NULL), *other = au_token(NULL, "pro", NULL, NULL);
    int fds[20], st;
    for (int i = 0; i < 20; i++) {
        fds[i] = sse_open_raw(t, &st);
        assert_int_equal(st, 200);
    }
    int fd = sse_open_raw(t, &st);
    assert_int_equal(st, 429);
    close(fd);
    fd = sse_open_raw(other, &st);
    assert_int_equal(st, 200);
    close(fd);
    close(fds[0]);
    double end = ts_now() + 5;
    do {
        fd = sse_open_raw(t, &st);
        if (st != 200)
            close(fd);
    } while (st != 200 && ts_now() < end);
    assert_int_equal(st, 200);
    close(fd);
    for (int i = 1; i < 20; i++)
        close(fds[i]);
    free(t);
    free(other);
}

/* /v1/events: a generation that failed ends with event 'failed' and its whole record. */
static void test_user_stream_ends_each_generation_with_its_own_status(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37];
    au_create(t, AVATAR, id);
    /* A worker's part: claim, start, its only image fails, finish. */
    gf_err_t err = {0};
    uint64_t tok = pw_start(id);
    pw_settle_and_finish(id, tok, 0,
                         "{\"code\":\"provider_error\",\"message\":\"no\",\"retryable\":false}");
    queue_result_t qr = {0};
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_DONE, "{}", &qr, &err), 0);

    sse_client_t u = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 5};
    snprintf(u.url, sizeof(u.url), "%s/v1/events", au_base);
    snprintf(u.auth, sizeof(u.auth), "Authorization: Bearer %s", t);
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &u);
    assert_true(sse_wait_for(&u, "event: failed\ndata: {", 5));
    pthread_join(th, NULL);
    assert_int_equal(u.status, 200);
    assert_null(strstr(u.got.p, "event: succeeded")); /* the queue's 'done' is not a success */
    const char *term = strstr(u.got.p, "event: failed\ndata: ");
    assert_non_null(term);
    assert_non_null(strstr(term, "\"status\":\"failed\""));
    assert_non_null(strstr(term, "\"released\":10"));
    assert_non_null(strstr(term, id));
    gf_buf_dispose(&u.got);
    free(t);
}

/*
 * /v1/events from the start of a long history: generation a's terminal event
 * waits for its record while the stream reads on into b's 400 progress
 * events, more than a stream keeps waiting (256): it holds its watch, goes
 * on once it has written, and delivers every event once, in order.
 */
static void test_user_stream_replays_a_long_history_whole(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), a[37], b[37];
    au_create(t, AVATAR, a);
    gf_err_t err = {0};
    queue_result_t qr = {0};
    uint64_t ta = pw_start(a);
    pw_settle_and_finish(a, ta, 1, NULL);
    assert_int_equal(queue_sync_finish(pw_qs, a, ta, QUEUE_DONE, "{}", &qr, &err), 0);
    au_create(t, AVATAR, b);
    uint64_t tb = pw_start(b);
    const char *progress = "{\"status\":\"running\",\"stage\":\"generating\",\"progress\":40}";
    for (int i = 0; i < 400; i++)
        assert_int_equal(queue_sync_event_append(pw_qs, b, tb, "progress", progress, &qr, &err), 0);
    pw_settle_and_finish(b, tb, 1, NULL);
    assert_int_equal(queue_sync_finish(pw_qs, b, tb, QUEUE_DONE, "{}", &qr, &err), 0);

    /* a's record is read slowly (its table locked for 1.5 s by another session), so the
     * stream reads on past the bound while it waits. */
    assert_int_equal(ts_sh("(psql -X -q \"$FARM_DATABASE_URL\" -c \"BEGIN; LOCK TABLE "
                           "generations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); "
                           "COMMIT;\" >/dev/null 2>&1 &)"),
                     0);
    usleep(300000);
    sse_client_t u = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 8};
    snprintf(u.url, sizeof(u.url), "%s/v1/events", au_base);
    snprintf(u.auth, sizeof(u.auth), "Authorization: Bearer %s", t);
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &u);
    int both = 0;
    for (double end = ts_now() + 8; !both && ts_now() < end; usleep(50000)) {
        pthread_mutex_lock(&u.mu);
        both = pw_count_of(u.got.p, "event: succeeded\n") == 2;
        pthread_mutex_unlock(&u.mu);
    }
    pthread_join(th, NULL);
    assert_true(both);
    assert_int_equal(pw_count_of(u.got.p, "event: progress\n"), 400);
    /* in order: a's end before b's first progress, b's last progress before its end */
    const char *a_end = strstr(u.got.p, "event: succeeded\n");
    assert_non_null(strstr(a_end, a));
    assert_true(strstr(u.got.p, "event: progress\n") > a_end);
    assert_null(strstr(strstr(a_end + 1, "event: succeeded\n"), "event: progress\n"));
    gf_buf_dispose(&u.got);
    free(t);
}

/* Cancels the queued generation `id` of `tok` (202). */
static void cancel_as(const char *tok, const char *id)
{
    ts_http_t r = au_cancel(tok, id);
    au_expect(&r, 202, NULL);
}

/*
 * /v1/events goes on past a generation deleted since it ended: its terminal event has no
 * record to send (GET answers 404) and is skipped. The stream used to end there, and every
 * reconnect with it, for as long as the queue kept the event (24 h by default).
 */
static void test_user_stream_goes_on_past_a_deleted_generation(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), gone[37], kept[37], path[128];
    au_create(t, AVATAR, gone);
    cancel_as(t, gone);
    snprintf(path, sizeof(path), "/v1/generations/%s", gone);
    ts_http_t r = au_call("DELETE", path, t, NULL, NULL);
    au_expect(&r, 204, NULL);
    au_create(t, AVATAR, kept);
    cancel_as(t, kept);
    sse_client_t u = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 5};
    snprintf(u.url, sizeof(u.url), "%s/v1/events", au_base);
    snprintf(u.auth, sizeof(u.auth), "Authorization: Bearer %s", t);
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &u);
    char want[128];
    snprintf(want, sizeof(want), "\"id\":\"%s\"", kept);
    int got_kept = sse_wait_for(&u, want, 5);
    pthread_join(th, NULL);
    if (!got_kept)
        fail_msg("/v1/events stopped before the generation after the deleted one:\n%s", u.got.p);
    const char *term = strstr(u.got.p, "event: canceled\ndata: ");
    assert_non_null(term);
    assert_non_null(strstr(term, kept)); /* the first terminal event is the kept one's */
    assert_null(strstr(term, gone));
    gf_buf_dispose(&u.got);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_streams_are_limited_per_user),
        cmocka_unit_test(test_user_stream_ends_each_generation_with_its_own_status),
        cmocka_unit_test(test_user_stream_replays_a_long_history_whole),
        cmocka_unit_test(test_user_stream_goes_on_past_a_deleted_generation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
