/*
 * tests/integration/store/ledger.c - the credit ledger against the fixture's
 * real Postgres (its races are in races.c, its reconciliation in reconcile.c): settlements
 * happen once, stale fencing tokens are refused, idempotency keys, cancel and expiry release, a
 * Postgres restart is a clear error followed by recovery, and the constraints refuse
 * hand-written rows that break a rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_util.h"
#include "support.h"

/*
 * A new user and a new generation of theirs, accepted (`images` x `unit`,
 * 100 welcome credits) and started with fencing token `fence`.
 */
static void started(char user[37], char gen[37], int images, long long unit, long long fence)
{
    gf_uuid4(user);
    gf_uuid4(gen);
    assert_int_equal(ts_store_accept(ts_sc, gen, user, images, unit, NULL, NULL, 100), 0);
    assert_int_equal(ts_store_start(gen, fence), 0);
}

/* Finishing `gen` as `how` with token `fence` succeeds and ends it `status`. */
static void assert_finishes(const char *gen, long long fence, const char *how, const char *status)
{
    store_call_t c;
    store_call_finish(&c, gen, fence, how, NULL);
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.finish.status, status);
    store_call_dispose(&c);
}

/* Settles image `index` (ok: captured, else released); the call's status, and whether it applied.
 */
static int settle(const char *gen, long long fence, int index, int ok, int *applied)
{
    store_call_t c;
    store_call_image(&c, gen, fence, index, ok, NULL);
    int rc = ts_store_run(&c);
    *applied = c.res.image.applied;
    store_call_dispose(&c);
    return rc;
}

/* --- constraints ------------------------------------------------------------------- */

/* Asserts that Postgres refuses `sql` with a constraint violation (SQLSTATE class 23). */
static void refused(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || state == NULL || strncmp(state, "23", 2) != 0)
        fail_msg("not refused by a constraint (%s): %s", state ? state : "no error", sql);
    PQclear(r);
}

/*
 * Every rule docs/credits.md lists as a constraint refuses a hand-written row
 * that breaks it, whatever the functions do.
 */
static void test_constraints_refuse_bad_rows(void **state)
{
    (void)state;
    char user[37], gen[37], sql[512];
    started(user, gen, 2, 5, 1);
    store_call_t c;
    store_call_image(&c, gen, 1, 0, 1, NULL);
    assert_int_equal(ts_store_run_once(&c), 0);
    PGconn *pg = ts_pg_connect();
    /* A legal change goes through (so the refusals below are the constraints'). */
    snprintf(sql, sizeof(sql), "UPDATE generations SET progress = 50 WHERE id = '%s'", gen);
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    /* Generation 2 images x 5, running, image 0 captured. */
    const char *bad_gens[] = {
        "status = 'bogus'",
        "kind = 'video'",
        "stage = 'waiting'",
        "progress = 101",
        "images = 41, cost = 205",
        "images = 0, cost = 0",
        "unit_cost = -1, cost = -2",
        "cost = 11",
        "charged = -5, released = 10",
        "released = -1",
        "released = 10",
        "images_done = 2, images_failed = 1",
        "images_failed = -1",
        "status = 'succeeded'",
    };
    for (size_t i = 0; i < sizeof(bad_gens) / sizeof(bad_gens[0]); i++) {
        snprintf(sql, sizeof(sql), "UPDATE generations SET %s WHERE id = '%s'", bad_gens[i], gen);
        refused(pg, sql);
    }
    /* Ledger entries: kind, amount, for the generation or not, image index (-1: none). */
    const struct {
        const char *kind;
        int amount, with_gen, image;
    } bad_entries[] = {
        {"bogus", 1, 0, -1},
        {"grant", -1, 0, -1},
        {"grant", 1, 1, -1},
        {"grant", 1, 0, 0},
        {"adjust", -1, 1, -1},
        {"hold", 10, 0, -1},
        {"hold", 10, 1, 0},
        {"capture", 5, 1, -1},
        {"capture", 5, 0, 1},
        {"release", -5, 1, 1},
        /* a second hold of the generation, a second settlement of image 0 */
        {"hold", 10, 1, -1},
        {"release", 5, 1, 0},
        {"capture", 5, 1, 0},
    };
    for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]); i++) {
        char gen_lit[40] = "NULL", image_lit[16] = "NULL";
        if (bad_entries[i].with_gen)
            snprintf(gen_lit, sizeof(gen_lit), "'%s'", gen);
        if (bad_entries[i].image >= 0)
            snprintf(image_lit, sizeof(image_lit), "%d", bad_entries[i].image);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index) "
                 "VALUES ('%s', '%s', %d, %s, %s)",
                 user, bad_entries[i].kind, bad_entries[i].amount, gen_lit, image_lit);
        refused(pg, sql);
    }
    const char *bad_accounts[] = {
        "balance = -1, held = 0",
        "held = -1",
        "held = balance + 1",
    };
    for (size_t i = 0; i < sizeof(bad_accounts) / sizeof(bad_accounts[0]); i++) {
        snprintf(sql, sizeof(sql), "UPDATE credit_accounts SET %s WHERE user_id = '%s'",
                 bad_accounts[i], user);
        refused(pg, sql);
    }
    PQfinish(pg);
}

/* --- settlements ---------------------------------------------------------------------- */

/* A generation failed from outside (the queue gave up on its job: the sweeper's or the
 * claimer's finish) after some of its images were captured ends partial, not failed:
 * its charge stands, and "failed" would tell the client nothing was charged. */
static void test_a_failed_finish_after_captures_is_partial(void **state)
{
    (void)state;
    char user[37], gen[37];
    started(user, gen, 4, 10, 1);
    int applied;
    assert_int_equal(settle(gen, 1, 0, 1, &applied), 0);
    assert_true(applied);
    store_call_t c;
    store_call_finish(&c, gen, -1, "failed",
                      "{\"code\":\"internal\",\"message\":\"the queue gave up on this "
                      "generation\",\"retryable\":false}");
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.finish.status, "partial");
    store_call_dispose(&c);
    store_call_generation(&c, gen, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.generation.status, "partial");
    assert_int_equal(c.res.generation.charged, 10);
    assert_int_equal(c.res.generation.released, 30);
    assert_null(c.res.generation.error); /* API.md: `error` when failed */
    /* Each image the finish released is a failure, named in `failures` with its error. */
    assert_int_equal(c.res.generation.images_failed, 3);
    json_t *f = json_loads(c.res.generation.failures, 0, NULL);
    assert_int_equal(json_array_size(f), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(f, i);
        assert_int_equal(json_integer_value(json_object_get(e, "index")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(json_object_get(e, "error"), "code")),
                            "internal");
    }
    json_decref(f);
    store_call_dispose(&c);
    /* With nothing captured it is failed, as asked. */
    started(user, gen, 2, 10, 1);
    assert_finishes(gen, -1, "failed", "failed");
}

static void test_settlements_happen_once(void **state)
{
    (void)state;
    char user[37], gen[37];
    gf_uuid4(user);
    gf_uuid4(gen);
    assert_int_equal(ts_store_accept(ts_sc, gen, user, 3, 10, NULL, NULL, 100), 0);
    store_call_t c;
    store_call_start(&c, gen, 1, "local", NULL);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.start.attempts, 1);
    store_call_dispose(&c);
    for (int rep = 0; rep < 2; rep++) {
        store_call_image(&c, gen, 1, 0, 1, NULL);
        assert_int_equal(ts_store_run(&c), 0);
        assert_int_equal(c.res.image.applied, rep == 0);
        store_call_dispose(&c);
        store_call_image(&c, gen, 1, 1, 0, "{\"code\":\"provider_error\"}");
        assert_int_equal(ts_store_run(&c), 0);
        assert_int_equal(c.res.image.applied, rep == 0);
        store_call_dispose(&c);
        /* An image already captured cannot be released, nor the other way round. */
        store_call_image(&c, gen, 1, 0, 0, NULL);
        assert_int_equal(ts_store_run(&c), 0);
        assert_int_equal(c.res.image.applied, 0);
        store_call_dispose(&c);
    }
    for (int rep = 0; rep < 2; rep++) {
        store_call_finish(&c, gen, 1, "auto", NULL);
        assert_int_equal(ts_store_run(&c), 0);
        assert_string_equal(c.res.finish.status, "partial");
        assert_int_equal(c.res.finish.applied, rep == 0);
        store_call_dispose(&c);
    }
    ts_assert_balance(user, 90, 0);
    store_call_generation(&c, gen, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.generation.charged, 10);
    assert_int_equal(c.res.generation.released, 20);
    assert_string_equal(c.res.generation.status, "partial");
    store_call_dispose(&c);
    /* Another user's generation does not exist for them. */
    store_call_generation(&c, gen, gen);
    assert_int_equal(ts_store_run_once(&c), GF_ENOTFOUND);
}

static void test_stale_fencing_token_is_refused(void **state)
{
    (void)state;
    char user[37], gen[37];
    started(user, gen, 2, 10, 1);
    store_call_t c;
    /* The lease expired and another worker claimed the job with token 2. */
    store_call_start(&c, gen, 2, "local", NULL);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.start.attempts, 2);
    store_call_dispose(&c);
    store_call_image(&c, gen, 1, 0, 1, NULL);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    store_call_provider_request(&c, gen, 1, 0, "req-1");
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    store_call_finish(&c, gen, 1, "auto", NULL);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    ts_assert_balance(user, 100, 20);
    store_call_image(&c, gen, 2, 0, 1, NULL);
    assert_int_equal(ts_store_run_once(&c), 0);
    assert_finishes(gen, 2, "auto", "partial");
    /* A late start after the finish is refused: the generation is over, and the
     * start says how it ended (the worker closes the queue's job with that). */
    store_call_start(&c, gen, 3, "local", NULL);
    assert_int_equal(ts_store_run(&c), GF_ECANCELED);
    assert_string_equal(c.res.start.status, "partial");
    store_call_dispose(&c);
}

/* The outputs a generation has, as GET reads them. */
static size_t outputs_of(const char *gen, const char *user)
{
    store_call_t c;
    store_call_generation(&c, gen, user);
    assert_int_equal(ts_store_run(&c), 0);
    size_t n = c.res.generation.n_outputs;
    store_call_dispose(&c);
    return n;
}

static const char *const OUTPUT_JSON =
    "[{\"index\":0,\"pose\":0,\"variant\":\"original\",\"format\":\"png\",\"width\":8,"
    "\"height\":8,\"bytes\":10,\"sha256\":\"00\",\"storage_key\":\"k\",\"seed\":1}]";

/* Issue #21, money edge 2: outputs only for a captured image of an open generation. */
static void test_no_outputs_for_released_images_or_ended_generations(void **state)
{
    (void)state;
    char user[37], gen[37];
    started(user, gen, 2, 10, 1);
    store_call_t c;
    /* Image 0 was released (its provider failed); a late done of it records nothing. */
    int applied;
    assert_int_equal(settle(gen, 1, 0, 0, &applied), 0);
    store_call_image_done(&c, gen, 1, 0, OUTPUT_JSON);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    assert_int_equal(outputs_of(gen, user), 0);
    /* The sweeper fails the generation (no token): that fences the worker still on it. */
    store_call_finish(&c, gen, -1, "failed", NULL);
    assert_int_equal(ts_store_run_once(&c), 0);
    store_call_image_done(&c, gen, 1, 1, OUTPUT_JSON);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    assert_int_equal(outputs_of(gen, user), 0);
    ts_assert_balance(user, 100, 0); /* nothing charged */
}

/* Records image 0 of `gen` done with the finish, under token `fence`; asserts whether it applied
 * and finished, and the generation's status it answers. */
static void done_finish(const char *gen, long long fence, int applied, int finished,
                        const char *status)
{
    store_call_t c;
    store_call_image_done_finish(&c, gen, fence, 0, OUTPUT_JSON, 0, 0);
    assert_int_equal(ts_store_run(&c), 0);
    int got_applied = c.res.image.applied, got_finished = c.res.image.finished;
    char got_status[sizeof(c.res.image.status)];
    snprintf(got_status, sizeof(got_status), "%s", c.res.image.status);
    store_call_dispose(&c);
    if (got_applied != applied || got_finished != finished || strcmp(got_status, status) != 0)
        fail_msg("image done and finish under token %lld: applied %d, finished %d, %s; not %d, "
                 "%d, %s",
                 fence, got_applied, got_finished, got_status, applied, finished, status);
}

/* The last image's record and the finish in one call: both or, refused, neither. */
static void test_image_done_finish_settles_and_finishes_at_once(void **state)
{
    (void)state;
    char user[37], gen[37];
    started(user, gen, 1, 10, 2);
    store_call_t c;
    /* A stale token: nothing recorded, nothing finished. */
    store_call_image_done_finish(&c, gen, 1, 0, OUTPUT_JSON, 0, 0);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    assert_int_equal(outputs_of(gen, user), 0);
    ts_assert_balance(user, 100, 10); /* still held */
    done_finish(gen, 2, 1, 1, "succeeded");
    assert_int_equal(outputs_of(gen, user), 1);
    ts_assert_balance(user, 90, 0); /* captured */
    /* Repeated (an answer lost on the way): the same status, nothing more. */
    done_finish(gen, 2, 0, 0, "succeeded");
    assert_finishes(gen, 2, "auto", "succeeded");
    ts_assert_balance(user, 90, 0);
}

/* A cancel taken (202) while the last image was being recorded: the record's finish
 * ends it canceled, as the worker's own finish after the cancel would, with the
 * captured images charged. Before, it ended succeeded, after the client's 202. */
static void test_a_cancel_before_the_last_image_record_ends_it_canceled(void **state)
{
    (void)state;
    char user[37], gen[37];
    started(user, gen, 2, 10, 1);
    int applied;
    assert_int_equal(settle(gen, 1, 0, 1, &applied), 0);
    store_call_t c;
    store_call_cancel(&c, gen, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.cancel.applied, 0); /* running: 202, the worker finishes it */
    store_call_dispose(&c);
    store_call_image_done_finish(&c, gen, 1, 1, OUTPUT_JSON, 0, 0);
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.image.status, "canceled");
    store_call_dispose(&c);
    store_call_generation(&c, gen, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.generation.status, "canceled");
    assert_int_equal(c.res.generation.charged, 20);
    assert_int_equal(c.res.generation.released, 0);
    store_call_dispose(&c);
    ts_assert_balance(user, 80, 0);
}

/* A partial finish carries no top-level error, even when the worker sends its last
 * failed image's (a takeover that delivered none of the captured images itself). */
static void test_a_partial_finish_carries_no_error(void **state)
{
    (void)state;
    char user[37], gen[37];
    started(user, gen, 2, 10, 1);
    int applied;
    assert_int_equal(settle(gen, 1, 0, 1, &applied), 0);
    assert_int_equal(settle(gen, 1, 1, 0, &applied), 0);
    store_call_t c;
    store_call_finish(&c, gen, 1, "auto",
                      "{\"code\":\"content_rejected\",\"message\":\"x\",\"retryable\":false}");
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.finish.status, "partial");
    store_call_dispose(&c);
    store_call_generation(&c, gen, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_string_equal(c.res.generation.status, "partial");
    assert_null(c.res.generation.error);
    store_call_dispose(&c);
}

/* What a settlement answers when it settles nothing, in the order of precedence. */
static void test_settlement_refusals(void **state)
{
    (void)state;
    char user[37], gen[37], unknown[37];
    started(user, gen, 2, 10, 2);
    gf_uuid4(unknown);
    int applied = -1;
    assert_int_equal(settle(unknown, 2, 0, 1, &applied), GF_ENOTFOUND);
    assert_int_equal(settle(gen, 2, 2, 1, &applied), GF_EINVAL);
    assert_int_equal(settle(gen, 2, -1, 0, &applied), GF_EINVAL);
    /* A stale token is refused before the index is looked at. */
    assert_int_equal(settle(gen, 1, 5, 1, &applied), GF_ECONFLICT);
    assert_int_equal(settle(gen, 2, 0, 1, &applied), 0);
    assert_int_equal(applied, 1);
    /* A settled image: stale for the old token, a no-op for the current one. */
    assert_int_equal(settle(gen, 1, 0, 1, &applied), GF_ECONFLICT);
    assert_int_equal(settle(gen, 2, 0, 0, &applied), 0);
    assert_int_equal(applied, 0);
    ts_assert_balance(user, 90, 10);
}

/* Accepting `gen` of `user` again with `key` and `hash` replays `first`: the store answers
 * it as existing, creating nothing. */
static void assert_replays(const char *gen, const char *user, const char *key, const char *hash,
                           const char *first)
{
    store_call_t c;
    store_accept_t a = ts_store_avatar(gen, user, 1, 10);
    a.idempotency_key = key;
    a.request_hash = hash;
    store_call_accept(&c, &a);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.accept.existing, 1);
    assert_string_equal(c.res.accept.generation_id, first);
    store_call_dispose(&c);
}

static void test_idempotency_key_returns_the_first_generation(void **state)
{
    (void)state;
    char user[37], g1[37], g2[37], g3[37];
    ts_new_ids(4, user, g1, g2, g3);
    assert_int_equal(ts_store_accept(ts_sc, g1, user, 1, 10, "key-1", "hash-a", 100), 0);
    assert_replays(g2, user, "key-1", "hash-a", g1);
    store_call_t c;
    store_accept_t a = ts_store_avatar(g2, user, 1, 10);
    a.idempotency_key = "key-1";
    a.request_hash = "hash-b";
    store_call_accept(&c, &a);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    long long bal, held;
    ts_store_balance(user, 100, &bal, &held);
    assert_int_equal(held, 10);
    /* A refused request does not burn its key: after a grant the same key works. */
    assert_int_equal(ts_store_accept(ts_sc, g3, user, 1, 500, "key-2", "h", 100), GF_ECREDITS);
    store_call_credit(&c, user, 1000, "top-up", 100);
    assert_int_equal(ts_store_run_once(&c), 0);
    assert_int_equal(ts_store_accept(ts_sc, g3, user, 1, 500, "key-2", "h", 100), 0);
}

/*
 * A key past its 24 hours whose old row goes while a request reuses it (the
 * sweeper's purge, between the request's INSERT and its lock of the row) is
 * written again, naming the new generation: a retry of that request replays
 * it. Before, the generation was accepted with no key row, and the retry of
 * a lost answer made, and held credits for, a second one.
 */
static void test_a_key_purged_while_it_is_reused_is_written_again(void **state)
{
    (void)state;
    char user[37], g1[37], g2[37], g3[37];
    ts_new_ids(4, user, g1, g2, g3);
    assert_int_equal(ts_store_accept(ts_sc, g1, user, 1, 10, "key-old", "hash-a", 100), 0);
    assert_int_equal(ts_sh("psql -X -q -v ON_ERROR_STOP=1 \"$FARM_DATABASE_URL\" -c \"UPDATE "
                           "idempotency_keys SET created_at = now() - interval '25 hours' WHERE "
                           "user_id = '%s'\" >/dev/null",
                           user),
                     0);
    /* Another session locks the old row, then deletes it a second later, as the purge
     * would; the request below finds the row there (its INSERT does nothing), waits for
     * the lock, and then finds it gone. */
    assert_int_equal(ts_sh("(psql -X -q \"$FARM_DATABASE_URL\" -c \"BEGIN; SELECT 1 FROM "
                           "idempotency_keys WHERE user_id = '%s' FOR UPDATE; SELECT "
                           "pg_sleep(1.5); DELETE FROM idempotency_keys WHERE user_id = '%s'; "
                           "COMMIT;\" >/dev/null 2>&1 &)",
                           user, user),
                     0);
    usleep(700000);
    double t0 = ts_now();
    assert_int_equal(ts_store_accept(ts_sc, g2, user, 1, 10, "key-old", "hash-b", 100), 0);
    assert_true(ts_now() - t0 > 0.3); /* it did wait for the other session */
    assert_replays(g3, user, "key-old", "hash-b", g2);
    long long bal, held;
    ts_store_balance(user, 100, &bal, &held);
    assert_int_equal(held, 20); /* g1 and g2, not g3 */
}

static void test_cancel_and_expiry_release_everything(void **state)
{
    (void)state;
    char user[37], q[37], r[37], e[37];
    ts_new_ids(4, user, q, r, e);
    assert_int_equal(ts_store_accept(ts_sc, q, user, 2, 10, NULL, NULL, 100), 0);
    assert_int_equal(ts_store_accept(ts_sc, r, user, 2, 10, NULL, NULL, 100), 0);
    store_call_t c;
    store_call_cancel(&c, q, r); /* not the owner: not found */
    assert_int_equal(ts_store_run_once(&c), GF_ENOTFOUND);
    store_call_cancel(&c, q, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.cancel.applied, 1);
    /* The answer is the generation as the cancel left it, read in the same call. */
    assert_string_equal(c.res.cancel.generation.id, q);
    assert_string_equal(c.res.cancel.generation.status, "canceled");
    assert_int_equal(c.res.cancel.generation.released, 20);
    assert_non_null(c.res.cancel.generation.finished_at);
    store_call_dispose(&c);
    store_call_cancel(&c, q, user);
    assert_int_equal(ts_store_run_once(&c), GF_ECONFLICT);
    assert_int_equal(ts_store_start(r, 1), 0);
    store_call_cancel(&c, r, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.cancel.applied, 0); /* the worker finishes it */
    assert_string_equal(c.res.cancel.generation.status, "running");
    assert_null(c.res.cancel.generation.finished_at);
    store_call_dispose(&c);
    store_call_image(&c, r, 1, 0, 1, NULL);
    assert_int_equal(ts_store_run_once(&c), 0);
    assert_finishes(r, 1, "canceled", "canceled");
    /* Expiry: only once the deadline has passed. */
    store_accept_t a = ts_store_avatar(e, user, 1, 10);
    a.deadline_unix_ms = 1000;
    store_call_accept(&c, &a);
    assert_int_equal(ts_store_run_once(&c), 0);
    store_call_expire(&c, e);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.expire.applied, 1);
    store_call_dispose(&c);
    ts_assert_balance(user, 90, 0);
}

/* A cancel Postgres took while a worker ran the generation, which the queue
 * never passed on (Redis failed over) or whose worker handed the job back:
 * the next start (a takeover, a newer token) does not run it again. It ends
 * canceled there, the captured image charged, the rest released. */
static void test_a_start_after_a_cancel_ends_it_canceled(void **state)
{
    (void)state;
    char user[37], g[37];
    ts_new_ids(2, user, g);
    assert_int_equal(ts_store_accept(ts_sc, g, user, 3, 10, NULL, NULL, 100), 0);
    assert_int_equal(ts_store_start(g, 1), 0);
    store_call_t c;
    store_call_image(&c, g, 1, 0, 1, NULL);
    assert_int_equal(ts_store_run_once(&c), 0);
    store_call_cancel(&c, g, user);
    assert_int_equal(ts_store_run(&c), 0);
    assert_int_equal(c.res.cancel.applied, 0); /* running: flagged for its worker */
    store_call_dispose(&c);
    store_call_start(&c, g, 2, "local", NULL);
    assert_int_equal(ts_store_run(&c), GF_ECANCELED);
    assert_string_equal(c.res.start.status, "canceled");
    store_call_dispose(&c);
    assert_finishes(g, 2, "auto", "canceled"); /* already: the status in force */
    ts_assert_balance(user, 90, 0);
}

/* A generation never started before its deadline is expired by a late start
 * (its first start failed and the job came back after the deadline), not run. */
static void test_a_start_past_the_deadline_expires_it(void **state)
{
    (void)state;
    char user[37], g[37];
    ts_new_ids(2, user, g);
    store_accept_t a = ts_store_avatar(g, user, 1, 10);
    a.deadline_unix_ms = 1000;
    store_call_t c;
    store_call_accept(&c, &a);
    assert_int_equal(ts_store_run_once(&c), 0);
    store_call_start(&c, g, 1, "local", NULL);
    assert_int_equal(ts_store_run(&c), GF_ECANCELED);
    assert_string_equal(c.res.start.status, "expired");
    store_call_dispose(&c);
    ts_assert_balance(user, 100, 0);
}

/* Redis lost the claim that gave token 1 out and gave it again: two workers hold
 * the same token, and Postgres, which has the first start, refuses the second's. */
static int start_as(const char *g, long long fence, const char *worker)
{
    store_call_t c;
    store_call_start(&c, g, fence, "local", worker);
    return ts_store_run_once(&c);
}

static void test_one_token_given_twice_starts_one_worker(void **state)
{
    (void)state;
    char user[37], g[37];
    ts_new_ids(2, user, g);
    assert_int_equal(ts_store_accept(ts_sc, g, user, 1, 10, NULL, NULL, 100), 0);
    assert_int_equal(start_as(g, 1, "worker-a"), 0);
    assert_int_equal(start_as(g, 1, "worker-b"), GF_ECONFLICT); /* stale: not run twice */
    assert_int_equal(start_as(g, 1, "worker-a"), 0);            /* its own start, again */
    assert_int_equal(start_as(g, 2, "worker-b"), 0);            /* a newer token: a takeover */
    assert_int_equal(start_as(g, 2, "worker-a"), GF_ECONFLICT);
    assert_int_equal(start_as(g, 2, NULL), 0); /* an earlier release's call: not checked */
}

/* farm grant and farm token refuse sloppy numbers (exit 2) and change nothing; nor does a
 * refused grant. */
static void test_cli_refuses_sloppy_numbers(void **state)
{
    (void)state;
    char user[37];
    gf_uuid4(user);
    const char *cli = ts_env("FARM_TEST_CLI");
    assert_int_equal(ts_sh("'%s' grant --user %s --amount 5 >/dev/null", cli, user), 0);
    long long bal0, held0;
    ts_store_balance(user, 100, &bal0, &held0);
    static const char *const amounts[] = {"10abc",       "1e3", "99999999999999999999",
                                          "' 5'",        "+5",  "1000000001",
                                          "-1000000001", "''",  "0"};
    for (size_t i = 0; i < sizeof(amounts) / sizeof(amounts[0]); i++) {
        int st = ts_sh("'%s' grant --user %s --amount %s >/dev/null 2>&1", cli, user, amounts[i]);
        if (st != 2)
            fprintf(stderr, "grant --amount %s: exit %d\n", amounts[i], st);
        assert_int_equal(st, 2);
    }
    long long bal1, held1;
    ts_store_balance(user, 100, &bal1, &held1);
    assert_int_equal(bal1, bal0);
    static const char *const ttls[] = {
        "99999999999999999999", "9223372036854775807", "' 5'", "0", "-1", "31708801"};
    for (size_t i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++)
        assert_int_equal(ts_sh("'%s' token --sub %s --ttl %s >/dev/null 2>&1", cli, user, ttls[i]),
                         2);
    assert_int_equal(ts_sh("FARM_JWT_SECRET=0123456789abcdef '%s' token --sub %s --ttl 31536000 "
                           ">/dev/null",
                           cli, user),
                     0);
    /* An adjust below zero for an id never seen (a typo, say) is refused and provisions
     * nobody: no user, no account, no welcome credits. */
    char typo[37];
    gf_uuid4(typo);
    assert_int_equal(ts_sh("'%s' grant --user %s --amount -500 >/dev/null 2>&1", cli, typo), 1);
    assert_int_equal(ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT "
                           "(SELECT count(*) FROM users WHERE id = '%s') + (SELECT count(*) FROM "
                           "credit_accounts WHERE user_id = '%s') + (SELECT count(*) FROM "
                           "credit_ledger WHERE user_id = '%s')\")\" = 0",
                           typo, typo, typo),
                     0);
}

static void test_postgres_restart_is_a_clear_error_then_recovers(void **state)
{
    (void)state;
    char user[37], gen[37];
    gf_uuid4(user);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    store_call_t c;
    store_call_balance(&c, user, 100);
    assert_int_equal(ts_store_run(&c), GF_EUNAVAIL);
    assert_non_null(strstr(c.err.msg, "postgres"));
    store_call_dispose(&c);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    gf_uuid4(gen);
    assert_int_equal(ts_store_accept(ts_sc, gen, user, 1, 10, NULL, NULL, 100), 0);
    long long bal, held;
    ts_store_balance(user, 100, &bal, &held);
    assert_int_equal(held, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settlements_happen_once),
        cmocka_unit_test(test_a_failed_finish_after_captures_is_partial),
        cmocka_unit_test(test_stale_fencing_token_is_refused),
        cmocka_unit_test(test_no_outputs_for_released_images_or_ended_generations),
        cmocka_unit_test(test_a_cancel_before_the_last_image_record_ends_it_canceled),
        cmocka_unit_test(test_a_partial_finish_carries_no_error),
        cmocka_unit_test(test_settlement_refusals),
        cmocka_unit_test(test_image_done_finish_settles_and_finishes_at_once),
        cmocka_unit_test(test_idempotency_key_returns_the_first_generation),
        cmocka_unit_test(test_a_key_purged_while_it_is_reused_is_written_again),
        cmocka_unit_test(test_cancel_and_expiry_release_everything),
        cmocka_unit_test(test_a_start_after_a_cancel_ends_it_canceled),
        cmocka_unit_test(test_one_token_given_twice_starts_one_worker),
        cmocka_unit_test(test_a_start_past_the_deadline_expires_it),
        cmocka_unit_test(test_postgres_restart_is_a_clear_error_then_recovers),
        cmocka_unit_test(test_cli_refuses_sloppy_numbers),
        cmocka_unit_test(test_constraints_refuse_bad_rows),
    };
    return cmocka_run_group_tests(tests, ts_store_setup, ts_store_teardown);
}
