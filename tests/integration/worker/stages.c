/*
 * tests/integration/worker/stages.c - what a client sees of a running
 * generation's stage (API.md): a real farm-api and farm-worker on the fake
 * provider, slow on purpose. GET says `generating` while the provider call
 * runs; the event stream says starting, generating, postprocessing and
 * storing, in that order, before the image and the terminal event. A client
 * that reconnects to the running generation with a Last-Event-ID at its
 * latest event, one past it, or far past its end waits, gets each later
 * event once and the stream ends at the terminal event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_harness.h"
#include "support.h"

#define LATENCY_MS 3000

static pid_t api_pid, fake_pid, worker_pid;
static char *tok;

static int setup(void **state)
{
    (void)state;
    static char fake_env[128], storage_env[600];
    fake_pid = ts_fake_start(LATENCY_MS, fake_env);
    if (fake_env[0] == '\0')
        return -1;
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    const char *api_extra[] = {storage_env, "FARM_PROVIDER=fake", NULL};
    api_pid = au_api_start(api_extra);
    char *worker_extra[] = {fake_env,
                            AU_FILE_SECRET_ENV,
                            storage_env,
                            "FARM_PROVIDER=fake",
                            "FARM_PROVIDER_FALLBACK=hf",
                            "FARM_WORKER_METRICS_PORT=0",
                            NULL};
    worker_pid = ts_spawn_farm("FARM_TEST_WORKER_BIN", worker_extra, "worker.log");
    tok = au_token(NULL, "pro", NULL, NULL);
    return api_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(worker_pid, api_pid, fake_pid);
    free(tok);
    return bad ? -1 : 0;
}

static ts_http_t api(const char *method, const char *path, const char *body)
{
    return au_call(method, path, tok, body, NULL);
}

/* Where `needle` first occurs in `hay` at or after `from`; fails the test when it does not. */
static const char *after(const char *hay, const char *from, const char *needle)
{
    const char *at = strstr(from, needle);
    if (at == NULL)
        fail_msg("no %s after offset %ld in:\n%s", needle, (long)(from - hay), hay);
    return at + strlen(needle);
}

/*
 * POSTs a 256 x 256 avatar of `prompt` (asserting 202): its GET path into
 * `path` and its events_url into `events`.
 */
static void create_avatar(const char *prompt, char path[128], char events[160])
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"%s\",\"width\":256,\"height\":256}", prompt);
    ts_http_t r = api("POST", "/v1/generations", body);
    assert_int_equal(r.status, 202);
    json_t *created = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    snprintf(path, 128, "/v1/generations/%s", json_string_value(json_object_get(created, "id")));
    snprintf(events, 160, "%s", json_string_value(json_object_get(created, "events_url")));
    json_decref(created);
}

static void test_client_sees_every_stage(void **state)
{
    (void)state;
    char path[128], events[160];
    create_avatar("a slow fox", path, events);
    ts_http_t r;

    /* GET while the provider call runs (LATENCY_MS): running, stage generating, and a
     * progress that has moved (API.md's example shows one), short of 100. */
    int seen_generating = 0;
    long long progress_generating = -1;
    for (double end = ts_now() + 20; !seen_generating && ts_now() < end; usleep(50000)) {
        r = api("GET", path, NULL);
        assert_int_equal(r.status, 200);
        json_t *g = json_loads(r.body, 0, NULL);
        ts_http_dispose(&r);
        const char *status = json_string_value(json_object_get(g, "status"));
        const char *stage = json_string_value(json_object_get(g, "stage"));
        seen_generating =
            status && strcmp(status, "running") == 0 && stage && strcmp(stage, "generating") == 0;
        if (seen_generating)
            progress_generating = json_integer_value(json_object_get(g, "progress"));
        int finished = status && strcmp(status, "queued") != 0 && strcmp(status, "running") != 0;
        json_decref(g);
        if (finished)
            break;
    }
    assert_true(seen_generating);
    fprintf(stderr, "progress while generating: %lld\n", progress_generating);
    assert_true(progress_generating > 0 && progress_generating < 100);

    /* The stream, replayed from its first event to its end. */
    r = api("GET", events, NULL);
    assert_int_equal(r.status, 200);
    const char *b = r.body, *p = b;
    p = after(b, p, "event: queued\n");
    p = after(b, p, "event: started\ndata: ");
    p = after(b, p, "\"stage\":\"starting\"");
    p = after(b, p, "event: progress\ndata: ");
    p = after(b, p, "\"stage\":\"generating\"");
    p = after(b, p, "event: progress\ndata: ");
    p = after(b, p, "\"stage\":\"postprocessing\"");
    p = after(b, p, "event: progress\ndata: ");
    p = after(b, p, "\"stage\":\"storing\"");
    p = after(b, p, "event: image\n");
    after(b, p, "event: succeeded\n");
    /* Each event's progress, in order: it moves with the stages and never goes back. */
    long long last = -1, n = 0, moved_before_image = 0;
    const char *image_at = strstr(b, "event: image\n");
    for (const char *q = b; (q = strstr(q, "\"progress\":")) != NULL; q += 11, n++) {
        long long v = strtoll(q + 11, NULL, 10);
        assert_true(v >= last);
        moved_before_image |= q < image_at && v > 0;
        last = v;
    }
    assert_true(n >= 4);
    assert_true(moved_before_image);
    ts_http_dispose(&r);

    /* Finished: no stage any more. */
    r = api("GET", path, NULL);
    json_t *g = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    assert_true(json_is_null(json_object_get(g, "stage")));
    json_decref(g);
}

/* An event stream read over a raw socket: what came, and whether the server ended it. */
typedef struct {
    int fd;
    char buf[65536];
    size_t len;
    int ended; /* the server closed the connection (or ended the chunked body) */
} raw_sse_t;

static void raw_open(raw_sse_t *c, const char *path, const char *last_event_id)
{
    memset(c, 0, sizeof(*c));
    int port = atoi(strrchr(au_base, ':') + 1);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[2600], last[64] = "";
    if (last_event_id)
        snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", last_event_id);
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n%s\r\n", path, tok,
                     last);
    assert_int_equal(write(c->fd, req, (size_t)n), n);
}

/* Reads what is there for up to `wait_s` (until the end, when it comes first). */
static void raw_read(raw_sse_t *c, double wait_s)
{
    for (double end = ts_now() + wait_s; !c->ended && ts_now() < end;) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        if (poll(&pf, 1, 50) != 1)
            continue;
        ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
        if (r <= 0) {
            c->ended = 1;
            break;
        }
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
        c->ended = strstr(c->buf, "\r\n0\r\n\r\n") != NULL; /* the last chunk */
    }
}

/* The ids of the events in `buf`, in order; their count. */
static int event_ids(const char *buf, long *ids, int max)
{
    int n = 0;
    for (const char *p = strstr(buf, "\nid: "); p && n < max; p = strstr(p + 1, "\nid: "))
        ids[n++] = strtol(p + 5, NULL, 10);
    return n;
}

/*
 * Money and state edge 3 (issue 21): a Last-Event-ID at the latest event of
 * a running generation, one past it, or past its end. Each stream waits for
 * what comes next, delivers every later event once, in order, and ends at the
 * terminal event.
 */
static void test_resuming_a_running_generation_at_or_past_its_end_waits(void **state)
{
    (void)state;
    char path[128], events[160];
    create_avatar("a resumed fox", path, events);
    ts_http_t r;

    /* The events so far, while the provider call runs (LATENCY_MS): the latest is `last`. */
    raw_sse_t first;
    raw_open(&first, events, NULL);
    long ids[64];
    int n = 0;
    for (double end = ts_now() + 20; ts_now() < end;) {
        raw_read(&first, 0.2);
        n = event_ids(first.buf, ids, 64);
        if (strstr(first.buf, "\"stage\":\"generating\""))
            break;
    }
    assert_non_null(strstr(first.buf, "\"stage\":\"generating\""));
    assert_false(first.ended);
    close(first.fd);
    long last = ids[n - 1];
    /* At the latest event, one past it, and far past the end (more than it will ever have). */
    char cursors[3][24];
    snprintf(cursors[0], sizeof(cursors[0]), "%ld", last);
    snprintf(cursors[1], sizeof(cursors[1]), "%ld", last + 1);
    snprintf(cursors[2], sizeof(cursors[2]), "%ld", last + 1000);
    raw_sse_t c[3];
    for (int i = 0; i < 3; i++)
        raw_open(&c[i], events, cursors[i]);
    /* They wait: nothing new, no end, while the provider still works. */
    for (int i = 0; i < 3; i++) {
        raw_read(&c[i], 0.3);
        assert_false(c[i].ended);
        assert_null(strstr(c[i].buf, "\nid: "));
    }
    for (int i = 0; i < 3; i++)
        raw_read(&c[i], 40);
    r = api("GET", path, NULL);
    assert_non_null(strstr(r.body, "\"status\":\"succeeded\""));
    ts_http_dispose(&r);
    for (int i = 0; i < 3; i++) {
        if (!c[i].ended || !strstr(c[i].buf, "event: succeeded\n"))
            fail_msg("Last-Event-ID %s did not end at the terminal event:\n%s", cursors[i],
                     c[i].buf);
        long got[64];
        int k = event_ids(c[i].buf, got, 64);
        assert_true(k >= 1);
        /* every event once, in order; the last is the terminal one */
        for (int j = 1; j < k; j++)
            assert_true(got[j] > got[j - 1]);
        const char *term = strstr(c[i].buf, "event: succeeded\n");
        assert_null(strstr(term + 1, "\nid: "));
        if (i < 2) {
            long from = atol(cursors[i]);
            /* exactly the events after the cursor, from the next one on */
            assert_int_equal(got[0], from + 1);
            assert_int_equal(got[k - 1] - got[0] + 1, k);
            print_message("Last-Event-ID %s: events %ld..%ld, then the end\n", cursors[i], got[0],
                          got[k - 1]);
        } else {
            /* past the end: only the terminal event, under its own id */
            assert_int_equal(k, 1);
            assert_true(got[0] > last && got[0] < last + 1000);
            print_message("Last-Event-ID %s: the terminal event %ld, then the end\n", cursors[i],
                          got[0]);
        }
        close(c[i].fd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_sees_every_stage),
        cmocka_unit_test(test_resuming_a_running_generation_at_or_past_its_end_waits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
