/*
 * store/migrate.c - the migrations runner behind `farm migrate`: the
 * numbered migrations (schema changes), then the live SQL (store/sql/).
 *
 * Invariants:
 * - Numbered files apply in order of their number, each in its own transaction
 *   together with its row in schema_migrations, so a failed file leaves no trace.
 * - An applied numbered file is never re-run; if its text changed (SHA-256
 *   computed by Postgres), the run stops with an error before applying anything else.
 *   The one exception: the checksum a file had as shipped, before #13 moved the
 *   function definitions of the early migrations to store/sql
 *   (<migrations>/shipped.sha256).
 * - The live SQL is the folder store/sql beside the migrations folder
 *   (<migrations>/../store/sql): one function per file, CREATE OR REPLACE,
 *   applied in the order its file ORDER lists. A file is applied again when
 *   its text changed or when a numbered migration was applied since it last
 *   was (a schema change may have dropped what it made): schema_sql keeps
 *   each file's checksum and the count of migrations then. All the files a run
 *   applies go in one transaction with their rows in schema_sql, so the
 *   functions move from one version to the next at once or not at all.
 * - A database is never migrated back. A version schema_migrations records
 *   with no file in this folder means a newer build migrated it (or a file
 *   was deleted): both steps refuse it before writing anything, since this
 *   build's store/sql would put older function bodies over the newer schema.
 *   A store/sql file recorded in schema_sql that this build's ORDER does not
 *   list is refused the same way, unless a numbered migration was applied
 *   since it last was: only that (one dropping its function,
 *   docs/credits.md) retires a file, and its row is then forgotten.
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

/* The numbered files of `dir` in order; `warn` logs each .sql file it ignores. */
static int list_files(const char *dir, int warn, mig_file_t **out, size_t *n, gf_err_t *err)
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
            if (warn && strstr(de->d_name, ".sql"))
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

static void files_free(mig_file_t *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].name);
    free(files);
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

/*
 * Whether `recorded` is the checksum `name` had as shipped, before its
 * function definitions moved to store/sql/ (#13): dir/shipped.sha256 lists
 * them in sha256sum's format. A database that applied the shipped file is
 * as migrated as one that applied it as it is now: schema statements were
 * kept byte for byte, and store/sql replaces the functions it defined.
 */
static int shipped_as(const char *dir, const char *name, const char *recorded)
{
    char path[4096], line[512];
    snprintf(path, sizeof(path), "%s/shipped.sha256", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        char sum[65], file[256];
        if (line[0] != '#' && sscanf(line, "%64s %255s", sum, file) == 2)
            found = strcmp(file, name) == 0 && strcmp(sum, recorded) == 0;
    }
    fclose(f);
    return found;
}

/* Connects, quiets the NOTICEs of IF NOT EXISTS (errors still come back as
 * results) and takes the runners' lock. *conn is set even on failure. */
static int migrate_connect(const char *url, PGconn **conn, gf_err_t *err)
{
    *conn = PQconnectdb(url);
    if (PQstatus(*conn) != CONNECTION_OK)
        return pg_fail(err, *conn, NULL, "connecting to postgres");
    int rc = exec_ok(*conn, "SET client_min_messages = warning", err, "SET");
    if (rc < 0)
        return rc;
    return exec_ok(*conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, "locking");
}

/*
 * Refuses a database that records a migration `files` has no file for: a
 * newer build's (or a deleted file). 0, or GF_ECONFLICT naming the highest
 * such migration.
 */
static int refuse_newer(PGconn *conn, const char *dir, const mig_file_t *files, size_t n,
                        gf_err_t *err)
{
    gf_buf_t versions = {0};
    gf_buf_puts(&versions, "{");
    for (size_t i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%s%d", i ? "," : "", files[i].version);
        gf_buf_puts(&versions, v);
    }
    gf_buf_puts(&versions, "}");
    const char *params[1] = {versions.p};
    PGresult *res = PQexecParams(conn,
                                 "SELECT version, name FROM schema_migrations "
                                 "WHERE version <> ALL ($1::int[]) ORDER BY version DESC LIMIT 1",
                                 1, NULL, params, NULL, NULL, 0);
    gf_buf_dispose(&versions);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(err, conn, res, "reading schema_migrations");
    int rc = 0;
    if (PQntuples(res) > 0) {
        int version = atoi(PQgetvalue(res, 0, 0));
        if (n == 0 || version > files[n - 1].version)
            rc = gf_err_set(err, GF_ECONFLICT, "store",
                            "the database was migrated by a newer build: migration %s has no "
                            "file in %s; refusing to put this build's SQL back over it",
                            PQgetvalue(res, 0, 1), dir);
        else
            rc = gf_err_set(err, GF_ECONFLICT, "store",
                            "migration %s is recorded as applied but has no file in %s (a newer "
                            "build's, or a deleted file); refusing to migrate",
                            PQgetvalue(res, 0, 1), dir);
    }
    PQclear(res);
    return rc;
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
                    (strcmp(PQgetvalue(res, 0, 1), checksum) != 0 &&
                     !shipped_as(dir, f->name, PQgetvalue(res, 0, 1))))) {
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
    /* EMPTY_QUERY: a file of comments only, whose statements moved to store/sql. */
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
        PQresultStatus(res) != PGRES_EMPTY_QUERY) {
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
    int rc = list_files(dir, 1, &files, &nfiles, err);
    int applied = 0;
    PGconn *conn = NULL;
    if (rc < 0)
        goto done;
    if ((rc = migrate_connect(url, &conn, err)) < 0)
        goto done;
    rc = exec_ok(conn,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 err, "creating schema_migrations");
    if (rc == 0)
        rc = refuse_newer(conn, dir, files, nfiles, err);
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
    files_free(files, nfiles);
    return rc < 0 ? rc : applied;
}

/* --- the live SQL (store/sql) ----------------------------------------------- */

/* The files of store/sql in the order of its ORDER, each with its text and SHA-256. */
typedef struct {
    char *name;
    char *text;
    char checksum[65];
    int due; /* 1 when this run applies it */
} sql_file_t;

typedef struct {
    sql_file_t *files;
    size_t n;
} sql_set_t;

static void sql_set_dispose(sql_set_t *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->files[i].name);
        free(set->files[i].text);
    }
    free(set->files);
}

static int sql_set_find(const sql_set_t *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->files[i].name, name) == 0)
            return 1;
    return 0;
}

/* Reads ORDER and each file it lists ('#' starts a comment). */
static int sql_set_read_order(const char *dir, sql_set_t *set, gf_err_t *err)
{
    char *order = read_file(dir, "ORDER", err);
    if (order == NULL)
        return err ? err->code : GF_EIO;
    regex_t re;
    regcomp(&re, "^[a-z0-9_]+\\.sql$", REG_EXTENDED | REG_NOSUB);
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(order, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        line[strcspn(line, "#")] = '\0';
        line += strspn(line, " \t");
        line[strcspn(line, " \t\r")] = '\0';
        if (*line == '\0')
            continue;
        if (regexec(&re, line, 0, NULL, 0) != 0)
            rc = gf_err_set(err, GF_EINVAL, "store", "%s/ORDER: '%s' is not named name.sql", dir,
                            line);
        else if (sql_set_find(set, line))
            rc = gf_err_set(err, GF_EINVAL, "store", "%s/ORDER lists %s twice", dir, line);
        else if (set->n == MIGRATE_MAX_FILES)
            rc = gf_err_set(err, GF_ETOOBIG, "store", "%s/ORDER lists more than %d files", dir,
                            MIGRATE_MAX_FILES);
        if (rc < 0)
            break;
        char *text = read_file(dir, line, err);
        if (text == NULL) {
            rc = err ? err->code : GF_EIO;
            break;
        }
        set->files = gf_xrealloc(set->files, (set->n + 1) * sizeof(*set->files));
        set->files[set->n++] = (sql_file_t){.name = gf_xstrdup(line), .text = text};
    }
    regfree(&re);
    free(order);
    return rc;
}

/* Reads the set; a .sql file of the folder that ORDER does not list is an error. */
static int sql_set_read(const char *dir, sql_set_t *set, gf_err_t *err)
{
    int rc = sql_set_read_order(dir, set, err);
    if (rc < 0)
        return rc;
    DIR *d = opendir(dir);
    if (d == NULL)
        return gf_err_set(err, GF_EINVAL, "store", "cannot open %s: %s", dir, strerror(errno));
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0 && !sql_set_find(set, de->d_name))
            rc = gf_err_set(err, GF_EINVAL, "store", "%s/%s is not listed in %s/ORDER", dir,
                            de->d_name, dir);
    }
    closedir(d);
    return rc;
}

/* The set's names as an array literal: they match [a-z0-9_.]+, so they go unquoted. */
static void sql_set_names(const sql_set_t *set, gf_buf_t *names)
{
    gf_buf_puts(names, "{");
    for (size_t i = 0; i < set->n; i++) {
        gf_buf_puts(names, i ? "," : "");
        gf_buf_puts(names, set->files[i].name);
    }
    gf_buf_puts(names, "}");
}

/*
 * Refuses a file schema_sql records, that the set does not list, and that
 * was applied with as many numbered migrations as the database has now: a
 * build that has it (a newer one) ran last. One applied before a later
 * migration is a file retired with that migration; sql_forget_unlisted
 * forgets it.
 */
static int sql_refuse_unknown(PGconn *conn, const sql_set_t *set, const char *migrations,
                              gf_err_t *err)
{
    gf_buf_t names = {0};
    sql_set_names(set, &names);
    const char *params[2] = {names.p, migrations};
    PGresult *res = PQexecParams(conn,
                                 "SELECT name FROM schema_sql WHERE name <> ALL ($1::text[]) "
                                 "AND migrations >= $2::int ORDER BY name LIMIT 1",
                                 2, NULL, params, NULL, NULL, 0);
    gf_buf_dispose(&names);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(err, conn, res, "reading schema_sql");
    int rc = 0;
    if (PQntuples(res) > 0)
        rc = gf_err_set(err, GF_ECONFLICT, "store",
                        "the database was migrated by a newer build: store/sql/%s is applied "
                        "there and not in this build's ORDER (a file retired for good goes "
                        "with a migration dropping its function)",
                        PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/*
 * Marks the files to apply: those never applied, changed since, or applied
 * before a numbered migration that came after them. Fills `migrations` with
 * how many numbered migrations the database has. Refuses a database a newer
 * build's store/sql was applied to (sql_refuse_unknown).
 */
static int sql_set_plan(PGconn *conn, sql_set_t *set, char *migrations, size_t size, gf_err_t *err)
{
    PGresult *res = PQexec(conn, "SELECT count(*) FROM schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(err, conn, res, "reading schema_migrations");
    snprintf(migrations, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    int rc = sql_refuse_unknown(conn, set, migrations, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < set->n; i++) {
        sql_file_t *f = &set->files[i];
        const char *params[2] = {f->name, f->text};
        res = PQexecParams(conn,
                           "SELECT s.checksum, s.migrations::text, "
                           "encode(sha256(convert_to($2::text, 'UTF8')), 'hex') "
                           "FROM (SELECT 1) one LEFT JOIN schema_sql s ON s.name = $1",
                           2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            return pg_fail(err, conn, res, "reading schema_sql");
        snprintf(f->checksum, sizeof(f->checksum), "%s", PQgetvalue(res, 0, 2));
        f->due = PQgetisnull(res, 0, 0) || strcmp(PQgetvalue(res, 0, 0), f->checksum) != 0 ||
                 strcmp(PQgetvalue(res, 0, 1), migrations) != 0;
        PQclear(res);
    }
    return 0;
}

/* Records an applied file with its checksum and the migrations count. */
static int sql_record(PGconn *conn, const sql_file_t *f, const char *migrations, gf_err_t *err)
{
    const char *params[3] = {f->name, f->checksum, migrations};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO schema_sql (name, checksum, migrations) "
                                 "VALUES ($1, $2, $3::int) ON CONFLICT (name) DO UPDATE SET "
                                 "checksum = excluded.checksum, migrations = excluded.migrations, "
                                 "applied_at = now()",
                                 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return pg_fail(err, conn, res, "recording the live SQL");
    PQclear(res);
    return 0;
}

/* Forgets the files ORDER no longer lists (retired by a later migration: sql_refuse_unknown). */
static int sql_forget_unlisted(PGconn *conn, const sql_set_t *set, gf_err_t *err)
{
    gf_buf_t names = {0};
    sql_set_names(set, &names);
    const char *params[1] = {names.p};
    PGresult *res = PQexecParams(conn, "DELETE FROM schema_sql WHERE name <> ALL ($1::text[])", 1,
                                 NULL, params, NULL, NULL, 0);
    gf_buf_dispose(&names);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return pg_fail(err, conn, res, "recording the live SQL");
    PQclear(res);
    return 0;
}

/* Applies the due files in one transaction; returns how many, or < 0. */
static int sql_set_apply(PGconn *conn, const sql_set_t *set, const char *migrations, gf_err_t *err)
{
    int applied = 0;
    for (size_t i = 0; i < set->n; i++)
        applied += set->files[i].due;
    if (applied == 0)
        return 0;
    int rc = exec_ok(conn, "BEGIN", err, "BEGIN");
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const sql_file_t *f = &set->files[i];
        if (!f->due)
            continue;
        PGresult *res = PQexec(conn, f->text);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            char what[300];
            snprintf(what, sizeof(what), "applying store/sql/%s", f->name);
            rc = pg_fail(err, conn, res, what);
            break;
        }
        PQclear(res);
        rc = sql_record(conn, f, migrations, err);
    }
    if (rc == 0)
        rc = sql_forget_unlisted(conn, set, err);
    if (rc == 0)
        rc = exec_ok(conn, "COMMIT", err, "COMMIT");
    else
        exec_ok(conn, "ROLLBACK", NULL, "ROLLBACK");
    return rc < 0 ? rc : applied;
}

int store_migrate_sql(const char *url, const char *dir, FILE *out, gf_err_t *err)
{
    char sql_dir[4096];
    snprintf(sql_dir, sizeof(sql_dir), "%s/../store/sql", dir);
    sql_set_t set = {0};
    PGconn *conn = NULL;
    mig_file_t *files = NULL; /* the numbered ones, to refuse a newer build's database */
    size_t nfiles = 0;
    char migrations[32];
    int rc = sql_set_read(sql_dir, &set, err);
    if (rc == 0)
        rc = list_files(dir, 0, &files, &nfiles, err);
    if (rc < 0)
        goto done;
    if ((rc = migrate_connect(url, &conn, err)) < 0)
        goto done;
    rc = refuse_newer(conn, dir, files, nfiles, err);
    if (rc == 0)
        rc = exec_ok(conn,
                     "CREATE TABLE IF NOT EXISTS schema_sql ("
                     " name text PRIMARY KEY, checksum text NOT NULL, migrations int NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     err, "creating schema_sql");
    if (rc == 0)
        rc = sql_set_plan(conn, &set, migrations, sizeof(migrations), err);
    if (rc == 0)
        rc = sql_set_apply(conn, &set, migrations, err);
    exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", NULL, "unlocking");
    if (rc >= 0 && out) {
        for (size_t i = 0; rc > 0 && i < set.n; i++)
            if (set.files[i].due)
                fprintf(out, "applied store/sql/%s\n", set.files[i].name);
        fprintf(out, "store/sql: %d applied, %zu in total\n", rc, set.n);
    }
done:
    if (conn)
        PQfinish(conn);
    files_free(files, nfiles);
    sql_set_dispose(&set);
    return rc;
}
