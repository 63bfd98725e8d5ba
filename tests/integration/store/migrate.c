/*
 * tests/integration/store/migrate.c - `farm migrate` semantics against the
 * fixture's real Postgres: order, idempotence, a failing file leaves no trace,
 * a changed applied file is refused, concurrent runs apply each file once.
 * Then the live SQL (store/sql): a database migrated by the numbered files
 * alone, as `farm migrate` did before store/sql, upgrades to exactly the
 * functions of store/sql and of a fresh database; an edited file is applied
 * again, a broken one not at all; concurrent full runs apply it once. An
 * older build's `farm migrate` refuses a database a newer one migrated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "support.h"

static char dir[512];
static char url[512];

/* CREATE DATABASE `name` on the fixture's server; its URL in `out`. 0, or -1 when refused. */
static int create_database(const char *name, char *out, size_t size)
{
    PGconn *c = PQconnectdb(ts_env("FARM_DATABASE_URL"));
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return -1;
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    snprintf(out, size, "%s", ts_env("FARM_DATABASE_URL"));
    char *slash = strrchr(out, '/');
    snprintf(slash, size - (size_t)(slash - out), "/%s", name);
    return ok ? 0 : -1;
}

/* The fixture's database holds the real migrations: these tests use their own. */
static int make_database(void **state)
{
    (void)state;
    return create_database("migtest", url, sizeof(url));
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_file(const char *name, const char *sql)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    write_text(path, sql);
}

static char *scalar_in(const char *db, const char *sql)
{
    PGconn *c = PQconnectdb(db);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The one value `sql` reads in `db` is `want`. */
static void assert_scalar_in(const char *db, const char *sql, const char *want)
{
    char *v = scalar_in(db, sql);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void assert_scalar(const char *sql, const char *want)
{
    assert_scalar_in(url, sql, want);
}

static int migrate(gf_err_t *err)
{
    return store_migrate(url, dir, NULL, err);
}

static void test_applies_in_order_then_nothing_twice(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/mig1", ts_env("FARM_TEST_TMPDIR"));
    mkdir(dir, 0755);
    /* 0002 depends on 0001: applied out of order it would fail. */
    write_file("0002_second.sql", "ALTER TABLE t_first ADD COLUMN b int;");
    write_file("0001_first.sql", "CREATE TABLE t_first (a int);");
    write_file("README.txt", "not a migration");
    gf_err_t err = {0};
    assert_int_equal(migrate(&err), 2);
    assert_scalar("SELECT count(*) FROM schema_migrations", "2");
    assert_int_equal(migrate(&err), 0);
    assert_scalar("SELECT count(*) FROM information_schema.columns "
                  "WHERE table_name = 't_first'",
                  "2");
}

static void test_failing_file_leaves_no_trace(void **state)
{
    (void)state;
    write_file("0003_broken.sql", "CREATE TABLE t_broken (a int); SELEC oops;");
    gf_err_t err = {0};
    assert_true(migrate(&err) < 0);
    assert_non_null(strstr(err.msg, "0003_broken.sql"));
    assert_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't_broken'", "0");
    assert_scalar("SELECT count(*) FROM schema_migrations WHERE version = 3", "0");
    write_file("0003_broken.sql", "CREATE TABLE t_broken (a int);");
    gf_err_clear(&err);
    assert_int_equal(migrate(&err), 1);
}

static void test_changed_applied_file_is_refused(void **state)
{
    (void)state;
    write_file("0001_first.sql", "CREATE TABLE t_first (a bigint);");
    write_file("0004_after.sql", "CREATE TABLE t_after (a int);");
    gf_err_t err = {0};
    assert_int_equal(migrate(&err), GF_ECONFLICT);
    assert_non_null(strstr(err.msg, "0001_first.sql was changed"));
    /* Nothing after the refused file was applied. */
    assert_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't_after'", "0");
    write_file("0001_first.sql", "CREATE TABLE t_first (a int);");
    gf_err_clear(&err);
    assert_int_equal(migrate(&err), 1);
}

static void *run_migrate(void *arg)
{
    gf_err_t err = {0};
    *(int *)arg = migrate(&err);
    return NULL;
}

static void test_concurrent_runs_apply_each_file_once(void **state)
{
    (void)state;
    char name[64], sql[128];
    for (int i = 10; i < 30; i++) {
        snprintf(name, sizeof(name), "%04d_t%d.sql", i, i);
        snprintf(sql, sizeof(sql), "CREATE TABLE t_c%d (a int); SELECT pg_sleep(0.01);", i);
        write_file(name, sql);
    }
    pthread_t th[4];
    int rc[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, run_migrate, &rc[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(rc[i] >= 0);
        total += rc[i];
    }
    assert_int_equal(total, 20);
}

static void test_unreachable_database_is_a_clear_error(void **state)
{
    (void)state;
    char bad[128];
    snprintf(bad, sizeof(bad), "postgresql://farm:hunter22@127.0.0.1:%d/farm", ts_free_port());
    gf_err_t err = {0};
    assert_true(store_migrate(bad, dir, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "connecting to postgres"));
    assert_null(strstr(err.msg, "hunter22"));
}

/* --- the live SQL ------------------------------------------------------------ */

static char repo_migrations[512]; /* the repository's migrations/, beside store/sql */
static char upgraded_url[512];    /* migrated by the numbered files first, then upgraded */
static char fresh_url[512];       /* migrated by today's runner from the start */
static char tree[512];            /* a copy of migrations/ and store/sql/ to edit */

#define FUNCTION_DEFS                                                                              \
    "SELECT string_agg(p.oid::regprocedure::text || E'\\n' || pg_get_functiondef(p.oid), E'\\n' "  \
    "ORDER BY p.oid::regprocedure::text) FROM pg_proc p "                                          \
    "WHERE p.pronamespace = 'public'::regnamespace"

/* Every function of the database: its signature and its definition, one text. */
static void new_database(const char *name, char *out, size_t size)
{
    assert_int_equal(create_database(name, out, size), 0);
}

static void write_tree_file(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/store/sql/%s", tree, name);
    write_text(path, text);
}

static char *function_defs(const char *db)
{
    char *defs = scalar_in(db, FUNCTION_DEFS);
    assert_non_null(defs);
    return defs;
}

static int is_sql_file(const struct dirent *de)
{
    size_t len = strlen(de->d_name);
    return len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
}

/*
 * Runs every file of store/sql again in a transaction rolled back
 * afterwards. Returns whether that changed no function definition; fills
 * `untouched` with the functions of the schema that no file (re)made.
 */
static int rerun_store_sql(const char *db, char **untouched)
{
    char sql_dir[1024];
    snprintf(sql_dir, sizeof(sql_dir), "%s/../store/sql", repo_migrations);
    struct dirent **names;
    int n = scandir(sql_dir, &names, is_sql_file, alphasort);
    assert_true(n > 0);
    PGconn *c = PQconnectdb(db);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PQclear(PQexec(c, "BEGIN"));
    PGresult *r = PQexec(c, FUNCTION_DEFS);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char *before = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    for (int i = 0; i < n; i++) {
        char path[1300];
        snprintf(path, sizeof(path), "%s/%s", sql_dir, names[i]->d_name);
        char *text = slurp(path);
        r = PQexec(c, text);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fail_msg("%s: %s", names[i]->d_name, PQresultErrorMessage(r));
        PQclear(r);
        free(text);
        free(names[i]);
    }
    free(names);
    r = PQexec(c, FUNCTION_DEFS);
    int same = strcmp(PQgetvalue(r, 0, 0), before) == 0;
    PQclear(r);
    /* A function no file made was not written by this transaction. */
    r = PQexec(c, "SELECT coalesce(string_agg(proname, ', '), '') FROM pg_proc "
                  "WHERE pronamespace = 'public'::regnamespace "
                  "AND xmin::text <> (pg_current_xact_id()::text::bigint % 4294967296)::text");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    *untouched = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    free(before);
    return same;
}

/* The database's functions are exactly store/sql's, and there are no others. */
static void assert_functions_are_store_sql(const char *db)
{
    char *untouched = NULL;
    assert_true(rerun_store_sql(db, &untouched));
    assert_string_equal(untouched, "");
    free(untouched);
}

static int count_files(const char *path, const char *pattern)
{
    long long n = -1;
    assert_int_equal(ts_sh_number(&n, "ls %s/%s | wc -l", path, pattern), 0);
    return (int)n;
}

/* store_migrate_sql, naming the error when there is one (the tests expect none). */
static int migrate_sql(const char *db, const char *migrations, FILE *out)
{
    gf_err_t err = {0};
    int rc = store_migrate_sql(db, migrations, out, &err);
    if (rc < 0)
        print_error("store_migrate_sql: %s\n", err.msg);
    return rc;
}

static void test_database_of_numbered_files_upgrades_to_store_sql(void **state)
{
    (void)state;
    snprintf(repo_migrations, sizeof(repo_migrations), "%s", ts_env("FARM_MIGRATIONS_DIR"));
    new_database("upgraded", upgraded_url, sizeof(upgraded_url));
    /* As the previous version left a database: the numbered files 0001 to
     * 0016 applied and recorded with their checksums as shipped (#13 moved
     * their function definitions to store/sql: migrations/shipped.sha256
     * lists the shipped checksums), and the functions of then in place, among
     * them farm_reconcile_0014 (0015 as shipped renamed the old
     * farm_reconcile to it) and bodies older than store/sql's. */
    char old[600];
    snprintf(old, sizeof(old), "%s/old/migrations", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("mkdir -p %s && cp %s/000*.sql %s/001[0-6]_*.sql %s", old,
                           repo_migrations, repo_migrations, old),
                     0);
    gf_err_t err = {0};
    assert_int_equal(store_migrate(upgraded_url, old, NULL, &err), 16);
    free(scalar_in(upgraded_url,
                   "CREATE FUNCTION farm_reconcile_0014() RETURNS TABLE (problem text) "
                   "LANGUAGE sql STABLE AS $$ SELECT NULL::text WHERE false $$; "
                   "CREATE FUNCTION farm_ts(t timestamptz) RETURNS text "
                   "LANGUAGE sql IMMUTABLE AS $$ SELECT 'shipped' $$"));
    char shipped_path[600], line[512];
    snprintf(shipped_path, sizeof(shipped_path), "%s/shipped.sha256", repo_migrations);
    FILE *shipped = fopen(shipped_path, "r");
    assert_non_null(shipped);
    int recorded = 0;
    while (fgets(line, sizeof(line), shipped)) {
        char sum[65], file[256], sql[600];
        if (line[0] == '#' || sscanf(line, "%64s %255s", sum, file) != 2)
            continue;
        snprintf(sql, sizeof(sql),
                 "UPDATE schema_migrations SET checksum = '%s' WHERE name = '%s' "
                 "RETURNING version",
                 sum, file);
        char *v = scalar_in(upgraded_url, sql);
        assert_non_null(v);
        free(v);
        recorded++;
    }
    fclose(shipped);
    assert_true(recorded > 0);
    /* A checksum neither shipped nor current is still a changed migration. */
    free(scalar_in(upgraded_url, "UPDATE schema_migrations SET checksum = 'ab' || checksum "
                                 "WHERE version = 2"));
    assert_int_equal(store_migrate(upgraded_url, repo_migrations, NULL, &err), GF_ECONFLICT);
    free(scalar_in(upgraded_url, "UPDATE schema_migrations SET checksum = substr(checksum, 3) "
                                 "WHERE version = 2"));
    assert_scalar_in(upgraded_url,
                     "SELECT count(*) FROM pg_proc "
                     "WHERE proname = 'farm_reconcile_0014'",
                     "1");

    /* Today's `farm migrate`: the numbered files (those applied keep their checksums), then
     * store/sql. */
    int numbered = count_files(repo_migrations, "[0-9][0-9][0-9][0-9]_*.sql");
    int live = count_files(repo_migrations, "../store/sql/*.sql");
    assert_int_equal(store_migrate(upgraded_url, repo_migrations, NULL, &err), numbered - 16);
    assert_int_equal(migrate_sql(upgraded_url, repo_migrations, NULL), live);
    assert_functions_are_store_sql(upgraded_url);
    assert_scalar_in(upgraded_url,
                     "SELECT count(*) FROM pg_proc "
                     "WHERE proname = 'farm_reconcile_0014'",
                     "0");

    /* Again: nothing to do. */
    assert_int_equal(store_migrate(upgraded_url, repo_migrations, NULL, &err), 0);
    assert_int_equal(migrate_sql(upgraded_url, repo_migrations, NULL), 0);
}

static void test_fresh_database_has_the_functions_of_the_upgraded_one(void **state)
{
    (void)state;
    new_database("fresh", fresh_url, sizeof(fresh_url));
    gf_err_t err = {0};
    assert_true(store_migrate(fresh_url, repo_migrations, NULL, &err) > 0);
    assert_true(migrate_sql(fresh_url, repo_migrations, NULL) > 0);
    assert_functions_are_store_sql(fresh_url);
    char *fresh = function_defs(fresh_url);
    char *upgraded = function_defs(upgraded_url);
    assert_string_equal(fresh, upgraded);
    free(fresh);
    free(upgraded);
}

/*
 * During a rolling deploy the processes of the version before still run on the migrated
 * database: their calls whose arguments changed since are still there, in their shapes.
 */
static void test_the_version_befores_calls_still_answer(void **state)
{
    (void)state;
    /* farm_webhook_claim(limit, lease): now_ms and items, nothing recorded */
    assert_scalar_in(fresh_url, "SELECT farm_webhook_claim(10, 60) ?& ARRAY['now_ms', 'items']",
                     "t");
    /* farm_image_done_finish(id, fence, index, outputs): image, outcome, status */
    assert_scalar_in(fresh_url,
                     "SELECT f.image || '/' || coalesce(f.outcome, '-') || '/' || "
                     "coalesce(f.status, '-') FROM farm_image_done_finish("
                     "'00000000-0000-4000-8000-00000000dead'::uuid, 1, 0, '[]'::jsonb) f",
                     "not_found/-/-");
    /* farm_webhook_retry(id): how many were put back */
    assert_scalar_in(
        fresh_url, "SELECT farm_webhook_retry('00000000-0000-4000-8000-00000000dead'::uuid)", "0");
}

#define FARM_TS_EDITED                                                                             \
    "CREATE OR REPLACE FUNCTION farm_ts(t timestamptz) RETURNS text\n"                             \
    "LANGUAGE sql IMMUTABLE AS $$ SELECT 'edited' $$;\n"

static void test_edited_sql_file_is_applied_again(void **state)
{
    (void)state;
    /* A copy of the two folders, laid out as in the repository. */
    snprintf(tree, sizeof(tree), "%s/tree", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("mkdir -p %s/store && cp -r %s %s/migrations && cp -r %s/../store/sql "
                           "%s/store/sql",
                           tree, repo_migrations, tree, repo_migrations, tree),
                     0);
    char migrations[600];
    snprintf(migrations, sizeof(migrations), "%s/migrations", tree);
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 0);

    write_tree_file("farm_ts.sql", FARM_TS_EDITED);
    char *out = NULL;
    size_t out_len = 0;
    FILE *log = open_memstream(&out, &out_len);
    assert_int_equal(migrate_sql(upgraded_url, migrations, log), 1);
    fclose(log);
    assert_non_null(strstr(out, "applied store/sql/farm_ts.sql\n"));
    free(out);
    assert_scalar_in(upgraded_url, "SELECT farm_ts(now())", "edited");
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 0);

    /* A new return type: the file drops the old function first, in the same transaction. */
    write_tree_file("farm_ts.sql", "DROP FUNCTION IF EXISTS farm_ts(timestamptz);\n"
                                   "CREATE OR REPLACE FUNCTION farm_ts(t timestamptz) RETURNS int\n"
                                   "LANGUAGE sql IMMUTABLE AS $$ SELECT 7 $$;\n");
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 1);
    assert_scalar_in(upgraded_url, "SELECT pg_typeof(farm_ts(now()))::text || farm_ts(now())",
                     "integer7");

    /* Back to text, dropping the int one first; then the repository's file as it is. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/../store/sql/farm_ts.sql", repo_migrations);
    char *repo_text = slurp(path);
    char *text = NULL;
    assert_true(asprintf(&text, "DROP FUNCTION IF EXISTS farm_ts(timestamptz);\n%s", repo_text) >
                0);
    write_tree_file("farm_ts.sql", text);
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 1);
    assert_functions_are_store_sql(upgraded_url);
    write_tree_file("farm_ts.sql", repo_text);
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 1);
    assert_functions_are_store_sql(upgraded_url);
    free(text);
    free(repo_text);
}

static void test_broken_sql_file_applies_nothing(void **state)
{
    (void)state;
    char migrations[600];
    snprintf(migrations, sizeof(migrations), "%s/migrations", tree);
    char *before = function_defs(upgraded_url);
    char *recorded = scalar_in(upgraded_url, "SELECT string_agg(name || checksum, ',' "
                                             "ORDER BY name) FROM schema_sql");
    /* farm_ts comes after farm_reconcile in ORDER: the edit of one is undone with the other. */
    write_tree_file("farm_reconcile.sql", "CREATE OR REPLACE FUNCTION farm_reconcile() "
                                          "RETURNS TABLE (problem text) LANGUAGE sql STABLE AS "
                                          "$$ SELECT 'edited' $$;\n");
    write_tree_file("farm_ts.sql", "CREATE OR REPLACE FUNCTION farm_ts(t timestamptz) RETURNS "
                                   "text LANGUAGE sql IMMUTABLE AS $$ SELEC 1 $$;\n");
    gf_err_t err = {0};
    assert_true(store_migrate_sql(upgraded_url, migrations, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "store/sql/farm_ts.sql"));
    char *after = function_defs(upgraded_url);
    assert_string_equal(after, before);
    char *recorded_after = scalar_in(upgraded_url, "SELECT string_agg(name || checksum, ',' "
                                                   "ORDER BY name) FROM schema_sql");
    assert_string_equal(recorded_after, recorded);
    free(before);
    free(after);
    free(recorded);
    free(recorded_after);
    assert_int_equal(ts_sh("cp %s/../store/sql/farm_ts.sql %s/../store/sql/farm_reconcile.sql "
                           "%s/store/sql/",
                           repo_migrations, repo_migrations, tree),
                     0);
    gf_err_clear(&err);
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 0);
}

static void test_sql_file_missing_from_order_is_refused(void **state)
{
    (void)state;
    char migrations[600];
    snprintf(migrations, sizeof(migrations), "%s/migrations", tree);
    write_tree_file("farm_extra.sql", "SELECT 1;\n");
    gf_err_t err = {0};
    assert_int_equal(store_migrate_sql(upgraded_url, migrations, NULL, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "farm_extra.sql is not listed"));
    assert_int_equal(ts_sh("rm %s/store/sql/farm_extra.sql", tree), 0);
}

static void test_new_migration_applies_store_sql_again(void **state)
{
    (void)state;
    char migrations[600];
    snprintf(migrations, sizeof(migrations), "%s/migrations", tree);
    char path[700];
    snprintf(path, sizeof(path), "%s/9999_later.sql", migrations);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("CREATE TABLE t_later (a int);\n"
          "CREATE FUNCTION farm_stray() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
          f);
    fclose(f);
    gf_err_t err = {0};
    assert_int_equal(store_migrate(upgraded_url, migrations, NULL, &err), 1);
    /* A schema change may have dropped what a file made: every file goes again. */
    int live = count_files(repo_migrations, "../store/sql/*.sql");
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), live);
    assert_int_equal(migrate_sql(upgraded_url, migrations, NULL), 0);
    /* A function that is in no file is found. */
    char *untouched = NULL;
    assert_true(rerun_store_sql(upgraded_url, &untouched));
    assert_string_equal(untouched, "farm_stray");
    free(untouched);
}

/* `farm migrate` of the built CLI on `db` with `migrations`: its exit status; its output in
 * `out` (a file). */
static int farm_migrate(const char *db, const char *migrations, const char *out)
{
    return ts_sh("FARM_DATABASE_URL='%s' FARM_MIGRATIONS_DIR='%s' '%s' migrate >'%s' 2>&1", db,
                 migrations, ts_env("FARM_TEST_CLI"), out);
}

/* A copy of the repository's two folders at FARM_TEST_TMPDIR/name; its migrations folder in
 * `out`. */
static void copy_tree(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", ts_env("FARM_TEST_TMPDIR"), name);
    assert_int_equal(ts_sh("mkdir -p %s/store && cp -r %s %s/migrations && cp -r %s/../store/sql "
                           "%s/store/sql",
                           out, repo_migrations, out, repo_migrations, out),
                     0);
    size_t len = strlen(out);
    snprintf(out + len, size - len, "/migrations");
}

/*
 * A build older than the one that migrated the database (a host that boots
 * before its upgrade, a rollback, an old Job) must not put its SQL back: B,
 * newer, has a migration and a changed function more than A; after B
 * migrated, A's `farm migrate` exits 1 and B's function stays.
 */
static void test_older_build_refuses_a_newer_database(void **state)
{
    (void)state;
    char db[512], newer[600], log[700];
    new_database("rollback", db, sizeof(db));
    snprintf(log, sizeof(log), "%s/rollback.log", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(farm_migrate(db, repo_migrations, log), 0);

    copy_tree("newer", newer, sizeof(newer));
    char path[700];
    snprintf(path, sizeof(path), "%s/9998_newer.sql", newer);
    write_text(path, "CREATE TABLE t_newer (a int);\n");
    snprintf(path, sizeof(path), "%s/../store/sql/farm_ts.sql", newer);
    write_text(path, FARM_TS_EDITED);
    assert_int_equal(farm_migrate(db, newer, log), 0);
    assert_scalar_in(db, "SELECT farm_ts(now())", "edited");
    char *recorded = scalar_in(db, "SELECT string_agg(name || checksum || migrations, ',' "
                                   "ORDER BY name) FROM schema_sql");

    /* A, older: refused, naming the migration it lacks; nothing changed. */
    assert_int_equal(farm_migrate(db, repo_migrations, log), 1);
    char *said = slurp(log);
    assert_non_null(strstr(said, "the database was migrated by a newer build: migration "
                                 "9998_newer.sql has no file in"));
    free(said);
    assert_scalar_in(db, "SELECT farm_ts(now())", "edited");
    /* Each step refuses alone too. */
    gf_err_t err = {0};
    assert_int_equal(store_migrate(db, repo_migrations, NULL, &err), GF_ECONFLICT);
    gf_err_clear(&err);
    assert_int_equal(store_migrate_sql(db, repo_migrations, NULL, &err), GF_ECONFLICT);
    assert_non_null(strstr(err.msg, "9998_newer.sql"));
    assert_scalar_in(db, "SELECT farm_ts(now())", "edited");
    char *after = scalar_in(db, "SELECT string_agg(name || checksum || migrations, ',' "
                                "ORDER BY name) FROM schema_sql");
    assert_string_equal(after, recorded);
    free(after);
    free(recorded);

    /* A hole below the highest file (a deleted one) is refused as well. */
    snprintf(path, sizeof(path), "%s/9998_newer.sql", newer);
    assert_int_equal(ts_sh("mv %s %s/9999_renumbered.sql", path, newer), 0);
    gf_err_clear(&err);
    assert_int_equal(store_migrate(db, newer, NULL, &err), GF_ECONFLICT);
    assert_non_null(strstr(err.msg, "migration 9998_newer.sql is recorded as applied but has no "
                                    "file"));
    assert_scalar_in(db, "SELECT count(*) FROM schema_migrations WHERE version = 9999", "0");
}

/*
 * The same for store/sql alone: a newer build that added a function file
 * without a numbered migration migrated the database; the older build does
 * not forget the file nor put its own bodies back. A file retired with a
 * migration (one dropping its function) is forgotten.
 */
static void test_unknown_store_sql_file_is_refused_unless_retired(void **state)
{
    (void)state;
    char db[512], newer[600], log[700];
    new_database("rollback_sql", db, sizeof(db));
    snprintf(log, sizeof(log), "%s/rollback_sql.log", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(farm_migrate(db, repo_migrations, log), 0);

    copy_tree("newer_sql", newer, sizeof(newer));
    char path[700];
    snprintf(path, sizeof(path), "%s/../store/sql/farm_added.sql", newer);
    write_text(path, "CREATE OR REPLACE FUNCTION farm_added() RETURNS int LANGUAGE sql "
                     "AS 'SELECT 1';\n");
    snprintf(path, sizeof(path), "%s/../store/sql/ORDER", newer);
    assert_int_equal(ts_sh("echo farm_added.sql >> %s", path), 0);
    snprintf(path, sizeof(path), "%s/../store/sql/farm_ts.sql", newer);
    write_text(path, FARM_TS_EDITED);
    assert_int_equal(farm_migrate(db, newer, log), 0);
    assert_scalar_in(db, "SELECT farm_added()", "1");

    assert_int_equal(farm_migrate(db, repo_migrations, log), 1);
    char *said = slurp(log);
    assert_non_null(strstr(said, "the database was migrated by a newer build: "
                                 "store/sql/farm_added.sql is applied there"));
    free(said);
    assert_scalar_in(db, "SELECT farm_ts(now())", "edited");
    assert_scalar_in(db, "SELECT count(*) FROM schema_sql WHERE name = 'farm_added.sql'", "1");

    /* Retired: a migration drops its function and the file is gone from ORDER. */
    snprintf(path, sizeof(path), "%s/9997_retire_added.sql", newer);
    write_text(path, "DROP FUNCTION farm_added();\n");
    assert_int_equal(ts_sh("sed -i '/^farm_added.sql$/d' %s/../store/sql/ORDER && "
                           "rm %s/../store/sql/farm_added.sql",
                           newer, newer),
                     0);
    assert_int_equal(farm_migrate(db, newer, log), 0);
    assert_scalar_in(db, "SELECT count(*) FROM schema_sql WHERE name = 'farm_added.sql'", "0");
    assert_scalar_in(db, "SELECT farm_ts(now())", "edited");
}

typedef struct {
    const char *url;
    int numbered, live;
} full_run_t;

static void *run_full_migrate(void *arg)
{
    full_run_t *run = arg;
    gf_err_t err = {0};
    run->numbered = store_migrate(run->url, repo_migrations, NULL, &err);
    run->live = run->numbered < 0 ? -1 : store_migrate_sql(run->url, repo_migrations, NULL, &err);
    return NULL;
}

static void test_concurrent_full_runs_apply_store_sql_once(void **state)
{
    (void)state;
    char db[512];
    new_database("concurrent", db, sizeof(db));
    pthread_t th[4];
    full_run_t runs[4];
    for (int i = 0; i < 4; i++) {
        runs[i] = (full_run_t){.url = db};
        pthread_create(&th[i], NULL, run_full_migrate, &runs[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int numbered = 0, live = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(runs[i].numbered >= 0);
        assert_true(runs[i].live >= 0);
        numbered += runs[i].numbered;
        live += runs[i].live;
    }
    assert_int_equal(numbered, count_files(repo_migrations, "[0-9][0-9][0-9][0-9]_*.sql"));
    assert_int_equal(live, count_files(repo_migrations, "../store/sql/*.sql"));
    char *defs = function_defs(db);
    char *fresh = function_defs(fresh_url);
    assert_string_equal(defs, fresh);
    free(defs);
    free(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies_in_order_then_nothing_twice),
        cmocka_unit_test(test_failing_file_leaves_no_trace),
        cmocka_unit_test(test_changed_applied_file_is_refused),
        cmocka_unit_test(test_concurrent_runs_apply_each_file_once),
        cmocka_unit_test(test_unreachable_database_is_a_clear_error),
        cmocka_unit_test(test_database_of_numbered_files_upgrades_to_store_sql),
        cmocka_unit_test(test_fresh_database_has_the_functions_of_the_upgraded_one),
        cmocka_unit_test(test_the_version_befores_calls_still_answer),
        cmocka_unit_test(test_edited_sql_file_is_applied_again),
        cmocka_unit_test(test_broken_sql_file_applies_nothing),
        cmocka_unit_test(test_sql_file_missing_from_order_is_refused),
        cmocka_unit_test(test_new_migration_applies_store_sql_again),
        cmocka_unit_test(test_concurrent_full_runs_apply_store_sql_once),
        cmocka_unit_test(test_older_build_refuses_a_newer_database),
        cmocka_unit_test(test_unknown_store_sql_file_is_refused_unless_retired),
    };
    return cmocka_run_group_tests(tests, make_database, NULL);
}
