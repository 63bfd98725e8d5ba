/*
 * tests/integration/store/scale.c - statements whose cost must not grow
 * with the farm's tables, against the fixture's real Postgres: each test
 * puts thousands of other rows beside its own (ANALYZEd, so the planner
 * knows), runs the function as the farm calls it inside a transaction, and
 * reads that transaction's own statistics (pg_stat_xact_user_tables): no
 * sequential scan of the table, and still the right answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_util.h"
#include "support.h"

/* Runs `sql` (no result expected) on `pg`. */
static void pg_run(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

/* The one value of `sql` with one text parameter `p`, in `out`. */
static void pg_text(PGconn *pg, const char *sql, const char *p, char *out, size_t cap)
{
    const char *params[] = {p};
    PGresult *res = PQexecParams(pg, sql, p ? 1 : 0, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Sequential scans of `table` so far in `pg`'s open transaction. */
static long long xact_seq_scans(PGconn *pg, const char *table)
{
    char v[32];
    pg_text(pg,
            "SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables WHERE relname = $1",
            table, v, sizeof(v));
    return atoll(v);
}

/*
 * Deleting a generation reads the storage deletions listed for it by
 * index: among 20,000 pending deletions of other generations, the
 * generation's own output key comes back, and storage_deletions is not
 * scanned (it was, whole, before migration 0023).
 */
static void test_deleting_a_generation_reads_only_its_own_deletions(void **state)
{
    (void)state;
    PGconn *pg = ts_pg_connect();
    pg_run(pg, "INSERT INTO storage_deletions (storage_key, user_id, generation_id, reason)"
               " SELECT 'outputs/' || g || '/0-full.png', gen_random_uuid(), g, 'deleted'"
               " FROM (SELECT gen_random_uuid() AS g FROM generate_series(1, 20000)) s;"
               "ANALYZE storage_deletions");
    char user[37], gen[37], out[128];
    gf_uuid4(user);
    gf_uuid4(gen);
    assert_int_equal(ts_store_accept(ts_sc, gen, user, 1, 10, NULL, NULL, 100), 0);
    pg_text(pg, "SELECT status FROM farm_finish($1::uuid, NULL, 'canceled', NULL)", gen, out,
            sizeof(out));
    assert_string_equal(out, "canceled");
    pg_text(pg,
            "INSERT INTO generation_outputs (generation_id, image_index, variant, format, width,"
            " height, bytes, sha256, storage_key) VALUES ($1::uuid, 0, 'full', 'png', 1, 1, 1,"
            " 'x', 'outputs/' || $1 || '/0-full.png') RETURNING storage_key",
            gen, out, sizeof(out));
    char key[160];
    snprintf(key, sizeof(key), "[\"%s\"]", out);

    pg_run(pg, "BEGIN");
    const char *params[] = {gen, user};
    PGresult *res = PQexecParams(pg, "SELECT farm_generation_delete($1::uuid, $2::uuid)", 2, NULL,
                                 params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    const char *answer = PQgetvalue(res, 0, 0);
    assert_non_null(strstr(answer, "\"outcome\": \"deleted\""));
    assert_non_null(strstr(answer, key));
    PQclear(res);
    assert_int_equal(xact_seq_scans(pg, "storage_deletions"), 0);
    pg_run(pg, "COMMIT");
    PQfinish(pg);
}

/*
 * `farm webhooks list` for one generation reads that generation's
 * deliveries by index, and `--failed` the failed ones by theirs: among
 * 20,000 deliveries, neither scans webhook_deliveries, and each lists
 * what it should, newest first.
 */
static void test_listing_webhooks_of_a_generation_or_failed_reads_by_index(void **state)
{
    (void)state;
    PGconn *pg = ts_pg_connect();
    char user[37], gen[37], out[8192];
    gf_uuid4(user);
    gf_uuid4(gen);
    assert_int_equal(ts_store_accept(ts_sc, gen, user, 1, 0, NULL, NULL, 0), 0);
    /* 2,000 other generations of 10 delivered image events each. */
    pg_run(pg, "CREATE TEMP TABLE others AS SELECT gen_random_uuid() AS id"
               " FROM generate_series(1, 2000)");
    const char *params[] = {user};
    PGresult *res =
        PQexecParams(pg,
                     "INSERT INTO generations (id, user_id, kind, plan, params, images, unit_cost,"
                     " cost) SELECT id, $1::uuid, 'avatar', 'free', '{}', 1, 0, 0 FROM others",
                     1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    pg_run(pg, "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, status,"
               " next_attempt_at, created_at)"
               " SELECT gen_random_uuid(), o.id, 'image', s, 'image', 'https://example.com/h',"
               " 'delivered', NULL, now() - interval '1 hour' + s * interval '1 second'"
               " FROM others o, generate_series(0, 9) s;"
               "ANALYZE webhook_deliveries");
    /* Ours: an image event that failed, then the terminal one, still pending. */
    const char *gp[] = {gen};
    res =
        PQexecParams(pg,
                     "INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url,"
                     " status, next_attempt_at, created_at) VALUES"
                     " (gen_random_uuid(), $1::uuid, 'image', 0, 'image', 'https://example.com/h',"
                     "  'failed', NULL, now() - interval '2 seconds'),"
                     " (gen_random_uuid(), $1::uuid, 'terminal', 0, 'failed',"
                     "  'https://example.com/h', 'pending', now() + interval '1 hour', now())",
                     1, NULL, gp, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    pg_run(pg, "BEGIN");
    pg_text(pg,
            "SELECT (SELECT string_agg(e->>'status', ',' ORDER BY o) FROM jsonb_array_elements("
            "farm_webhooks_list(false, $1::uuid, 100)) WITH ORDINALITY AS x(e, o))",
            gen, out, sizeof(out));
    assert_string_equal(out, "pending,failed");
    pg_text(pg,
            "SELECT string_agg(e->>'generation_id' || ' ' || (e->>'status'), ',')"
            " FROM jsonb_array_elements(farm_webhooks_list(true, NULL::uuid, 100)) e",
            NULL, out, sizeof(out));
    char want[64];
    snprintf(want, sizeof(want), "%s failed", gen);
    assert_string_equal(out, want);
    assert_int_equal(xact_seq_scans(pg, "webhook_deliveries"), 0);
    pg_run(pg, "COMMIT");
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deleting_a_generation_reads_only_its_own_deletions),
        cmocka_unit_test(test_listing_webhooks_of_a_generation_or_failed_reads_by_index),
    };
    return cmocka_run_group_tests(tests, ts_store_setup, ts_store_teardown);
}
