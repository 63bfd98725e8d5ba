/*
 * core/include/err.h - the one error discipline of genfarm.
 *
 * A fallible function returns 0 or a negative gf_status and fills an optional
 * gf_err_t. The code that detects an error writes the message; callers pass the
 * record along unchanged, and the first message wins. `msg` is for logs only and
 * never reaches an HTTP response.
 */
#ifndef GF_ERR_H
#define GF_ERR_H

#include <stddef.h>

typedef enum {
    GF_OK = 0,
    GF_EINVAL = -1, /* bad input from the caller: a 4xx */
    GF_ENOMEM = -2,
    GF_ETOOBIG = -3, /* a configured bound was exceeded */
    GF_ETIMEDOUT = -4,
    GF_EUNAVAIL = -5,  /* a dependency is down; retryable */
    GF_ECONFLICT = -6, /* state race or duplicate; idempotent no-op */
    GF_ECREDITS = -7,
    GF_EPROVIDER = -8,
    GF_ECANCELED = -9,
    GF_ENOTFOUND = -10,
    GF_EIO = -11, /* a system call failed */
} gf_status;

typedef struct {
    gf_status code;
    const char *domain; /* static string: "queue", "store", "provider.hf" */
    long detail;        /* HTTP status, CURLcode, SQLSTATE class, errno... */
    char msg[256];
} gf_err_t;

/*
 * Records an error in `err` (which may be NULL) unless one is already recorded,
 * and returns `code` so callers can write `return gf_err_set(err, ...)`.
 */
int gf_err_set(gf_err_t *err, gf_status code, const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like gf_err_set, and also stores `detail` (an HTTP status, errno, ...). */
int gf_err_setd(gf_err_t *err, gf_status code, const char *domain, long detail, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* Forgets a recorded error so the record can be reused. */
void gf_err_clear(gf_err_t *err);

/* A short static name for a status: "EINVAL", "EUNAVAIL"... */
const char *gf_status_name(int code);

/*
 * Small allocations whose size the program decides. On exhaustion they log the
 * size and abort (as Redis and h2o do); sizes a peer decides are checked against
 * a configured cap before they get here.
 */
void *gf_xmalloc(size_t n);
void *gf_xcalloc(size_t n, size_t size);
void *gf_xrealloc(void *p, size_t n);
char *gf_xstrdup(const char *s);
char *gf_xstrndup(const char *s, size_t n);

#define GF_FREE(p)                                                                                 \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#endif
