/*
 * core/include/url.h - URLs of the configuration, split into their parts.
 */
#ifndef GF_URL_H
#define GF_URL_H

#include "err.h"

/* The parts of a URL; every string is a new copy, free with gf_url_dispose(). */
typedef struct {
    char *scheme, *user, *password, *host, *path;
    char *password_raw; /* the password as written, %-escapes and all */
    int port;           /* 0 when absent */
} gf_url_t;

/*
 * Parses "scheme://[user[:password]@]host[:port][/path]". The user and the
 * password are %-decoded; an '@' in them must be written %40 (as libpq reads
 * it too). GF_EINVAL when malformed.
 */
int gf_url_parse(const char *s, gf_url_t *url, gf_err_t *err);
void gf_url_dispose(gf_url_t *url);

#endif
