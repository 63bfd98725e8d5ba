/*
 * tests/fuzz/fuzz_s3_reply.c - an S3 service's reply through what
 * storage/s3.c decides from it (storage__s3_judge): success, already gone,
 * a failure's status, whether to retry, and the <Code> of an S3 error
 * document for the log; then the ETag a GET keeps, as on_xfer reads it.
 *
 * Input: byte 0 the curl code (0 unless its high bit is set), byte 1 the
 * operation (PUT, GET, DELETE, HEAD: low 2 bits) and a body over the bound
 * (bit 2), bytes 2-3 the HTTP status (mod 600), then header lines
 * "name: value\n" up to an empty line, then the body.
 *
 * What must hold, else abort: the verdict is one of the documented ones and
 * follows the status (a 2xx succeeds, a DELETE's 404 succeeds only when it
 * says the key is missing, NoSuchKey or no body, and a GET's is "not found"
 * only then; only no answer, 5xx, 429 and 400 RequestTimeout are retried);
 * the code is
 * NUL-terminated inside its buffer, even a small one, and names an answered
 * failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply_cut.h"
#include "storage_int.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_s3_reply: %s\n", what);
    abort();
}

/* Whether the body's first <Code> is `name`, as S3 writes an error document. */
static int code_is(const net_resp_t *r, const char *name)
{
    const char *c = r->body ? strstr(r->body, "<Code>") : NULL;
    size_t n = strlen(name);
    return c && strncmp(c + 6, name, n) == 0 && strncmp(c + 6 + n, "</Code>", 7) == 0;
}

/* Checks one verdict against the reply, with a code buffer of `n` bytes. */
static void judge(const net_resp_t *r, storage_op_kind kind, size_t n)
{
    char code[64 + 1];
    memset(code, 'x', sizeof(code));
    int retry = -1;
    int st = storage__s3_judge(r, kind, &retry, code, n);
    if (code[n] != 'x' || memchr(code, '\0', n) == NULL)
        die("the code passed its buffer or is not NUL-terminated");
    if (retry != 0 && retry != 1)
        die("retry is not a yes or a no");
    int answered = !r->too_big && r->curl_code == 0;
    int ok2xx = answered && r->status >= 200 && r->status < 300;
    int missing = r->len == 0 || code_is(r, "NoSuchKey"); /* a GET's 404 */
    /* A DELETE's 404 is "already gone" only with S3's NoSuchKey: a bodiless one is
     * whatever stands in front of S3, never proof the key is gone. */
    int gone = answered && r->status == 404 && kind == OP_DELETE && code_is(r, "NoSuchKey");
    switch (st) {
    case GF_OK:
        if (!ok2xx && !gone)
            die("GF_OK for a reply that is neither a 2xx nor a DELETE's NoSuchKey");
        break;
    case GF_ETOOBIG:
        if (!r->too_big)
            die("GF_ETOOBIG without a body over the bound");
        break;
    case GF_ETIMEDOUT:
        if (answered || r->too_big)
            die("GF_ETIMEDOUT for an answer");
        break;
    case GF_EUNAVAIL:
    case GF_ENOTFOUND:
    case GF_EINVAL:
        if (ok2xx || gone)
            die("a failure for a success");
        if (st == GF_ENOTFOUND && r->status != 404)
            die("GF_ENOTFOUND for a status other than 404");
        if (st == GF_ENOTFOUND && kind == OP_GET && !missing)
            die("GF_ENOTFOUND for a 404 that does not say the key is missing");
        if (st == GF_ENOTFOUND && kind == OP_DELETE)
            die("GF_ENOTFOUND for a DELETE (gone is GF_OK; any other 404 a failure)");
        break;
    default:
        die("a status storage__s3_judge does not document");
    }
    int transient =
        r->status >= 500 || r->status == 429 || (r->status == 400 && code_is(r, "RequestTimeout"));
    int want_retry = r->too_big ? 0 : !answered ? 1 : (!ok2xx && !gone && transient);
    if (retry != want_retry)
        die("retry does not follow the reply");
    if (answered && st != GF_OK && n > 1 && code[0] == '\0')
        die("an answered failure without its code");
    if ((!answered || st == GF_OK) && code[0] != '\0')
        die("a code for a reply that is not an answered failure");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > (1 << 20))
        return 0;
    net_resp_t r;
    memset(&r, 0, sizeof(r));
    r.curl_code = data[0] & 0x80 ? data[0] & 0x7f : 0;
    storage_op_kind kind = (storage_op_kind)(data[1] & 3);
    r.too_big = (data[1] >> 2) & 1;
    r.status = r.curl_code ? 0 : ((long)data[2] << 8 | data[3]) % 600;
    /* The rest, cut into header lines and the body, as net/ gives them: lower-case names. */
    fz_reply_t rest;
    fz_reply_parse(&rest, data + 4, size - 4, 1);
    r.headers = rest.headers;
    r.nheaders = rest.nheaders;
    r.body = rest.body;
    r.len = rest.len;
    if (r.curl_code)
        snprintf(r.curl_msg, sizeof(r.curl_msg), "curl error %d", r.curl_code);

    judge(&r, kind, 64);
    judge(&r, kind, 8); /* a buffer shorter than most codes */
    judge(&r, kind, 1);
    /* What a successful GET keeps of the reply: its ETag, cut to the object's field. */
    const char *etag = net_header(&r, "etag");
    storage_object_t obj;
    memset(&obj, 0, sizeof(obj));
    snprintf(obj.etag, sizeof(obj.etag), "%s", etag ? etag : "");
    if (strnlen(obj.etag, sizeof(obj.etag)) == sizeof(obj.etag))
        die("the ETag is not NUL-terminated");
    fz_reply_dispose(&rest);
    return 0;
}
