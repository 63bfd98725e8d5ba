/*
 * tests/support/http_harness.h - what the http_* integration tests share:
 * a core/httpd server with test routes on its own libuv loop and thread
 * (http_harness.c), and the client side (http_client.c): a raw-socket
 * HTTP/1.1 client for what libcurl cannot send, libcurl helpers and common
 * assertions.
 *
 * Threading: the server's loop, its routes and its httpd run only on the
 * server thread. The test thread talks to it through srv_call() (run a
 * function on the loop and wait for it) and reads the counters in
 * srv_stats_t, which are atomics. cmocka assertions run on the test thread only.
 */
#ifndef HTTP_HARNESS_H
#define HTTP_HARNESS_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core.h"

#define WAIT_MS 10000 /* upper bound for anything that should happen "soon" */

/* What the test routes saw, readable from any thread. */
typedef struct {
    atomic_int slow_started;  /* /slow requests received */
    atomic_int slow_answered; /* /slow requests answered */
    atomic_int streams_started;
    atomic_int streams_open;
    atomic_int stream_on_close; /* on_close callbacks on streams */
    atomic_int stream_toobig;   /* gf_http_stream_write returned GF_ETOOBIG */
    atomic_int stream_canceled; /* gf_http_stream_write returned GF_ECANCELED */
    atomic_int gate_max;        /* most /gate requests parked at once */
    atomic_int stopped_cb;      /* the httpd's stopped callback ran */
    atomic_int fan_open;        /* /fanout streams open */
    atomic_int fan_failed;      /* /fanout writes that failed (their streams ended) */
    atomic_int checked;         /* requests the check hook of srv_check_after() let through */
} srv_stats_t;

typedef struct srv srv_t;

/*
 * Starts a server on 127.0.0.1, any free port, with `opts` (NULL: defaults
 * with a 10 s shutdown timeout) and these routes:
 *   GET  /echo/:id   200 text/plain: "id=..\nq=..\nh=..\nmethod=..\npath=..\nroute=..\n"
 *                    (q: query "q", h: header "X-Test", "-" when absent)
 *   POST /body       echoes the body; the route's own limit is 1024 bytes
 *   GET  /slow       answers "slow\n" (or ?bytes= bytes of 'x') after ?ms= (default
 *                    300), or with ?hold=1 when srv_release_slow() is called (or after 30 s)
 *   GET  /stream     chunked text/event-stream: every ?every= ms (default 20),
 *                    ?burst= writes (default 1) of ?size= bytes (default a
 *                    short "data: tick N\n\n"), until the client or the server goes
 *   GET  /gate       parks requests until `gate_n` are parked, then answers all
 *                    (or all after 30 s)
 *   GET  /healthz    200 "ok\n"
 *   GET  /fanout     a text/event-stream that srv_fanout() writes to, with every other
 *                    /fanout stream, until the client or the server goes
 * Fails the test if the server cannot start.
 */
srv_t *srv_start(const gf_httpd_opts_t *opts, int gate_n);

/* The httpd defaults with a 10 s shutdown bound. */
gf_httpd_opts_t srv_opts(void);

int srv_port(const srv_t *s);
srv_stats_t *srv_stats(srv_t *s);

/* Runs fn(s, arg) on the server's loop and waits for it to return. */
void srv_call(srv_t *s, void (*fn)(srv_t *s, void *arg), void *arg);

/* Open connections, read on the loop. */
size_t srv_connections(srv_t *s);

/*
 * Gives the server a check hook (gf_httpd_set_check) that lets each request
 * through `ms` milliseconds after its headers, from a timer: the hook of a
 * server that asks Redis, as farm-api's rate limit does.
 */
void srv_check_after(srv_t *s, int ms);

/* Answers every held /slow?hold=1 request now. */
void srv_release_slow(srv_t *s);

/*
 * Writes frames first .. first + frames - 1, of `size` bytes each, to every open
 * /fanout stream, each with gf_http_stream_write_frame_all, all in one loop turn;
 * returns once they are written or queued. Frame i holds srv_fan_data(i, size).
 */
void srv_fanout(srv_t *s, int first, int frames, size_t size);
/* Frame i's data: "i:" and then one letter ('a' + i % 26) up to `size` bytes, in out[size + 1]. */
size_t srv_fan_data(int i, size_t size, char *out);

/* Calls gf_httpd_stop on the loop (returns once it was called). */
void srv_stop(srv_t *s);

/*
 * Waits up to timeout_ms for the server thread to end after a stop, joins it,
 * copies the final counters into `final` (may be NULL) and frees everything.
 * Returns uv_loop_close()'s result, or -1 on timeout (the thread is then left
 * running and `s` is not freed).
 */
int srv_join(srv_t *s, int timeout_ms, srv_stats_t *final);

/* Stops (if not stopped yet) and joins; aborts if the server does not end in 30 s. */
void srv_shutdown(srv_t *s);

/*
 * For cmocka teardowns: stops and joins *sp if set, then clears it. Returns 0,
 * or -1 if the server did not stop or uv_loop_close() did not return 0.
 */
int srv_finish(srv_t **sp);

/*
 * cmocka fixtures around a test's server in *state: srv_setup starts one with
 * the defaults (srv_start(NULL, 0)); srv_teardown finishes whatever *state
 * holds then (srv_finish). A test that needs other options starts its own
 * server with srv_start_in() and takes srv_teardown only.
 */
int srv_setup(void **state);
int srv_teardown(void **state);

/* srv_start() for a test with srv_teardown: the server is also stored in *state. */
srv_t *srv_start_in(void **state, const gf_httpd_opts_t *opts, int gate_n);

/* --- the client side (http_client.c) ------------------------------------------ */

/* For main(): raises RLIMIT_NOFILE to the hard limit, ignores SIGPIPE, inits libcurl. */
void http_test_init(void);
void http_test_cleanup(void);

/* For main(): runs a cmocka group (no group fixtures) between http_test_init() and
 * http_test_cleanup(); cmocka's count of failed tests. */
struct CMUnitTest;
int http_run_group(const char *name, const struct CMUnitTest *tests, size_t n);
#define http_run_tests(tests) http_run_group(#tests, tests, sizeof(tests) / sizeof((tests)[0]))

long long now_ms(void);
void sleep_ms(int ms);

/* Polls `cond` every 10 ms until it holds or timeout_ms passed; the caller then asserts it. */
#define WAIT_UNTIL(cond, timeout_ms)                                                               \
    for (long long wu_end_ = now_ms() + (timeout_ms); !(cond) && now_ms() < wu_end_;)              \
    sleep_ms(10)

/* --- raw client ---------------------------------------------------------------- */

typedef struct {
    int fd;
    gf_buf_t in; /* received and not yet consumed */
    int eof;     /* the peer closed (FIN or RST) */
} rawc_t;

typedef struct {
    int status;
    int nh;
    char *hname[48], *hval[48];
    gf_buf_t body;
    int chunked;
} http_resp_t;

/* Connects to 127.0.0.1:port; `rcvbuf` > 0 sets SO_RCVBUF first. Returns 0 or -errno. */
int rawc_connect(rawc_t *c, int port, int rcvbuf);
void rawc_close(rawc_t *c);
/* Sends everything (MSG_NOSIGNAL); returns 0 or -errno. */
int rawc_send(rawc_t *c, const char *data, size_t len);
int rawc_sends(rawc_t *c, const char *s);
/* Reads more, waiting up to timeout_ms: >0 bytes, 0 at EOF, -1 on timeout. */
int rawc_fill(rawc_t *c, int timeout_ms);
/* Reads a response head; 0, or -1 (timeout or EOF first). */
int rawc_head(rawc_t *c, http_resp_t *r, int timeout_ms);
/* Reads one chunk of a chunked body into r->body: its size (0: the last chunk), or -1. */
long rawc_chunk(rawc_t *c, http_resp_t *r, int timeout_ms);
/* Reads a whole response (head and body, by Content-Length, chunks or EOF); 0 or -1. */
int rawc_response(rawc_t *c, http_resp_t *r, int timeout_ms);
/* Waits for the peer to close, discarding input; 1 if it did within timeout_ms. */
int rawc_wait_eof(rawc_t *c, int timeout_ms);

/* A header of a response by case-insensitive name, or NULL. */
const char *resp_header(const http_resp_t *r, const char *name);
void resp_dispose(http_resp_t *r);

/* --- libcurl ---------------------------------------------------------------------- */

typedef struct {
    long status;
    gf_buf_t body;
    gf_buf_t head;    /* header lines of the last response (after any 100 Continue) */
    int saw_continue; /* an interim "100 Continue" came first */
} cresp_t;

/* Points `e` at `path` on `s` and resets `r`; the caller adds method specifics. */
void curl_setup(CURL *e, srv_t *s, const char *path, cresp_t *r, struct curl_slist *hdrs);
/* Performs the request on `e` (kept for reuse); fails the test if the transfer fails. */
void curl_run(CURL *e, cresp_t *r);
/* One GET on a fresh handle; returns the status. */
long curl_get(srv_t *s, const char *path, struct curl_slist *hdrs, cresp_t *r);
/* A CURLOPT_WRITEFUNCTION that appends to the gf_buf_t in CURLOPT_WRITEDATA. */
size_t curl_buf_write(char *p, size_t size, size_t n, void *data);
/* A response header's value copied into `out`, or NULL. */
const char *cresp_header(const cresp_t *r, const char *name, char *out, size_t n);
void cresp_dispose(cresp_t *r);

/* --- shared assertions -------------------------------------------------------------- */

/* Asserts a body is the JSON error shape of API.md with this code. */
void assert_json_error(const char *body, size_t len, const char *code);
/* Whether `s` is a lowercase UUID v4. */
int is_uuid4(const char *s);
/*
 * Sends `req` on a new connection to `s` and asserts the answer: this status,
 * the JSON error shape with this code, X-Request-Id, Connection: close, and
 * the close itself.
 */
void assert_refused(srv_t *s, const char *req, size_t len, int status, const char *code);

#endif
