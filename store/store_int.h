/*
 * store/store_int.h - what the files of store/ share: the prepared
 * statements of each operation and the translation of their results.
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <libpq-fe.h>

#include "store.h"

/* The PREPARE batch a new connection runs once (one statement per operation). */
const char *store__prepare_sql(void);

/* The prepared statement name of an operation ("farm_s3"). */
const char *store__stmt_name(store_op_t op);

/* Reads a result into `call` (status, err and results). */
void store__parse(store_call_t *call, PGresult *res);

/* libpq's error message as one line: its first line that is not empty. */
void store__pg_message(char *buf, size_t n, const char *msg);

/* The connection string options every connection sets (statement timeout). */
PGconn *store__connect_start(const char *url, long long statement_timeout_ms, int async);

#endif
