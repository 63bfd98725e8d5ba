/*
 * core/httpd_int.h - what httpd.c (the server: listener, routes, stop),
 * httpd_conn.c (a connection: reading, parsing, writing), httpd_linger.c (its
 * lingering close and dropped input) and httpd_req.c (a request: accessors,
 * responses, streams) share.
 */
#ifndef GF_HTTPD_INT_H
#define GF_HTTPD_INT_H

#include <http_parser.h>

#include "dueq.h"
#include "httpd.h"
#include "log.h"
#include "slab.h"

#define HTTPD_MAX_SEGS   16
#define HTTPD_READ_CHUNK 65536
/* Pipelined requests one connection may have handled per loop turn before the others go. */
#define HTTPD_TURN_REQUESTS 4
/* Connections accepted in one loop turn at most: a burst of hundreds is taken over several
 * turns, so the requests of connections already open are not kept waiting behind it. */
#define HTTPD_TURN_ACCEPTS 32
/* Bytes that refused and lingering connections may drop, all together, in one loop turn
 * (httpd_linger.c, linger_drop): the rest waits for the next turn, so clients that keep
 * sending after their answer never hold the loop for long. */
#define HTTPD_TURN_DRAIN_BYTES (1u << 20)
/* Lingering connections closed at their client's EOF in one loop turn at most: hundreds of
 * clients closing at once are closed over several turns, as HTTPD_TURN_ACCEPTS. */
#define HTTPD_TURN_CLOSES 32
/* Connections over max_connections that are answered 503 at once (httpd__conn_accept)
 * and still lingering, at most: past them a new one is closed at accept without an
 * answer, so a flood of connections holds a bounded number of slots beyond the cap. */
#define HTTPD_REFUSING_MAX 128
/* Listeners a stream fan-out needs before the write threads share its sends
 * (gf_http_stream_write_frame_all): below it, waking them costs more than they save. */
#define HTTPD_FANOUT_SPLIT 128

/* One send of a fan-out (httpd_writers.c): `len` bytes at `p` to `fd` (-1: none, the
 * bytes are queued instead); `sent` is what went out, or -1 when the socket failed. */
typedef struct {
    int fd;
    const char *p;
    size_t len;
    ssize_t sent;
} httpd_send_t;

typedef struct httpd_writers httpd_writers_t;

typedef struct httpd_route {
    struct httpd_route *next;
    char *method, *pattern;
    char *segs[HTTPD_MAX_SEGS];
    size_t nsegs;
    size_t max_body;
    gf_http_handler_cb cb;
    void *data;
} httpd_route_t;

typedef enum {
    CONN_IDLE,      /* between requests */
    CONN_HEADERS,   /* a request line or headers are arriving */
    CONN_BODY,      /* a body is arriving */
    CONN_CHECKING,  /* headers complete: the check hook decides; no body byte is parsed */
    CONN_HANDLING,  /* a handler owns the request */
    CONN_STREAMING, /* a handler is streaming the response */
} conn_state;

typedef struct httpd_conn httpd_conn_t;

typedef struct {
    char *name, *value;
} httpd_kv_t;

/*
 * Where the answer of a request that no connection carries goes
 * (httpd__req_detached; the fake provider's HTTP/2 streams): the status,
 * the content type and the body of gf_http_respond() (no body for HEAD);
 * the request's out_headers and id are readable during the call, which
 * must not finish the request. Status 0: the handler ended a stream, which
 * such a request is not given (gf_http_stream_start answers GF_ECANCELED).
 */
typedef void (*httpd_sink_cb)(gf_http_req_t *r, int status, const char *content_type,
                              const char *body, size_t len, void *data);

/*
 * A connection whose first read begins with HTTP/2's client preface (h2 with
 * prior knowledge) is handed over: `fd` is a duplicate of its socket (the
 * callee's to close), `bytes` what was read (the preface first, borrowed for
 * the call). The server then closes its own descriptor and forgets the
 * connection (httpd__set_h2c).
 */
typedef void (*httpd_h2c_cb)(gf_httpd_t *h, int fd, const char *bytes, size_t len, void *data);
#define HTTPD_H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define HTTPD_H2_PREFACE_LEN 24

typedef struct {
    httpd_kv_t *items;
    size_t n, cap;
} httpd_kvs_t;

struct gf_http_req {
    httpd_conn_t *conn; /* NULL once the client is gone */
    gf_httpd_t *h;
    const httpd_route_t *route;
    int method_not_allowed;
    char *allow; /* the methods of the path when method_not_allowed: "GET, HEAD, POST" */
    char method[16];
    gf_buf_t url;
    char *path, *query_raw;
    httpd_kvs_t headers, params, query;
    int query_parsed;
    int header_last_was_value;
    size_t max_body;
    gf_buf_t body;
    gf_buf_t out_headers;
    char id[129];
    int http_minor;
    int streaming; /* the status of a started stream, else 0 */
    int keep_alive;
    int refused_at_accept; /* over max_connections: counted in m_rejected only, not logged */
    uint64_t start_ns;
    /* Set by parser callbacks that refuse a request, answered by the connection. */
    int error_status;
    const char *error_code, *error_msg;
    /* Set by gf_http_req_refuse() (copies), answered when the request is dispatched. */
    int refuse_status;
    char *refuse_code, *refuse_msg, *refuse_field;
    void *user;
    void (*user_free)(void *user);
    char log_user[65];       /* gf_http_req_set_log_user; "" none */
    unsigned long long sent; /* body bytes of a stream written so far */
    gf_http_close_cb on_close;
    void *on_close_data;
    /* A detached request (httpd__req_detached): its answer's sink; NULL once the peer left. */
    httpd_sink_cb sink;
    void *sink_data;
};

struct httpd_conn {
    httpd_conn_t *prev, *next;
    gf_httpd_t *h;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles;
    int closing;
    int close_after_write;
    int reading;
    int read_eof;
    int lingering;       /* answered and half-closed: input is dropped until EOF or the timer */
    int refusing;        /* over max_connections: answered 503 at accept (gf_httpd.nrefusing) */
    int discarding;      /* refused before its body: input is dropped, never kept */
    size_t linger_bytes; /* dropped so far while discarding or lingering */
    /* Waiting, not reading, for a later turn's budget to drop input or, at EOF, to close:
     * queued in gf_httpd.drain_waiting (drain.queued). */
    gf_due_t drain;
    size_t out_bytes; /* bytes of writes not yet completed (this connection's output memory) */
    uint64_t turn_ms; /* the loop time of the turn turn_requests counts in */
    unsigned turn_requests;
    int resume_pending; /* its turn's budget is spent: the timer resumes it on the next turn */
    int out_held;       /* a request waits for this client to take its answers (out_bytes) */
    int in_dispatch;
    size_t writes_pending;
    conn_state state;
    http_parser parser;
    gf_http_req_t *req;
    size_t header_bytes;
    char *in; /* bytes read and not yet parsed */
    size_t in_len, in_cap;
    char peer[64];
};

struct gf_httpd {
    uv_loop_t *loop;
    gf_httpd_opts_t opts;
    char *host, *name;
    uv_tcp_t listener;
    int listening;
    uv_idle_t accept_idle; /* the next turn's accepts, once HTTPD_TURN_ACCEPTS were taken */
    int turn_accepts;
    /* Refused and lingering connections, a turn's budget each: the loop time of the turn
     * the drop budget and the close budget count in, what is left of them, the connections
     * waiting for a later turn in arrival order, and the timer that serves them then. */
    uint64_t drain_turn_ms, close_turn_ms;
    size_t drain_left;
    unsigned closes_left;    /* HTTPD_TURN_CLOSES a turn */
    gf_dueq_t drain_waiting; /* every node due at 0: a FIFO, in arrival order */
    uv_timer_t drain_timer;
    int drain_timer_open; /* initialized at the first wait, closed by gf_httpd_stop */
    int port;
    httpd_route_t *routes, *routes_last;
    httpd_conn_t *conns;
    size_t nconns, nstreams;
    size_t nrefusing; /* of nconns, those over max_connections answered 503 (refusing) */
    size_t out_total; /* out_bytes of every connection, but for event streams' */
    int out_blocked;  /* a connection waits for out_total to fall under the bound */
    gf_httpd_check_cb check;
    void *check_data;
    int stopping;
    int stop_pending_closes;
    uv_timer_t stop_timer;
    gf_httpd_stopped_cb stop_cb;
    void *stop_data;
    gf_httpd_response_hook hook;
    void *hook_data;
    httpd_h2c_cb h2c; /* httpd__set_h2c; NULL: the preface gets 505 like any HTTP/2 line */
    void *h2c_data;
    char readbuf[HTTPD_READ_CHUNK];
    /* Connections and requests live in slabs: an open stream's stay packed (slab.h). */
    gf_slab_t conn_slab, req_slab;
    gf_mfamily_t *m_requests, *m_duration;
    uint64_t sample_state; /* the access log's sampling draws (xorshift64) */
    gf_metric_t *m_connections, *m_streams, *m_rejected;
    httpd_writers_t *writers; /* started by the first fan-out that needs them */
    int writers_failed;       /* none could start: the loop thread sends alone */
};

/* httpd.c */
void httpd__kv_add(httpd_kvs_t *kv, const char *name, size_t nlen, const char *value, size_t vlen);
void httpd__kv_dispose(httpd_kvs_t *kv);
const httpd_route_t *httpd__route_match(gf_httpd_t *h, gf_http_req_t *r, int *method_allowed);
void httpd__conn_closed(gf_httpd_t *h);
/* A finished request: its metrics, and its access-log line; `bytes` of body answered. */
void httpd__record(gf_httpd_t *h, const gf_http_req_t *r, int status, unsigned long long bytes);
const char *httpd__status_text(int status);

/* httpd_req.c */
gf_http_req_t *httpd__req_new(httpd_conn_t *c);
void httpd__req_free(gf_http_req_t *r);
void httpd__req_ensure_id(gf_http_req_t *r);
char *httpd__pct_decode(const char *s, size_t n, int plus_space);
/* Splits r->query_raw into r->query, once. < 0 when a parameter has no name, an escape that
 * is not %XX, one that decodes to a NUL, a name given twice (a route reads one value of a
 * name), or more than HTTPD_QUERY_MAX parameters: it could not be read as sent. */
#define HTTPD_QUERY_MAX 64
int httpd__query_parse(gf_http_req_t *r);
#define HTTPD_BAD_QUERY                                                                            \
    "malformed query string: a parameter without a name or named twice, more than 64 "             \
    "parameters, a % not followed by two hex digits, or one that decodes to NUL"
/*
 * A request that no connection carries, answered to `sink`: the caller adds
 * its headers (httpd__kv_add to r->headers, lower-case names) and body
 * (r->body), then runs it once with httpd__req_run(): the route's handler,
 * or the server's 400, 404, 405 or 413, as a connection's request gets
 * them. The server's check hook is not run for it: where one is set, it is
 * answered 501. It is the handler's to finish, as any request; set
 * r->sink = NULL when the peer leaves (the answer is then dropped).
 */
gf_http_req_t *httpd__req_detached(gf_httpd_t *h, const char *method, const char *target,
                                   httpd_sink_cb sink, void *data);
void httpd__req_run(gf_http_req_t *r);

/* A shared stream message (httpd.h): "<hex>\r\n<data>\r\n", the data at `off`. */
struct gf_http_frame {
    size_t refs;
    size_t len;       /* of wire[] */
    size_t off, dlen; /* the data within wire[] */
    char wire[];
};

/* httpd_conn.c */
/* Queues bytes to the client (copied: they are the caller's again on return). */
int httpd__conn_write(httpd_conn_t *c, const char *a, size_t alen, const char *b, size_t blen);
int httpd__conn_writev(httpd_conn_t *c, const uv_buf_t *bufs, unsigned n);
/* Queues `len` bytes at `p` inside frame `f` (a reference is held while they wait). */
int httpd__conn_write_frame(httpd_conn_t *c, gf_http_frame_t *f, const char *p, size_t len);
/* The socket to send to directly: 1 with *fd set when nothing is queued before the bytes,
 * 0 when they must be queued, < 0 when the socket is unusable (marked to close). */
int httpd__conn_direct_fd(httpd_conn_t *c, uv_os_fd_t *fd);
/* The end of a write of frame bytes of which `done` went out directly (< 0: the send
 * failed): the rest queued, as httpd__conn_write_frame; 0 or < 0. */
int httpd__conn_frame_rest(httpd_conn_t *c, gf_http_frame_t *f, const char *p, size_t len,
                           ssize_t done);
void httpd__req_done(httpd_conn_t *c, int keep);
void httpd__conn_accept(gf_httpd_t *h);
/* Hands connections that open with HTTP/2's preface to `cb` (httpd_h2c_cb); NULL: none. */
void httpd__set_h2c(gf_httpd_t *h, httpd_h2c_cb cb, void *data);
void httpd__conn_stop(httpd_conn_t *c);
void httpd__conn_close(httpd_conn_t *c, int notify);
/* Starts reading with the connection's alloc and read callbacks. */
void httpd__conn_read_start(httpd_conn_t *c);
/* (Re)arms the connection's one timer for `ms`; 0 stops it. */
void httpd__conn_timer(httpd_conn_t *c, uint64_t ms);
/* The headers are accepted: the body may come (100 Continue when asked for). */
void httpd__conn_body_begin(httpd_conn_t *c);

/* httpd_parse.c: libhttp-parser's callbacks (they record refusals, never answer). */
extern const http_parser_settings httpd__parser_settings;
/* Splits r->url into r->path (decoded) and r->query_raw; < 0 when it is not a path. */
int httpd__split_url(gf_http_req_t *r);
/* Whether the request announced a body (chunked, or a Content-Length above 0). */
int httpd__req_has_body(const http_parser *p);

/* httpd_linger.c */
/* The answer is out: closes now, or half-closes and drops input until EOF or linger_ms. */
void httpd__conn_end(httpd_conn_t *c);
/* Whether the client's input has ended and every byte of it was parsed: nothing more to
 * answer after the request in hand (pipelined bytes count until their parse returns). */
static inline int httpd__input_done(const httpd_conn_t *c)
{
    return c->read_eof && c->in_len == 0;
}
/* `n` bytes read by a discarding or lingering connection: counted and dropped. */
void httpd__linger_input(httpd_conn_t *c, size_t n);
/* The client's EOF or reset on a connection whose input is dropped. */
void httpd__linger_eof(httpd_conn_t *c);
/* Takes `c` off the list of connections waiting for a turn's drain budget. */
void httpd__drain_unlink(httpd_conn_t *c);
/* The drain timer's callback: serves the waiting connections with a new turn's budget. */
void httpd__drain_turn(uv_timer_t *t);

/* httpd_writers.c */
/* One non-blocking sendmsg: the bytes sent, 0 when the socket is full, -1 when it failed.
 * Touches nothing but the socket, so any thread may call it. */
ssize_t httpd__send(int fd, const uv_buf_t *bufs, unsigned n);
/* Sends `sends` from the loop thread and the write threads (started now when not yet);
 * returns once every one is done, or -1 at once when no thread could start. */
int httpd__writers_run(gf_httpd_t *h, httpd_send_t *sends, size_t n);
/* Stops and joins the threads. */
void httpd__writers_free(httpd_writers_t *w);
void httpd__conn_checked(httpd_conn_t *c);

#endif
