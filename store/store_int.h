/*
 * store/store_int.h - what the files of store/ share: the prepared
 * statements of each operation and the translation of their results.
 * Private to store/ (not on any other module's include path).
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <libpq-fe.h>

#include "store.h"

/* The PREPARE batch a new connection runs once (one statement per operation). */
const char *store__prepare_sql(void);

/* The prepared statement name of an operation ("farm_s3"). */
const char *store__stmt_name(store_op_t op);

/* The statement of an operation run with its audit row (store_call_set_audit);
 * `first` is the number of the audit's first parameter. */
const char *store__audited_sql(store_op_t op, int first);

/* Sends `call` on a non-blocking connection: its prepared statement, or its
 * audited statement (unprepared). libpq's PQsend* result: 1 sent, 0 not. */
int store__send(PGconn *conn, const store_call_t *call);

/* Reads a result into `call` (err and res): the SQLSTATE of a failed
 * statement, else its first row through store__parse_row(). */
void store__parse(store_call_t *call, PGresult *res);

/*
 * The first row of an operation's result, as text (libpq's form): v[i] is
 * column i, NULL for SQL NULL. Only the columns the operation selects are
 * read (at most STORE_ROW_MAX).
 */
#define STORE_ROW_MAX 5
typedef struct {
    const char *v[STORE_ROW_MAX];
} store_row_t;

/*
 * Reads the row of `call`'s operation into call->res and call->err (NULL:
 * the statement returned no row). A shape it does not expect (a JSON result
 * that does not parse, a field missing or of another type) fails the call
 * with GF_EUNAVAIL naming the function and the field, and leaves nothing
 * allocated in call->res. Pure: no connection involved (result.c).
 */
void store__parse_row(store_call_t *call, const store_row_t *row);

/* Frees what call->res holds and zeroes it (result.c). */
void store__result_dispose(store_call_t *call);

/* The gf_status of a failed statement's SQLSTATE (NULL: none). */
int store__sqlstate_code(const char *sqlstate);

/* libpq's error message as one line: its first line that is not empty. */
void store__pg_message(char *buf, size_t n, const char *msg);

/* The connection string options every connection sets (statement timeout). */
PGconn *store__connect_start(const char *url, long long statement_timeout_ms, const char *app,
                             int async);

#endif
