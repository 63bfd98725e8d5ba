/*
 * core/httpd_parse.c - libhttp-parser's callbacks: a request line and its
 * headers into the connection's gf_http_req_t (within the header byte
 * limit), the route it matches, the body within its limit. They never
 * answer: a refusal is recorded in the request and httpd_conn.c answers it
 * once http_parser_execute() has returned (see its invariants).
 */
#include "httpd_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(gf_http_req_t *r, int status, const char *code, const char *msg)
{
    r->error_status = status;
    r->error_code = code;
    r->error_msg = msg;
    return -1;
}

static int count_header_bytes(httpd_conn_t *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->h->opts.max_header_bytes)
        return refuse(c->req, 431, "headers_too_large",
                      "the request line and headers exceed the limit");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    httpd_conn_t *c = p->data;
    if (c->req == NULL)
        c->req = httpd__req_new(c);
    c->state = CONN_HEADERS;
    c->header_bytes = 0;
    /* The header timeout counts from the first byte, so a trickle cannot extend it. */
    httpd__conn_timer(c, c->h->opts.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    httpd_conn_t *c = p->data;
    if (count_header_bytes(c, n) < 0)
        return -1;
    gf_buf_append(&c->req->url, at, n);
    return 0;
}

static void str_append(char **s, const char *at, size_t n)
{
    size_t old = *s ? strlen(*s) : 0;
    *s = gf_xrealloc(*s, old + n + 1);
    memcpy(*s + old, at, n);
    (*s)[old + n] = '\0';
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    httpd_conn_t *c = p->data;
    gf_http_req_t *r = c->req;
    int starts = r->headers.n == 0 || r->header_last_was_value;
    /* A new header also costs its ": " and CRLF, so many tiny ones count as they weigh. */
    if (count_header_bytes(c, n + (starts ? 4 : 0)) < 0)
        return -1;
    if (starts)
        httpd__kv_add(&r->headers, "", 0, "", 0);
    str_append(&r->headers.items[r->headers.n - 1].name, at, n);
    r->header_last_was_value = 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    httpd_conn_t *c = p->data;
    gf_http_req_t *r = c->req;
    if (count_header_bytes(c, n) < 0)
        return -1;
    str_append(&r->headers.items[r->headers.n - 1].value, at, n);
    r->header_last_was_value = 1;
    return 0;
}

int httpd__split_url(gf_http_req_t *r)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (r->url.len == 0 || http_parser_parse_url(r->url.p, r->url.len, 0, &u) != 0)
        return -1;
    if (u.field_set & (1 << UF_PATH))
        r->path =
            httpd__pct_decode(r->url.p + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, 0);
    else
        r->path = gf_xstrdup("/");
    if (r->path == NULL || r->path[0] != '/')
        return -1;
    if (u.field_set & (1 << UF_QUERY))
        r->query_raw =
            gf_xstrndup(r->url.p + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    return 0;
}

int httpd__req_has_body(const http_parser *p)
{
    return (p->flags & F_CHUNKED) || (p->content_length != ULLONG_MAX && p->content_length > 0);
}

static int on_headers_complete(http_parser *p)
{
    httpd_conn_t *c = p->data;
    gf_http_req_t *r = c->req;
    r->http_minor = p->http_minor;
    snprintf(r->method, sizeof(r->method), "%s", http_method_str((enum http_method)p->method));
    if (p->http_major != 1)
        return refuse(r, 505, "http_version_not_supported",
                      "only HTTP/1.0 and HTTP/1.1 are served");
    for (size_t i = 0; i < r->headers.n; i++)
        for (char *s = r->headers.items[i].name; *s; s++)
            *s = (char)tolower((unsigned char)*s);
    if (httpd__split_url(r) < 0)
        return refuse(r, 400, "invalid_request", "malformed request target");
    if (httpd__query_parse(r) < 0)
        return refuse(r, 400, "invalid_request", HTTPD_BAD_QUERY);
    int method_allowed;
    r->route = httpd__route_match(c->h, r, &method_allowed);
    r->method_not_allowed = !method_allowed;
    if (r->route && r->route->max_body)
        r->max_body = r->route->max_body;
    /* A body for no route is refused unread (404 and 405 without one keep the connection). */
    if (r->route == NULL && httpd__req_has_body(p))
        return r->method_not_allowed
                   ? refuse(r, 405, "method_not_allowed", "this method is not allowed here")
                   : refuse(r, 404, "not_found", "no such route");
    if (p->content_length != ULLONG_MAX && p->content_length > r->max_body)
        return refuse(r, 413, "payload_too_large", "the request body exceeds the limit");
    if (r->route != NULL && c->h->check != NULL) {
        /* conn_parse() runs the check once the parser has returned. */
        c->state = CONN_CHECKING;
        http_parser_pause(p, 1);
        return 0;
    }
    httpd__conn_body_begin(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    httpd_conn_t *c = p->data;
    gf_http_req_t *r = c->req;
    if (r->body.len + n > r->max_body)
        return refuse(r, 413, "payload_too_large", "the request body exceeds the limit");
    gf_buf_append(&r->body, at, n);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    /* Pause: the next pipelined request waits until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings httpd__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
