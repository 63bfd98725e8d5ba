/*
 * store/migrate.c - the migrations runner behind `farm migrate`.
 *
 * Invariants:
 * - Files apply in order of their number, each in its own transaction
 *   together with its row in schema_migrations, so a failed file leaves no trace.
 * - An applied file is never re-run; if its text changed (SHA-256 computed
 *   by Postgres), the run stops with an error before applying anything else.
 * - Two runs at once serialize on a session advisory lock.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_LOCK_KEY  "7100202611" /* any constant shared by all runners */
#define MIGRATE_MAX_FILES 1000
#define MIGRATE_MAX_BYTES (16 * 1024 * 1024)

typedef struct {
    int version;
    char *name;
} mig_file_t;

static int cmp_files(const void *a, const void *b)
{
    return ((const mig_file_t *)a)->version - ((const mig_file_t *)b)->version;
}

static int pg_fail(gf_err_t *err, PGconn *conn, PGresult *res, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    msg[strcspn(msg, "\n")] = '\0';
    if (res)
        PQclear(res);
    return gf_err_set(err, GF_EUNAVAIL, "store", "%s: %s", what, msg);
}

/* Runs a command that returns no rows we need; 0 or < 0 with `err`. */
static int exec_ok(PGconn *conn, const char *sql, gf_err_t *err, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType es = PQresultStatus(res);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK)
        return pg_fail(err, conn, res, what);
    PQclear(res);
    return 0;
}

static int list_files(const char *dir, mig_file_t **out, size_t *n, gf_err_t *err)
{
    regex_t re;
    regcomp(&re, "^([0-9]{4})_[a-z0-9_]+\\.sql$", REG_EXTENDED);
    DIR *d = opendir(dir);
    if (d == NULL) {
        regfree(&re);
        return gf_err_set(err, GF_EINVAL, "store", "cannot open migrations folder %s: %s", dir,
                          strerror(errno));
    }
    mig_file_t *files = NULL;
    size_t count = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (regexec(&re, de->d_name, 0, NULL, 0) != 0) {
            if (strstr(de->d_name, ".sql"))
                GF_LOG(GF_LOG_WARN, &(gf_log_ctx){.component = "migrate"},
                       "ignoring %s: not named NNNN_name.sql", de->d_name);
            continue;
        }
        if (count == MIGRATE_MAX_FILES) {
            rc = gf_err_set(err, GF_ETOOBIG, "store", "more than %d migrations", MIGRATE_MAX_FILES);
            break;
        }
        files = gf_xrealloc(files, (count + 1) * sizeof(*files));
        files[count].version = atoi(de->d_name);
        files[count].name = gf_xstrdup(de->d_name);
        count++;
    }
    closedir(d);
    regfree(&re);
    if (count > 1)
        qsort(files, count, sizeof(*files), cmp_files);
    for (size_t i = 1; rc == 0 && i < count; i++)
        if (files[i].version == files[i - 1].version)
            rc = gf_err_set(err, GF_EINVAL, "store", "two migrations numbered %04d: %s and %s",
                            files[i].version, files[i - 1].name, files[i].name);
    *out = files;
    *n = count;
    return rc;
}

static char *read_file(const char *dir, const char *name, gf_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        gf_err_set(err, GF_EIO, "store", "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    gf_buf_t b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > MIGRATE_MAX_BYTES) {
            fclose(f);
            gf_buf_dispose(&b);
            gf_err_set(err, GF_ETOOBIG, "store", "%s is larger than 16 MiB", name);
            return NULL;
        }
        gf_buf_append(&b, chunk, n);
    }
    fclose(f);
    if (b.p == NULL)
        gf_buf_puts(&b, "");
    return b.p;
}

/* Applies or checks one file; returns 1 if applied, 0 if already there, < 0 on error. */
static int migrate_one(PGconn *conn, const char *dir, const mig_file_t *f, FILE *out, gf_err_t *err)
{
    char *sql = read_file(dir, f->name, err);
    if (sql == NULL)
        return err ? err->code : GF_EIO;
    char version[16];
    snprintf(version, sizeof(version), "%d", f->version);
    const char *params[3] = {version, f->name, sql};
    const char *check_params[2] = {version, sql};
    PGresult *res = PQexecParams(
        conn,
        "SELECT m.name, m.checksum, encode(sha256(convert_to($2::text, 'UTF8')), 'hex') "
        "FROM (SELECT 1) one LEFT JOIN schema_migrations m ON m.version = $1::int",
        2, NULL, check_params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        free(sql);
        return pg_fail(err, conn, res, "reading schema_migrations");
    }
    char checksum[65];
    snprintf(checksum, sizeof(checksum), "%s", PQgetvalue(res, 0, 2));
    int applied = !PQgetisnull(res, 0, 0);
    int rc = 0;
    if (applied && (strcmp(PQgetvalue(res, 0, 0), f->name) != 0 ||
                    strcmp(PQgetvalue(res, 0, 1), checksum) != 0)) {
        rc = gf_err_set(err, GF_ECONFLICT, "store",
                        "migration %s was changed after it was applied (recorded as %s, "
                        "checksum %.12s, now %.12s); write a new migration instead",
                        f->name, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), checksum);
    }
    PQclear(res);
    if (rc < 0 || applied) {
        free(sql);
        return rc;
    }
    if ((rc = exec_ok(conn, "BEGIN", err, "BEGIN")) < 0)
        goto out;
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char what[300];
        snprintf(what, sizeof(what), "applying %s", f->name);
        rc = pg_fail(err, conn, res, what);
        exec_ok(conn, "ROLLBACK", NULL, "ROLLBACK");
        goto out;
    }
    PQclear(res);
    params[2] = checksum;
    res = PQexecParams(conn,
                       "INSERT INTO schema_migrations (version, name, checksum) "
                       "VALUES ($1::int, $2, $3)",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(err, conn, res, "recording the migration");
        exec_ok(conn, "ROLLBACK", NULL, "ROLLBACK");
        goto out;
    }
    PQclear(res);
    if ((rc = exec_ok(conn, "COMMIT", err, "COMMIT")) < 0)
        goto out;
    if (out)
        fprintf(out, "applied %s\n", f->name);
    rc = 1;
out:
    free(sql);
    return rc;
}

int store_migrate(const char *url, const char *dir, FILE *out, gf_err_t *err)
{
    mig_file_t *files = NULL;
    size_t nfiles = 0;
    int rc = list_files(dir, &files, &nfiles, err);
    int applied = 0;
    PGconn *conn = NULL;
    if (rc < 0)
        goto done;
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        rc = pg_fail(err, conn, NULL, "connecting to postgres");
        goto done;
    }
    /* Quiet the NOTICEs of IF NOT EXISTS; errors still come back as results. */
    if ((rc = exec_ok(conn, "SET client_min_messages = warning", err, "SET")) < 0)
        goto done;
    if ((rc = exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, "locking")) < 0)
        goto done;
    rc = exec_ok(conn,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 err, "creating schema_migrations");
    for (size_t i = 0; rc >= 0 && i < nfiles; i++) {
        rc = migrate_one(conn, dir, &files[i], out, err);
        applied += rc > 0;
    }
    exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", NULL, "unlocking");
    if (rc >= 0 && out)
        fprintf(out, "migrations: %d applied, %zu in total\n", applied, nfiles);
done:
    if (conn)
        PQfinish(conn);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i].name);
    free(files);
    return rc < 0 ? rc : applied;
}
