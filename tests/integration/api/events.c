/*
 * tests/integration/api/events.c - a generation's event stream (API.md
 * "Progress over Server-Sent Events") as a client sees it, against a real
 * farm-api process: replay and resume without gaps, a queue whose history
 * went back, the queue's words as API.md names them (on the user stream
 * too), a Last-Event-ID that is not ours (a 400 that costs Redis nothing:
 * one such id used to keep Redis busy for good), a terminal event larger than a stream's send-queue
 * cap (the api runs with the smallest cap, 4096 bytes), resuming after the terminal event, a
 * listener that stops reading among ones that read (dropped at the cap, the
 * others get everything), and the streams while Postgres is down. The test
 * plays the worker's part through the queue and store APIs. (The user's own
 * stream, GET /v1/events: user_events.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "played_worker.h"
#include "queue_util.h"
#include "support.h"

static char *user_tok; /* one user for the tests that need no other */

static const char *AVATAR = "{\"kind\":\"avatar\",\"prompt\":\"a watercolor fox\"}";

static int setup(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_SSE_HEARTBEAT_S=1", "FARM_RATE_LIMIT_BURST=1000",
                                        "FARM_HTTP_STREAM_MAX_QUEUED_BYTES=4096", NULL};
    int rc = pw_setup(extra);
    user_tok = au_token(NULL, "pro", NULL, NULL);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    free(user_tok);
    return pw_teardown();
}

static void test_events_replay_and_resume_without_gaps(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37];
    au_create(t, AVATAR, id);

    /* c1 follows the generation and "disconnects" (its timeout) after event 2. */
    sse_client_t c1 = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 4};
    snprintf(c1.url, sizeof(c1.url), "%s/v1/generations/%s/events?access_token=%s", au_base, id, t);
    snprintf(c1.auth, sizeof(c1.auth), "X-Client: 1");
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &c1);
    assert_true(sse_wait_for(&c1, "id: 1\nevent: queued\n", 10));
    assert_true(sse_has(&c1, "retry: 2000\n"));
    /* API.md: the queued event carries the queue position. */
    assert_true(sse_wait_for(&c1, "\"queue_position\":", 5));

    /* The worker's part: claim the job, start it, publish. */
    gf_err_t err = {0};
    uint64_t tok = pw_start(id);
    queue_result_t qr = {0};
    assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "started", NULL, &qr, &err), 0);
    assert_true(sse_wait_for(&c1, "id: 2\nevent: started\n", 10));
    pthread_join(th, NULL);

    /* Events 3 and 4 are published while nobody listens. */
    const char *progress = "{\"status\":\"running\",\"stage\":\"generating\",\"progress\":40}";
    assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "progress", progress, &qr, &err), 0);
    assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "progress", progress, &qr, &err), 0);

    /* c2 resumes after 2: it gets 3 and 4 once, then the live terminal event, then the end. */
    sse_client_t c2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 30, .last_event_id = "2"};
    snprintf(c2.url, sizeof(c2.url), "%s/v1/generations/%s/events", au_base, id);
    snprintf(c2.auth, sizeof(c2.auth), "Authorization: Bearer %s", t);
    pthread_create(&th, NULL, sse_run, &c2);
    assert_true(sse_wait_for(&c2, "id: 4\nevent: progress\n", 10));
    pw_settle_and_finish(id, tok, 1, NULL);
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_DONE, "{}", &qr, &err), 0);
    double started = ts_now();
    pthread_join(th, NULL);
    assert_true(ts_now() - started < 15); /* the stream ended by itself */
    assert_int_equal(c2.status, 200);
    assert_null(strstr(c2.got.p, "id: 1\n"));
    assert_null(strstr(c2.got.p, "id: 2\n"));
    assert_int_equal(pw_count_of(c2.got.p, "id: 3\n"), 1);
    assert_int_equal(pw_count_of(c2.got.p, "id: 4\n"), 1);
    assert_non_null(strstr(c2.got.p, "event: succeeded\ndata: {"));
    assert_non_null(strstr(c2.got.p, "\"charged\":10"));
    assert_null(strstr(c1.got.p, "id: 3\n"));

    /* A finished generation replays everything and ends. */
    sse_client_t c3 = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 30};
    snprintf(c3.url, sizeof(c3.url), "%s/v1/generations/%s/events?access_token=%s", au_base, id, t);
    snprintf(c3.auth, sizeof(c3.auth), "X-Client: 3");
    sse_run(&c3);
    assert_int_equal(pw_count_of(c3.got.p, "\nevent: "), 5);
    assert_non_null(strstr(c3.got.p, "event: succeeded\n"));
    gf_buf_dispose(&c1.got);
    gf_buf_dispose(&c2.got);
    gf_buf_dispose(&c3.got);
    free(t);
}

/*
 * Redis loses the job with its events (a restore without AOF, a failover to a
 * replica that was behind) after a client saw event 4; the sweeper enqueues it
 * again and its events count from 1 once more, `again` of them before the
 * terminal one. The client, following live, still gets the terminal event
 * (under its own id, at or below 4) and its stream ends, instead of waiting
 * for an id above 4 for ever.
 */
static void rewound_stream_ends(int again)
{
    char user[37], id[37], key[96], want[64];
    char *t = au_token(NULL, "pro", NULL, user);
    au_create(t, AVATAR, id);
    sse_client_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 40};
    snprintf(c.url, sizeof(c.url), "%s/v1/generations/%s/events?access_token=%s", au_base, id, t);
    snprintf(c.auth, sizeof(c.auth), "X-Client: rewound");
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &c);
    assert_true(sse_wait_for(&c, "id: 1\nevent: queued\n", 10));
    gf_err_t err = {0};
    queue_result_t qr = {0};
    uint64_t tok = pw_start(id);
    const char *progress = "{\"status\":\"running\",\"stage\":\"generating\",\"progress\":40}";
    assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "started", NULL, &qr, &err), 0);
    assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "progress", progress, &qr, &err), 0);
    assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "progress", progress, &qr, &err), 0);
    assert_true(sse_wait_for(&c, "id: 4\nevent: progress\n", 10));
    /* Redis loses the job; the sweeper's enqueue (above Postgres's fence) starts it anew. */
    snprintf(key, sizeof(key), "{farm}:j:%s", id);
    assert_true(qt_redis_argv((const char *const[]){"DEL", key, NULL}));
    queue_enqueue_req_t req = {
        .gen_id = id, .user_id = user, .tier = "pro", .payload = "{}", .token_floor = tok};
    assert_int_equal(queue_sync_enqueue(pw_qs, &req, &qr, &err), 0);
    uint64_t tok2 = pw_claim_token(id);
    assert_true(tok2 > tok);
    for (int i = 1; i < again; i++)
        assert_int_equal(queue_sync_event_append(pw_qs, id, tok2, "progress", progress, &qr, &err),
                         0);
    pw_settle_and_finish(id, tok2, 1, NULL);
    assert_int_equal(queue_sync_finish(pw_qs, id, tok2, QUEUE_DONE, "{}", &qr, &err), 0);
    double t0 = ts_now();
    pthread_join(th, NULL);
    assert_true(ts_now() - t0 < 15); /* the stream ended by itself */
    snprintf(want, sizeof(want), "id: %d\nevent: succeeded\ndata: {", again + 1);
    assert_non_null(strstr(c.got.p, want));
    gf_buf_dispose(&c.got);
    free(t);
}

static void test_a_stream_ends_when_the_queues_history_went_back(void **state)
{
    (void)state;
    rewound_stream_ends(1); /* the terminal event at id 2, below the client's 4 */
}

static void test_a_stream_ends_when_the_history_went_back_to_its_own_id(void **state)
{
    (void)state;
    rewound_stream_ends(3); /* at id 4: the id the client has, for another event */
}

/* The part of `got` from `event` (an "event: NAME\n" line) to the end of its data line, or
 * NULL (a new string). */
static char *event_block(const char *got, const char *event)
{
    const char *at = strstr(got, event);
    if (at == NULL)
        return NULL;
    const char *data = strstr(at, "\ndata: ");
    const char *end = data ? strchr(data + 1, '\n') : NULL;
    return end ? strndup(at, (size_t)(end - at)) : NULL;
}

/*
 * API.md's event names only: a hand-back the queue schedules (its own word
 * `retrying`) reaches both streams as a `progress` of the generation, still
 * running, with the backoff; a dead letter an operator re-drives (`requeued`)
 * as `queued` again.
 */
static void test_queue_hand_backs_reach_clients_by_api_names(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37];
    au_create(t, AVATAR, id);
    gf_err_t err = {0};
    queue_result_t qr = {0};
    uint64_t tok = pw_start(id);
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_HANDBACK, "worker stopping", &qr, &err), 0);
    /* Claimed again once its backoff (under 1 s) is over, failed, and dead-lettered. */
    tok = 0;
    for (double end = ts_now() + 10; tok == 0 && ts_now() < end;) {
        queue_claim_t claim = {0};
        assert_int_equal(queue_sync_claim(pw_qs, "test-worker", 16, &claim, &err), 0);
        for (size_t i = 0; i < claim.n_jobs; i++)
            if (strcmp(claim.jobs[i].gen_id, id) == 0)
                tok = claim.jobs[i].token;
        queue_claim_dispose(&claim);
        if (tok == 0)
            usleep(100000);
    }
    assert_true(tok > 0);
    pw_settle_and_finish(id, tok, 0,
                         "{\"code\":\"provider_error\",\"message\":\"no\",\"retryable\":false}");
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_FATAL, "no more", &qr, &err), 0);
    assert_int_equal(queue_sync_dead_retry(pw_qs, id, &err), 1); /* one re-driven */

    sse_client_t g = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 3};
    snprintf(g.url, sizeof(g.url), "%s/v1/generations/%s/events?access_token=%s", au_base, id, t);
    snprintf(g.auth, sizeof(g.auth), "X-Client: retries");
    sse_run(&g);
    sse_client_t u = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 3};
    snprintf(u.url, sizeof(u.url), "%s/v1/events", au_base);
    snprintf(u.auth, sizeof(u.auth), "Authorization: Bearer %s", t);
    sse_run(&u);
    const char *const names[] = {"queued",  "started", "progress", "image",  "succeeded",
                                 "partial", "failed",  "canceled", "expired"};
    for (int k = 0; k < 2; k++) {
        const char *got = k ? u.got.p : g.got.p;
        for (const char *e = strstr(got, "\nevent: "); e; e = strstr(e + 1, "\nevent: ")) {
            size_t n = strcspn(e + 8, "\n"), i = 0;
            while (i < sizeof(names) / sizeof(names[0]) &&
                   (strlen(names[i]) != n || strncmp(e + 8, names[i], n) != 0))
                i++;
            if (i == sizeof(names) / sizeof(names[0]))
                fail_msg("%s stream: an event API.md does not name: %.*s",
                         k ? "user" : "generation", (int)n, e + 8);
        }
        char *retry = event_block(got, "event: progress\n");
        assert_non_null(retry);
        assert_non_null(strstr(retry, "\"status\":\"running\""));
        assert_non_null(strstr(retry, "\"in_ms\":"));
        assert_non_null(strstr(retry, id));
        free(retry);
    }
    /* The user stream goes on past the dead letter's `failed`: queued again, status queued. */
    const char *after = strstr(u.got.p, "event: failed\n");
    assert_non_null(after);
    char *again = event_block(after, "event: queued\n");
    assert_non_null(again);
    assert_non_null(strstr(again, "\"status\":\"queued\""));
    assert_non_null(strstr(again, "\"queue_position\":"));
    free(again);
    gf_buf_dispose(&g.got);
    gf_buf_dispose(&u.got);
    free(t);
}

/* The item of generation `id` in the answer `list` of GET /v1/generations (borrowed). */
static json_t *list_item(json_t *list, const char *id)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(list, "items"), i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "id")) ?: "", id) == 0)
            return item;
    }
    fail_msg("generation %s is not in the list", id);
    return NULL;
}

/*
 * A running generation back in the queue while Postgres still says running
 * (a dead letter an operator re-drives; a hand-back once its delay is over):
 * GET and the list show it running with no queue_position (API.md: a position
 * only while queued).
 */
static void test_a_running_generation_back_in_the_queue_has_no_position(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37], path[160];
    au_create(t, AVATAR, id);
    uint64_t tok = pw_start(id);
    gf_err_t err = {0};
    queue_result_t qr = {0};
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_FATAL, "no more", &qr, &err), 0);
    assert_int_equal(queue_sync_dead_retry(pw_qs, id, &err), 1);
    assert_int_equal(queue_sync_position(pw_qs, id, &qr, &err), 0);
    assert_string_equal(qr.state, "queued");
    assert_true(qr.position >= 0);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    json_t *g = au_get_json(t, path);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "running");
    assert_true(json_is_null(json_object_get(g, "queue_position")));
    json_t *list = au_get_json(t, "/v1/generations");
    assert_true(json_is_null(json_object_get(list_item(list, id), "queue_position")));
    json_decref(list);
    json_decref(g);
    free(t);
}

/* The list shows a running item's stage and each queued item's queue_position as GET does:
 * from the queue, one question for the page. */
static void test_the_list_shows_the_queues_word_as_get_does(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), run[37], wait[3][37], path[160];
    au_create(t, AVATAR, run);
    uint64_t tok = pw_start(run);
    gf_err_t err = {0};
    queue_result_t qr = {0};
    const char *progress = "{\"status\":\"running\",\"stage\":\"generating\",\"progress\":40}";
    assert_int_equal(queue_sync_event_append(pw_qs, run, tok, "progress", progress, &qr, &err), 0);
    for (int i = 0; i < 3; i++)
        au_create(t, AVATAR, wait[i]);
    json_t *list = au_get_json(t, "/v1/generations");
    snprintf(path, sizeof(path), "/v1/generations/%s", run);
    json_t *g_run = au_get_json(t, path);
    json_t *i_run = list_item(list, run);
    assert_string_equal(json_string_value(json_object_get(g_run, "stage")), "generating");
    assert_true(json_equal(json_object_get(i_run, "stage"), json_object_get(g_run, "stage")));
    assert_true(json_is_null(json_object_get(i_run, "queue_position")));
    /* Each queued item has GET's position; the user's later ones start later. */
    json_int_t before = -1;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/v1/generations/%s", wait[i]);
        json_t *g_wait = au_get_json(t, path);
        json_t *pos = json_object_get(list_item(list, wait[i]), "queue_position");
        assert_true(json_is_integer(pos));
        assert_true(json_equal(pos, json_object_get(g_wait, "queue_position")));
        assert_true(json_integer_value(pos) > before);
        before = json_integer_value(pos);
        json_decref(g_wait);
    }
    json_decref(list);
    json_decref(g_run);
    pw_settle_and_finish(run, tok, 1, NULL);
    assert_int_equal(queue_sync_finish(pw_qs, run, tok, QUEUE_DONE, "{}", &qr, &err), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/v1/generations/%s/cancel", wait[i]);
        ts_http_t r = au_call("POST", path, t, NULL, NULL);
        au_expect(&r, 202, NULL);
    }
    free(t);
}

/* A generation that is finished already: created, then canceled while queued. */
static void create_canceled(const char *body, char id[37])
{
    au_create(user_tok, body, id);
    ts_http_t r = au_cancel(user_tok, id);
    au_expect(&r, 202, NULL);
}

static void test_a_foreign_last_event_id_is_400_and_redis_stays_free(void **state)
{
    (void)state;
    char id[37], path[128], header[128];
    au_create(user_tok, "{\"kind\":\"avatar\",\"prompt\":\"a fox\"}", id);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    /* 18428729675200069632 became -2^54 in Lua, where after + 1 == after: an endless loop. */
    static const char *const gen_ids[] = {
        "18428729675200069632", "18446744073709551615", "-1", "+5", "1e3", "9999999999999999"};
    for (size_t i = 0; i < sizeof(gen_ids) / sizeof(gen_ids[0]); i++) {
        snprintf(header, sizeof(header), "Last-Event-ID: %s", gen_ids[i]);
        ts_http_t r = au_call("GET", path, user_tok, NULL, header);
        if (r.status != 400)
            fprintf(stderr, "Last-Event-ID '%s': %ld\n", gen_ids[i], r.status);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"field\":\"Last-Event-ID\""));
        ts_http_dispose(&r);
    }
    /* A Redis stream refuses these as a cursor: the stream used to stay open and silent. */
    static const char *const user_ids[] = {
        "garbage", "-", "1-1-1", "5", "1-", "-1", "18446744073709551616-0",
        "1-18446744073709551616", "+1-0", "1- 0",
        /* From the future (year 2286): it would hide every event until then. */
        "9999999999999-0"};
    for (size_t i = 0; i < sizeof(user_ids) / sizeof(user_ids[0]); i++) {
        snprintf(header, sizeof(header), "Last-Event-ID: %s", user_ids[i]);
        ts_http_t r = au_call("GET", "/v1/events", user_tok, NULL, header);
        if (r.status != 400)
            fprintf(stderr, "/v1/events Last-Event-ID '%s': %ld\n", user_ids[i], r.status);
        assert_int_equal(r.status, 400);
        ts_http_dispose(&r);
    }
    /* Redis still answers at once, and a new generation is queued (it has a position). */
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", au_base);
    assert_true(ts_wait_http(url, 200, NULL, 2));
    ts_http_t r = au_call("POST", "/v1/generations", user_tok,
                          "{\"kind\":\"avatar\",\"prompt\":\"a cat\"}", NULL);
    assert_int_equal(r.status, 202);
    assert_null(strstr(r.body, "\"queue_position\":null"));
    assert_non_null(strstr(r.body, "\"queue_position\":"));
    ts_http_dispose(&r);
}

static void test_a_terminal_event_larger_than_the_cap_is_delivered(void **state)
{
    (void)state;
    /* A generation whose record (the terminal event's data) is over 4 KiB: the prompt twice
     * (its own field and params) and the metadata. */
    char body[8192], prompt[2001], meta[2001], id[37], path[128];
    memset(prompt, 'p', 2000);
    prompt[2000] = '\0';
    memset(meta, 'm', 2000);
    meta[2000] = '\0';
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"%s\",\"metadata\":{\"m\":\"%s\"}}", prompt, meta);
    create_canceled(body, id);
    /* The replay of a finished generation: its events, then the terminal one (over the cap). */
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    ts_http_t r = au_call("GET", path, user_tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "event: queued\n"));
    const char *term = strstr(r.body, "event: canceled\ndata: {");
    assert_non_null(term);
    assert_non_null(strstr(term, meta)); /* the whole record */
    ts_http_dispose(&r);
    /* The process is fine and keeps serving (teardown checks it exits 0). */
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = au_call("GET", path, user_tok, NULL, NULL);
    au_expect(&r, 200, "\"status\":\"canceled\"");
}

/*
 * A client that saw the terminal event and reconnects with its id (an
 * EventSource does, 2 s after every end) gets nothing more: it used to get
 * the terminal event again under a new id, every time.
 */
static void test_resuming_after_the_terminal_event_gets_nothing_more(void **state)
{
    (void)state;
    char id[37], path[128], header[64];
    create_canceled("{\"kind\":\"avatar\",\"prompt\":\"a fox\"}", id);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    ts_http_t r = au_call("GET", path, user_tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *term = strstr(r.body, "\nevent: canceled\n");
    assert_non_null(term);
    const char *idline = term;
    while (idline > r.body && strncmp(idline, "id: ", 4) != 0)
        idline--;
    long last = strtol(idline + 4, NULL, 10);
    assert_true(last >= 2);
    ts_http_dispose(&r);

    snprintf(header, sizeof(header), "Last-Event-ID: %ld", last);
    r = au_call("GET", path, user_tok, NULL, header);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "event: "));
    ts_http_dispose(&r);
    /* One before it: the terminal event once, under its own id. */
    snprintf(header, sizeof(header), "Last-Event-ID: %ld", last - 1);
    r = au_call("GET", path, user_tok, NULL, header);
    assert_int_equal(r.status, 200);
    char want[64];
    snprintf(want, sizeof(want), "id: %ld\nevent: canceled\n", last);
    assert_non_null(strstr(r.body, want));
    assert_null(strstr(strstr(r.body, want) + strlen(want), "event: "));
    ts_http_dispose(&r);
}

/*
 * Once the queue's events of a finished generation are gone (expired), the
 * terminal event is made from Postgres: the same id on every reconnect, and a
 * client that has it gets nothing more (it used to get a new terminal event
 * under cursor + 1 on each reconnect, for ever).
 */
static void test_a_terminal_event_made_after_expiry_is_not_made_again(void **state)
{
    (void)state;
    char id[37], path[128], header[64];
    create_canceled("{\"kind\":\"avatar\",\"prompt\":\"a hare\"}", id);
    /* what the retention window does to a finished job: its hash and events go */
    assert_int_equal(ts_sh("k=$(redis-cli -u \"$FARM_REDIS_URL\" --scan --pattern '*j:%s'); "
                           "[ -n \"$k\" ] && redis-cli -u \"$FARM_REDIS_URL\" DEL $k >/dev/null",
                           id),
                     0);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    char first[32] = "";
    for (int round = 0; round < 3; round++) {
        ts_http_t r = au_call("GET", path, user_tok, NULL, round ? header : NULL);
        assert_int_equal(r.status, 200);
        const char *term = strstr(r.body, "\nevent: canceled\n");
        if (round == 0) {
            assert_non_null(term);
            const char *idline = term;
            while (idline > r.body && strncmp(idline, "id: ", 4) != 0)
                idline--;
            snprintf(first, sizeof(first), "%.*s", (int)strcspn(idline + 4, "\n"), idline + 4);
            snprintf(header, sizeof(header), "Last-Event-ID: %s", first);
        } else {
            assert_null(strstr(r.body, "event: ")); /* nothing new, and the stream ended */
        }
        ts_http_dispose(&r);
    }
    /* From before it: the same terminal event under the same id. */
    ts_http_t r = au_call("GET", path, user_tok, NULL, "Last-Event-ID: 1");
    char want[64];
    snprintf(want, sizeof(want), "id: %s\nevent: canceled\n", first);
    assert_non_null(strstr(r.body, want));
    ts_http_dispose(&r);
}

/* The largest send buffer the kernel grows a TCP socket to (tcp_wmem's max); 4 MiB if unknown. */
static long tcp_wmem_max(void)
{
    long lo = 0, def = 0, max = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        if (fscanf(f, "%ld %ld %ld", &lo, &def, &max) != 3)
            max = 0;
        fclose(f);
    }
    return max > 0 ? max : 4L << 20;
}

/*
 * One listener that stops reading among three that read: the api holds at
 * most the cap (4 KiB here) of events for it beyond what the kernel buffers,
 * then drops it; the readers still get every event, then the terminal one.
 * The events published add up to more than the kernel can buffer for the
 * stalled socket (its send buffer at the most, plus its peer's small
 * receive buffer) and a megabyte more, so the api must either queue it all
 * (unbounded) or drop the stream: the stalled listener, read once everything
 * is over, ends without the last events and without the terminal event.
 */
static void test_a_stalled_listener_is_dropped_and_the_others_get_every_event(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37];
    au_create(t, AVATAR, id);
    sse_client_t fast[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        fast[i] = (sse_client_t){.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 120};
        snprintf(fast[i].url, sizeof(fast[i].url), "%s/v1/generations/%s/events", au_base, id);
        snprintf(fast[i].auth, sizeof(fast[i].auth), "Authorization: Bearer %s", t);
        pthread_create(&th[i], NULL, sse_run, &fast[i]);
    }
    /* The stalled one: a small receive buffer, read until its stream began, then never. */
    int port = atoi(strrchr(au_base, ':') + 1), small = 4096;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[2300];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/generations/%s/events HTTP/1.1\r\nHost: t\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     id, t);
    assert_int_equal(write(fd, req, (size_t)n), n);
    gf_buf_t slow = {0};
    char buf[65536];
    double end = ts_now() + 10;
    while ((slow.p == NULL || strstr(slow.p, "event: queued\n") == NULL) && ts_now() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) == 1) {
            ssize_t r = read(fd, buf, sizeof(buf));
            assert_true(r > 0);
            gf_buf_append(&slow, buf, (size_t)r);
        }
    }
    assert_non_null(strstr(slow.p, "event: queued\n"));
    for (int i = 0; i < 3; i++)
        assert_true(sse_wait_for(&fast[i], "event: queued\n", 10));

    /* The worker publishes 16 KiB progress events, one at a time. */
    size_t event_bytes = 16384;
    int events = (int)((tcp_wmem_max() + (1L << 20)) / (long)event_bytes) + 1;
    assert_true(events < 990); /* FARM_EVENTS_MAX_PER_GEN: 1,000 events a generation */
    char *data = malloc(event_bytes + 64);
    n = snprintf(data, event_bytes + 64, "{\"status\":\"running\",\"progress\":50,\"note\":\"");
    memset(data + n, 'n', event_bytes);
    snprintf(data + n + event_bytes, 64, "\"}");
    gf_err_t err = {0};
    queue_result_t qr = {0};
    uint64_t tok = pw_start(id);
    for (int i = 0; i < events; i++)
        assert_int_equal(queue_sync_event_append(pw_qs, id, tok, "progress", data, &qr, &err), 0);
    pw_settle_and_finish(id, tok, 1, NULL);
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_DONE, "{}", &qr, &err), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(fast[i].status, 200);
        assert_int_equal(pw_count_of(fast[i].got.p, "\nevent: progress\n"), (size_t)events);
        assert_non_null(strstr(fast[i].got.p, "\nevent: succeeded\ndata: {"));
    }

    /* Now the stalled listener reads: what the kernel held for it, then the end. */
    int ended = 0;
    end = ts_now() + 30;
    while (!ended && ts_now() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) == 1) {
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r <= 0)
                ended = 1;
            else
                gf_buf_append(&slow, buf, (size_t)r);
        }
    }
    assert_true(ended);
    assert_true(pw_count_of(slow.p, "\nevent: progress\n") < (size_t)events);
    assert_null(strstr(slow.p, "event: succeeded\n"));
    close(fd);
    free(data);
    gf_buf_dispose(&slow);
    for (int i = 0; i < 3; i++)
        gf_buf_dispose(&fast[i].got);
    free(t);
}

/*
 * With Postgres down, a generation stream's owner check fails inside the
 * store call itself: the stream was answered 503 and freed there, and the
 * caller then wrote into it (ASan: heap-use-after-free; the second such
 * request crashed the api). Found by a review of the callback paths.
 */
static void test_event_streams_while_postgres_is_down_are_503(void **state)
{
    (void)state;
    char id[37], path[128];
    create_canceled("{\"kind\":\"avatar\",\"prompt\":\"a fox\"}", id);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    for (int i = 0; i < 3; i++) {
        ts_http_t r = au_call("GET", path, user_tok, NULL, NULL);
        au_expect(&r, 503, NULL);
    }
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    /* Back: the same stream replays and ends with the terminal event. */
    double end = ts_now() + 20;
    long status = 0;
    while (status != 200 && ts_now() < end) {
        ts_http_t r = au_call("GET", path, user_tok, NULL, NULL);
        status = r.status;
        if (status == 200)
            assert_non_null(strstr(r.body, "event: canceled\n"));
        ts_http_dispose(&r);
        if (status != 200)
            usleep(200000);
    }
    assert_int_equal(status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_replay_and_resume_without_gaps),
        cmocka_unit_test(test_a_stream_ends_when_the_queues_history_went_back),
        cmocka_unit_test(test_a_stream_ends_when_the_history_went_back_to_its_own_id),
        cmocka_unit_test(test_the_list_shows_the_queues_word_as_get_does),
        cmocka_unit_test(test_queue_hand_backs_reach_clients_by_api_names),
        cmocka_unit_test(test_a_foreign_last_event_id_is_400_and_redis_stays_free),
        cmocka_unit_test(test_a_terminal_event_larger_than_the_cap_is_delivered),
        cmocka_unit_test(test_resuming_after_the_terminal_event_gets_nothing_more),
        cmocka_unit_test(test_a_terminal_event_made_after_expiry_is_not_made_again),
        cmocka_unit_test(test_a_stalled_listener_is_dropped_and_the_others_get_every_event),
        cmocka_unit_test(test_a_running_generation_back_in_the_queue_has_no_position),
        cmocka_unit_test(
            test_event_streams_while_postgres_is_down_are_503), /* last: stops Postgres */
    };
    return ts_run_tests_with_curl(tests, setup, teardown);
}
