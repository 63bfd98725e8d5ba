/*
 * store/store.h - Postgres, the record of the farm (DESIGN.md). This first
 * cut holds the async connection used by the api and the worker (libpq in
 * non-blocking mode, driven by a uv_poll on its socket, reconnecting after
 * Postgres restarts), a ping for /readyz, and the blocking migrations runner
 * used by `farm migrate`. No other module sees a libpq type.
 *
 * Async contract (libuv's rule): a call that returns an error never runs its
 * callback; a call that returns 0 runs it exactly once, on the loop thread,
 * with GF_ECANCELED when the store is closed first.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "core.h"

typedef struct store store_t;

typedef void (*store_ping_cb)(store_t *st, int status, void *data);
typedef void (*store_closed_cb)(void *data);

/*
 * Returns a new store for cfg->database_url; it connects on first use (and
 * again after the connection is lost). `cfg` is borrowed and must outlive it.
 */
store_t *store_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);

/*
 * Runs SELECT 1; `cb` gets 0, GF_EUNAVAIL (cannot connect, or the connection
 * broke) or GF_ETIMEDOUT (then the connection is dropped and made anew on next use).
 */
int store_ping(store_t *st, uint64_t timeout_ms, store_ping_cb cb, void *data);

/* Fails pending operations with GF_ECANCELED, disconnects, frees; `cb` runs when all is closed. */
void store_close(store_t *st, store_closed_cb cb, void *data);

/*
 * Applies the migrations in `dir` (files NNNN_name.sql, in order of NNNN) to
 * the database at `url`, each in its own transaction, recording version, name
 * and a SHA-256 checksum in schema_migrations. A recorded migration whose file
 * changed is an error (GF_ECONFLICT) and nothing more is applied. Concurrent
 * runs serialize on an advisory lock. Blocking: for the CLI and tests.
 * Progress lines go to `out` (may be NULL). Returns the count applied, or < 0.
 */
int store_migrate(const char *url, const char *dir, FILE *out, gf_err_t *err);

#endif
