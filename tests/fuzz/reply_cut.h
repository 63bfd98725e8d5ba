/*
 * tests/fuzz/reply_cut.h - the part of a fuzz input that the reply fuzzers
 * (s3_reply, webhook_reply) read as an HTTP reply the way net/ hands one
 * over: header lines "name: value", then an empty line, then the body.
 */
#ifndef GF_FUZZ_REPLY_CUT_H
#define GF_FUZZ_REPLY_CUT_H

#include <stddef.h>
#include <stdint.h>

#define FZ_REPLY_HEADERS 16

typedef struct {
    char *copy; /* a NUL-terminated copy of the bytes, cut in place */
    char *headers[FZ_REPLY_HEADERS];
    size_t nheaders;
    char *body; /* NUL-terminated, inside copy */
    size_t len;
} fz_reply_t;

/* Cuts `data` (n bytes) into at most FZ_REPLY_HEADERS header lines (lines with a ':'; the
 * others are skipped), names lower-cased when `lower`, up to the first empty line; the rest
 * is the body. Free with fz_reply_dispose(). */
void fz_reply_parse(fz_reply_t *r, const uint8_t *data, size_t n, int lower);
void fz_reply_dispose(fz_reply_t *r);

#endif
