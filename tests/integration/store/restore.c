/*
 * tests/integration/store/restore.c - the restore drill (docs/operations.md,
 * "Backups and restore"): a farm with finished and running generations is
 * dumped with scripts/backup; the dump is restored into a new database, the
 * queue is lost with it (Redis flushed: a new site), and a farm started on
 * the restored database must find it whole: `farm reconcile` clean, the
 * generations that were running enqueued again by the sweeper and
 * finished, and every output file served from the storage that outlived
 * the database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_harness.h"
#include "core.h"
#include "support.h"

static char fake_env[128], storage_env[600], db_env[700];
static pid_t fake_pid, api_pid, worker_pid;

/* A worker on the fake provider; `db` NULL: the fixture's database. */
static pid_t start_worker(const char *name, const char *db)
{
    static char port_env[64];
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%s", strrchr(au_base, ':') + 1);
    char *extra[] = {fake_env,
                     AU_FILE_SECRET_ENV,
                     storage_env,
                     port_env,
                     "FARM_PROVIDER=fake",
                     "FARM_WORKER_METRICS_PORT=0",
                     "FARM_SWEEP_INTERVAL_S=1",
                     "FARM_SWEEP_STALE_S=2",
                     (char *)db,
                     NULL};
    return ts_spawn_farm("FARM_TEST_WORKER_BIN", extra, "%s.log", name);
}

static json_t *get_generation(const char *tok, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    ts_http_t r = au_call("GET", path, tok, NULL, NULL);
    json_t *g = r.status == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
    ts_http_dispose(&r);
    return g;
}

/* Polls until the generation's status is `want`; 1 when it was. */
static int wait_status(const char *tok, const char *id, const char *want, double timeout_s)
{
    json_t *g = au_wait_status(tok, id, want, timeout_s);
    int ok = g != NULL;
    json_decref(g);
    return ok;
}

/* Every output of the generation is served: 200 and an image's bytes. */
static void assert_files_served(const char *tok, const char *id)
{
    json_t *g = get_generation(tok, id);
    assert_non_null(g);
    json_t *outputs = json_object_get(g, "outputs"), *o;
    assert_true(json_array_size(outputs) > 0);
    size_t i;
    json_array_foreach(outputs, i, o)
    {
        const char *url = json_string_value(json_object_get(o, "url"));
        assert_non_null(url);
        char full[1024];
        snprintf(full, sizeof(full), "%s%s", strncmp(url, "http", 4) == 0 ? "" : au_base, url);
        ts_http_t r = ts_http("GET", full, NULL, NULL, 0);
        if (r.status != 200)
            fail_msg("%s: %ld", full, r.status);
        assert_true(r.body_len > 8);
        ts_http_dispose(&r);
    }
    json_decref(g);
}

static void test_a_restored_farm_is_whole(void **state)
{
    (void)state;
    const char *tmp = ts_env("FARM_TEST_TMPDIR");
    fake_pid = ts_fake_start(3000, fake_env);
    assert_true(fake_env[0] != '\0');
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage", tmp);
    const char *api_extra[] = {storage_env, NULL};
    api_pid = au_api_start(api_extra);
    assert_true(api_pid > 0);
    worker_pid = start_worker("worker-before", NULL);
    char user[37], done[2][37], running[2][37];
    char *tok = au_token(NULL, "pro", NULL, user);
    assert_int_equal(au_grant(user, 1000, "drill"), 0);
    const char *body = "{\"kind\":\"avatar\",\"prompt\":\"a drill\",\"width\":256,\"height\":256}";
    for (int i = 0; i < 2; i++)
        au_create(tok, body, done[i]);
    for (int i = 0; i < 2; i++)
        assert_true(wait_status(tok, done[i], "succeeded", 60));
    for (int i = 0; i < 2; i++)
        au_create(tok, body, running[i]);
    for (int i = 0; i < 2; i++)
        assert_true(wait_status(tok, running[i], "running", 30));

    /* The backup, taken while two generations run; then the site is lost: the worker dies
     * with them, and the queue goes with the database. */
    assert_int_equal(
        ts_sh("'%s/scripts/backup' '%s/farm.dump' >/dev/null", ts_env("FARM_TEST_SOURCE_DIR"), tmp),
        0);
    assert_int_equal(ts_stop(worker_pid, SIGKILL, 10), 128 + SIGKILL);
    assert_int_equal(ts_stop(api_pid, SIGTERM, 15), 0);
    assert_int_equal(ts_sh("redis-cli -p %s FLUSHALL >/dev/null", ts_env("FARM_TEST_REDIS_PORT")),
                     0);

    /* A new database, the dump restored into it (a fresh cluster's empty database). */
    assert_int_equal(ts_sh("psql -X -q -v ON_ERROR_STOP=1 \"$FARM_DATABASE_URL\" "
                           "-c 'CREATE DATABASE farm_restored' >/dev/null"),
                     0);
    const char *url = ts_env("FARM_DATABASE_URL");
    snprintf(db_env, sizeof(db_env), "FARM_DATABASE_URL=%.*s/farm_restored",
             (int)(strrchr(url, '/') - url), url);
    assert_int_equal(ts_sh("%s '%s/scripts/backup' --restore '%s/farm.dump' >/dev/null", db_env,
                           ts_env("FARM_TEST_SOURCE_DIR"), tmp),
                     0);
    assert_int_equal(ts_sh("%s '%s' reconcile >/dev/null", db_env, ts_env("FARM_TEST_CLI")), 0);

    /* The farm on the restored database: the running two are enqueued again and finish. */
    const char *api_extra2[] = {storage_env, db_env, NULL};
    api_pid = au_api_start(api_extra2);
    assert_true(api_pid > 0);
    worker_pid = start_worker("worker-after", db_env);
    for (int i = 0; i < 2; i++)
        if (!wait_status(tok, running[i], "succeeded", 90))
            fail_msg("generation %s did not finish after the restore", running[i]);
    assert_int_equal(
        ts_sh("grep -q 'the queue had lost it: enqueued again' '%s/worker-after.log'", tmp), 0);
    for (int i = 0; i < 2; i++) {
        assert_files_served(tok, done[i]);
        assert_files_served(tok, running[i]);
    }
    assert_int_equal(ts_sh("%s '%s' reconcile >/dev/null", db_env, ts_env("FARM_TEST_CLI")), 0);
    /* The original database was not touched by the restored farm: its two are still running. */
    assert_int_equal(ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                           "generations WHERE status = 'running'\")\" = 2"),
                     0);
    free(tok);
}

static int teardown(void **state)
{
    (void)state;
    return ts_stop_farm(worker_pid, api_pid, fake_pid);
}

/*
 * The database URL's password never reaches pg_dump's command line, which any local user
 * reads (ps, /proc/PID/cmdline): it goes in PGPASSWORD, percent-decoded. A pg_dump of our
 * own, first on PATH, records what it was given.
 */
static void test_the_backup_keeps_the_password_off_the_command_line(void **state)
{
    (void)state;
    const char *tmp = ts_env("FARM_TEST_TMPDIR");
    assert_int_equal(ts_sh("mkdir -p '%s/bin' && printf '%%s\\n' '#!/bin/sh' "
                           "'printf \"%%s\\\\n\" \"$@\" > \"$(dirname \"$0\")/args\"' "
                           "'printf %%s \"${PGPASSWORD-unset}\" > \"$(dirname \"$0\")/pw\"' "
                           "'for a; do case $a in --file=*) : > \"${a#--file=}\";; esac; done' "
                           "> '%s/bin/pg_dump' && chmod +x '%s/bin/pg_dump'",
                           tmp, tmp, tmp),
                     0);
    assert_int_equal(ts_sh("PATH='%s/bin':$PATH FARM_DATABASE_URL='postgresql://farm:s%%40cr%%3At@"
                           "127.0.0.1:1/farm' '%s/scripts/backup' '%s/pw.dump' >/dev/null",
                           tmp, ts_env("FARM_TEST_SOURCE_DIR"), tmp),
                     0);
    assert_int_equal(ts_sh("grep -qx -- '--dbname=postgresql://farm@127.0.0.1:1/farm' '%s/bin/args'"
                           " && ! grep -q 'cr' '%s/bin/args'",
                           tmp, tmp),
                     0);
    assert_int_equal(ts_sh("test \"$(cat '%s/bin/pw')\" = 's@cr:t'", tmp), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_a_restored_farm_is_whole, teardown),
        cmocka_unit_test(test_the_backup_keeps_the_password_off_the_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
