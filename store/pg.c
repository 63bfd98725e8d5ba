/*
 * store/pg.c - one async Postgres connection on the loop.
 *
 * Invariants:
 * - `conn` is NULL (disconnected), connecting, or ready; a query is sent only
 *   when ready and idle, one at a time, from the FIFO `ops`.
 * - The socket is watched by a heap-allocated uv_poll_t that is closed and
 *   replaced whenever libpq's socket changes (reconnects), and freed in its close callback.
 * - A failed or timed-out connection fails every queued operation and is
 *   dropped; the next operation connects again, so a restart of Postgres costs
 *   the operations in flight at that moment and nothing else.
 */
#include "store.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

typedef enum { PG_DOWN, PG_CONNECTING, PG_READY, PG_BUSY } pg_state;

typedef struct store_op {
    struct store_op *next;
    store_t *st;
    const char *sql;
    uv_timer_t timer;
    int sent;
    int done;
    store_ping_cb cb;
    void *data;
} store_op_t;

struct store {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    PGconn *conn;
    pg_state state;
    uv_poll_t *poll;
    int poll_fd;
    store_op_t *ops, *ops_last;
    int closing;
    int handles_open;
    int down_logged;
    store_closed_cb closed_cb;
    void *closed_data;
};

static const gf_log_ctx log_ctx = {.component = "store"};

static void pg_watch(store_t *st, int events);
static void pg_next(store_t *st);
static void store_maybe_closed(store_t *st);

static void on_poll_closed(uv_handle_t *h)
{
    store_t *st = h->data;
    free(h);
    st->handles_open--;
    store_maybe_closed(st);
}

static void pg_unwatch(store_t *st)
{
    if (st->poll == NULL)
        return;
    uv_close((uv_handle_t *)st->poll, on_poll_closed);
    st->poll = NULL;
}

static void on_op_timer_closed(uv_handle_t *h)
{
    store_op_t *op = h->data;
    store_t *st = op->st;
    free(op);
    st->handles_open--;
    store_maybe_closed(st);
}

/* Unlinks `op` (the head when it was sent), runs its callback once, frees it. */
static void op_finish(store_op_t *op, int status)
{
    store_t *st = op->st;
    store_op_t **pp = &st->ops;
    while (*pp && *pp != op)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = op->next;
        if (st->ops_last == op) {
            st->ops_last = NULL;
            for (store_op_t *o = st->ops; o; o = o->next)
                st->ops_last = o;
        }
    }
    op->done = 1;
    uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
    op->cb(st, status, op->data);
}

/* Drops the connection and fails what was waiting on it. */
static void pg_drop(store_t *st, int status, const char *why)
{
    if (st->conn != NULL && !st->closing && !st->down_logged)
        GF_LOG(GF_LOG_WARN, &log_ctx, "postgres unavailable: %s", why);
    st->down_logged = st->conn != NULL || st->down_logged;
    pg_unwatch(st);
    if (st->conn) {
        PQfinish(st->conn);
        st->conn = NULL;
    }
    st->state = PG_DOWN;
    while (st->ops)
        op_finish(st->ops, status);
}

static void pg_connect_step(store_t *st)
{
    PostgresPollingStatusType ps = PQconnectPoll(st->conn);
    switch (ps) {
    case PGRES_POLLING_READING:
        pg_watch(st, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        pg_watch(st, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        st->state = PG_READY;
        if (st->down_logged)
            GF_LOG(GF_LOG_INFO, &log_ctx, "postgres is back");
        st->down_logged = 0;
        pg_watch(st, UV_READABLE);
        pg_next(st);
        return;
    case PGRES_POLLING_FAILED:
    default: {
        /* libpq's message names host and port, never the password. */
        char why[256];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(st->conn));
        why[strcspn(why, "\n")] = '\0';
        if (!st->down_logged)
            GF_LOG(GF_LOG_WARN, &log_ctx, "cannot connect to postgres: %s", why);
        st->down_logged = 1;
        pg_drop(st, GF_EUNAVAIL, why);
        return;
    }
    }
}

static void pg_read_results(store_t *st)
{
    if (!PQconsumeInput(st->conn)) {
        pg_drop(st, GF_EUNAVAIL, "connection lost");
        return;
    }
    if (st->state != PG_BUSY) {
        /* Idle: readable means a notice or the server going away. */
        PGnotify *n;
        while ((n = PQnotifies(st->conn)) != NULL)
            PQfreemem(n);
        if (PQstatus(st->conn) == CONNECTION_BAD)
            pg_drop(st, GF_EUNAVAIL, "connection closed by the server");
        return;
    }
    int status = 0;
    while (!PQisBusy(st->conn)) {
        PGresult *res = PQgetResult(st->conn);
        if (res == NULL) {
            st->state = PG_READY;
            store_op_t *op = st->ops;
            if (op && op->sent && !op->done)
                op_finish(op, status);
            pg_next(st);
            return;
        }
        ExecStatusType es = PQresultStatus(res);
        if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK)
            status = GF_EUNAVAIL;
        PQclear(res);
    }
    if (PQstatus(st->conn) == CONNECTION_BAD)
        pg_drop(st, GF_EUNAVAIL, "connection lost");
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    store_t *st = p->data;
    if (status < 0) {
        pg_drop(st, GF_EUNAVAIL, uv_strerror(status));
        return;
    }
    if (st->state == PG_CONNECTING) {
        pg_connect_step(st);
        return;
    }
    if (events & UV_WRITABLE) {
        int rc = PQflush(st->conn);
        if (rc < 0) {
            pg_drop(st, GF_EUNAVAIL, "send failed");
            return;
        }
        pg_watch(st, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    if (events & UV_READABLE)
        pg_read_results(st);
}

static void pg_watch(store_t *st, int events)
{
    int fd = PQsocket(st->conn);
    if (st->poll != NULL && st->poll_fd != fd)
        pg_unwatch(st); /* libpq moved to another socket (next host or address) */
    if (st->poll == NULL) {
        st->poll = gf_xcalloc(1, sizeof(uv_poll_t));
        if (uv_poll_init(st->loop, st->poll, fd) < 0) {
            free(st->poll);
            st->poll = NULL;
            pg_drop(st, GF_EUNAVAIL, "cannot watch the socket");
            return;
        }
        st->poll->data = st;
        st->poll_fd = fd;
        st->handles_open++;
    }
    uv_poll_start(st->poll, events, on_poll);
}

/* Server notices go to our log, not raw to stderr. */
static void on_pg_notice(void *arg, const PGresult *res)
{
    (void)arg;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
    msg[strcspn(msg, "\n")] = '\0';
    GF_LOG(GF_LOG_DEBUG, &log_ctx, "postgres says: %s", msg);
}

static void pg_connect(store_t *st)
{
    st->conn = PQconnectStart(st->cfg->database_url);
    if (st->conn == NULL || PQstatus(st->conn) == CONNECTION_BAD) {
        pg_drop(st, GF_EUNAVAIL, "cannot start a connection");
        return;
    }
    PQsetNoticeReceiver(st->conn, on_pg_notice, NULL);
    PQsetnonblocking(st->conn, 1);
    st->state = PG_CONNECTING;
    pg_connect_step(st);
}

/* Sends the next queued operation when the connection is idle; connects if needed. */
static void pg_next(store_t *st)
{
    if (st->ops == NULL || st->closing)
        return;
    if (st->state == PG_DOWN) {
        pg_connect(st);
        return;
    }
    if (st->state != PG_READY)
        return;
    store_op_t *op = st->ops;
    if (!PQsendQuery(st->conn, op->sql)) {
        pg_drop(st, GF_EUNAVAIL, "cannot send the query");
        return;
    }
    op->sent = 1;
    st->state = PG_BUSY;
    int rc = PQflush(st->conn);
    pg_watch(st, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void on_op_timeout(uv_timer_t *t)
{
    store_op_t *op = t->data;
    store_t *st = op->st;
    if (op->sent) {
        /* The query is on the wire: drop the connection rather than wait on it. */
        op_finish(op, GF_ETIMEDOUT);
        pg_drop(st, GF_EUNAVAIL, "a query timed out");
        return;
    }
    op_finish(op, GF_ETIMEDOUT);
}

store_t *store_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    (void)err; /* the URL was validated by the config loader */
    store_t *st = gf_xcalloc(1, sizeof(*st));
    st->loop = loop;
    st->cfg = cfg;
    st->state = PG_DOWN;
    return st;
}

int store_ping(store_t *st, uint64_t timeout_ms, store_ping_cb cb, void *data)
{
    if (st->closing)
        return GF_ECANCELED;
    store_op_t *op = gf_xcalloc(1, sizeof(*op));
    op->st = st;
    op->sql = "SELECT 1";
    op->cb = cb;
    op->data = data;
    uv_timer_init(st->loop, &op->timer);
    op->timer.data = op;
    st->handles_open++;
    uv_timer_start(&op->timer, on_op_timeout, timeout_ms, 0);
    if (st->ops_last)
        st->ops_last->next = op;
    else
        st->ops = op;
    st->ops_last = op;
    pg_next(st);
    return 0;
}

static void store_maybe_closed(store_t *st)
{
    if (!st->closing || st->handles_open > 0)
        return;
    store_closed_cb cb = st->closed_cb;
    void *data = st->closed_data;
    free(st);
    if (cb)
        cb(data);
}

void store_close(store_t *st, store_closed_cb cb, void *data)
{
    if (st->closing)
        return;
    st->closing = 1;
    st->closed_cb = cb;
    st->closed_data = data;
    st->handles_open++; /* hold the store while the drop below runs callbacks */
    pg_drop(st, GF_ECANCELED, "closing");
    st->handles_open--;
    store_maybe_closed(st);
}
