/*
 * store/conn.c - the blocking connection (store_conn_t): one libpq
 * connection for the CLI, migrations and tests, which runs a call and waits
 * for its answer. A connection lost under a call is opened again once, for
 * the idempotent operations only.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>

struct store_conn {
    char *url;
    PGconn *conn;
};

static int conn_open(store_conn_t *sc, gf_err_t *err)
{
    char msg[200];
    sc->conn = store__connect_start(sc->url, 60000, "genfarm", 0);
    if (PQstatus(sc->conn) != CONNECTION_OK)
        goto fail;
    PGresult *res = PQexec(sc->conn, store__prepare_sql());
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (ok)
        return 0;
fail:
    store__pg_message(msg, sizeof(msg), PQerrorMessage(sc->conn));
    PQfinish(sc->conn);
    sc->conn = NULL;
    return gf_err_set(err, GF_EUNAVAIL, "store", "postgres unavailable: %s", msg);
}

store_conn_t *store_conn_new(const char *url, gf_err_t *err)
{
    store_conn_t *sc = gf_xcalloc(1, sizeof(*sc));
    sc->url = gf_xstrdup(url);
    if (conn_open(sc, err) < 0) {
        store_conn_free(sc);
        return NULL;
    }
    return sc;
}

void store_conn_free(store_conn_t *sc)
{
    if (sc == NULL)
        return;
    if (sc->conn)
        PQfinish(sc->conn);
    free(sc->url);
    free(sc);
}

int store_conn_exec(store_conn_t *sc, store_call_t *c)
{
    store__result_dispose(c);
    gf_err_clear(&c->err);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sc->conn == NULL && conn_open(sc, &c->err) < 0)
            return c->err.code;
        const char *const *params = (const char *const *)c->_params;
        PGresult *res =
            c->_audited
                ? PQexecParams(sc->conn, store__audited_sql(c->_op, c->_nparams + 1),
                               c->_nparams + STORE_AUDIT_PARAMS, NULL, params, NULL, NULL, 0)
                : PQexecPrepared(sc->conn, store__stmt_name(c->_op), c->_nparams, params, NULL,
                                 NULL, 0);
        if (PQstatus(sc->conn) == CONNECTION_BAD) {
            /*
             * The server went away, perhaps after committing. Every worker-side
             * operation is idempotent, so those try once more on a new
             * connection; accepts and credit (not idempotent without a key) do not.
             */
            PQclear(res);
            PQfinish(sc->conn);
            sc->conn = NULL;
            if (c->_op == STORE_OP_ACCEPT || c->_op == STORE_OP_ACCEPT_BATCH ||
                c->_op == STORE_OP_CREDIT) {
                c->outcome_unknown = 1;
                break;
            }
            continue;
        }
        store__parse(c, res);
        PQclear(res);
        return c->err.code;
    }
    return gf_err_set(&c->err, GF_EUNAVAIL, "store", "postgres connection lost");
}

int store_reconcile(store_conn_t *sc, FILE *out, gf_err_t *err)
{
    PGresult *res = PQexec(sc->conn, "SELECT problem FROM farm_reconcile()");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[200];
        store__pg_message(msg, sizeof(msg), PQresultErrorMessage(res));
        PQclear(res);
        return gf_err_set(err, GF_EUNAVAIL, "store", "reconcile: %s", msg);
    }
    int n = PQntuples(res);
    for (int i = 0; out && i < n; i++)
        fprintf(out, "%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    /* The count is the farm's last check too (farm_reconcile_check): after a fix, a clean
     * run brings the workers' gauges back to 0 at their next ask. */
    char count[24];
    snprintf(count, sizeof(count), "%d", n);
    const char *params[] = {count};
    res = PQexecParams(sc->conn, "SELECT farm__reconcile_record($1::bigint)", 1, NULL, params, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[200];
        store__pg_message(msg, sizeof(msg), PQresultErrorMessage(res));
        PQclear(res);
        return gf_err_set(err, GF_EUNAVAIL, "store", "reconcile: recording the count: %s", msg);
    }
    PQclear(res);
    return n;
}
