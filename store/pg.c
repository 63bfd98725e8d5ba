/*
 * store/pg.c - the async pool: a few non-blocking libpq connections on the
 * loop, each watched by a uv_poll on its socket.
 *
 * Invariants:
 * - Requests wait in one FIFO and go to whichever connection is ready and
 *   idle; a connection runs one statement at a time.
 * - A connection is down, connecting (then preparing its statements), ready
 *   or busy. A failed connect fails every request still waiting (fail fast
 *   while Postgres is down); the next request connects again.
 * - Every request has a timer: one still waiting for a connection fails with
 *   GF_ETIMEDOUT (nothing was sent, so nothing happened). One already on the
 *   wire is not abandoned: Postgres' own statement_timeout (set on every
 *   connection) decides, and its outcome is the request's, so a caller never
 *   answers "nothing happened" for a statement that may still commit. Only
 *   when Postgres says nothing past that timeout (a dead peer) does a backstop
 *   fail it with GF_ETIMEDOUT and drop the connection: the outcome is then
 *   unknown. Either way the callback runs once. A call that fails on the
 *   pool's side after it was sent (that, or its connection lost) says so:
 *   outcome_unknown, with the backend it ran on (store_call_accept_resolve).
 * - No callback runs inside store_exec() or store_ping(): a request that
 *   ends while one of them runs (a connect that fails at once fails every
 *   waiting request) waits on the `done` list, which an idle handle delivers
 *   on the next loop turn.
 * - The store is freed only after every poll, timer and idle handle has closed.
 */
#include "store_int.h"
#include "ids.h"

#include <stdlib.h>
#include <string.h>

/* How long past statement_timeout a statement on the wire may go unanswered before it is dropped.
 */
#define STORE_BACKSTOP_MS 5000

typedef enum { PG_DOWN, PG_CONNECTING, PG_PREPARING, PG_READY, PG_BUSY } pg_state;

typedef struct store_req store_req_t;

typedef struct {
    store_t *st;
    PGconn *conn;
    pg_state state;
    uv_poll_t *poll;
    int poll_fd;
    store_req_t *cur;
    int failed;   /* the statement of `cur` failed: keep its first error */
    char app[48]; /* its application_name, new at each connect (store_backend_t) */
} pg_conn_t;

struct store_req {
    store_req_t *next;
    store_t *st;
    store_call_t *call; /* NULL: a ping */
    store_call_cb cb;
    store_ping_cb ping_cb;
    void *data;
    int ping_status;
    uv_timer_t timer;
    pg_conn_t *on;
    int backstop; /* on the wire when its timer fired: now waiting for Postgres' verdict */
    int done;
    int status;            /* of a request waiting on the done list */
    uint64_t submitted_ns; /* uv_hrtime() at submit: its wait for a connection */
};

struct store {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    pg_conn_t *conns;
    int nconns;
    store_req_t *head, *tail;
    int closing;
    int submitting; /* inside store_exec/store_ping: completions wait for `idle` */
    uv_idle_t idle; /* delivers the `done` list */
    store_req_t *done_head, *done_tail;
    int handles_open;
    int down_logged;
    store_closed_cb closed_cb;
    void *closed_data;
    /* store_metrics(): NULL until then. nwaiting counts the requests on head..tail. */
    size_t nwaiting;
    gf_metric_t *m_in_use, *m_waiting, *m_wait;
};

static const gf_log_ctx log_ctx = {.component = "store"};

static void pool_dispatch(store_t *st);
static void on_idle(uv_idle_t *h);
static void store_release(store_t *st);
static void conn_watch(pg_conn_t *pc, int events);

/* --- requests ------------------------------------------------------------------ */

static void on_req_timer_closed(uv_handle_t *h)
{
    store_req_t *rq = h->data;
    store_t *st = rq->st;
    free(rq);
    store_release(st);
}

/* Sets the pool's gauges (store_metrics) from its state. */
static void pool_gauges(store_t *st)
{
    if (st->m_in_use == NULL)
        return;
    int in_use = 0;
    for (int i = 0; i < st->nconns; i++)
        in_use += st->conns[i].cur != NULL;
    gf_metric_set(st->m_in_use, in_use);
    gf_metric_set(st->m_waiting, (double)st->nwaiting);
}

static void queue_remove(store_t *st, store_req_t *rq)
{
    store_req_t **pp = &st->head, *prev = NULL;
    while (*pp && *pp != rq) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = rq->next;
    if (st->tail == rq)
        st->tail = prev;
    st->nwaiting--;
    pool_gauges(st);
}

/* The message of a request that failed on the pool's side (not in its SQL). */
static const char *why_failed(int status)
{
    return status == GF_ETIMEDOUT   ? "postgres did not answer in time"
           : status == GF_ECANCELED ? "the store is closing"
                                    : "postgres unavailable";
}

/* Runs the callback with `status` (calls also carry their own), then frees the request. */
static void req_deliver(store_req_t *rq, int status)
{
    store_t *st = rq->st;
    uv_close((uv_handle_t *)&rq->timer, on_req_timer_closed);
    if (rq->call) {
        rq->cb(st, &rq->call->err, rq->call, rq->data);
    } else {
        gf_err_t err = {0};
        if (status < 0)
            gf_err_set(&err, status, "store", "%s", why_failed(status));
        rq->ping_cb(st, &err, rq->data);
    }
}

/* Ends a request once with `status`: now, or on the next loop turn when inside a submit. */
static void req_finish(store_req_t *rq, int status)
{
    if (rq->done)
        return;
    rq->done = 1;
    store_t *st = rq->st;
    int sent = rq->on != NULL; /* on a connection: a failure now leaves the outcome unknown */
    if (!sent)
        queue_remove(st, rq); /* a sent request left the queue in conn_send */
    if (sent) {
        rq->on->cur = NULL;
        rq->on = NULL;
        pool_gauges(st);
    }
    if (rq->call && status < 0) {
        gf_err_set(&rq->call->err, status, "store", "%s", why_failed(status)); /* first wins */
        rq->call->outcome_unknown = sent; /* it may have committed */
    }
    if (!st->submitting) {
        req_deliver(rq, status);
        return;
    }
    uv_timer_stop(&rq->timer);
    rq->status = status;
    rq->next = NULL;
    if (st->done_tail)
        st->done_tail->next = rq;
    else
        st->done_head = rq;
    st->done_tail = rq;
    uv_idle_start(&st->idle, on_idle);
}

/* Delivers what ended inside a submit; what ends while delivering waits for the next turn. */
static void on_idle(uv_idle_t *h)
{
    store_t *st = h->data;
    store_req_t *rq = st->done_head;
    st->done_head = st->done_tail = NULL;
    uv_idle_stop(h);
    while (rq) {
        store_req_t *next = rq->next;
        req_deliver(rq, rq->status);
        rq = next;
    }
}

/* --- connections -------------------------------------------------------------------- */

static void on_poll_closed(uv_handle_t *h)
{
    pg_conn_t *pc = h->data;
    store_t *st = pc->st; /* conns live as long as the store */
    free(h);
    store_release(st);
}

static void conn_unwatch(pg_conn_t *pc)
{
    if (pc->poll == NULL)
        return;
    uv_close((uv_handle_t *)pc->poll, on_poll_closed);
    pc->poll = NULL;
}

/* Drops a connection: its request fails with `status`; waiting ones too if it never came up. */
static void conn_drop(pg_conn_t *pc, int status, const char *why)
{
    store_t *st = pc->st;
    int was_up = pc->state == PG_READY || pc->state == PG_BUSY;
    if (!st->closing && !st->down_logged)
        GF_LOG(GF_LOG_WARN, &log_ctx, "postgres unavailable: %s", why);
    st->down_logged = 1;
    conn_unwatch(pc);
    if (pc->conn) {
        PQfinish(pc->conn);
        pc->conn = NULL;
    }
    pc->state = PG_DOWN;
    if (pc->cur)
        req_finish(pc->cur, status);
    if (!was_up) {
        /* Postgres cannot be reached: fail fast instead of letting callers wait. */
        while (st->head)
            req_finish(st->head, status);
    } else {
        pool_dispatch(st); /* waiting requests go to another connection, or a new one */
    }
}

static void conn_send(pg_conn_t *pc, store_req_t *rq)
{
    int ok;
    if (rq->call)
        ok = store__send(pc->conn, rq->call);
    else
        ok = PQsendQuery(pc->conn, "SELECT 1");
    if (!ok) {
        conn_drop(pc, GF_EUNAVAIL, "cannot send a statement");
        return;
    }
    queue_remove(pc->st, rq);
    if (rq->call) {
        rq->call->backend.pid = PQbackendPID(pc->conn);
        memcpy(rq->call->backend.app, pc->app, sizeof(pc->app));
    }
    rq->on = pc;
    pc->cur = rq;
    if (pc->st->m_wait) {
        gf_metric_observe(pc->st->m_wait, (double)(uv_hrtime() - rq->submitted_ns) / 1e9);
        pool_gauges(pc->st);
    }
    pc->failed = 0;
    pc->state = PG_BUSY;
    int rc = PQflush(pc->conn);
    conn_watch(pc, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void conn_ready(pg_conn_t *pc)
{
    pc->state = PG_READY;
    conn_watch(pc, UV_READABLE);
    pool_dispatch(pc->st);
}

static void conn_connect_step(pg_conn_t *pc)
{
    char why[200];
    switch (PQconnectPoll(pc->conn)) {
    case PGRES_POLLING_READING:
        conn_watch(pc, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        conn_watch(pc, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        if (pc->st->down_logged)
            GF_LOG(GF_LOG_INFO, &log_ctx, "postgres is back");
        pc->st->down_logged = 0;
        /* Prepare every statement once per connection, in one simple-query batch. */
        if (!PQsendQuery(pc->conn, store__prepare_sql())) {
            conn_drop(pc, GF_EUNAVAIL, "cannot prepare statements");
            return;
        }
        pc->state = PG_PREPARING;
        conn_watch(pc, UV_READABLE);
        return;
    case PGRES_POLLING_FAILED:
    default:
        store__pg_message(why, sizeof(why), PQerrorMessage(pc->conn));
        conn_drop(pc, GF_EUNAVAIL, why);
        return;
    }
}

static void on_pg_notice(void *arg, const PGresult *res)
{
    (void)arg;
    char msg[200];
    store__pg_message(msg, sizeof(msg), PQresultErrorMessage(res));
    GF_LOG(GF_LOG_DEBUG, &log_ctx, "postgres says: %s", msg);
}

static void conn_connect(pg_conn_t *pc)
{
    char id[37];
    gf_uuid4(id);
    snprintf(pc->app, sizeof(pc->app), "genfarm %s", id);
    pc->conn = store__connect_start(pc->st->cfg->database_url, pc->st->cfg->db_statement_timeout_ms,
                                    pc->app, 1);
    if (pc->conn == NULL || PQstatus(pc->conn) == CONNECTION_BAD) {
        char why[240], m[200] = "out of memory";
        if (pc->conn != NULL)
            store__pg_message(m, sizeof(m), PQerrorMessage(pc->conn));
        snprintf(why, sizeof(why), "cannot start a connection: %s", m);
        conn_drop(pc, GF_EUNAVAIL, why);
        return;
    }
    PQsetNoticeReceiver(pc->conn, on_pg_notice, NULL);
    PQsetnonblocking(pc->conn, 1);
    pc->failed = 0;
    pc->state = PG_CONNECTING;
    conn_connect_step(pc);
}

/* Reads what arrived; completes the statement in flight when its results are all in. */
static void conn_read(pg_conn_t *pc)
{
    if (!PQconsumeInput(pc->conn)) {
        conn_drop(pc, GF_EUNAVAIL, "connection lost");
        return;
    }
    if (pc->state == PG_READY) {
        PGnotify *n;
        while ((n = PQnotifies(pc->conn)) != NULL)
            PQfreemem(n);
        if (PQstatus(pc->conn) == CONNECTION_BAD)
            conn_drop(pc, GF_EUNAVAIL, "connection closed by the server");
        return;
    }
    while (!PQisBusy(pc->conn)) {
        PGresult *res = PQgetResult(pc->conn);
        if (res == NULL) {
            if (pc->state == PG_PREPARING) {
                if (pc->failed) {
                    conn_drop(pc, GF_EUNAVAIL, "preparing statements failed (migrations applied?)");
                    return;
                }
                conn_ready(pc);
                return;
            }
            store_req_t *rq = pc->cur;
            pc->state = PG_READY;
            if (rq)
                req_finish(rq, rq->ping_status);
            pool_dispatch(pc->st);
            return;
        }
        ExecStatusType es = PQresultStatus(res);
        store_req_t *rq = pc->cur;
        if (pc->state == PG_PREPARING) {
            if (es != PGRES_COMMAND_OK && !pc->failed) {
                char msg[200];
                store__pg_message(msg, sizeof(msg), PQresultErrorMessage(res));
                GF_LOG(GF_LOG_ERROR, &log_ctx, "cannot prepare statements: %s", msg);
                pc->failed = 1;
            }
        } else if (rq && !pc->failed) {
            pc->failed = 1; /* only the first result of a statement counts */
            if (rq->call)
                store__parse(rq->call, res);
            else
                rq->ping_status = es == PGRES_TUPLES_OK ? 0 : GF_EUNAVAIL;
        }
        PQclear(res);
    }
    if (PQstatus(pc->conn) == CONNECTION_BAD)
        conn_drop(pc, GF_EUNAVAIL, "connection lost");
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    pg_conn_t *pc = p->data;
    if (status < 0) {
        conn_drop(pc, GF_EUNAVAIL, uv_strerror(status));
        return;
    }
    if (pc->state == PG_CONNECTING) {
        conn_connect_step(pc);
        return;
    }
    if (events & UV_WRITABLE) {
        int rc = PQflush(pc->conn);
        if (rc < 0) {
            conn_drop(pc, GF_EUNAVAIL, "send failed");
            return;
        }
        conn_watch(pc, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    if (events & UV_READABLE)
        conn_read(pc);
}

static void conn_watch(pg_conn_t *pc, int events)
{
    store_t *st = pc->st;
    int fd = PQsocket(pc->conn);
    if (pc->poll != NULL && pc->poll_fd != fd)
        conn_unwatch(pc); /* libpq moved to another socket (next address) */
    if (pc->poll == NULL) {
        pc->poll = gf_xcalloc(1, sizeof(uv_poll_t));
        if (uv_poll_init(st->loop, pc->poll, fd) < 0) {
            GF_FREE(pc->poll);
            conn_drop(pc, GF_EUNAVAIL, "cannot watch the socket");
            return;
        }
        pc->poll->data = pc;
        pc->poll_fd = fd;
        st->handles_open++;
    }
    uv_poll_start(pc->poll, events, on_poll);
}

/* Hands waiting requests to idle connections; opens one connection if none can take them. */
static void pool_dispatch(store_t *st)
{
    if (st->closing)
        return;
    for (int i = 0; i < st->nconns && st->head; i++)
        if (st->conns[i].state == PG_READY)
            conn_send(&st->conns[i], st->head);
    if (st->head == NULL)
        return;
    for (int i = 0; i < st->nconns; i++)
        if (st->conns[i].state == PG_CONNECTING || st->conns[i].state == PG_PREPARING)
            return; /* one is on its way */
    for (int i = 0; i < st->nconns; i++)
        if (st->conns[i].state == PG_DOWN) {
            conn_connect(&st->conns[i]);
            return;
        }
}

/* --- the pool --------------------------------------------------------------------------- */

static void on_req_timeout(uv_timer_t *t)
{
    store_req_t *rq = t->data;
    pg_conn_t *on = rq->on;
    if (on != NULL && !rq->backstop) {
        /* Sent: the statement may commit yet. Wait for Postgres' statement_timeout. */
        rq->backstop = 1;
        uv_timer_start(&rq->timer, on_req_timeout,
                       (uint64_t)rq->st->cfg->db_statement_timeout_ms + STORE_BACKSTOP_MS, 0);
        return;
    }
    req_finish(rq, GF_ETIMEDOUT);
    if (on)
        conn_drop(on, GF_EUNAVAIL, "a statement timed out");
}

static int req_submit(store_t *st, store_req_t *rq, uint64_t timeout_ms)
{
    rq->st = st;
    uv_timer_init(st->loop, &rq->timer);
    rq->timer.data = rq;
    st->handles_open++;
    uv_timer_start(&rq->timer, on_req_timeout, timeout_ms, 0);
    if (st->tail)
        st->tail->next = rq;
    else
        st->head = rq;
    st->tail = rq;
    st->nwaiting++;
    rq->submitted_ns = uv_hrtime();
    pool_gauges(st);
    st->submitting++;
    pool_dispatch(st);
    st->submitting--;
    return 0;
}

/*
 * What libpq would refuse in FARM_DATABASE_URL only when connecting: an
 * unknown option, or a bad sslmode. Refused at start instead of by every
 * connection attempt for ever.
 */
/* The options of libpq 15 whose value it checks only when it connects: "name=a|b|c". */
static const char *const enum_options[] = {
    "sslmode=disable|allow|prefer|require|verify-ca|verify-full",
    "gssencmode=disable|prefer|require", "channel_binding=disable|prefer|require",
    "target_session_attrs=any|read-write|read-only|primary|standby|prefer-standby", NULL};

/* Whether `value` is one of the '|'-separated `choices`. */
static int one_of(const char *choices, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = choices; *p; p += strcspn(p, "|") + (p[strcspn(p, "|")] == '|'))
        if (strcspn(p, "|") == n && strncmp(p, value, n) == 0)
            return 1;
    return 0;
}

int store_config_check(const gf_config_t *cfg, gf_err_t *err)
{
    const char *url = cfg->database_url;
    char *msg = NULL, why[200];
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (opts == NULL) {
        store__pg_message(why, sizeof(why), msg);
        PQfreemem(msg);
        return gf_err_set(err, GF_EINVAL, "store", "FARM_DATABASE_URL: %s", why);
    }
    const char *bad = NULL;
    for (PQconninfoOption *o = opts; o->keyword && bad == NULL; o++) {
        size_t k = strlen(o->keyword);
        for (int i = 0; o->val != NULL && enum_options[i]; i++)
            if (strncmp(enum_options[i], o->keyword, k) == 0 && enum_options[i][k] == '=' &&
                !one_of(enum_options[i] + k + 1, o->val))
                bad = enum_options[i];
    }
    PQconninfoFree(opts);
    if (bad != NULL) {
        size_t k = strcspn(bad, "=");
        return gf_err_set(err, GF_EINVAL, "store", "FARM_DATABASE_URL: %.*s must be one of %s",
                          (int)k, bad, bad + k + 1);
    }
    return 0;
}

store_t *store_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    if (store_config_check(cfg, err) < 0)
        return NULL;
    store_t *st = gf_xcalloc(1, sizeof(*st));
    st->loop = loop;
    st->cfg = cfg;
    st->nconns = (int)cfg->db_pool_size;
    st->conns = gf_xcalloc((size_t)st->nconns, sizeof(pg_conn_t));
    for (int i = 0; i < st->nconns; i++)
        st->conns[i].st = st;
    uv_idle_init(loop, &st->idle);
    st->idle.data = st;
    st->handles_open++;
    return st;
}

void store_metrics(store_t *st, gf_metrics_t *m)
{
    gf_metric_set(gf_metric_with(gf_metrics_gauge(m, "farm_pg_pool_connections",
                                                  "connections the Postgres pool may open "
                                                  "(FARM_DB_POOL_SIZE)",
                                                  NULL),
                                 NULL, NULL, NULL),
                  st->nconns);
    st->m_in_use = gf_metric_with(
        gf_metrics_gauge(m, "farm_pg_pool_in_use", "pool connections running a statement", NULL),
        NULL, NULL, NULL);
    st->m_waiting =
        gf_metric_with(gf_metrics_gauge(m, "farm_pg_pool_waiting",
                                        "statements waiting for a free connection", NULL),
                       NULL, NULL, NULL);
    st->m_wait = gf_metric_with(
        gf_metrics_histogram(m, "farm_pg_pool_wait_seconds",
                             "time a statement waited for a connection before it was sent", NULL,
                             gf_metrics_latency_buckets, gf_metrics_latency_nbuckets),
        NULL, NULL, NULL);
    pool_gauges(st);
}

int store_exec(store_t *st, store_call_t *call, store_call_cb cb, void *data)
{
    store__result_dispose(call);
    gf_err_clear(&call->err);
    if (st->closing)
        return gf_err_set(&call->err, GF_ECANCELED, "store", "the store is closing");
    store_req_t *rq = gf_xcalloc(1, sizeof(*rq));
    rq->call = call;
    rq->cb = cb;
    rq->data = data;
    return req_submit(st, rq, (uint64_t)st->cfg->db_call_timeout_ms);
}

int store_ping(store_t *st, uint64_t timeout_ms, store_ping_cb cb, void *data)
{
    if (st->closing)
        return GF_ECANCELED;
    store_req_t *rq = gf_xcalloc(1, sizeof(*rq));
    rq->ping_cb = cb;
    rq->data = data;
    return req_submit(st, rq, timeout_ms);
}

static void on_idle_closed(uv_handle_t *h)
{
    store_t *st = h->data;
    store_release(st);
}

/* One of the store's handles (or store_close's hold) is gone: after the last one, a closing
 * store is freed and its close callback runs. */
static void store_release(store_t *st)
{
    if (--st->handles_open > 0 || !st->closing)
        return;
    store_closed_cb cb = st->closed_cb;
    void *data = st->closed_data;
    free(st->conns);
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
    st->handles_open++; /* hold the store while callbacks run below */
    while (st->head)
        req_finish(st->head, GF_ECANCELED);
    for (int i = 0; i < st->nconns; i++)
        conn_drop(&st->conns[i], GF_ECANCELED, "closing");
    on_idle(&st->idle); /* what ended inside a submit is delivered now, not after the close */
    uv_close((uv_handle_t *)&st->idle, on_idle_closed);
    store_release(st);
}
