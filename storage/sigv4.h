/*
 * storage/sigv4.h - AWS Signature Version 4, the pure parts: URI encoding,
 * the canonical request, the signing key, the Authorization header and
 * presigned query strings. No I/O, no clock: the caller gives the time.
 * Internal to storage/ (tests/unit/storage reaches it by name).
 */
#ifndef STORAGE_SIGV4_H
#define STORAGE_SIGV4_H

#include "core.h"

#include <stddef.h>

/* A header or query parameter; names of headers are given lower-case. */
typedef struct {
    const char *name;
    const char *value;
} sigv4_kv;

typedef struct {
    const char *access_key;
    const char *secret;
    const char *region;
    const char *service; /* "s3" */
} sigv4_creds;

/* The hex SHA-256 of the empty payload. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Appends `s` URI-encoded as SigV4 wants: A-Z a-z 0-9 - . _ ~ kept, every
 * other byte %XX (upper-case hex); '/' kept when `keep_slash`. */
void sigv4_uri_encode(gf_buf_t *out, const char *s, int keep_slash);

/*
 * The canonical request: method, the path (encoded here, slashes kept), the
 * query (encoded and sorted here), the headers (names lower-case, values
 * trimmed, sorted by name; each name once), the signed header list, the
 * payload hash. New string.
 */
char *sigv4_canonical_request(const char *method, const char *path, const sigv4_kv *query,
                              size_t nquery, const sigv4_kv *headers, size_t nheaders,
                              const char *payload_hash);

/* "host;range;x-amz-date": the names of `headers`, sorted, ';'-joined. New string. */
char *sigv4_signed_headers(const sigv4_kv *headers, size_t nheaders);

/* The signing key of a day ("20130524"). */
void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32]);

/* "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hex sha256 of canonical}". New string. */
char *sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical);

/* "20130524T000000Z" of a Unix time. */
void sigv4_amz_date(long long unix_s, char out[17]);

/* The hex signature of `canonical` at `amz_date`. */
void sigv4_sign(const sigv4_creds *c, const char *amz_date, const char *canonical, char hex[65]);

/*
 * The Authorization header's value of a request signed in headers: every
 * header given is signed (host, x-amz-date and x-amz-content-sha256 among
 * them). New string.
 */
char *sigv4_authorization(const sigv4_creds *c, const char *amz_date, const char *method,
                          const char *path, const sigv4_kv *query, size_t nquery,
                          const sigv4_kv *headers, size_t nheaders, const char *payload_hash);

/*
 * The query string of a presigned request ("X-Amz-Algorithm=...&X-Amz-Signature=..."),
 * valid `expires_s` seconds from `amz_date`, signing only the host header and
 * an UNSIGNED-PAYLOAD. New string.
 */
char *sigv4_presign_query(const sigv4_creds *c, const char *amz_date, long expires_s,
                          const char *method, const char *path, const char *host);

#endif
