/*
 * tests/integration/store/reconcile.c - the ledger's reconciliation against the
 * fixture's real Postgres (docs/credits.md, docs/operations.md "farm reconcile exits 1"):
 * a random workload reconciles; the workers' periodic check is shared within its
 * interval and follows a clean `farm reconcile`; a corrupted row and dangling rows are
 * named.
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

/* Runs `farm reconcile` into $FARM_TEST_TMPDIR/`name`: it exits 1; its output into `text`. */
static void reconcile_fails(const char *name, char *text, size_t size)
{
    char out[256];
    snprintf(out, sizeof(out), "%s/%s", ts_env("FARM_TEST_TMPDIR"), name);
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 1);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    fclose(f);
}

/* --- the random workload and reconcile ----------------------------------------------- */

static void test_random_workload_reconciles(void **state)
{
    (void)state;
    enum { USERS = 20, OPS = 5000 };
    char users[USERS][37];
    char gens[OPS][37];
    int images[OPS];
    int ngens = 0;
    srand(42);
    for (int i = 0; i < USERS; i++)
        gf_uuid4(users[i]);
    for (int op = 0; op < OPS; op++) {
        int pick = rand() % 10;
        store_call_t c;
        if (pick < 3 || ngens == 0) {
            gf_uuid4(gens[ngens]);
            images[ngens] = 1 + rand() % 4;
            int rc = ts_store_accept(ts_sc, gens[ngens], users[rand() % USERS], images[ngens], 10,
                                     NULL, NULL, 100);
            assert_true(rc == 0 || rc == GF_ECREDITS);
            if (rc == 0)
                ngens++;
            continue;
        }
        int g = rand() % ngens;
        long long fence = 1 + rand() % 3;
        switch (pick) {
        case 3:
            store_call_start(&c, gens[g], fence, "local", NULL);
            break;
        case 4:
        case 5:
        case 6:
            store_call_image(&c, gens[g], fence, rand() % images[g], rand() % 3 != 0, NULL);
            break;
        case 7:
            store_call_finish(&c, gens[g], fence, "auto", NULL);
            break;
        case 8:
            store_call_cancel(&c, gens[g], users[rand() % USERS]);
            break;
        default:
            store_call_expire(&c, gens[g]);
            break;
        }
        int rc = ts_store_run(&c);
        assert_true(rc == 0 || rc == GF_ECONFLICT || rc == GF_ECANCELED || rc == GF_ENOTFOUND);
        store_call_dispose(&c);
    }
    /* Finish every generation so terminal invariants are checked too. */
    for (int g = 0; g < ngens; g++) {
        store_call_t c;
        store_call_finish(&c, gens[g], -1, "auto", NULL);
        assert_int_equal(ts_store_run_once(&c), 0);
    }
    gf_err_t err = {0};
    assert_int_equal(store_reconcile(ts_sc, stderr, &err), 0);
}

/* farm_reconcile_check(interval_s): the violations and when they were counted. */
static long long check_ledger(int interval_s, double *checked_at)
{
    store_call_t c;
    store_call_reconcile_check(&c, interval_s);
    assert_int_equal(ts_store_run(&c), 0);
    long long n = c.res.reconcile.violations;
    *checked_at = c.res.reconcile.checked_at;
    store_call_dispose(&c);
    return n;
}

/* Runs `sql` as a hand edit (psql). */
static void hand_edit(const char *sql)
{
    assert_int_equal(ts_sh("psql -X -q \"$FARM_DATABASE_URL\" -c \"%s\"", sql), 0);
}

/*
 * The workers' periodic check reads the ledger once an interval between them all: a check
 * within the interval of the farm's last one answers that one (same time, no new count),
 * so a violation made since shows only once the interval has passed.
 */
static void test_the_ledger_check_is_shared_within_its_interval(void **state)
{
    (void)state;
    double t1, t2, t3;
    assert_int_equal(check_ledger(0, &t1), 0); /* counted now */
    assert_true(t1 > 1.7e9);
    const char *user = "(SELECT user_id FROM credit_accounts ORDER BY user_id LIMIT 1)";
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE credit_accounts SET captured = captured + 1 WHERE user_id = %s", user);
    hand_edit(sql);
    assert_int_equal(check_ledger(3600, &t2), 0); /* the last check's answer, not a new one */
    assert_true(t2 == t1);
    assert_int_equal(check_ledger(0, &t3), 1); /* past its interval: counted again */
    assert_true(t3 > t1);
    snprintf(sql, sizeof(sql),
             "UPDATE credit_accounts SET captured = captured - 1 WHERE user_id = %s", user);
    hand_edit(sql);
    /* After the fix, a clean `farm reconcile` is the farm's last check: the workers'
     * next ask answers 0 without waiting for the interval. */
    assert_int_equal(ts_sh("'%s' reconcile > /dev/null", ts_env("FARM_TEST_CLI")), 0);
    double t4;
    assert_int_equal(check_ledger(3600, &t4), 0);
    assert_true(t4 > t3);
}

static void test_corrupted_row_is_named_by_reconcile(void **state)
{
    (void)state;
    PGconn *c = ts_pg_connect();
    /* The ledger refuses updates; a hand edit has to switch its triggers off. */
    PGresult *r =
        PQexec(c, "UPDATE credit_ledger SET amount = amount + 5 "
                  "WHERE id = (SELECT min(id) FROM credit_ledger WHERE kind = 'capture')");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(r), "append-only"));
    PQclear(r);
    r = PQexec(c, "SET session_replication_role = replica; "
                  "UPDATE credit_ledger SET amount = amount + 5 "
                  "WHERE id = (SELECT min(id) FROM credit_ledger WHERE kind = 'capture') "
                  "RETURNING id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char needle[64];
    snprintf(needle, sizeof(needle), "ledger row %s:", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    char text[8192];
    reconcile_fails("reconcile.out", text, sizeof(text));
    assert_non_null(strstr(text, needle));
}

/* Rows naming a user or a generation that does not exist are named too (no foreign keys: 0014,
 * 0015). */
static void test_dangling_ledger_rows_are_named_by_reconcile(void **state)
{
    (void)state;
    PGconn *c = ts_pg_connect();
    PGresult *r =
        PQexec(c, "INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index) "
                  "SELECT user_id, 'release', 1, gen_random_uuid(), 0 FROM credit_accounts LIMIT 1 "
                  "RETURNING id, generation_id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char want_gen[160], want_user[160];
    snprintf(want_gen, sizeof(want_gen),
             "ledger row %s: release for generation %s, which does not exist", PQgetvalue(r, 0, 0),
             PQgetvalue(r, 0, 1));
    PQclear(r);
    r = PQexec(c, "INSERT INTO credit_ledger (user_id, kind, amount, reason) "
                  "VALUES (gen_random_uuid(), 'grant', 5, 'hand') RETURNING id, user_id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(want_user, sizeof(want_user), "ledger row %s: grant for user %s, who does not exist",
             PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    PQclear(r);
    /* A generation of nobody (without a hold, which is named as well). */
    r = PQexec(c,
               "INSERT INTO generations (id, user_id, kind, plan, params, images, unit_cost, cost) "
               "VALUES (gen_random_uuid(), gen_random_uuid(), 'avatar', 'free', '{}', 1, 0, 0) "
               "RETURNING id, user_id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char want_owner[160];
    snprintf(want_owner, sizeof(want_owner), "generation %s: user %s does not exist",
             PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    PQclear(r);
    PQfinish(c);
    static char text[65536];
    reconcile_fails("reconcile-dangling.out", text, sizeof(text));
    assert_non_null(strstr(text, want_gen));
    assert_non_null(strstr(text, want_user));
    assert_non_null(strstr(text, want_owner));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_workload_reconciles),
        cmocka_unit_test(test_the_ledger_check_is_shared_within_its_interval),
        cmocka_unit_test(test_corrupted_row_is_named_by_reconcile),
        cmocka_unit_test(test_dangling_ledger_rows_are_named_by_reconcile),
    };
    return cmocka_run_group_tests(tests, ts_store_setup, ts_store_teardown);
}
