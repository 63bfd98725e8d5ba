/*
 * core/include/log.h - JSON-lines logging on stderr.
 *
 * One JSON object per line: ts, level, component, msg, and the ids in scope
 * (request_id, generation_id, worker_id, user_id, job_id, provider, attempt,
 * action). GF_LOG checks the level before it evaluates any argument. Secrets
 * never reach a line: gf_log_redact() runs on every message, and the values
 * the config loader marks as secret are registered with gf_log_add_secret().
 * A message never contains a raw newline: control bytes are escaped.
 */
#ifndef GF_LOG_H
#define GF_LOG_H

#include <stddef.h>

#include "err.h"

typedef enum {
    GF_LOG_DEBUG = 0,
    GF_LOG_INFO = 1,
    GF_LOG_WARN = 2,
    GF_LOG_ERROR = 3,
} gf_log_level;

/* A request's access-log fields (core/httpd's access log); route is the pattern, never the path. */
typedef struct {
    const char *method, *route;
    int status;
    unsigned long long bytes; /* body bytes answered */
    double duration_ms;
} gf_log_http_t;

/* The ids in scope for a line; every field is optional (NULL / 0). Borrowed. */
typedef struct {
    const char *component;
    const char *request_id;
    const char *generation_id;
    const char *worker_id;
    const char *user_id;
    const char *job_id;
    const char *provider;
    const char *action; /* "calling provider": errors read "... while calling provider" */
    int attempt;
    const gf_log_http_t *http; /* an access-log line: method, route, status, bytes, duration_ms */
} gf_log_ctx;

extern int gf_log_min_level;

#define GF_LOG(level, ctx, ...)                                                                    \
    do {                                                                                           \
        if ((int)(level) >= gf_log_min_level)                                                      \
            gf_log_write((level), (ctx), __VA_ARGS__);                                             \
    } while (0)

/* Formats, redacts and writes one line with a single write(2). */
void gf_log_write(gf_log_level level, const gf_log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs an error record: its message, domain and status name. */
void gf_log_err(gf_log_level level, const gf_log_ctx *ctx, const gf_err_t *err);

/*
 * Builds the line gf_log_write would write (with a trailing newline) into a new
 * string; `ts` overrides the timestamp when not NULL (for tests). Free with free().
 */
char *gf_log_format(gf_log_level level, const gf_log_ctx *ctx, const char *ts, const char *msg);

/*
 * Returns a new string: `s` with secrets masked (Bearer tokens, JWTs, URL
 * passwords, token/sig/key/password/secret query values and registered
 * secret values). Free with free().
 */
char *gf_log_redact(const char *s);

/* Registers a secret value to mask wherever it appears. Values under 4 bytes are ignored. */
void gf_log_add_secret(const char *value);

/* Forgets registered secrets (tests, and shutdown for leak checkers). */
void gf_log_clear_secrets(void);

/* "debug", "info", "warn", "error" -> level, or -1. */
int gf_log_level_parse(const char *name);
const char *gf_log_level_name(int level);

/* Where lines go (default 2, stderr). */
void gf_log_set_fd(int fd);

/* Appends `s` JSON-escaped (without quotes) to a growing buffer; used by the log and metrics. */
typedef struct {
    char *p;
    size_t len, cap;
} gf_buf_t;

void gf_buf_append(gf_buf_t *b, const char *s, size_t n);
void gf_buf_puts(gf_buf_t *b, const char *s);
void gf_buf_printf(gf_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gf_buf_json_escape(gf_buf_t *b, const char *s);
void gf_buf_dispose(gf_buf_t *b);

#endif
