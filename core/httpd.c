/*
 * core/httpd.c - the server of httpd.h: options, routes, the listening
 * socket (with SO_REUSEPORT), metrics and the graceful stop. Connections
 * live in httpd_conn.c, requests as handlers see them in httpd_req.c.
 */
#include "httpd_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void gf_httpd_opts_default(gf_httpd_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->name = "http";
    o->max_header_bytes = 16384;
    o->max_body_bytes = 65536;
    o->max_connections = 10000;
    o->idle_timeout_ms = 60000;
    o->header_timeout_ms = 10000;
    o->body_timeout_ms = 30000;
    o->linger_ms = 2000;
    o->linger_max_bytes = 16 << 20;
    o->max_queued_bytes = 256 << 10;
    o->max_queued_total = 64 << 20;
    o->stream_max_queued_bytes = 1 << 20;
    o->shutdown_timeout_ms = 10000;
}

gf_httpd_t *gf_httpd_new(uv_loop_t *loop, const gf_httpd_opts_t *opts, gf_err_t *err)
{
    if (opts->max_header_bytes == 0 || opts->max_connections == 0) {
        gf_err_set(err, GF_EINVAL, "http", "header and connection limits must be positive");
        return NULL;
    }
    gf_httpd_t *h = gf_xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->opts = *opts;
    h->host = gf_xstrdup(opts->host ? opts->host : "127.0.0.1");
    h->name = gf_xstrdup(opts->name ? opts->name : "http");
    h->opts.host = h->host;
    h->opts.name = h->name;
    gf_slab_init(&h->conn_slab, sizeof(httpd_conn_t));
    gf_slab_init(&h->req_slab, sizeof(gf_http_req_t));
    if (opts->metrics != NULL) {
        gf_metrics_t *m = opts->metrics;
        h->m_requests = gf_metrics_counter(m, "farm_http_requests_total",
                                           "HTTP requests answered, by route, method and status",
                                           "route,method,status");
        h->m_duration = gf_metrics_histogram(
            m, "farm_http_request_duration_seconds",
            "time from a request's last byte to its response, by route, "
            "method and status class (2xx..5xx)",
            "route,method,class", gf_metrics_latency_buckets, gf_metrics_latency_nbuckets);
        h->m_connections = gf_metric_with(
            gf_metrics_gauge(m, "farm_http_connections", "open HTTP connections", NULL), NULL, NULL,
            NULL);
        h->m_streams = gf_metric_with(
            gf_metrics_gauge(m, "farm_http_streams", "open streaming responses (SSE)", NULL), NULL,
            NULL, NULL);
        h->m_rejected = gf_metric_with(
            gf_metrics_counter(m, "farm_http_connections_rejected_total",
                               "connections over FARM_HTTP_MAX_CONNECTIONS: answered 503 at "
                               "accept, or closed there past 128 such answers going out",
                               NULL),
            NULL, NULL, NULL);
    }
    return h;
}

void gf_httpd_set_check(gf_httpd_t *h, gf_httpd_check_cb cb, void *data)
{
    h->check = cb;
    h->check_data = data;
}

static void route_free(httpd_route_t *rt)
{
    for (size_t i = 0; i < rt->nsegs; i++)
        free(rt->segs[i]);
    free(rt->method);
    free(rt->pattern);
    free(rt);
}

void gf_httpd_free(gf_httpd_t *h)
{
    if (h == NULL)
        return;
    httpd_route_t *rt = h->routes;
    while (rt != NULL) {
        httpd_route_t *next = rt->next;
        route_free(rt);
        rt = next;
    }
    httpd__writers_free(h->writers);
    free(h->host);
    free(h->name);
    gf_slab_dispose(&h->conn_slab);
    gf_slab_dispose(&h->req_slab);
    free(h);
}

int gf_httpd_route(gf_httpd_t *h, const char *method, const char *pattern, size_t max_body,
                   gf_http_handler_cb cb, void *data)
{
    if (pattern[0] != '/')
        return GF_EINVAL;
    httpd_route_t *rt = gf_xcalloc(1, sizeof(*rt));
    rt->method = gf_xstrdup(method);
    rt->pattern = gf_xstrdup(pattern);
    rt->max_body = max_body;
    rt->cb = cb;
    rt->data = data;
    for (const char *p = pattern + 1; *p;) {
        size_t n = strcspn(p, "/");
        if (rt->nsegs == HTTPD_MAX_SEGS) {
            route_free(rt);
            return GF_EINVAL;
        }
        rt->segs[rt->nsegs++] = gf_xstrndup(p, n);
        p += n + (p[n] == '/');
    }
    if (h->routes_last)
        h->routes_last->next = rt;
    else
        h->routes = rt;
    h->routes_last = rt;
    return 0;
}

void httpd__kv_add(httpd_kvs_t *kv, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (kv->n == kv->cap) {
        kv->cap = kv->cap ? kv->cap * 2 : 8;
        kv->items = gf_xrealloc(kv->items, kv->cap * sizeof(*kv->items));
    }
    kv->items[kv->n].name = gf_xstrndup(name, nlen);
    kv->items[kv->n].value = gf_xstrndup(value, vlen);
    kv->n++;
}

void httpd__kv_dispose(httpd_kvs_t *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->items[i].name);
        free(kv->items[i].value);
    }
    GF_FREE(kv->items);
    kv->n = kv->cap = 0;
}

/* Matches `path` ("/a/b/c", already decoded) against a route; fills params on success. */
static int route_matches(const httpd_route_t *rt, const char *path, httpd_kvs_t *params)
{
    const char *p = path + 1;
    size_t i = 0;
    size_t nparams_before = params->n;
    for (; i < rt->nsegs; i++) {
        size_t n = strcspn(p, "/");
        const char *seg = rt->segs[i];
        if (seg[0] == ':') {
            if (n == 0)
                goto no;
            httpd__kv_add(params, seg + 1, strlen(seg + 1), p, n);
        } else if (strlen(seg) != n || strncmp(seg, p, n) != 0) {
            goto no;
        }
        p += n;
        if (i + 1 == rt->nsegs)
            break; /* a trailing slash is left over, and does not match */
        if (*p != '/')
            goto no; /* the path is shorter than the pattern */
        p++;
    }
    if (*p == '\0' && (rt->nsegs > 0 || path[1] == '\0'))
        return 1;
no:
    while (params->n > nparams_before) {
        params->n--;
        free(params->items[params->n].name);
        free(params->items[params->n].value);
    }
    return 0;
}

const httpd_route_t *httpd__route_match(gf_httpd_t *h, gf_http_req_t *r, int *method_allowed)
{
    *method_allowed = 1;
    int path_known = 0;
    char allow[64] = "";
    for (const httpd_route_t *rt = h->routes; rt; rt = rt->next) {
        if (!route_matches(rt, r->path, &r->params))
            continue;
        if (strcmp(rt->method, r->method) == 0 ||
            (strcmp(r->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0))
            return rt;
        path_known = 1;
        /* The Allow header of a 405 (RFC 9110 15.5.6); GET brings HEAD. */
        size_t n = strlen(allow);
        snprintf(allow + n, sizeof(allow) - n, "%s%s%s", n ? ", " : "", rt->method,
                 strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
        /* Forget this route's params: another route may match with its own. */
        while (r->params.n > 0) {
            r->params.n--;
            free(r->params.items[r->params.n].name);
            free(r->params.items[r->params.n].value);
        }
    }
    *method_allowed = !path_known;
    if (path_known)
        r->allow = gf_xstrdup(allow); /* kept only by the requests a 405 answers */
    return NULL;
}

/* Whether this request's line is written: every 5xx, else a draw of access_sample_pct. */
static int access_sampled(gf_httpd_t *h, int status)
{
    if (status >= 500 || h->opts.access_sample_pct >= 100)
        return 1;
    if (h->opts.access_sample_pct <= 0)
        return 0;
    if (h->sample_state == 0)
        h->sample_state = uv_hrtime() | 1;
    uint64_t x = h->sample_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    h->sample_state = x;
    return (int)(x % 100) < h->opts.access_sample_pct;
}

static void access_log(gf_httpd_t *h, const gf_http_req_t *r, int status, const char *route,
                       unsigned long long bytes)
{
    gf_log_level level = status >= 500 ? GF_LOG_WARN : GF_LOG_INFO;
    if (!h->opts.access_log || (int)level < gf_log_min_level || !access_sampled(h, status))
        return;
    gf_log_http_t http = {.method = r->method[0] ? r->method : "-",
                          .route = route,
                          .status = status,
                          .bytes = bytes,
                          .duration_ms =
                              r->start_ns ? (double)(uv_hrtime() - r->start_ns) / 1e6 : 0};
    gf_log_ctx ctx = {.component = h->name,
                      .request_id = r->id[0] ? r->id : NULL,
                      .user_id = r->log_user[0] ? r->log_user : NULL,
                      .http = &http};
    gf_log_write(level, &ctx, "request");
}

void httpd__record(gf_httpd_t *h, const gf_http_req_t *r, int status, unsigned long long bytes)
{
    const char *route = r->route ? r->route->pattern : "unmatched";
    access_log(h, r, status, route, bytes);
    if (h->m_requests == NULL)
        return;
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    gf_metric_inc(gf_metric_with(h->m_requests, route, r->method[0] ? r->method : "-", code));
    char cls[8];
    snprintf(cls, sizeof(cls), "%dxx", status / 100 % 10);
    if (r->start_ns != 0)
        gf_metric_observe(gf_metric_with(h->m_duration, route, r->method[0] ? r->method : "-", cls),
                          (double)(uv_hrtime() - r->start_ns) / 1e9);
}

const char *httpd__status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}

/* A new turn: the connection left waiting by on_connection first. */
static void on_accept_turn(uv_idle_t *idle)
{
    gf_httpd_t *h = idle->data;
    uv_idle_stop(idle);
    h->turn_accepts = 1;
    httpd__conn_accept(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    gf_httpd_t *h = server->data;
    if (status < 0) {
        GF_LOG(GF_LOG_WARN, &(gf_log_ctx){.component = h->name}, "accept failed: %s",
               uv_strerror(status));
        return;
    }
    /* The count starts again at a deferral only: a server that is not in a burst defers
     * one connection in HTTPD_TURN_ACCEPTS by one turn, which costs it nothing. */
    if (h->turn_accepts >= HTTPD_TURN_ACCEPTS) {
        /* Left for the next turn: libuv stops watching the listener until it is accepted. */
        uv_idle_start(&h->accept_idle, on_accept_turn);
        return;
    }
    h->turn_accepts++;
    httpd__conn_accept(h);
}

/* Opens the listening socket ourselves: libuv 1.44 cannot set SO_REUSEPORT. */
static int listen_socket(gf_httpd_t *h, gf_err_t *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", h->opts.port);
    int rc = getaddrinfo(h->host, port, &hints, &ai);
    if (rc != 0)
        return gf_err_set(err, GF_EINVAL, "http", "cannot resolve listen address %s: %s", h->host,
                          gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (h->opts.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        goto fail;
    freeaddrinfo(ai);
    return fd;
fail:
    gf_err_setd(err, GF_EIO, "http", errno, "cannot listen on %s:%d: %s", h->host, h->opts.port,
                strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return GF_EIO;
}

int gf_httpd_listen(gf_httpd_t *h, gf_err_t *err)
{
    int fd = listen_socket(h, err);
    if (fd < 0)
        return fd;
    uv_tcp_init(h->loop, &h->listener);
    h->listener.data = h;
    uv_idle_init(h->loop, &h->accept_idle);
    h->accept_idle.data = h;
    h->listening = 1;
    int rc = uv_tcp_open(&h->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 1024, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&h->listener, NULL);
        uv_close((uv_handle_t *)&h->accept_idle, NULL);
        h->listening = 0;
        return gf_err_setd(err, GF_EIO, "http", rc, "cannot listen on %s:%d: %s", h->host,
                           h->opts.port, uv_strerror(rc));
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len);
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

void gf_httpd_set_response_hook(gf_httpd_t *h, gf_httpd_response_hook hook, void *data)
{
    h->hook = hook;
    h->hook_data = data;
}

int gf_httpd_port(const gf_httpd_t *h)
{
    return h->port;
}

size_t gf_httpd_connections(const gf_httpd_t *h)
{
    return h->nconns;
}

static void stop_maybe_done(gf_httpd_t *h)
{
    if (!h->stopping || h->nconns > 0 || h->stop_pending_closes > 0 || h->stop_cb == NULL)
        return;
    gf_httpd_stopped_cb cb = h->stop_cb;
    h->stop_cb = NULL;
    cb(h, h->stop_data);
}

static void on_stop_handle_closed(uv_handle_t *handle)
{
    gf_httpd_t *h = handle->data;
    h->stop_pending_closes--;
    stop_maybe_done(h);
}

void httpd__conn_closed(gf_httpd_t *h)
{
    if (h->stopping && h->nconns == 0 && !uv_is_closing((uv_handle_t *)&h->stop_timer)) {
        h->stop_pending_closes++;
        uv_close((uv_handle_t *)&h->stop_timer, on_stop_handle_closed);
    }
    stop_maybe_done(h);
}

static void on_stop_timeout(uv_timer_t *t)
{
    gf_httpd_t *h = t->data;
    GF_LOG(GF_LOG_WARN, &(gf_log_ctx){.component = h->name},
           "shutdown timeout: cutting %zu connections", h->nconns);
    for (httpd_conn_t *c = h->conns; c;) {
        httpd_conn_t *next = c->next;
        httpd__conn_close(c, 1);
        c = next;
    }
}

void gf_httpd_stop(gf_httpd_t *h, gf_httpd_stopped_cb cb, void *data)
{
    if (h->stopping)
        return;
    h->stopping = 1;
    h->stop_cb = cb;
    h->stop_data = data;
    uv_timer_init(h->loop, &h->stop_timer);
    h->stop_timer.data = h;
    uv_timer_start(&h->stop_timer, on_stop_timeout, h->opts.shutdown_timeout_ms, 0);
    if (h->listening) {
        h->listening = 0;
        h->stop_pending_closes += 2;
        uv_close((uv_handle_t *)&h->listener, on_stop_handle_closed);
        uv_close((uv_handle_t *)&h->accept_idle, on_stop_handle_closed);
    }
    if (h->drain_timer_open) { /* no connection waits once stopping: they close */
        h->drain_timer_open = 0;
        h->stop_pending_closes++;
        uv_close((uv_handle_t *)&h->drain_timer, on_stop_handle_closed);
    }
    for (httpd_conn_t *c = h->conns; c;) {
        httpd_conn_t *next = c->next;
        httpd__conn_stop(c);
        c = next;
    }
    httpd__conn_closed(h); /* no connections at all: done once the handles close */
}
