/*
 * core/err.c - error records and the aborting allocators.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int err_vset(gf_err_t *err, gf_status code, const char *domain, long detail, const char *fmt,
                    va_list ap)
{
    if (err == NULL || err->code != GF_OK)
        return code; /* the first message wins */
    err->code = code;
    err->domain = domain;
    err->detail = detail;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return code;
}

int gf_err_set(gf_err_t *err, gf_status code, const char *domain, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, domain, 0, fmt, ap);
    va_end(ap);
    return code;
}

int gf_err_setd(gf_err_t *err, gf_status code, const char *domain, long detail, const char *fmt,
                ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, domain, detail, fmt, ap);
    va_end(ap);
    return code;
}

void gf_err_clear(gf_err_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
}

const char *gf_status_name(int code)
{
    switch (code) {
    case GF_OK:
        return "OK";
    case GF_EINVAL:
        return "EINVAL";
    case GF_ENOMEM:
        return "ENOMEM";
    case GF_ETOOBIG:
        return "ETOOBIG";
    case GF_ETIMEDOUT:
        return "ETIMEDOUT";
    case GF_EUNAVAIL:
        return "EUNAVAIL";
    case GF_ECONFLICT:
        return "ECONFLICT";
    case GF_ECREDITS:
        return "ECREDITS";
    case GF_EPROVIDER:
        return "EPROVIDER";
    case GF_ECANCELED:
        return "ECANCELED";
    case GF_ENOTFOUND:
        return "ENOTFOUND";
    case GF_EIO:
        return "EIO";
    }
    return "EUNKNOWN";
}

static void oom(size_t n)
{
    fprintf(stderr,
            "{\"level\":\"error\",\"component\":\"core\",\"msg\":\"out of memory "
            "allocating %zu bytes\"}\n",
            n);
    abort();
}

void *gf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *gf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *gf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *gf_xstrdup(const char *s)
{
    return gf_xstrndup(s, strlen(s));
}

char *gf_xstrndup(const char *s, size_t n)
{
    char *p = gf_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
