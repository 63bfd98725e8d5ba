/*
 * tests/integration/store/accept_batch.c - group-committed accepts
 * (store_call_accept_batch, store/sql/farm_accept_generations.sql) against
 * the fixture's real Postgres, with the batch's contents fixed by the test:
 * each request keeps its own outcome (a missing reference, an idempotent
 * replay, a conflict, a 402, an error of its own) beside accepted ones;
 * requests of one user see each other's holds; what a refused request
 * would have written is not there; batches racing on the same users from
 * several connections never overdraw nor deadlock. The set-based path
 * (funded users without keys or references) gives the outcomes one hold
 * at a time would, and gives way to that one when it fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_util.h"
#include "support.h"

/* One request: its own generation id, an avatar of `images` at 10 credits each. */
typedef struct {
    char id[37];
    store_accept_item_t it;
} req_t;

static void req_init(req_t *r, const char *user, int images, long long welcome)
{
    memset(r, 0, sizeof(*r));
    gf_uuid4(r->id);
    r->it.accept = (store_accept_t){.id = r->id,
                                    .user_id = user,
                                    .plan = "pro",
                                    .kind = "avatar",
                                    .images = images,
                                    .unit_cost = 10,
                                    .welcome_credits = welcome,
                                    .params_json = "{\"prompt\":\"x\"}",
                                    .request_hash = "h"};
}

/* Runs the batch of `n` requests on `conn`; the call's own status. */
static int run_batch(store_conn_t *conn, req_t *reqs, size_t n, store_call_t *call)
{
    store_accept_item_t items[64];
    for (size_t i = 0; i < n; i++)
        items[i] = reqs[i].it;
    assert_int_equal(store_call_accept_batch(call, items, n), 0);
    return store_conn_exec(conn, call);
}

/* Whether the generation exists for `user` (GET's read). */
static int generation_exists(const char *id, const char *user)
{
    store_call_t call;
    store_call_generation(&call, id, user);
    int rc = ts_store_run(&call);
    store_call_dispose(&call);
    assert_true(rc == 0 || rc == GF_ENOTFOUND);
    return rc == 0;
}

/* The created_at GET shows for generation `id` of `user`, into `out` ("" when there is none). */
static void created_at_of(const char *id, const char *user, char out[32])
{
    store_call_t call;
    store_call_generation(&call, id, user);
    int rc = ts_store_run(&call);
    snprintf(out, 32, "%s", rc == 0 ? call.res.generation.created_at : "");
    store_call_dispose(&call);
}

static void upload(const char *id, const char *user)
{
    store_call_t call;
    char key[128];
    snprintf(key, sizeof(key), "%s/uploads/%s.png", user, id);
    store_call_upload_add(&call, id, user, 30, "png", 64, 64, 100, "ab", key, 0, 0);
    assert_int_equal(ts_store_run(&call), 0);
    store_call_dispose(&call);
}

static void test_each_request_keeps_its_own_outcome(void **state)
{
    (void)state;
    char u1[37], u2[37], up2[37], up1[37], nowhere[37];
    gf_uuid4(u1);
    gf_uuid4(u2);
    gf_uuid4(up1);
    gf_uuid4(up2);
    gf_uuid4(nowhere);
    upload(up1, u1); /* both users are provisioned here with 30 welcome credits */
    upload(up2, u2);
    /* u2's first request with key "order-1", in a batch of its own before. */
    req_t first;
    req_init(&first, u2, 1, 100);
    first.it.accept.idempotency_key = "order-1";
    store_call_t call;
    assert_int_equal(run_batch(ts_sc, &first, 1, &call), 0);
    assert_int_equal(call.res.accept_batch.items[0].err.code, 0);
    store_call_dispose(&call);

    enum { N = 9 };
    req_t r[N];
    req_init(&r[0], u1, 1, 30); /* u1 has 30 credits: three avatars */
    req_init(&r[1], u2, 1, 100);
    r[1].it.identity_upload = nowhere; /* 404: no such upload */
    req_init(&r[2], u1, 1, 30);
    req_init(&r[3], u2, 1, 100);
    r[3].it.accept.idempotency_key = "order-1"; /* the replay: the first one, charged once */
    req_init(&r[4], u1, 1, 30);
    req_init(&r[5], u1, 1, 30); /* the fourth of u1: 402, its three before hold all 30 */
    req_init(&r[6], u2, 1, 100);
    r[6].it.accept.idempotency_key = "order-1";
    r[6].it.accept.request_hash = "another body"; /* 409 */
    req_init(&r[7], u2, 2, 100);
    r[7].it.identity_upload = up2; /* its own upload: accepted, 20 credits */
    const char *poses[] = {up2, up1};
    req_init(&r[8], u2, 1, 100);
    r[8].it.pose_uploads = poses; /* up1 is u1's: missing to u2 */
    r[8].it.n_pose_uploads = 2;
    assert_int_equal(run_batch(ts_sc, r, N, &call), 0);
    const store_accept_outcome_t *o = call.res.accept_batch.items;
    assert_int_equal(call.res.accept_batch.n, N);
    for (int i = 0; i < N; i++)
        fprintf(stderr, "request %d: %s\n", i, gf_status_name(o[i].err.code));
    assert_int_equal(o[0].err.code, 0);
    assert_string_equal(o[0].accept.generation_id, r[0].id);
    assert_int_equal(o[0].accept.available, 20);
    assert_int_equal(o[1].err.code, GF_ENOTFOUND);
    assert_string_equal(o[1].missing, "identity");
    assert_int_equal(o[2].err.code, 0);
    assert_int_equal(o[2].accept.available, 10); /* after r[0]'s hold: they see each other */
    assert_int_equal(o[3].err.code, 0);
    assert_int_equal(o[3].accept.existing, 1);
    assert_string_equal(o[3].accept.generation_id, first.id);
    assert_int_equal(o[3].found, 1);
    assert_string_equal(o[3].kind, "avatar");
    assert_string_equal(o[3].status, "queued");
    assert_int_equal(o[3].cost, 10);
    assert_int_equal(o[3].images, 1);
    assert_int_equal(strlen(o[3].created_at), 24); /* 2026-12-05T15:00:00.000Z */
    assert_int_equal(o[4].err.code, 0);
    assert_int_equal(o[4].accept.available, 0);
    assert_int_equal(o[5].err.code, GF_ECREDITS);
    assert_int_equal(o[5].accept.available, 0);
    assert_int_equal(o[6].err.code, GF_ECONFLICT);
    assert_string_equal(o[6].accept.generation_id, first.id);
    assert_int_equal(o[7].err.code, 0);
    assert_int_equal(o[8].err.code, GF_ENOTFOUND);
    assert_string_equal(o[8].missing, "poses");
    store_call_dispose(&call);

    long long bal, held;
    ts_store_balance(u1, 0, &bal, &held);
    assert_int_equal(bal, 30);
    assert_int_equal(held, 30);
    ts_store_balance(u2, 0, &bal, &held);
    assert_int_equal(bal, 30);
    assert_int_equal(held, 30); /* first (10) and r[7] (20); the replay charged nothing */
    /* What was refused wrote nothing; what was accepted is there. */
    static const int refused[] = {1, 3, 5, 6, 8};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_false(generation_exists(r[refused[i]].id, r[refused[i]].it.accept.user_id));
    static const int accepted[] = {0, 2, 4, 7};
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        assert_true(generation_exists(r[accepted[i]].id, r[accepted[i]].it.accept.user_id));
}

static void test_an_error_undoes_its_own_request_only(void **state)
{
    (void)state;
    char u[37];
    gf_uuid4(u);
    req_t r[3];
    req_init(&r[0], u, 1, 100);
    req_init(&r[1], u, 2, 100);
    r[1].it.accept.kind = "sculpture"; /* refused by the generations' kind domain */
    r[1].it.accept.idempotency_key = "k-err";
    req_init(&r[2], u, 1, 100);
    store_call_t call;
    assert_int_equal(run_batch(ts_sc, r, 3, &call), 0);
    const store_accept_outcome_t *o = call.res.accept_batch.items;
    assert_int_equal(o[0].err.code, 0);
    assert_int_equal(o[1].err.code, GF_EINVAL); /* class 23: bad input */
    assert_int_equal(o[2].err.code, 0);
    assert_int_equal(o[2].accept.available, 80); /* r[1]'s hold was undone before r[2] */
    store_call_dispose(&call);
    long long bal, held;
    ts_store_balance(u, 0, &bal, &held);
    assert_int_equal(held, 20);
    assert_false(generation_exists(r[1].id, u));
    /* Its idempotency key went with it: the same key is free for a good request. */
    req_t again;
    req_init(&again, u, 1, 100);
    again.it.accept.idempotency_key = "k-err";
    assert_int_equal(run_batch(ts_sc, &again, 1, &call), 0);
    assert_int_equal(call.res.accept_batch.items[0].err.code, 0);
    assert_int_equal(call.res.accept_batch.items[0].accept.existing, 0);
    store_call_dispose(&call);
}

/* Provisions `user` (no welcome credits) and grants `amount`. */
static void fund(const char *user, long long amount)
{
    store_call_t call;
    store_call_credit(&call, user, amount, "test", 0);
    assert_int_equal(ts_store_run(&call), 0);
    store_call_dispose(&call);
}

/* The amount of the hold entry of generation `id` in `user`'s ledger; -1: none. */
static long long hold_of(const char *user, const char *id)
{
    store_call_t call;
    store_call_ledger(&call, user, 100, NULL);
    assert_int_equal(ts_store_run(&call), 0);
    long long amount = -1;
    for (size_t i = 0; i < call.res.ledger.n; i++) {
        const store_ledger_entry_t *e = &call.res.ledger.items[i];
        if (strcmp(e->kind, "hold") == 0 && e->generation_id && strcmp(e->generation_id, id) == 0)
            amount = e->amount;
    }
    store_call_dispose(&call);
    return amount;
}

/*
 * Users with an account, no key and no reference in the batch: the ones
 * whose requests all fit are held in one statement (a running "available"
 * per request, a hold entry each); one whose requests do not all fit is
 * answered request by request in order (a 402 between two accepted); a
 * user with a key beside a plain request, and a new user, as before.
 */
static void test_funded_users_get_one_hold_at_a_time_outcomes(void **state)
{
    (void)state;
    char a[37], b[37], c[37], fresh[37];
    gf_uuid4(a);
    gf_uuid4(b);
    gf_uuid4(c);
    gf_uuid4(fresh);
    fund(a, 100);
    fund(b, 30);
    fund(c, 50);
    enum { N = 8 };
    req_t r[N];
    req_init(&r[0], a, 2, 0);      /* a: 20 of 100 -> 80 */
    req_init(&r[1], b, 2, 0);      /* b: 20 of 30 -> 10 */
    req_init(&r[2], a, 3, 0);      /* a: 30 -> 50 */
    req_init(&r[3], b, 2, 0);      /* b: 20 > 10: 402 */
    req_init(&r[4], c, 1, 0);      /* c: 10 of 50, with a key -> 40 */
    req_init(&r[5], b, 1, 0);      /* b: 10 of 10 -> 0 */
    req_init(&r[6], c, 1, 0);      /* c: 10 -> 30 */
    req_init(&r[7], fresh, 1, 40); /* a new user: 40 welcome credits -> 30 */
    r[4].it.accept.idempotency_key = "c-1";
    store_call_t call;
    assert_int_equal(run_batch(ts_sc, r, N, &call), 0);
    const store_accept_outcome_t *o = call.res.accept_batch.items;
    static const int ok[N] = {1, 1, 1, 0, 1, 1, 1, 1};
    static const long long avail[N] = {80, 10, 50, 10, 40, 0, 30, 30};
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].err.code, ok[i] ? 0 : GF_ECREDITS);
        assert_int_equal(o[i].accept.available, avail[i]);
        if (ok[i]) {
            assert_string_equal(o[i].accept.generation_id, r[i].id);
            assert_int_equal(o[i].accept.existing, 0);
        }
        const char *u = r[i].it.accept.user_id;
        assert_int_equal(generation_exists(r[i].id, u), ok[i]);
        assert_int_equal(hold_of(u, r[i].id), ok[i] ? r[i].it.accept.images * 10 : -1);
    }
    store_call_dispose(&call);
    const char *users[] = {a, b, c, fresh};
    static const long long bals[] = {100, 30, 50, 40}, helds[] = {50, 30, 20, 10};
    for (int i = 0; i < 4; i++) {
        long long bal, held;
        ts_store_balance(users[i], 0, &bal, &held);
        assert_int_equal(bal, bals[i]);
        assert_int_equal(held, helds[i]);
    }
}

/*
 * A request that fails among funded users' plain requests: the set-based
 * statement is undone whole, and every request is answered one by one,
 * the bad one with its own error.
 */
static void test_a_bad_request_among_funded_ones_fails_alone(void **state)
{
    (void)state;
    char a[37], b[37];
    gf_uuid4(a);
    gf_uuid4(b);
    fund(a, 100);
    fund(b, 100);
    req_t r[4];
    req_init(&r[0], a, 1, 0);
    req_init(&r[1], b, 2, 0);
    req_init(&r[2], a, 3, 0);
    r[2].it.accept.kind = "sculpture"; /* refused by the generations' kind domain */
    req_init(&r[3], a, 1, 0);
    store_call_t call;
    assert_int_equal(run_batch(ts_sc, r, 4, &call), 0);
    const store_accept_outcome_t *o = call.res.accept_batch.items;
    assert_int_equal(o[0].err.code, 0);
    assert_int_equal(o[0].accept.available, 90);
    assert_int_equal(o[1].err.code, 0);
    assert_int_equal(o[1].accept.available, 80);
    assert_int_equal(o[2].err.code, GF_EINVAL);
    assert_int_equal(o[3].err.code, 0);
    assert_int_equal(o[3].accept.available, 80);
    store_call_dispose(&call);
    long long bal, held;
    ts_store_balance(a, 0, &bal, &held);
    assert_int_equal(held, 20);
    ts_store_balance(b, 0, &bal, &held);
    assert_int_equal(held, 20);
    assert_false(generation_exists(r[2].id, a));
    assert_int_equal(hold_of(a, r[2].id), -1);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            assert_int_equal(hold_of(r[i].it.accept.user_id, r[i].id), r[i].it.accept.images * 10);
}

static void test_one_key_twice_in_a_batch_is_one_generation(void **state)
{
    (void)state;
    char u[37];
    gf_uuid4(u);
    req_t r[2];
    req_init(&r[0], u, 1, 100);
    req_init(&r[1], u, 1, 100);
    r[0].it.accept.idempotency_key = r[1].it.accept.idempotency_key = "same";
    store_call_t call;
    assert_int_equal(run_batch(ts_sc, r, 2, &call), 0);
    const store_accept_outcome_t *o = call.res.accept_batch.items;
    assert_int_equal(o[0].err.code, 0);
    assert_int_equal(o[0].accept.existing, 0);
    assert_int_equal(o[1].err.code, 0);
    assert_int_equal(o[1].accept.existing, 1);
    assert_string_equal(o[1].accept.generation_id, r[0].id);
    assert_int_equal(o[1].found, 1);
    store_call_dispose(&call);
    long long bal, held;
    ts_store_balance(u, 0, &bal, &held);
    assert_int_equal(held, 10);
}

/*
 * Batches on four connections at once, each holding requests of the same
 * five users in a different order: the lock order (users by id) keeps them
 * out of deadlocks (an aborted batch would fail whole), and no user is held
 * more than they have.
 */
#define RACERS 4
#define ROUNDS 10
static char race_users[5][37];

typedef struct {
    int seed;
    int accepted[5], refused, failed;
} racer_t;

static void *racer(void *arg)
{
    racer_t *rc = arg;
    store_conn_t *conn = ts_store_connect();
    unsigned s = (unsigned)rc->seed;
    for (int round = 0; round < ROUNDS; round++) {
        req_t r[10];
        for (int i = 0; i < 10; i++)
            req_init(&r[i], race_users[(i + (int)(rand_r(&s) % 5)) % 5], 1, 100);
        store_call_t call;
        if (run_batch(conn, r, 10, &call) != 0) {
            fprintf(stderr, "batch failed: %s\n", call.err.msg);
            rc->failed++;
        } else {
            for (int i = 0; i < 10; i++) {
                int code = call.res.accept_batch.items[i].err.code;
                int u = 0;
                while (strcmp(race_users[u], r[i].it.accept.user_id) != 0)
                    u++;
                if (code == 0)
                    rc->accepted[u]++;
                else if (code == GF_ECREDITS)
                    rc->refused++;
                else
                    rc->failed++;
            }
        }
        store_call_dispose(&call);
    }
    store_conn_free(conn);
    return NULL;
}

static void test_racing_batches_never_overdraw_nor_deadlock(void **state)
{
    (void)state;
    for (int u = 0; u < 5; u++)
        gf_uuid4(race_users[u]);
    pthread_t th[RACERS];
    racer_t rc[RACERS];
    memset(rc, 0, sizeof(rc));
    for (int i = 0; i < RACERS; i++) {
        rc[i].seed = 17 + i;
        pthread_create(&th[i], NULL, racer, &rc[i]);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    int accepted = 0, refused = 0;
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(rc[i].failed, 0);
        refused += rc[i].refused;
    }
    /* 400 requests for 5 users of 100 welcome credits: exactly 10 avatars each. */
    for (int u = 0; u < 5; u++) {
        int n = 0;
        for (int i = 0; i < RACERS; i++)
            n += rc[i].accepted[u];
        assert_int_equal(n, 10);
        accepted += n;
        long long bal, held;
        ts_store_balance(race_users[u], 0, &bal, &held);
        assert_int_equal(bal, 100);
        assert_int_equal(held, 100);
    }
    assert_int_equal(accepted + refused, RACERS * ROUNDS * 10);
}

/* The one value of a one-row, one-column query on `pg`. */
static long long pg_value(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    long long v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/*
 * A batch reads the accounts of its own users only, however many other
 * users the farm has: among 20,000 accounts, a batch of four accepts
 * never scans the accounts whole (the backend's statistics count every
 * sequential scan), and still holds what it should.
 */
static void test_a_batch_reads_only_its_own_accounts(void **state)
{
    (void)state;
    PGconn *pg = ts_pg_connect();
    PQclear(PQexec(pg,
                   "INSERT INTO users (id) SELECT gen_random_uuid() FROM generate_series(1, 20000);"
                   "INSERT INTO credit_accounts (user_id) SELECT id FROM users"
                   " ON CONFLICT DO NOTHING;"
                   "ANALYZE users; ANALYZE credit_accounts;"));
    assert_true(pg_value(pg, "SELECT count(*) FROM credit_accounts") >= 20000);
    char a[37], b[37], batch[2048];
    gf_uuid4(a);
    gf_uuid4(b);
    fund(a, 100);
    fund(b, 100);
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        char id[37];
        gf_uuid4(id);
        len +=
            (size_t)snprintf(batch + len, sizeof(batch) - len,
                             "%s{\"id\":\"%s\",\"user\":\"%s\",\"plan\":\"pro\",\"welcome\":0,"
                             "\"kind\":\"avatar\",\"images\":1,\"unit_cost\":10,\"params\":\"{}\"}",
                             i ? "," : "[", id, i % 2 ? b : a);
        assert_true(len < sizeof(batch));
    }
    len += (size_t)snprintf(batch + len, sizeof(batch) - len, "]");
    assert_true(len < sizeof(batch));
    /* The counts are the backend's not yet flushed: the set-up's own scans
     * (the count above, the INSERT's read of users) may still be there, so
     * the batch's are what it adds inside its transaction. */
    static const char scans[] = "SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables"
                                " WHERE relname = 'credit_accounts'";
    PQclear(PQexec(pg, "BEGIN"));
    long long before = pg_value(pg, scans);
    const char *params[] = {batch};
    PGresult *res = PQexecParams(pg, "SELECT farm_accept_generations($1::jsonb)::text", 1, NULL,
                                 params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(strstr(PQgetvalue(res, 0, 0), "\"error\"") == NULL, 1);
    PQclear(res);
    assert_int_equal(pg_value(pg, scans) - before, 0);
    PQclear(PQexec(pg, "COMMIT"));
    ts_assert_balance(a, 100, 20);
    ts_assert_balance(b, 100, 20);
    PQfinish(pg);
}

/*
 * A request sent at the active cap (the api found the user at it) is answered as the
 * accept would answer it, without writing: a live key's replay as ever, 402 when short of
 * credits, else at_cap (GF_ETOOBIG). Beside it, the same user's request without the flag
 * is accepted in the same batch.
 */
static void test_at_cap_writes_nothing(void **state)
{
    (void)state;
    char user[37];
    gf_uuid4(user);
    req_t reqs[4];
    for (int i = 0; i < 4; i++)
        req_init(&reqs[i], user, 1, 100);
    store_call_t call;
    assert_int_equal(run_batch(ts_sc, reqs, 1, &call), 0); /* the user's account, 90 left */
    store_call_dispose(&call);
    reqs[1].it.at_cap = 1; /* would be accepted: at_cap */
    reqs[2].it.at_cap = 1; /* 1000 credits: 402 first */
    reqs[2].it.accept.images = 100;
    reqs[3].it.accept.idempotency_key = "cap-key"; /* accepted, without the flag */
    assert_int_equal(run_batch(ts_sc, &reqs[1], 3, &call), 0);
    assert_int_equal(call.res.accept_batch.items[0].err.code, GF_ETOOBIG);
    assert_int_equal(call.res.accept_batch.items[1].err.code, GF_ECREDITS);
    assert_int_equal(call.res.accept_batch.items[2].err.code, 0);
    store_call_dispose(&call);
    assert_false(generation_exists(reqs[1].id, user));
    assert_false(generation_exists(reqs[2].id, user));
    ts_assert_balance(user, 100, 20); /* the two accepted holds, nothing else */
    /* The keyed request again, at the cap now: its replay. */
    req_t again = reqs[3];
    gf_uuid4(again.id);
    again.it.accept.id = again.id;
    again.it.at_cap = 1;
    assert_int_equal(run_batch(ts_sc, &again, 1, &call), 0);
    assert_int_equal(call.res.accept_batch.items[0].err.code, 0);
    assert_int_equal(call.res.accept_batch.items[0].accept.existing, 1);
    assert_string_equal(call.res.accept_batch.items[0].accept.generation_id, reqs[3].id);
    store_call_dispose(&call);
    ts_assert_balance(user, 100, 20);
}

/*
 * The outcome of a batch whose answer was lost (store_call_accept_resolve): the backend
 * that ran it is ended first, so a transaction still open there can no longer commit after
 * the answer; then each id says whether its generation exists. Here the batch runs on a
 * connection of the test's own, left open (its transaction still running, as a backend
 * whose client is gone would be) or committed. `named`: the backend is named by its pid
 * and its application_name; else by its pid only, as after a restart of Postgres that gave
 * the pid to another process: that one is left alone.
 */
static void resolve_after(int commit, int named)
{
    char user[37];
    gf_uuid4(user);
    req_t reqs[2];
    req_init(&reqs[0], user, 1, 100);
    req_init(&reqs[1], user, 1, 100);
    store_call_t call;
    store_accept_item_t items[2] = {reqs[0].it, reqs[1].it};
    assert_int_equal(store_call_accept_batch(&call, items, 1), 0); /* only the first is sent */
    PGconn *pg = ts_pg_connect();
    PGresult *r = PQexec(pg, "SET application_name = 'genfarm lost-batch'; BEGIN");
    PQclear(r);
    const char *params[] = {call._params[0]};
    r = PQexecParams(pg, "SELECT farm_accept_generations($1::jsonb)", 1, NULL, params, NULL, NULL,
                     0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_non_null(strstr(PQgetvalue(r, 0, 0), "accepted"));
    PQclear(r);
    store_call_dispose(&call);
    if (commit) {
        r = PQexec(pg, "COMMIT");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    store_backend_t be = {.pid = PQbackendPID(pg)};
    snprintf(be.app, sizeof(be.app), "%s", named ? "genfarm lost-batch" : "genfarm another");
    const char *ids[] = {reqs[0].id, reqs[1].id};
    assert_int_equal(store_call_accept_resolve(&call, &be, ids, 2), 0);
    int rc = ts_store_run(&call);
    if (rc != 0)
        fail_msg("resolve: %s", call.err.msg);
    assert_int_equal(call.res.accept_resolve.n, 2);
    assert_int_equal(call.res.accept_resolve.accepted[0], commit);
    assert_int_equal(call.res.accept_resolve.accepted[1], 0); /* never sent */
    /* A committed one comes with the created_at GET shows (its 202 is answered with it). */
    char want[32];
    created_at_of(reqs[0].id, user, want);
    assert_string_equal(call.res.accept_resolve.created_at[0], commit ? want : "");
    assert_string_equal(call.res.accept_resolve.created_at[1], "");
    store_call_dispose(&call);
    /* Ended when named: the open transaction can never commit now. Else untouched. */
    r = PQexec(pg, "COMMIT");
    assert_int_equal(PQresultStatus(r) == PGRES_COMMAND_OK, !named);
    PQclear(r);
    PQfinish(pg);
    assert_int_equal(generation_exists(reqs[0].id, user), commit || !named);
    /* Asked again (its own answer lost): what is there now, the backend gone. */
    assert_int_equal(store_call_accept_resolve(&call, &be, ids, 2), 0);
    assert_int_equal(ts_store_run(&call), 0);
    assert_int_equal(call.res.accept_resolve.accepted[0], commit || !named);
    store_call_dispose(&call);
}

static void test_a_lost_batch_still_open_is_ended_and_not_accepted(void **state)
{
    (void)state;
    resolve_after(0, 1);
}

static void test_a_lost_batch_that_committed_is_accepted(void **state)
{
    (void)state;
    resolve_after(1, 1);
}

static void test_a_pid_that_names_another_backend_is_left_alone(void **state)
{
    (void)state;
    resolve_after(0, 0);
}

/* Ids that are not UUIDs, or none, or too many: refused before anything is sent. */
static void test_resolve_refuses_what_is_not_a_batch(void **state)
{
    (void)state;
    store_call_t call;
    const char *bad[] = {"1}, {2"};
    store_backend_t none = {0};
    assert_int_equal(store_call_accept_resolve(&call, &none, bad, 1), GF_EINVAL);
    store_call_dispose(&call);
    assert_int_equal(store_call_accept_resolve(&call, &none, bad, 0), GF_EINVAL);
    store_call_dispose(&call);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_request_keeps_its_own_outcome),
        cmocka_unit_test(test_an_error_undoes_its_own_request_only),
        cmocka_unit_test(test_one_key_twice_in_a_batch_is_one_generation),
        cmocka_unit_test(test_funded_users_get_one_hold_at_a_time_outcomes),
        cmocka_unit_test(test_a_bad_request_among_funded_ones_fails_alone),
        cmocka_unit_test(test_racing_batches_never_overdraw_nor_deadlock),
        cmocka_unit_test(test_a_batch_reads_only_its_own_accounts),
        cmocka_unit_test(test_at_cap_writes_nothing),
        cmocka_unit_test(test_a_lost_batch_still_open_is_ended_and_not_accepted),
        cmocka_unit_test(test_a_lost_batch_that_committed_is_accepted),
        cmocka_unit_test(test_a_pid_that_names_another_backend_is_left_alone),
        cmocka_unit_test(test_resolve_refuses_what_is_not_a_batch),
    };
    return cmocka_run_group_tests(tests, ts_store_setup, ts_store_teardown);
}
