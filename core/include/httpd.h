/*
 * core/include/httpd.h - a small HTTP/1.1 server on libuv and libhttp-parser, shared by
 * farm-api, each worker's metrics port and the fake provider in tests.
 *
 * What it guarantees:
 * - Requests on one connection are handled one at a time and answered in
 *   order (pipelined requests wait, buffered, until the previous response has
 *   been queued). Keep-alive follows HTTP/1.1 (and HTTP/1.0's opt-in).
 * - Limits are enforced before a handler runs: header bytes (431), body bytes
 *   (413, from Content-Length at once, or while a chunked body arrives), open
 *   connections (closed at accept), and timeouts: idle keep-alive (closed),
 *   headers (408: slowloris bound, counted from the request's first byte, not
 *   reset by each byte), body (408). Garbage gets 400, HTTP/2+ request lines 505.
 *   Every error answer uses the JSON error shape of API.md and closes.
 * - Every response carries X-Request-Id: the request's own when it is sane
 *   (1..128 of [A-Za-z0-9._:-]), else a generated UUID.
 * - Output is bounded: a connection with more than max_queued_bytes of answers
 *   not yet taken by its client (a pipelining client that never reads) has its
 *   next request left unparsed, and reading stops once its input buffer is
 *   full, until the client drains; past max_queued_total over all connections,
 *   no connection's next request is parsed, and a GET or HEAD answered then
 *   (parsed before) gets 503 unavailable with Retry-After: 1 instead of its
 *   answer: the total exceeds the bound by at most one answer. Event streams'
 *   queued bytes do not count toward it (each stream has its own bound), so
 *   slow readers of streams never hold other clients' requests.
 * - An optional check hook decides each routed request when its headers are
 *   complete, before any body byte is read (authentication, rate limits,
 *   capacity): a refusal is answered at once, and a request with a body then
 *   ends with a lingering close, its body never buffered.
 * - Streaming responses (SSE) are chunked; when more than the configured number
 *   of bytes is queued to a client that stopped reading, the connection is
 *   dropped (other clients are not slowed) and the handler is told. A
 *   started stream keeps only what its answer and its access-log line need:
 *   the request's headers, path, parameters, query and body are freed by
 *   gf_http_stream_start(), so an idle stream costs little memory.
 * - gf_httpd_stop(): stop accepting, close idle connections, end streams, let
 *   in-flight requests finish, cut what is left after the shutdown timeout.
 *
 * Threading: everything runs on the loop thread of the server, but for the
 * sends of a large fan-out (gf_http_stream_write_frame_all), which it may
 * share with opts.write_threads threads while it waits for them.
 *
 * Request lifetime: a handler receives a gf_http_req_t and must finish it
 * exactly once, with gf_http_respond*() or, after gf_http_stream_start(), with
 * gf_http_stream_end(); it may do so later, from another callback. After that
 * call the request is gone. If the client disconnects first, the request stays
 * valid (responses are then discarded) until the handler finishes it; the
 * on_close callback set with gf_http_req_on_close() tells it so.
 */
#ifndef GF_HTTPD_H
#define GF_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "metrics.h"

typedef struct gf_httpd gf_httpd_t;
typedef struct gf_http_req gf_http_req_t;

typedef void (*gf_http_handler_cb)(gf_http_req_t *req, void *data);
/* The client went away (or the server is stopping) before the handler finished the request. */
typedef void (*gf_http_close_cb)(gf_http_req_t *req, void *data);
typedef void (*gf_httpd_stopped_cb)(gf_httpd_t *httpd, void *data);

typedef struct {
    const char *host; /* "127.0.0.1", "0.0.0.0", "::" */
    int port;         /* 0: any free port, see gf_httpd_port() */
    int reuseport;    /* SO_REUSEPORT, so several processes share the port */
    const char *name; /* for logs and metrics: "api", "worker" */
    size_t max_header_bytes;
    size_t max_body_bytes; /* default for routes that do not set their own */
    size_t max_connections;
    uint64_t idle_timeout_ms;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t linger_ms;      /* lingering close after a closing answer; 0: close at once */
    size_t linger_max_bytes; /* and at most this many bytes dropped while lingering */
    size_t max_queued_bytes; /* answers queued to one client before its next request waits */
    size_t max_queued_total; /* the same over all connections of the server */
    size_t stream_max_queued_bytes;
    uint64_t shutdown_timeout_ms;
    gf_metrics_t *metrics; /* optional: request counts and latencies by route and status */
    /* The access log: one JSON line per finished request (method, route pattern, status,
     * body bytes, duration, user, request id) at info, 5xx at warn. Off by default; of the
     * requests answered below 500, `access_sample_pct` percent are logged (5xx always). */
    int access_log;
    int access_sample_pct;
    /* Threads besides the loop's that share the sends of a large stream fan-out
     * (gf_http_stream_write_frame_all); 0 (the default): the loop thread sends alone. */
    int write_threads;
} gf_httpd_opts_t;

/* Fills `opts` with the defaults of core/config (16 KiB headers, 64 KiB body, ...). */
void gf_httpd_opts_default(gf_httpd_opts_t *opts);

/* Returns a new server bound to nothing yet, or NULL. Free with gf_httpd_free() after it stopped.
 */
gf_httpd_t *gf_httpd_new(uv_loop_t *loop, const gf_httpd_opts_t *opts, gf_err_t *err);

/*
 * Adds a route. `method` is "GET", "POST"... `pattern` is a path where a
 * segment ":name" matches one segment ("/v1/generations/:id/events").
 * `max_body` overrides the server's body limit for this route (0: keep it).
 * Routes are tried in order; an unknown path gets 404, a known path with
 * another method 405, both in the JSON error shape.
 */
int gf_httpd_route(gf_httpd_t *h, const char *method, const char *pattern, size_t max_body,
                   gf_http_handler_cb cb, void *data);

/*
 * Sets a hook that runs on every response just before its headers are
 * written (errors of the server itself included), so the application can add
 * headers to all of them (CORS, for instance) with gf_http_set_header().
 */
typedef void (*gf_httpd_response_hook)(gf_http_req_t *req, int status, void *data);
void gf_httpd_set_response_hook(gf_httpd_t *h, gf_httpd_response_hook hook, void *data);

/*
 * Sets the check hook: it runs for every request that matched a route, when
 * its headers are complete and before any byte of its body is read, and
 * must end, then or later, with exactly one of gf_http_req_proceed() or
 * gf_http_req_refuse(). Until then the request's body waits unread (bounded
 * by the connection's input buffer). If the client goes away meanwhile the
 * request stays valid and on_close (when set) runs; the hook still ends it.
 * The hook may attach data for the handler with gf_http_req_set_user().
 */
typedef void (*gf_httpd_check_cb)(gf_http_req_t *req, void *data);
void gf_httpd_set_check(gf_httpd_t *h, gf_httpd_check_cb cb, void *data);

/* The check passed: the body is read and the route's handler runs. */
void gf_http_req_proceed(gf_http_req_t *req);

/*
 * The check failed: the request is answered with the JSON error shape (and
 * the headers set on it so far, e.g. Retry-After) without its body being
 * read; a request that announced a body ends the connection with a
 * lingering close. Strings are copied; `field` may be NULL.
 */
void gf_http_req_refuse(gf_http_req_t *req, int status, const char *code, const char *message,
                        const char *field);

/* The caller's id for the access log (copied, at most 64 bytes); the last one set wins. */
void gf_http_req_set_log_user(gf_http_req_t *req, const char *user);

/* Data the check hook hands to the handler, freed with `free_fn` with the request. */
void gf_http_req_set_user(gf_http_req_t *req, void *user, void (*free_fn)(void *user));
void *gf_http_req_user(const gf_http_req_t *req);

/* Binds and listens. Returns 0 or GF_EIO with the reason in `err`. */
int gf_httpd_listen(gf_httpd_t *h, gf_err_t *err);

/* The bound port (useful after listening on port 0). */
int gf_httpd_port(const gf_httpd_t *h);

/* Open connections and open streams, for gauges and tests. */
size_t gf_httpd_connections(const gf_httpd_t *h);

/*
 * Graceful stop (see the file comment). `cb` runs once, on the loop, when
 * every connection and the listener are closed. Calling it twice is a no-op.
 */
void gf_httpd_stop(gf_httpd_t *h, gf_httpd_stopped_cb cb, void *data);

/* Frees a stopped server (or one that never listened). NULL is a no-op. */
void gf_httpd_free(gf_httpd_t *h);

/* --- the request ---------------------------------------------------------- */

/*
 * All strings are borrowed and valid until the request is finished, except
 * the path, parameters, query, headers and body, which are valid until
 * gf_http_stream_start() (after it they read as absent).
 */
const char *gf_http_req_method(const gf_http_req_t *r);
const char *gf_http_req_path(const gf_http_req_t *r);  /* decoded path, no query */
const char *gf_http_req_route(const gf_http_req_t *r); /* the matched pattern */
const char *gf_http_req_id(const gf_http_req_t *r);    /* the X-Request-Id answered */
/* A path parameter (":id" -> "id"), percent-decoded; NULL when absent. */
const char *gf_http_req_param(const gf_http_req_t *r, const char *name);
/* A query parameter, percent-decoded ('+' is a space); NULL when absent. */
const char *gf_http_req_query(const gf_http_req_t *r, const char *name);
/* The name of the i-th query parameter (0 first), NULL past the last. */
const char *gf_http_req_query_name(const gf_http_req_t *r, size_t i);
/* A header by case-insensitive name (the first one); NULL when absent. */
const char *gf_http_req_header(const gf_http_req_t *r, const char *name);
const char *gf_http_req_body(const gf_http_req_t *r, size_t *len);
/* The peer's address as text ("127.0.0.1"). */
const char *gf_http_req_peer(const gf_http_req_t *r);
/* Whether the client is still connected. */
int gf_http_req_is_connected(const gf_http_req_t *r);

/* Adds a response header (copied). Call before responding or starting a stream. */
void gf_http_set_header(gf_http_req_t *r, const char *name, const char *value);

/* Sends a whole response and finishes the request. `body` is copied. */
void gf_http_respond(gf_http_req_t *r, int status, const char *content_type, const char *body,
                     size_t len);

/* Sends the JSON error shape of API.md: {"error":{"code","message","field"}}; `field` may be NULL.
 */
void gf_http_respond_error(gf_http_req_t *r, int status, const char *code, const char *message,
                           const char *field);

/*
 * Starts a chunked streaming response (headers sent at once). A HEAD request
 * gets the headers only: the call then returns GF_ECANCELED, as for a client
 * that is gone, and the caller ends the stream.
 */
int gf_http_stream_start(gf_http_req_t *r, int status, const char *content_type);

/*
 * Queues bytes on a stream. Returns 0, or GF_ETOOBIG when the client has
 * more than the cap queued (the connection is then dropped; on_close does not
 * run, since the caller learns it here), or GF_ECANCELED when the client is
 * already gone. Either way the caller finishes with gf_http_stream_end().
 */
int gf_http_stream_write(gf_http_req_t *r, const char *data, size_t len);

/*
 * A stream message shared by many streams (an SSE event sent to every
 * listener of a generation): its bytes are made once, with the chunked
 * framing around them, and counted by reference, so writing it to each
 * stream copies nothing. gf_http_frame_new() returns it with one reference;
 * each gf_http_frame_ref() takes another, each gf_http_frame_unref() drops
 * one (NULL is a no-op) and the last frees it.
 */
typedef struct gf_http_frame gf_http_frame_t;
gf_http_frame_t *gf_http_frame_new(const char *data, size_t len);
gf_http_frame_t *gf_http_frame_ref(gf_http_frame_t *f);
void gf_http_frame_unref(gf_http_frame_t *f);
/* The frame's bytes as an HTTP/1.1 stream sends them ("<hex>\r\n<data>\r\n"), and its data. */
const char *gf_http_frame_wire(const gf_http_frame_t *f, size_t *len);
const char *gf_http_frame_data(const gf_http_frame_t *f, size_t *len);

/*
 * gf_http_stream_write() of a shared frame, with the same cap and the same
 * answers. The bytes go straight to the socket when nothing else waits for
 * it (one write, no allocation); what the socket does not take at once is
 * queued holding a reference to the frame, not a copy.
 */
int gf_http_stream_write_frame(gf_http_req_t *r, gf_http_frame_t *f);
/*
 * gf_http_stream_write_frame() of `f` to each of the `n` streams reqs[]
 * (distinct requests of this server), rc[i] its answer. From
 * HTTPD_FANOUT_SPLIT (128) streams on, with opts.write_threads, the loop
 * thread shares the sends with the write threads and returns once all are
 * done; what a socket did not take is queued by the loop thread, as
 * gf_http_stream_write_frame() does, so each stream's bytes stay in order.
 */
void gf_http_stream_write_frame_all(gf_http_req_t **reqs, size_t n, gf_http_frame_t *f, int *rc);

/* Ends a stream and finishes the request. */
void gf_http_stream_end(gf_http_req_t *r);

/* Sets the callback that tells a pending handler or a stream that the client went away. */
void gf_http_req_on_close(gf_http_req_t *r, gf_http_close_cb cb, void *data);

/* Bytes queued to the client and not yet written (back-pressure signal). */
size_t gf_http_req_queued_bytes(const gf_http_req_t *r);

#endif
