/*
 * core/log.c - JSON-lines logging with redaction.
 *
 * Lines are built in memory and written with one write(2), so lines from the
 * processes that share a terminal or a file never interleave mid-line.
 */
#include "log.h"
#include "clock.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gf_log_min_level = GF_LOG_INFO;
static int log_fd = 2;

#define LOG_SECRETS_MAX 32
static char *log_secrets[LOG_SECRETS_MAX];
static int log_nsecrets;

/* Makes room for `n` more bytes and the NUL after them. */
static void buf_grow(gf_buf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->p = gf_xrealloc(b->p, cap);
    b->cap = cap;
}

void gf_buf_append(gf_buf_t *b, const char *s, size_t n)
{
    buf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void gf_buf_puts(gf_buf_t *b, const char *s)
{
    gf_buf_append(b, s, strlen(s));
}

/* Formats straight into the buffer: into the room it has, else again once it has grown. */
void gf_buf_printf(gf_buf_t *b, const char *fmt, ...)
{
    size_t room = b->cap - b->len;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    if (n >= 0 && (size_t)n >= room) {
        buf_grow(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    va_end(ap);
    if (n >= 0)
        b->len += (size_t)n;
    else if (room)
        b->p[b->len] = '\0'; /* a failed format appends nothing */
}

void gf_buf_dispose(gf_buf_t *b)
{
    GF_FREE(b->p);
    b->len = b->cap = 0;
}

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *s)
{
    size_t n;
    unsigned int min;
    unsigned int cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3, min = 0x800, cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void gf_buf_json_escape(gf_buf_t *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        const unsigned char *run = s;
        /* Copy runs of plain printable ASCII in one go. */
        while (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
            s++;
        if (s > run)
            gf_buf_append(b, (const char *)run, (size_t)(s - run));
        if (*s == '\0')
            break;
        char esc[8];
        switch (*s) {
        case '"':
            gf_buf_puts(b, "\\\"");
            s++;
            continue;
        case '\\':
            gf_buf_puts(b, "\\\\");
            s++;
            continue;
        case '\n':
            gf_buf_puts(b, "\\n");
            s++;
            continue;
        case '\r':
            gf_buf_puts(b, "\\r");
            s++;
            continue;
        case '\t':
            gf_buf_puts(b, "\\t");
            s++;
            continue;
        }
        if (*s < 0x20 || *s == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *s);
            gf_buf_puts(b, esc);
            s++;
            continue;
        }
        size_t n = utf8_seq_len(s);
        if (n == 0) {
            gf_buf_puts(b, "\\ufffd"); /* invalid UTF-8 never breaks the line's JSON */
            s++;
        } else {
            gf_buf_append(b, (const char *)s, n);
            s += n;
        }
    }
}

void gf_log_add_secret(const char *value)
{
    if (value == NULL || strlen(value) < 4 || log_nsecrets == LOG_SECRETS_MAX)
        return;
    for (int i = 0; i < log_nsecrets; i++)
        if (strcmp(log_secrets[i], value) == 0)
            return;
    log_secrets[log_nsecrets++] = gf_xstrdup(value);
}

void gf_log_clear_secrets(void)
{
    for (int i = 0; i < log_nsecrets; i++)
        GF_FREE(log_secrets[i]);
    log_nsecrets = 0;
}

static int is_token_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' ||
           c == '=' || c == '%';
}

/* Query or form keys whose values are secrets ("sslpassword=": libpq's client key
 * passphrase, which the boundary rule keeps "password=" from matching). */
static const char *const secret_keys[] = {
    "access_token=", "token=",  "sig=",     "password=",    "secret=",
    "key=",          "apikey=", "api_key=", "sslpassword=", NULL};

static size_t match_secret_key(const char *s, const char *start)
{
    /* A key counts only at a boundary, so "monkey=" is not "key=". */
    if (s > start && (isalnum((unsigned char)s[-1]) || s[-1] == '_'))
        return 0;
    for (int i = 0; secret_keys[i]; i++) {
        size_t n = strlen(secret_keys[i]);
        if (strncasecmp(s, secret_keys[i], n) == 0)
            return n;
    }
    return 0;
}

/* Masks patterns: Bearer tokens, JWTs, passwords in URLs, secret query values. */
static char *redact_patterns(const char *in)
{
    gf_buf_t b = {0};
    const char *s = in;
    while (*s) {
        size_t k;
        if (strncasecmp(s, "bearer ", 7) == 0 && is_token_char((unsigned char)s[7])) {
            gf_buf_append(&b, s, 7);
            gf_buf_puts(&b, "[redacted]");
            s += 7;
            while (is_token_char((unsigned char)*s))
                s++;
            continue;
        }
        if (strncmp(s, "eyJ", 3) == 0 && (s == in || !is_token_char((unsigned char)s[-1]))) {
            const char *e = s;
            int dots = 0;
            while (isalnum((unsigned char)*e) || *e == '-' || *e == '_' || *e == '.')
                dots += (*e++ == '.');
            if (dots >= 1) {
                gf_buf_puts(&b, "[jwt]");
                s = e;
                continue;
            }
        }
        if (strncmp(s, "://", 3) == 0) {
            /* scheme://user:password@host -> scheme://user:[redacted]@host */
            /* The last '@' of the authority: a password may hold one unescaped. */
            const char *at = NULL;
            for (const char *c = s + 3; *c && !strchr("/?# \"", *c); c++)
                if (*c == '@')
                    at = c;
            const char *colon = at ? memchr(s + 3, ':', (size_t)(at - (s + 3))) : NULL;
            if (colon != NULL) {
                gf_buf_append(&b, s, (size_t)(colon + 1 - s));
                gf_buf_puts(&b, "[redacted]");
                s = at;
                continue;
            }
        }
        if ((k = match_secret_key(s, in)) != 0) {
            gf_buf_append(&b, s, k);
            s += k;
            if (is_token_char((unsigned char)*s))
                gf_buf_puts(&b, "[redacted]");
            while (*s && *s != '&' && *s != ' ' && *s != '"' && *s != '\'' && *s != ',')
                s++;
            continue;
        }
        gf_buf_append(&b, s, 1);
        s++;
    }
    if (b.p == NULL)
        gf_buf_puts(&b, "");
    return b.p;
}

/* Replaces every registered secret in `out` (freed) by [redacted]; returns the new text. */
static char *redact_secrets(char *out)
{
    for (int i = 0; i < log_nsecrets; i++) {
        const char *sec = log_secrets[i];
        size_t n = strlen(sec);
        if (strstr(out, sec) == NULL)
            continue;
        gf_buf_t b = {0};
        const char *s = out, *hit;
        while ((hit = strstr(s, sec)) != NULL) {
            gf_buf_append(&b, s, (size_t)(hit - s));
            gf_buf_puts(&b, "[redacted]");
            s = hit + n;
        }
        gf_buf_puts(&b, s);
        free(out);
        out = b.p;
    }
    return out;
}

char *gf_log_redact(const char *in)
{
    /* The registered secrets first: a pattern could mask only part of one,
     * and what is left would no longer match it. And again after: a pattern
     * that drops a value can join what was around it into a secret. */
    char *out = redact_secrets(gf_xstrdup(in));
    char *masked = redact_patterns(out);
    free(out);
    return redact_secrets(masked);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int gf_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *gf_log_level_name(int level)
{
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

void gf_log_set_fd(int fd)
{
    log_fd = fd;
}

static void add_field(gf_buf_t *b, const char *key, const char *value)
{
    if (value == NULL)
        return;
    gf_buf_printf(b, ",\"%s\":\"", key);
    char *clean = gf_log_redact(value);
    gf_buf_json_escape(b, clean);
    free(clean);
    gf_buf_puts(b, "\"");
}

char *gf_log_format(gf_log_level level, const gf_log_ctx *ctx, const char *ts, const char *msg)
{
    gf_buf_t b = {0};
    char now[32];
    if (ts == NULL) {
        gf_clock_rfc3339(gf_clock_unix_ms(), now);
        ts = now;
    }
    gf_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, gf_log_level_name(level));
    static const gf_log_ctx empty;
    if (ctx == NULL)
        ctx = &empty;
    add_field(&b, "component", ctx->component ? ctx->component : "farm");
    add_field(&b, "msg", msg);
    add_field(&b, "action", ctx->action);
    add_field(&b, "request_id", ctx->request_id);
    add_field(&b, "generation_id", ctx->generation_id);
    add_field(&b, "worker_id", ctx->worker_id);
    add_field(&b, "user_id", ctx->user_id);
    add_field(&b, "job_id", ctx->job_id);
    add_field(&b, "provider", ctx->provider);
    if (ctx->attempt > 0)
        gf_buf_printf(&b, ",\"attempt\":%d", ctx->attempt);
    if (ctx->http) {
        add_field(&b, "method", ctx->http->method);
        add_field(&b, "route", ctx->http->route);
        gf_buf_printf(&b, ",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f", ctx->http->status,
                      ctx->http->bytes, ctx->http->duration_ms);
    }
    gf_buf_puts(&b, "}\n");
    return b.p;
}

static void log_emit(gf_log_level level, const gf_log_ctx *ctx, const char *msg)
{
    char *line = gf_log_format(level, ctx, NULL, msg);
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t n = write(log_fd, line + off, len - off);
        if (n <= 0)
            break; /* nowhere left to report a failing log: drop the line */
        off += (size_t)n;
    }
    free(line);
}

void gf_log_write(gf_log_level level, const gf_log_ctx *ctx, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        log_emit(level, ctx, small);
        return;
    }
    char *big = gf_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    log_emit(level, ctx, big);
    free(big);
}

void gf_log_err(gf_log_level level, const gf_log_ctx *ctx, const gf_err_t *err)
{
    if ((int)level < gf_log_min_level)
        return;
    const char *action = ctx && ctx->action ? ctx->action : NULL;
    gf_log_write(level, ctx, "%s: %s (%s)%s%s", err->domain ? err->domain : "farm", err->msg,
                 gf_status_name(err->code), action ? " while " : "", action ? action : "");
}
