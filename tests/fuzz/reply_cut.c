/*
 * tests/fuzz/reply_cut.c - a fuzz input cut into a reply's header lines
 * and body (reply_cut.h).
 */
#include "reply_cut.h"

#include <stdlib.h>
#include <string.h>

void fz_reply_parse(fz_reply_t *r, const uint8_t *data, size_t n, int lower)
{
    r->copy = malloc(n + 1);
    memcpy(r->copy, data, n);
    r->copy[n] = '\0';
    r->nheaders = 0;
    char *p = r->copy, *end = r->copy + n;
    while (p < end && *p != '\n') {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        *line_end = '\0';
        if (strchr(p, ':') && r->nheaders < FZ_REPLY_HEADERS) {
            for (char *c = p; lower && *c != ':'; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            r->headers[r->nheaders++] = p;
        }
        p = nl ? nl + 1 : end;
    }
    if (p < end && *p == '\n')
        p++;
    r->body = p;
    r->len = (size_t)(end - p);
}

void fz_reply_dispose(fz_reply_t *r)
{
    free(r->copy);
    r->copy = NULL;
}
