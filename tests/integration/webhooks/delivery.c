/*
 * tests/integration/webhooks/delivery.c - webhook delivery end to end (API.md,
 * Webhooks; docs/webhooks.md): retries, 410, timeouts, the 24 h window, a
 * flushed Redis, crashes, hosts that hang, SSRF; what is sent is contract.c's.
 * A real farm-api and farm-workers on the fake provider, the fixture's Redis
 * and Postgres, and a receiver in node over real HTTP on loopback
 * (tests/support/webhooks_harness.c). FARM_WEBHOOK_ALLOW_PRIVATE=1 lets the
 * farm reach it, except in the SSRF tests, which run a farm without it.
 *
 * Where the schedule waits minutes or hours, the test moves the delivery's
 * own clock in Postgres (next_attempt_at, first_attempt_at) instead of
 * waiting: the schedule itself is asserted where it is set.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_harness.h"
#include "support.h"
#include "webhooks_harness.h"

/* 500, 500, 200: delivered on the third attempt, one webhook-id throughout. */
static void test_retried_until_delivered(void **state)
{
    (void)state;
    char id[37];
    wh_create("500,500,200", "retry", NULL, id);
    /* The first failure: again in about 5 s. */
    json_t *g = wh_wait_webhook(id, "pending", 1, 60);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(g, "webhook"), "last_status_code")),
        500);
    assert_non_null(wh_str(json_object_get(g, "webhook"), "next_attempt_at"));
    json_decref(g);
    /* The second, 5 s later: then about 5 min. */
    g = wh_wait_webhook(id, "pending", 2, 30);
    json_decref(g);
    wh_assert_delivery(id, "next_attempt_at BETWEEN now() + interval '280 s' AND now() + interval "
                           "'300 s'");
    /* Skip the 5 minutes: the third attempt is due now. */
    wh_update_delivery(id, "next_attempt_at = now()");
    g = wh_wait_webhook(id, "delivered", 3, 30);
    wh_assert_webhook(g, 3, 200);
    json_decref(g);
    json_t *got = wh_received("retry");
    assert_int_equal(json_array_size(got), 3);
    for (size_t i = 0; i < 3; i++) {
        wh_assert_signed(json_array_get(got, i));
        assert_string_equal(wh_str(json_array_get(got, i), "id"),
                            wh_str(json_array_get(got, 0), "id"));
    }
    json_decref(got);
}

/* 410: failed at once, never asked again. */
static void test_gone_stops_at_once(void **state)
{
    (void)state;
    char id[37], body[1024];
    /* With credentials in the URL, which the CLI below must not print. */
    snprintf(body, sizeof(body),
             AVATAR "\"webhook_url\":\"http://hookuser:hookpass@%s/hook/410?t=gone\"}",
             wh_hook_base + strlen("http://"));
    au_create(wh_tok, body, id);
    json_t *g = wh_wait_webhook(id, "failed", 1, 60);
    wh_assert_webhook(g, 1, 410);
    json_decref(g);
    sleep(6); /* past the first retry's time: none comes */
    json_t *got = wh_received("gone");
    assert_int_equal(json_array_size(got), 1);
    /* On-call's view and retry (docs/operations.md): the CLI lists it, puts it back, and it is
     * sent again with its webhook-id. */
    const char *wid = wh_str(json_array_get(got, 0), "id");
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks list --failed --generation %s | grep -q "
                           "'^%s gen=%s event=succeeded status=failed attempts=1 last_status=410'",
                           id, wid, id),
                     0);
    assert_int_equal(ts_sh("out=$(\"$FARM_TEST_CLI\" webhooks list --generation %s) && "
                           "echo \"$out\" | grep -q ' url=%s/hook/410' && "
                           "! echo \"$out\" | grep -q 'hook[up]'",
                           id, wh_hook_base),
                     0);
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry %s | grep -q '^1 failed delivery "
                           "pending again'",
                           wid),
                     0);
    json_t *again = wh_wait_received("gone", 2, 30);
    assert_string_equal(wh_str(json_array_get(again, 1), "id"), wid);
    json_decref(wh_wait_webhook(id, "failed", 2, 30));
    /* Retrying every failed delivery (a receiver's outage over) leaves a 410 failed: only
     * its id puts it back. */
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry --failed >/dev/null"), 0);
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks list --failed --generation %s | grep -q "
                           "'^%s gen=%s event=succeeded status=failed attempts=2'",
                           id, wid, id),
                     0);
    assert_int_not_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry %s >/dev/null 2>&1", id), 0);
    json_decref(again);
    json_decref(got);
}

/* A delivery that failed after a day of attempts, put back by `farm webhooks retry`: its
 * retries start again at 5 s, not at the 10 h its attempt count had reached. */
static void test_retry_starts_the_backoff_again(void **state)
{
    (void)state;
    char id[37];
    wh_create("410,503,200", "again", NULL, id);
    json_decref(wh_wait_webhook(id, "failed", 1, 60));
    wh_update_delivery(id, "attempts = 9"); /* as after 24 h of a receiver down */
    json_t *got = wh_received("again");
    const char *wid = wh_str(json_array_get(got, 0), "id");
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry %s | grep -q '^1 failed delivery "
                           "pending again'",
                           wid),
                     0);
    json_t *g = wh_wait_webhook(id, "delivered", 11, 30); /* 503, then 200 about 5 s later */
    wh_assert_webhook(g, 11, 200);
    json_decref(g);
    json_t *all = wh_wait_received("again", 3, 5);
    assert_string_equal(wh_str(json_array_get(all, 2), "id"), wid);
    json_decref(all);
    json_decref(got);
}

/*
 * One receiver back after an outage: `retry --failed --host` puts back its failed deliveries
 * only; another customer's old failures stay failed (`--failed` alone would send them all
 * again, each with a new day of retries).
 */
static void test_retry_of_one_host_leaves_the_others_failed(void **state)
{
    (void)state;
    char back[37], other[37];
    wh_create("503", "host-back", NULL, back);
    wh_create("503", "host-other", NULL, other);
    json_decref(wh_wait_webhook(back, "pending", 1, 60));
    json_decref(wh_wait_webhook(other, "pending", 1, 60));
    /* As after a day of 503s; the first one's receiver named another way (its own host). */
    wh_update_delivery(back,
                       "status = 'failed', url = replace(url, '//127.0.0.1:', '//localhost:')");
    wh_update_delivery(other, "status = 'failed'");
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry --failed --host LocalHost | "
                           "grep -q '^1 failed delivery pending again'"),
                     0);
    wh_assert_delivery(back, "status = 'pending'");
    wh_assert_delivery(other, "status = 'failed'");
    /* A port or a path would match nothing: refused, naming what --host takes. */
    assert_int_equal(ts_sh("out=$(\"$FARM_TEST_CLI\" webhooks retry --failed --host "
                           "localhost:8443 2>&1); test $? -eq 2 && echo \"$out\" | "
                           "grep -q 'without a port'"),
                     0);
    wh_assert_delivery(other, "status = 'failed'");
}

/* A worker without the api's FARM_FILE_SECRET would sign every file URL it sends in a webhook
 * with a key the api refuses: it does not start (status 2, naming the setting). */
static void test_a_worker_without_the_file_secret_does_not_start(void **state)
{
    (void)state;
    pid_t p = wh_start_worker_env("worker-no-file-secret",
                                  (const char *[]){"FARM_FILE_SECRET=short", NULL});
    assert_int_equal(ts_stop(p, 0, 20), 2);
    assert_int_equal(ts_sh("grep -q 'FARM_FILE_SECRET must be set' "
                           "\"$FARM_TEST_TMPDIR/worker-no-file-secret.log\""),
                     0);
}

/* A receiver that never answers: each attempt times out (2 s here) and is retried. */
static void test_timeouts_retried(void **state)
{
    (void)state;
    char id[37];
    wh_create("hang", "hang", NULL, id);
    json_t *g = wh_wait_webhook(id, "pending", 2, 60);
    json_t *w = json_object_get(g, "webhook");
    assert_true(json_is_null(json_object_get(w, "last_status_code")));
    json_decref(g);
    json_t *got = wh_received("hang");
    assert_true(json_array_size(got) >= 2);
    assert_string_equal(wh_str(json_array_get(got, 0), "id"), wh_str(json_array_get(got, 1), "id"));
    json_decref(got);
    wh_assert_delivery(id, "last_error LIKE '%timeout%'");
    /* Its retries end here, so they cannot reach the tests that follow. */
    wh_update_delivery(id, "status = 'failed'");
}

/* 24 h after the first attempt (the delivery's clock moved back 25 h): the next failure is the
 * last. */
static void test_window_exhausted(void **state)
{
    (void)state;
    char id[37];
    wh_create("500", "window", NULL, id);
    json_decref(wh_wait_webhook(id, "pending", 1, 60));
    wh_update_delivery(id, "first_attempt_at = first_attempt_at - interval '25 h', "
                           "created_at = created_at - interval '25 h', next_attempt_at = now()");
    json_t *g = wh_wait_webhook(id, "failed", 2, 30);
    json_decref(g);
    wh_assert_delivery(id, "last_error LIKE '%24 h%'");
}

/* Redis flushed after the terminal status: the outbox is in Postgres, the webhook still goes. */
static void test_redis_flushed(void **state)
{
    (void)state;
    char id[37];
    wh_create("500,200", "flush", NULL, id);
    json_decref(wh_wait_webhook(id, "pending", 1, 60)); /* terminal, first attempt failed */
    assert_int_equal(ts_sh("redis-cli -p %s flushall >/dev/null", ts_env("FARM_TEST_REDIS_PORT")),
                     0);
    json_t *g = wh_wait_webhook(id, "delivered", 2, 30);
    json_decref(g);
    json_t *got = wh_received("flush");
    assert_int_equal(json_array_size(got), 2);
    wh_assert_signed(json_array_get(got, 1));
    json_decref(got);
}

/* Many generations: as many distinct webhook-ids, each delivered once (no crash here). */
static void test_many_distinct_ids(void **state)
{
    (void)state;
    const char *n_env = getenv("FARM_TEST_WEBHOOK_MANY");
    int n = n_env ? atoi(n_env) : 200;
    char(*ids)[37] = calloc((size_t)n, 37);
    for (int i = 0; i < n; i++)
        wh_create("200", "many", NULL, ids[i]);
    json_t *got = wh_wait_received("many", (size_t)n, 600);
    sleep(1);
    json_decref(got);
    got = wh_received("many");
    assert_int_equal(json_array_size(got), n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(got, (size_t)i);
        wh_assert_signed(e);
        for (int k = 0; k < i; k++)
            if (strcmp(wh_str(json_array_get(got, (size_t)k), "id"), wh_str(e, "id")) == 0)
                fail_msg("webhook-id %s delivered twice", wh_str(e, "id"));
    }
    for (int i = 0; i < n; i++) { /* each generation's terminal event is among them */
        int found = 0;
        for (size_t k = 0; k < json_array_size(got) && !found; k++)
            found = strcmp(wh_str(json_object_get(json_object_get(json_array_get(got, k), "body"),
                                                  "data"),
                                  "id"),
                           ids[i]) == 0;
        assert_true(found);
    }
    json_decref(got);
    free(ids);
}

/* The most of `reqs` (the receiver's entries) that were open at once: each from at_ms to
 * closed_ms (still open: to the end), less `slack_ms` at its end, as a request that follows
 * a closed one may be read before that close is. */
static int most_open_at_once(json_t *reqs, double slack_ms)
{
    int most = 0;
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(reqs, i, a)
    {
        double at = json_number_value(json_object_get(a, "at_ms"));
        int open = 0;
        json_array_foreach(reqs, j, b)
        {
            double from = json_number_value(json_object_get(b, "at_ms"));
            json_t *closed = json_object_get(b, "closed_ms");
            if (from <= at && (json_is_null(closed) || json_number_value(closed) - slack_ms > at))
                open++;
        }
        most = open > most ? open : most;
    }
    return most;
}

/*
 * Per-host fairness: a receiver host that hangs (every request left unanswered until the
 * worker's 2 s timeout) has a backlog of 60 due deliveries, older than one to another host.
 * That delivery, due after all of them, still goes at once. The farm leases at most
 * FARM_WEBHOOK_PER_HOST of one host's deliveries at once (2 here, of each worker's 8 slots),
 * whichever worker claims them: with two workers polling every 50 ms the hanging host has
 * two requests open at a time, as the receiver sees them, not two per worker, and not every
 * slot for the minute its backlog takes to pass through them.
 */
static void test_a_hanging_receiver_holds_up_no_other_host(void **state)
{
    (void)state;
    char id[37], q[1024];
    wh_create("200", "fair-base", NULL, id);
    json_decref(wh_wait_webhook(id, "delivered", 1, 60));
    assert_int_equal(ts_stop(wh_worker_pid, SIGTERM, 30), 0);
    /* 60 image events to the hanging host (`localhost`), oldest first, then one to
     * `127.0.0.1`: the same receiver, another host. */
    snprintf(q, sizeof(q),
             "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data, "
             "next_attempt_at) SELECT gen_random_uuid(), '%s', 'image', s, 'image', "
             "CASE WHEN s <= 60 THEN 'http://localhost:%s/hook/hang?t=fair-hang' "
             "ELSE '%s/hook/200?t=fair-ok' END, '{}', now() - make_interval(secs => 100 - s) "
             "FROM generate_series(1, 61) s",
             id, strrchr(wh_hook_base, ':') + 1, wh_hook_base);
    assert_int_equal(wh_sql(q), 0);
    const char *const env[] = {ALLOW_PRIVATE, "FARM_WEBHOOK_CONCURRENCY=8",
                               "FARM_WEBHOOK_PER_HOST=2", NULL};
    wh_worker_pid = wh_start_worker_env("worker-fair", env);
    pid_t second = wh_start_worker_env("worker-fair-2", env);
    double t0 = ts_now();
    json_decref(wh_wait_received("fair-ok", 1, 60));
    double waited = ts_now() - t0;
    /* 70 polls of each worker, past the first requests' 2 s timeouts: long enough for a
     * worker slow to start (nothing says when its first poll is) to have claimed. */
    usleep(3500000);
    json_t *hung = wh_received("fair-hang");
    size_t n_hung = json_array_size(hung);
    int most = most_open_at_once(hung, 100);
    json_decref(hung);
    int rc = ts_stop(second, SIGTERM, 30);
    /* Its backlog ends here, so it cannot reach the tests that follow. */
    assert_int_equal(
        wh_sql("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL "
               "WHERE url LIKE '%fair-hang'"),
        0);
    assert_int_equal(rc, 0);
    /* Before the bound: 2 s timeouts, 2 at a time through 60 rows, about 60 s. */
    if (waited > 10)
        fail_msg("the other host's delivery waited %.1f s behind the hanging host", waited);
    /* Per worker instead of per farm: 4 open at once. */
    if (n_hung < 1 || most > 2)
        fail_msg("the hanging host got %zu requests, %d open at once (bound: 2)", n_hung, most);
}

/*
 * The worker that finishes a generation sends its terminal webhook itself, leased in the
 * finish's transaction: it arrives though that worker's next poll is a minute away. The
 * lease fences it as a claim's does: another worker, polling every 50 ms, does not send
 * the same attempt while it is held; the attempt is recorded once, by its holder.
 */
static void test_finishing_worker_sends_its_own(void **state)
{
    (void)state;
    char id[37];
    assert_int_equal(ts_stop(wh_worker_pid, SIGTERM, 30), 0);
    /* A lease must outlast a request and the poll that records it: 2 s + 60 s + 5 s. */
    wh_worker_pid = wh_start_worker_env(
        "worker-slow-poll", (const char *[]){ALLOW_PRIVATE, "FARM_WEBHOOK_POLL_MS=60000",
                                             "FARM_WEBHOOK_LEASE_S=70", NULL});
    wh_create("200", "own", NULL, id);
    json_decref(wh_wait_received("own", 1, 30)); /* no poll took it: its poll is 60 s away */
    pid_t other = wh_start_worker("worker-polling", ALLOW_PRIVATE);
    usleep(3000000); /* 60 polls of the other worker, all within the holder's 70 s lease */
    json_t *got = wh_received("own");
    assert_int_equal(json_array_size(got), 1);
    json_decref(got);
    /* The holder records what it delivered as it stops (no poll of its own came). */
    int rc = ts_stop(wh_worker_pid, SIGTERM, 30);
    wh_worker_pid = other;
    assert_int_equal(rc, 0);
    json_t *g = wh_wait_webhook(id, "delivered", 1, 10);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(g, "webhook"), "attempts")),
                     1);
    json_decref(g);
    got = wh_received("own");
    assert_int_equal(json_array_size(got), 1);
    wh_assert_signed(json_array_get(got, 0));
    json_decref(got);
}

/*
 * An attempt is recorded at the poll after its answer, inside its lease: a lease that cannot
 * cover a request (2 s) and a poll (60 s) plus 5 s stops the worker at start, exit 2, saying
 * so. It would let another worker send an attempt again while its holder still waits to
 * record it.
 */
static void test_a_lease_shorter_than_request_and_poll_is_refused(void **state)
{
    (void)state;
    pid_t p = wh_start_worker_env(
        "worker-short-lease", (const char *[]){ALLOW_PRIVATE, "FARM_WEBHOOK_POLL_MS=60000", NULL});
    int status = 0;
    pid_t got = 0;
    double end = ts_now() + 20;
    while (ts_now() < end && (got = waitpid(p, &status, WNOHANG)) == 0)
        usleep(100 * 1000);
    if (got == 0)
        ts_stop(p, SIGKILL, 5);
    assert_int_equal(got, p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_int_equal(ts_sh("grep -q 'FARM_WEBHOOK_LEASE_S=10 must exceed "
                           "FARM_WEBHOOK_TIMEOUT_S=2 plus FARM_WEBHOOK_POLL_MS=60000' '%s/%s.log'",
                           ts_env("FARM_TEST_TMPDIR"), "worker-short-lease"),
                     0);
}

/* kill -9 of the worker whose request is in flight: another worker delivers, same webhook-id. */
static void test_worker_killed_mid_request(void **state)
{
    (void)state;
    char id[37];
    wh_create("hang,200", "kill", NULL, id);
    json_decref(wh_wait_received("kill", 1, 60)); /* worker1's request hangs at the receiver */
    kill(wh_worker_pid, SIGKILL);
    ts_stop(wh_worker_pid, SIGKILL, 10);
    wh_worker_pid = wh_start_worker("worker2", ALLOW_PRIVATE);
    json_t *g = wh_wait_webhook(id, "delivered", 1, 60); /* after worker1's lease (10 s) ran out */
    json_decref(g);
    json_t *got = wh_received("kill");
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(wh_str(json_array_get(got, 0), "id"), wh_str(json_array_get(got, 1), "id"));
    wh_assert_signed(json_array_get(got, 1));
    json_decref(got);
}

/* How many of generation `id`'s deliveries satisfy `cond` (an SQL condition); -1: unknown. */
static long long deliveries_where(const char *id, const char *cond)
{
    long long n = -1;
    if (ts_sh_number(&n,
                     "psql -X -qtA \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                     "webhook_deliveries WHERE generation_id = '%s' AND %s\"",
                     id, cond) != 0)
        return -1;
    return n;
}

/*
 * More attempts end between two polls than one claim records
 * (STORE_WEBHOOK_RESULTS_MAX, 256): 600 due deliveries, a worker that sends
 * all of them at once (concurrency 1000) to a receiver that answers at once,
 * and a lease (13 s) under three polls (5 s). A claim that records a full
 * batch is followed by another at once, so every attempt is recorded within
 * its lease and none is sent twice; one batch per poll would record the last
 * 88 at the third poll, past the lease, and another claim would send them
 * again.
 */
static void test_more_attempts_than_a_batch_recorded_within_the_lease(void **state)
{
    (void)state;
    enum { N = 600 };
    char id[37], q[1024];
    wh_create("200", "burst-gen", NULL, id);
    json_decref(wh_wait_webhook(id, "delivered", 1, 60));
    assert_int_equal(ts_stop(wh_worker_pid, SIGTERM, 40), 0);
    wh_worker_pid = 0;
    snprintf(q, sizeof(q),
             "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data) "
             "SELECT gen_random_uuid(), '%s', 'image', i, 'image', '%s/hook/200?t=burst', "
             "jsonb_build_object('id', '%s', 'index', i) FROM generate_series(1, %d) i",
             id, wh_hook_base, id, N);
    assert_int_equal(wh_sql(q), 0);
    double start = ts_now();
    wh_worker_pid = wh_start_worker_env(
        "worker-burst", (const char *[]){ALLOW_PRIVATE, "FARM_WEBHOOK_CONCURRENCY=1000",
                                         "FARM_WEBHOOK_PER_HOST=1000", "FARM_WEBHOOK_POLL_MS=5000",
                                         "FARM_WEBHOOK_LEASE_S=13", NULL});
    long long done = 0;
    while (ts_now() < start + 13 &&
           (done = deliveries_where(id, "kind = 'image' AND status = 'delivered'")) < N)
        usleep(200000);
    if (done != N) {
        wh_dump_logs();
        fail_msg("%lld of %d attempts recorded within the 13 s lease", done, N);
    }
    assert_int_equal(deliveries_where(id, "kind = 'image' AND attempts <> 1"), 0);
    json_t *got = wh_received("burst");
    assert_int_equal(json_array_size(got), N);
    json_decref(got);
}

/*
 * SSRF, on a farm without FARM_WEBHOOK_ALLOW_PRIVATE: what is knowable at submit is a 400
 * naming webhook_url; a name that resolves to loopback fails at connect with the reason
 * recorded, and nothing reaches the receiver.
 */
static void test_ssrf_refused(void **state)
{
    (void)state;
    /* Only strict processes from here on: the lenient worker would deliver to loopback. */
    assert_int_equal(ts_stop(wh_worker_pid, SIGTERM, 40), 0);
    wh_worker_pid = wh_start_worker("strict-worker", NULL);
    wh_lenient_api_pid = wh_api_pid;
    const char *api_extra[] = {FARM_ENV, NULL};
    wh_api_pid = au_api_start(api_extra);
    assert_true(wh_api_pid > 0);
    static const char *const refused[] = {
        "http://example.com/hook",   "https://127.0.0.1/hook",
        "https://[::1]/hook",        "https://10.0.0.1/hook",
        "https://169.254.169.254/x", "https://[::ffff:127.0.0.1]/x",
        "https://192.168.0.10/hook", NULL};
    for (int i = 0; refused[i]; i++) {
        char body[512];
        snprintf(body, sizeof(body), AVATAR "\"webhook_url\":\"%s\"}", refused[i]);
        ts_http_t r = au_call("POST", "/v1/generations", wh_tok, body, NULL);
        if (r.status != 400)
            fail_msg("%s: %ld %s", refused[i], r.status, r.body);
        json_t *e = json_loads(r.body, 0, NULL);
        assert_string_equal(wh_str(json_object_get(e, "error"), "field"), "webhook_url");
        json_decref(e);
        ts_http_dispose(&r);
    }
    /* localhost resolves to loopback: accepted, then refused at connect. */
    char body[512], id[37];
    snprintf(body, sizeof(body), AVATAR "\"webhook_url\":\"https://localhost:%s/hook/200?t=ssrf\"}",
             strrchr(wh_hook_base, ':') + 1);
    au_create(wh_tok, body, id);
    json_t *g = wh_wait_webhook(id, "failed", 1, 60);
    json_decref(g);
    wh_assert_delivery(id, "last_error LIKE '%not a public address%'");
    json_t *got = wh_received("ssrf");
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
    assert_int_equal(ts_stop(wh_lenient_api_pid, SIGTERM, 15), 0);
    wh_lenient_api_pid = 0;
}

/*
 * SSRF behind a proxy: a strict worker whose environment names an https proxy
 * (HTTPS_PROXY, which libcurl would follow) still checks the receiver's own
 * address at connect time. A name that resolves to loopback is refused as not
 * public, and the proxy (a listener here that only counts connections) is
 * never dialed: through it, the check would have seen the proxy's address.
 */
static void test_ssrf_refused_behind_a_proxy(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char proxy[64];
    snprintf(proxy, sizeof(proxy), "HTTPS_PROXY=http://127.0.0.1:%d", ntohs(sa.sin_port));
    /* Only strict processes since test_ssrf_refused; this one is behind the proxy. */
    assert_int_equal(ts_stop(wh_worker_pid, SIGTERM, 40), 0);
    wh_worker_pid = wh_start_worker_env("strict-worker-proxy", (const char *[]){proxy, NULL});
    char body[512], id[37];
    snprintf(body, sizeof(body),
             AVATAR "\"webhook_url\":\"https://localhost:%s/hook/200?t=ssrf-proxy\"}",
             strrchr(wh_hook_base, ':') + 1);
    au_create(wh_tok, body, id);
    int proxied = 0;
    json_t *g = NULL;
    double end = ts_now() + 60;
    for (;;) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        proxied = poll(&p, 1, 0) > 0;
        json_decref(g);
        g = wh_get_generation(id);
        json_t *w = json_object_get(g, "webhook");
        if (proxied || json_integer_value(json_object_get(w, "attempts")) >= 1 || ts_now() > end)
            break;
        usleep(100000);
    }
    close(lfd);
    json_t *w = json_object_get(g, "webhook");
    if (proxied || strcmp(wh_str(w, "status") ?: "", "failed") != 0) {
        char *text = json_dumps(w, 0), seen[512];
        snprintf(seen, sizeof(seen), "%s", text ? text : "null");
        free(text);
        json_decref(g);
        wh_dump_logs();
        fail_msg("the proxy was %sdialed; webhook %s, not failed", proxied ? "" : "not ", seen);
    }
    json_decref(g);
    wh_assert_delivery(id, "last_error LIKE '%not a public address%'");
    json_t *got = wh_received("ssrf-proxy");
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
    /* The operator is told at start that deliveries do not use the proxy. */
    assert_int_equal(ts_sh("grep -q 'HTTPS_PROXY is set: provider calls use it, but webhook "
                           "deliveries' \"$FARM_TEST_TMPDIR/strict-worker-proxy.log\""),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retried_until_delivered),
        cmocka_unit_test(test_gone_stops_at_once),
        cmocka_unit_test(test_retry_starts_the_backoff_again),
        cmocka_unit_test(test_retry_of_one_host_leaves_the_others_failed),
        cmocka_unit_test(test_timeouts_retried),
        cmocka_unit_test(test_window_exhausted),
        cmocka_unit_test(test_redis_flushed),
        cmocka_unit_test(test_many_distinct_ids),
        cmocka_unit_test(test_a_hanging_receiver_holds_up_no_other_host),
        cmocka_unit_test(test_finishing_worker_sends_its_own),
        cmocka_unit_test(test_a_lease_shorter_than_request_and_poll_is_refused),
        cmocka_unit_test(test_worker_killed_mid_request),
        cmocka_unit_test(test_more_attempts_than_a_batch_recorded_within_the_lease),
        cmocka_unit_test(test_ssrf_refused),
        cmocka_unit_test(test_ssrf_refused_behind_a_proxy),
        cmocka_unit_test(test_a_worker_without_the_file_secret_does_not_start),
    };
    return cmocka_run_group_tests(tests, wh_setup, wh_teardown);
}
