/*
 * tests/integration/store/webhooks.c - the webhook outbox's statements against the fixture's
 * real Postgres: the finishing worker's lease of its terminal delivery, claims fenced by
 * lease tokens, and the claim's per-host bound, which holds across deliverers (workers) and
 * across two claims at once, and passes over a full host's backlog without reading it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_util.h"
#include "support.h"

static const char *const OUTPUT_JSON =
    "[{\"index\":0,\"pose\":0,\"variant\":\"original\",\"format\":\"png\",\"width\":8,"
    "\"height\":8,\"bytes\":10,\"sha256\":\"00\",\"storage_key\":\"k\",\"seed\":1}]";

/* A new generation of a new user with webhook_url `url`, accepted and started with token 1. */
static void started_with_webhook_to(char user[37], char gen[37], const char *url)
{
    ts_new_ids(2, user, gen);
    store_accept_t a = ts_store_avatar(gen, user, 1, 10);
    a.params_json = "{\"prompt\":\"x\"}";
    a.webhook_url = url;
    store_call_t c;
    store_call_accept(&c, &a);
    assert_int_equal(ts_store_run(&c), 0);
    store_call_dispose(&c);
    assert_int_equal(ts_store_start(gen, 1), 0);
}

static void started_with_webhook(char user[37], char gen[37])
{
    started_with_webhook_to(user, gen, "https://hooks.example.com/farm");
}

/* The one value `sql` answers, as text, into out. */
static void sql_value(const char *sql, char *out, size_t n)
{
    PGconn *pg = ts_pg_connect();
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
}

/* The terminal delivery's row, as "status attempts last_status_code". */
static void delivery_row(const char *id, char *out, size_t n)
{
    static const char query[] = "SELECT status || ' ' || attempts || ' ' || "
                                "coalesce(last_status_code, 0) FROM webhook_deliveries "
                                "WHERE id = '%s'";
    char sql[sizeof(query) + 40];
    snprintf(sql, sizeof(sql), query, id);
    sql_value(sql, out, n);
}

/* The `image` webhooks of a pose generation (2 poses x 2 images) carry what the `image`
 * event does: the image's pose as the worker numbers it, and the progress after it. */
static void test_image_webhooks_carry_the_pose_and_progress(void **state)
{
    (void)state;
    char user[37], gen[37];
    ts_new_ids(2, user, gen);
    store_accept_t a = ts_store_avatar(gen, user, 4, 10);
    a.kind = "pose";
    a.params_json =
        "{\"prompt\":\"x\",\"count\":2,\"poses\":[{\"preset\":\"a\"},{\"preset\":\"b\"}]}";
    a.webhook_url = "https://hooks.example.com/farm";
    a.webhook_events = "{image}";
    store_call_t c;
    store_call_accept(&c, &a);
    assert_int_equal(ts_store_run(&c), 0);
    store_call_dispose(&c);
    assert_int_equal(ts_store_start(gen, 1), 0);
    store_call_image(&c, gen, 1, 3, 0, "{\"code\":\"provider_error\"}"); /* pose 1, failed */
    assert_int_equal(ts_store_run(&c), 0);
    store_call_dispose(&c);
    store_call_image_done(&c, gen, 1, 1, OUTPUT_JSON); /* pose 0, its second image */
    assert_int_equal(ts_store_run(&c), 0);
    store_call_dispose(&c);
    char sql[300];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg((data->>'index') || ':' || (data->>'pose') || ':' || "
             "(data->>'progress'), ' ' ORDER BY data->>'index') FROM webhook_deliveries "
             "WHERE generation_id = '%s' AND event = 'image'",
             gen);
    char got[64];
    sql_value(sql, got, sizeof(got));
    assert_string_equal(got, "1:0:50 3:1:25");
}

/*
 * The finishing worker leases its generation's terminal webhook in the finish's
 * transaction: fenced as a claim's lease is, so no claim (another worker's poll) takes
 * the same attempt and only its own lease token records it, with a later claim.
 */
static void test_image_done_finish_leases_the_terminal_webhook(void **state)
{
    (void)state;
    char user[37], gen[37], id[37], row[64];
    started_with_webhook(user, gen);
    store_call_t c;
    store_call_image_done_finish(&c, gen, 1, 0, OUTPUT_JSON, 60, 0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.image.finished, 1);
    assert_int_equal(c.res.image.webhook.n, 1);
    const store_webhook_claimed_t *w = &c.res.image.webhook.items[0];
    assert_string_equal(w->generation_id, gen);
    assert_string_equal(w->event, "succeeded");
    assert_string_equal(w->url, "https://hooks.example.com/farm");
    assert_non_null(strstr(w->data, "\"status\":\"succeeded\"")); /* GET's shape, read now */
    assert_int_equal(w->attempts, 0);
    assert_true(w->lease_token > 0);
    snprintf(id, sizeof(id), "%s", w->id);
    long long token = w->lease_token;
    store_call_dispose(&c);

    /* Another worker's poll does not take it: it is leased. */
    store_call_webhook_claim(&c, 1000, 60);
    assert_int_equal(ts_store_run(&c), 0);
    for (size_t i = 0; i < c.res.webhook_claim.n; i++)
        assert_string_not_equal(c.res.webhook_claim.items[i].id, id);
    store_call_dispose(&c);
    /* The same call again (an answer lost on the way) leases nothing more. */
    store_call_image_done_finish(&c, gen, 1, 0, OUTPUT_JSON, 60, 0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.image.webhook.n, 0);
    store_call_dispose(&c);

    /* An attempt under another token is stale; the lease's own is recorded. */
    store_webhook_outcome_t o[2] = {
        {.id = id, .lease_token = token + 1, .outcome = "failed", .status_code = 410},
        {.id = id, .lease_token = token, .outcome = "delivered", .status_code = 204}};
    assert_int_equal(
        store_call_webhook_claim_after(
            &c, &(store_webhook_claim_req_t){.lease_s = 60, .results = o, .nresults = 2}),
        0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.webhook_claim.n, 0); /* limit 0: it only records */
    assert_int_equal(c.res.webhook_claim.n_results, 2);
    assert_int_equal(c.res.webhook_claim.results[0].recorded, 0);
    assert_int_equal(c.res.webhook_claim.results[1].recorded, 1);
    assert_true(c.res.webhook_claim.results[1].lag_s >= 0); /* a terminal event delivered */
    store_call_dispose(&c);
    delivery_row(id, row, sizeof(row));
    assert_string_equal(row, "delivered 1 204");
    /* Recorded once: the same attempt again is stale and changes nothing. */
    assert_int_equal(
        store_call_webhook_claim_after(
            &c, &(store_webhook_claim_req_t){.lease_s = 60, .results = &o[1], .nresults = 1}),
        0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.webhook_claim.results[0].recorded, 0);
    store_call_dispose(&c);
    delivery_row(id, row, sizeof(row));
    assert_string_equal(row, "delivered 1 204");
}

/* Without a lease asked for, the terminal webhook is left to the claims. */
static void test_image_done_finish_without_lease_leaves_it_to_claims(void **state)
{
    (void)state;
    char user[37], gen[37];
    started_with_webhook(user, gen);
    store_call_t c;
    store_call_image_done_finish(&c, gen, 1, 0, OUTPUT_JSON, 0, 0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.image.webhook.n, 0);
    store_call_dispose(&c);
    store_call_webhook_claim(&c, 1000, 60);
    assert_int_equal(ts_store_run(&c), 0);
    int found = 0;
    for (size_t i = 0; i < c.res.webhook_claim.n; i++)
        found += strcmp(c.res.webhook_claim.items[i].generation_id, gen) == 0;
    assert_int_equal(found, 1);
    store_call_dispose(&c);
}

/* Runs `sql` on a connection of its own; it must succeed. */
static void exec_ok(const char *sql)
{
    PGconn *pg = ts_pg_connect();
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(pg);
}

/* Pending image deliveries of `gen` (numbered after its others), one per URL of the
 * NULL-terminated `urls`, due oldest first in that order. */
static void add_deliveries(const char *gen, const char *const *urls)
{
    char sql[2048];
    int n = snprintf(sql, sizeof(sql),
                     "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, "
                     "data, next_attempt_at) SELECT gen_random_uuid(), g, 'image', n + (SELECT "
                     "coalesce(max(seq), 0) FROM webhook_deliveries WHERE generation_id = g), "
                     "'image', u, '{}', now() - make_interval(secs => 100 - n) FROM (SELECT "
                     "'%s'::uuid AS g) gg, unnest(ARRAY[",
                     gen);
    for (size_t i = 0; urls[i]; i++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s'%s'", i ? "," : "", urls[i]);
    snprintf(sql + n, sizeof(sql) - (size_t)n, "]) WITH ORDINALITY x(u, n)");
    exec_ok(sql);
}

/* Claim `c`'s items that are `gen`'s deliveries to `host`, appended to `got` (at most `max`
 * in all) as outcomes `outcome`, ids copied into `ids`; how many there were. */
static int claimed_of(const store_call_t *c, const char *gen, const char *host,
                      store_webhook_outcome_t *got, char (*ids)[37], size_t *n_got, size_t max,
                      const char *outcome)
{
    int n = 0;
    for (size_t i = 0; i < c->res.webhook_claim.n; i++) {
        const store_webhook_claimed_t *w = &c->res.webhook_claim.items[i];
        if (strcmp(w->generation_id, gen) != 0 || !w->host || strcmp(w->host, host) != 0)
            continue;
        n++;
        if (got == NULL || *n_got >= max)
            continue;
        snprintf(ids[*n_got], 37, "%s", w->id);
        got[*n_got] = (store_webhook_outcome_t){.id = ids[*n_got],
                                                .lease_token = w->lease_token,
                                                .outcome = outcome,
                                                .status_code = 204};
        ++*n_got;
    }
    return n;
}

/* Claims as `q` says and counts `gen`'s deliveries to `host` it took (kept in `got`, if
 * given, as delivered). */
static int claim_of(const store_webhook_claim_req_t *q, const char *gen, const char *host,
                    store_webhook_outcome_t *got, char (*ids)[37], size_t *n_got, size_t max)
{
    store_call_t c;
    assert_int_equal(store_call_webhook_claim_after(&c, q), 0);
    assert_int_equal(ts_store_run(&c), 0);
    int n = claimed_of(&c, gen, host, got, ids, n_got, max, "delivered");
    store_call_dispose(&c);
    return n;
}

/*
 * The claim's per-host bound: a host's deliveries come at most up to `per_host` leased by
 * the whole farm, and never more than `per_host` with what this deliverer holds of it,
 * oldest first, so a long backlog to one receiver (one that hangs) never keeps another
 * host's due delivery from the claim, however many workers claim it. The host is the URL's,
 * lower-cased, without user or port.
 */
static void test_webhook_claim_bounds_each_host(void **state)
{
    (void)state;
    char user[37], gen[37];
    started_with_webhook(user, gen);
    add_deliveries(
        gen, (const char *const[]){"https://hang.example/h?1", "https://hang.example/h?2",
                                   "https://hang.example/h?3", "https://hang.example/h?4",
                                   "https:///hang.example/h5", "HTTPS://User@Hang.EXAMPLE:8443/x",
                                   "https://ok.example/hook", NULL});
    store_webhook_host_t busy[] = {{.host = "hang.example", .held = 1}};
    store_webhook_claim_req_t q = {
        .limit = 1000, .lease_s = 60, .per_host = 2, .busy = busy, .nbusy = 1};
    store_webhook_outcome_t held[8];
    char ids[8][37];
    size_t n_held = 0;
    store_call_t c;
    assert_int_equal(store_call_webhook_claim_after(&c, &q), 0);
    assert_int_equal(ts_store_run(&c), 0);
    /* 2 - the 1 it holds; ok.example's, past hang.example's older rows. */
    assert_int_equal(claimed_of(&c, gen, "hang.example", held, ids, &n_held, 8, "delivered"), 1);
    assert_int_equal(claimed_of(&c, gen, "ok.example", NULL, NULL, NULL, 0, NULL), 1);
    store_call_dispose(&c);
    /* A host it holds up to the bound: none of it. */
    busy[0].held = 2;
    assert_int_equal(claim_of(&q, gen, "hang.example", NULL, NULL, NULL, 0), 0);
    /* Another deliverer, holding none: the farm holds 1 of the 2, so one more, then none. */
    q.nbusy = 0;
    assert_int_equal(claim_of(&q, gen, "hang.example", held, ids, &n_held, 8), 1);
    assert_int_equal(claim_of(&q, gen, "hang.example", NULL, NULL, NULL, 0), 0);
    /* Their attempts recorded by the claim that follows: their room is free again in it.
     * Two, then the last two (three slashes; capitals, a user and a port), then none. */
    static const int want[] = {2, 2, 0};
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        store_webhook_outcome_t rec[8];
        char rec_ids[8][37];
        memcpy(rec, held, n_held * sizeof(*held));
        memcpy(rec_ids, ids, sizeof(ids));
        for (size_t i = 0; i < n_held; i++)
            rec[i].id = rec_ids[i];
        q.results = rec;
        q.nresults = n_held;
        n_held = 0;
        assert_int_equal(claim_of(&q, gen, "hang.example", held, ids, &n_held, 8), want[k]);
    }
}

/*
 * Two claims at once: the first, uncommitted, has leased one of a host's 6 due deliveries
 * (a claim of 1, whose scan locks the oldest). The second neither waits for it nor takes
 * two of the host's unlocked ones (3 leased of a room of 2), and takes another host's (due
 * since). Once the first commits, the farm holds 1 of the host: a claim takes 1 more.
 */
static void test_two_claims_at_once_never_both_fill_a_host(void **state)
{
    (void)state;
    char user[37], gen[37];
    started_with_webhook(user, gen);
    add_deliveries(gen,
                   (const char *const[]){"https://race.example/1", "https://race.example/2",
                                         "https://race.example/3", "https://race.example/4",
                                         "https://race.example/5", "https://race.example/6", NULL});
    PGconn *first = ts_pg_connect();
    PGresult *r = PQexec(first, "BEGIN");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM jsonb_array_elements(farm_webhook_claim(1, 60, NULL, 2, "
             "NULL)->'items') i WHERE i->>'generation_id' = '%s' AND i->>'host' = "
             "'race.example'",
             gen);
    r = PQexec(first, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    add_deliveries(gen, (const char *const[]){"https://calm.example/1", NULL});

    store_webhook_claim_req_t q = {.limit = 1000, .lease_s = 60, .per_host = 2};
    double t0 = ts_now();
    store_call_t c;
    assert_int_equal(store_call_webhook_claim_after(&c, &q), 0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_true(ts_now() - t0 < 5); /* it did not wait for the first */
    assert_int_equal(claimed_of(&c, gen, "race.example", NULL, NULL, NULL, 0, NULL), 0);
    assert_int_equal(claimed_of(&c, gen, "calm.example", NULL, NULL, NULL, 0, NULL), 1);
    store_call_dispose(&c);

    r = PQexec(first, "COMMIT");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(first);
    assert_int_equal(claim_of(&q, gen, "race.example", NULL, NULL, NULL, 0), 1);
    assert_int_equal(claim_of(&q, gen, "race.example", NULL, NULL, NULL, 0), 0);
}

/*
 * The finishing worker's lease of its terminal delivery keeps the farm's bound of its host
 * as a claim does: with the host's room leased by another deliverer it leases nothing (the
 * delivery is left to the claims, pending and unleased); once that attempt is recorded,
 * the next finish leases its own.
 */
static void test_the_finishing_lease_keeps_the_host_bound(void **state)
{
    (void)state;
    char user[37], g1[37], g2[37], other[37];
    started_with_webhook_to(user, g1, "https://bound.example/farm");
    started_with_webhook_to(user, g2, "https://bound.example/farm");
    started_with_webhook_to(user, other, "https://elsewhere.example/farm");
    add_deliveries(other, (const char *const[]){"https://bound.example/image", NULL});
    store_webhook_claim_req_t q = {.limit = 1000, .lease_s = 60, .per_host = 1};
    store_webhook_outcome_t held[1];
    char ids[1][37];
    size_t n_held = 0;
    assert_int_equal(claim_of(&q, other, "bound.example", held, ids, &n_held, 1), 1);

    store_call_t c;
    store_call_image_done_finish(&c, g1, 1, 0, OUTPUT_JSON, 60, 1);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.image.finished, 1);
    assert_int_equal(c.res.image.webhook.n, 0); /* the farm holds bound.example's 1 */
    store_call_dispose(&c);
    /* That attempt recorded (a claim of nothing that only records it): room again. The
     * first finish's delivery waits for a claim; the next finish leases its own. */
    q.limit = 0;
    q.results = held;
    q.nresults = n_held;
    assert_int_equal(claim_of(&q, other, "bound.example", NULL, NULL, NULL, 0), 0);
    store_call_image_done_finish(&c, g2, 1, 0, OUTPUT_JSON, 60, 1);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.image.webhook.n, 1);
    assert_string_equal(c.res.image.webhook.items[0].generation_id, g2);
    store_call_dispose(&c);
    q = (store_webhook_claim_req_t){.limit = 1000, .lease_s = 60, .per_host = 2};
    assert_int_equal(claim_of(&q, g1, "bound.example", NULL, NULL, NULL, 0), 1);
}

/* One claim locks at most 64 hosts: 70 hosts' due deliveries (older than the others here) go
 * 64, then the other 6. */
static void test_a_claim_locks_at_most_64_hosts(void **state)
{
    (void)state;
    char user[37], gen[37], sql[512];
    started_with_webhook_to(user, gen, "https://many.example/farm");
    snprintf(sql, sizeof(sql),
             "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data, "
             "next_attempt_at) SELECT gen_random_uuid(), '%s', 'image', s, 'image', "
             "'https://h' || s || '.many.example/x', '{}', now() - interval '1 hour' "
             "FROM generate_series(1, 70) s",
             gen);
    exec_ok(sql);
    static const size_t want[] = {64, 6, 0};
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        store_call_t c;
        assert_int_equal(
            store_call_webhook_claim_after(
                &c, &(store_webhook_claim_req_t){.limit = 1000, .lease_s = 60, .per_host = 8}),
            0);
        assert_int_equal(ts_store_run(&c), 0);
        size_t n = 0;
        for (size_t i = 0; i < c.res.webhook_claim.n; i++)
            n += strcmp(c.res.webhook_claim.items[i].generation_id, gen) == 0;
        store_call_dispose(&c);
        assert_int_equal(n, want[k]);
    }
}

/* Runs `sql` on `pg`; it must succeed. */
static void pg_run(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

/* The rows of webhook_deliveries that `pg`'s backend has read since its stats were last
 * flushed, by any scan (pg_stat_xact_user_tables: its own, no other backend's). */
static long long deliveries_read(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables "
                             "WHERE relname = 'webhook_deliveries'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/*
 * A host at its bound with a long due backlog (a receiver that hangs, whose day of
 * deliveries `farm webhooks retry` made due at once) does not make every claim read that
 * backlog: a claim takes another host's delivery, due after all 20,000 of them, and reads
 * less than a tenth of the backlog for it (the window of due rows before it walks host by
 * host; the rows the farm has leased).
 */
static void test_a_full_hosts_backlog_is_not_read_by_claims(void **state)
{
    (void)state;
    char user[37], hang[37], ok[37], sql[1024];
    started_with_webhook_to(user, hang, "https://hang.example/farm");
    started_with_webhook_to(user, ok, "https://ok.example/farm");
    PGconn *pg = ts_pg_connect();
    snprintf(sql, sizeof(sql),
             "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data, "
             "next_attempt_at) SELECT gen_random_uuid(), '%s', 'image', s, 'image', "
             "'https://hang.example/farm', '{}', now() - interval '1 hour' + s * interval '1 ms' "
             "FROM generate_series(1, 20000) s",
             hang);
    pg_run(pg, sql);
    /* Its bound of 2, leased by other deliverers. */
    pg_run(pg, "UPDATE webhook_deliveries SET lease_token = nextval('webhook_lease_seq'), "
               "lease_until = now() + interval '10 minutes' WHERE id IN (SELECT id FROM "
               "webhook_deliveries WHERE host = 'hang.example' AND status = 'pending' "
               "ORDER BY next_attempt_at LIMIT 2)");
    snprintf(sql, sizeof(sql),
             "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data, "
             "next_attempt_at) VALUES (gen_random_uuid(), '%s', 'image', 1, 'image', "
             "'https://ok.example/farm', '{}', now() - interval '1 second')",
             ok);
    pg_run(pg, sql);
    pg_run(pg, "ANALYZE webhook_deliveries");

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FILTER (WHERE i->>'generation_id' = '%s'), count(*) FILTER "
             "(WHERE i->>'host' = 'hang.example') FROM jsonb_array_elements(farm_webhook_claim("
             "64, 60, NULL, 2, NULL)->'items') i",
             ok);
    /* A deliverer's session claims every poll: past five runs plpgsql may plan its
     * statements once for any values. The seventh run is the one measured. */
    for (int warm = 0; warm < 6; warm++) {
        pg_run(pg, "BEGIN");
        PQclear(PQexec(pg, sql));
        pg_run(pg, "ROLLBACK");
    }
    pg_run(pg, "BEGIN");
    long long before = deliveries_read(pg);
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "1"); /* ok.example's, past the backlog */
    assert_string_equal(PQgetvalue(r, 0, 1), "0"); /* hang.example is full */
    PQclear(r);
    long long read = deliveries_read(pg) - before;
    pg_run(pg, "ROLLBACK");
    snprintf(
        sql, sizeof(sql),
        "DELETE FROM webhook_deliveries WHERE generation_id IN ('%s', '%s') AND kind = 'image'",
        hang, ok);
    pg_run(pg, sql);
    PQfinish(pg);
    if (read >= 2000)
        fail_msg("the claim read %lld rows of webhook_deliveries for 1 delivery", read);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_webhooks_carry_the_pose_and_progress),
        cmocka_unit_test(test_image_done_finish_leases_the_terminal_webhook),
        cmocka_unit_test(test_image_done_finish_without_lease_leaves_it_to_claims),
        cmocka_unit_test(test_webhook_claim_bounds_each_host),
        cmocka_unit_test(test_two_claims_at_once_never_both_fill_a_host),
        cmocka_unit_test(test_the_finishing_lease_keeps_the_host_bound),
        cmocka_unit_test(test_a_claim_locks_at_most_64_hosts),
        cmocka_unit_test(test_a_full_hosts_backlog_is_not_read_by_claims),
    };
    return cmocka_run_group_tests(tests, ts_store_setup, ts_store_teardown);
}
