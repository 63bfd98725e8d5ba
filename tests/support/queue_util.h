/*
 * tests/support/queue_util.h - helpers shared by the queue integration
 * tests: a config with test overrides, a fresh database, unique ids, raw
 * Redis access for what the tests inspect (DBSIZE, key TTLs), and the
 * fixtures of the tests that drive the blocking and the async client.
 */
#ifndef QUEUE_UTIL_H
#define QUEUE_UTIL_H

#include <stdint.h>

#include "qt_proxy.h"
#include "queue.h"

/*
 * A config from the environment with `overrides` ("NAME=value", NULL-
 * terminated, may be NULL) taking precedence. Fails the test on error.
 */
gf_config_t *qt_cfg(const char *const *overrides);

/* FLUSHALL on the fixture's Redis. */
void qt_flush(void);

/* A new id "<prefix>-<n>-<random>" in `buf`. */
const char *qt_id(char *buf, size_t n, const char *prefix);

/* A raw integer command against the fixture's Redis (DBSIZE...); -1 on error. */
long long qt_redis_int(const char *cmd);

/* A raw command that answers +OK (FUNCTION FLUSH...); 1 if it did. */
int qt_redis_ok(const char *cmd);

/* A raw command given as its arguments (NULL-terminated); 1 unless Redis answered an error. */
int qt_redis_argv(const char *const *argv);

/* How many times Redis ran `command` (INFO commandstats), 0 if never, -1 on error. */
long long qt_redis_stat(const char *command);

/* Subscribers of a pub/sub channel (PUBSUB NUMSUB), -1 on error. */
long long qt_redis_numsub(const char *channel);

/* Restarts the fixture's Redis (shutdown, start from its config, wait for PING). */
void qt_redis_restart(void);

/* Stops the fixture's Redis (SHUTDOWN, waits until it refuses connections). */
void qt_redis_stop(void);

/* Starts it again and waits until it answers PING. */
void qt_redis_start(void);

/* Enqueues with the sync client and asserts success; returns the position. */
int64_t qt_enqueue(queue_sync_t *qs, const char *gen, const char *user, const char *tier);

void qt_sleep_ms(int ms);

/*
 * The fixture of the blocking-client tests (basic, foreign): before each test
 * a flushed Redis and a sync client on short leases, retries and tiers
 * (lease 1 s, one reclaim, retries 200-400 ms, 3 attempts, pro:4:10,free:1:3,
 * events kept 60 s); in *state. A test given its own settings as its initial
 * state (cmocka_unit_test_prestate_setup_teardown; "NAME=value",
 * NULL-terminated) gets its client on those instead (fair, memory, race,
 * restart).
 */
typedef struct {
    gf_config_t *cfg;
    queue_sync_t *qs;
} qt_sync_fx_t;

int qt_sync_setup(void **state);
int qt_sync_teardown(void **state);

/*
 * The fixture of the async-client tests (async, batch): before each test a
 * flushed Redis, a loop kept turning by a 10 ms timer, an async queue_t
 * (lease 5 s, 2 s operation timeout, 300 ms connect timeout) connected, and
 * a sync client on the same config; in *state. After it, the queue (and a
 * second one, q2, or a proxy a failed test left) closed and the loop closed
 * empty, which fails the test otherwise.
 */
typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    gf_config_t *cfg;
    queue_t *q;
    queue_sync_t *qs;
    int closed;
    /* the last answer of a small operation */
    int done, status;
    gf_err_t err; /* its error record */
    queue_result_t res;
    queue_claim_t *claim;
    /* watch deliveries */
    uint64_t seen_ids[64];
    int n_seen;
    char last_type[32];
    int watch_final;
    /* cancel fast path */
    char canceled[64];
    double canceled_at;
    /* a second queue (through a proxy) that a test may leave behind when it fails */
    queue_t *q2;
    qt_proxy_t *px;
    gf_config_t *cfg2;
    int closed2;
} qt_async_fx_t;

int qt_async_setup(void **state);
int qt_async_teardown(void **state);

/* Runs the loop until *flag is set or `timeout_s` passes; returns *flag. */
int qt_run_until(qt_async_fx_t *fx, const int *flag, double timeout_s);

/* Runs the loop until fx->q is connected or 10 s pass; whether it is. */
int qt_async_connected(qt_async_fx_t *fx);

/* Callbacks that store an answer in the fixture given as their data (status, err, res or claim,
 * done = 1), and one that sets closed2 when q2 closed. */
void qt_on_result(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data);
void qt_on_claim(queue_t *q, const gf_err_t *err, queue_claim_t *c, void *data);
void qt_on_closed2(queue_t *q, void *data);

/* Waits for the answer of the operation just started (rc, its return, must be 0); its status. */
int qt_wait_op(qt_async_fx_t *fx, int rc);

/* Runs the farm CLI (FARM_TEST_CLI) with `args`; its exit status, and its output in `out`. */
int qt_farm_cli(char *out, size_t n, const char *args);

#endif
