/*
 * tests/integration/store_migrate.c - `farm migrate` semantics against the
 * fixture's real Postgres: order, idempotence, a failing file leaves no trace,
 * a changed applied file is refused, concurrent runs apply each file once.
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
#include <sys/stat.h>

#include "store.h"
#include "support.h"

static char dir[512];
static char url[512];

/* The fixture's database holds the real migrations: these tests use their own. */
static int make_database(void **state)
{
    (void)state;
    PGconn *c = PQconnectdb(ts_env("FARM_DATABASE_URL"));
    if (PQstatus(c) != CONNECTION_OK)
        return -1;
    PGresult *r = PQexec(c, "CREATE DATABASE migtest");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    snprintf(url, sizeof(url), "%s", ts_env("FARM_DATABASE_URL"));
    char *slash = strrchr(url, '/');
    snprintf(slash, sizeof(url) - (size_t)(slash - url), "/migtest");
    return ok ? 0 : -1;
}

static void write_file(const char *name, const char *sql)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(sql, f);
    fclose(f);
}

static char *scalar(const char *sql)
{
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
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
    char *n = scalar("SELECT count(*) FROM schema_migrations");
    assert_string_equal(n, "2");
    free(n);
    assert_int_equal(migrate(&err), 0);
    char *cols = scalar("SELECT count(*) FROM information_schema.columns "
                        "WHERE table_name = 't_first'");
    assert_string_equal(cols, "2");
    free(cols);
}

static void test_failing_file_leaves_no_trace(void **state)
{
    (void)state;
    write_file("0003_broken.sql", "CREATE TABLE t_broken (a int); SELEC oops;");
    gf_err_t err = {0};
    assert_true(migrate(&err) < 0);
    assert_non_null(strstr(err.msg, "0003_broken.sql"));
    char *t = scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't_broken'");
    assert_string_equal(t, "0");
    free(t);
    char *v = scalar("SELECT count(*) FROM schema_migrations WHERE version = 3");
    assert_string_equal(v, "0");
    free(v);
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
    char *t = scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't_after'");
    assert_string_equal(t, "0");
    free(t);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies_in_order_then_nothing_twice),
        cmocka_unit_test(test_failing_file_leaves_no_trace),
        cmocka_unit_test(test_changed_applied_file_is_refused),
        cmocka_unit_test(test_concurrent_runs_apply_each_file_once),
        cmocka_unit_test(test_unreachable_database_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, make_database, NULL);
}
