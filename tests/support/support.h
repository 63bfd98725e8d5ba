/*
 * tests/support/support.h - helpers for integration tests that drive real
 * processes over real HTTP: free ports, spawning and stopping programs
 * (farm-fake-provider among them), blocking HTTP requests through libcurl,
 * waiting for a condition, and a cmocka group run with libcurl set up.
 */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

/* An HTTP answer: status (0 when no answer), body and headers (NUL-terminated). */
typedef struct {
    long status;
    char *body;
    size_t body_len;
    char *headers;
} ts_http_t;

/* A port free right now on 127.0.0.1. */
int ts_free_port(void);

/* An environment variable the fixture must provide; fails the test when missing. */
const char *ts_env(const char *name);

/*
 * Starts `argv` with the current environment plus `extra` ("NAME=value",
 * NULL-terminated, may be NULL); its stderr goes to `log_path` when not NULL.
 */
pid_t ts_spawn(char *const argv[], char *const extra[], const char *log_path);

/*
 * Starts the program the fixture names in `bin_env` (FARM_TEST_API_BIN,
 * FARM_TEST_WORKER_BIN) as ts_spawn does, its stderr in $FARM_TEST_TMPDIR/<log>,
 * <log> formatted from `log_fmt` ("worker.log", "worker%d.log").
 */
pid_t ts_spawn_farm(const char *bin_env, char *const extra[], const char *log_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Waits up to `timeout_s` for a spawned program to write its port to `port_file`
 * (farm-fake-provider --port-file does once it listens); the port, or 0.
 */
int ts_wait_port_file(const char *port_file, double timeout_s);

/*
 * Starts farm-fake-provider (FARM_TEST_FAKE_BIN) answering after
 * `latency_ms`, its port file and fake.log in $FARM_TEST_TMPDIR, and waits
 * up to 10 s for its port. `setting` gets the setting that points a worker at
 * it ("FARM_FAKE_PROVIDER_URL=http://127.0.0.1:<port>"; "" when it did not
 * come up). Returns its pid.
 */
pid_t ts_fake_start(int latency_ms, char setting[128]);

/* Sends `sig` and waits up to `timeout_s`; returns the exit status, 128+signal, or -1 on timeout
 * (then SIGKILLs). */
int ts_stop(pid_t pid, int sig, double timeout_s);

/*
 * Stops what a worker test started, with SIGTERM, in this order: the worker
 * (40 s), the api (15 s), the fake provider (10 s); a pid <= 0 is skipped.
 * 0 when the worker and the api exited 0 (the fake's exit is not checked).
 */
int ts_stop_farm(pid_t worker, pid_t api, pid_t fake);

/* Runs a shell command, returns its exit status. */
int ts_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a shell command and reads the integer its output starts with into *out:
 * 0, or -1 when the command could not run or printed no number. */
int ts_sh_number(long long *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A blocking request; `body` may be NULL. `headers` is NULL-terminated "Name: value" or NULL. */
ts_http_t ts_http(const char *method, const char *url, const char *const *headers, const char *body,
                  size_t body_len);
void ts_http_dispose(ts_http_t *r);

/* Polls GET `url` until it answers `status` (and contains `needle` when not NULL) or `timeout_s`
 * passes. */
int ts_wait_http(const char *url, long status, const char *needle, double timeout_s);

/*
 * An environment for gf_cfg_load(): `overrides` ("NAME=value",
 * NULL-terminated, may be NULL) first, then this process's variables except
 * those starting with one of `drop` (NULL-terminated prefixes, may be NULL).
 * A new array of borrowed strings: free() the array only.
 */
char **ts_environ_with(const char *const *overrides, const char *const *drop);

/* Monotonic seconds. */
double ts_now(void);

/*
 * For main(): runs a cmocka group with its group fixtures between
 * curl_global_init() and curl_global_cleanup(), for tests whose requests go
 * through ts_http(); cmocka's count of failed tests.
 */
struct CMUnitTest;
int ts_run_group_with_curl(const char *name, const struct CMUnitTest *tests, size_t n,
                           int (*setup)(void **state), int (*teardown)(void **state));
#define ts_run_tests_with_curl(tests, setup, teardown)                                             \
    ts_run_group_with_curl(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

#endif
