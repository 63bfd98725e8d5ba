/*
 * tests/support/store_util.h - helpers shared by the store integration
 * tests (ledger, races, accept_batch): one blocking connection to the
 * fixture's Postgres opened by the group setup, accepts and balances read
 * through it, connections of a thread's own, and a raw libpq connection for
 * hand-written SQL.
 */
#ifndef STORE_UTIL_H
#define STORE_UTIL_H

#include <libpq-fe.h>

#include "store.h"

/* The connection the group setup opened (ts_store_setup); NULL outside a group. */
extern store_conn_t *ts_sc;

/* cmocka group setup and teardown: open and close ts_sc on $FARM_DATABASE_URL. */
int ts_store_setup(void **state);
int ts_store_teardown(void **state);

/* A new connection of the store's to $FARM_DATABASE_URL, for a thread of its own (free it);
 * the test fails, naming the error, when it cannot connect. */
store_conn_t *ts_store_connect(void);

/* Runs `call` on ts_sc; its status. */
int ts_store_run(store_call_t *call);

/* Runs `call` on ts_sc, then disposes of it; its status. */
int ts_store_run_once(store_call_t *call);

/* Fills each of the `n` char[37] buffers that follow with a new id. */
void ts_new_ids(int n, ...);

/* Starts `gen` with fencing token `fence` on the local provider; the call's status. */
int ts_store_start(const char *gen, long long fence);

/* An avatar generation of `images` x `unit` credits; a new user gets 100 credits. */
store_accept_t ts_store_avatar(const char *gen, const char *user, int images, long long unit);

/*
 * Accepts an avatar (ts_store_avatar) on `conn` with its own idempotency
 * `key` and `hash` (both may be NULL) and `welcome` credits for a new user;
 * the call's status.
 */
int ts_store_accept(store_conn_t *conn, const char *gen, const char *user, int images,
                    long long unit, const char *key, const char *hash, long long welcome);

/* `user`'s balance and held credits (a new user is provisioned with `welcome`). */
void ts_store_balance(const char *user, long long welcome, long long *bal, long long *held);

/* `user`'s balance and held credits are `bal` and `held`. */
void ts_assert_balance(const char *user, long long bal, long long held);

/* A connection of our own to the fixture's Postgres, for hand-written SQL. */
PGconn *ts_pg_connect(void);

#endif
