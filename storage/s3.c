/*
 * storage/s3.c - the `s3` backend: one HTTP request per operation over
 * net/ (curl multi on the process's loop), signed with SigV4 (sigv4.c),
 * path-style or virtual-hosted, retried with backoff on 5xx, 429, S3's 400
 * RequestTimeout, timeouts and broken connections.
 *
 * Every PUT carries its body's SHA-256, signed (x-amz-content-sha256) and as
 * x-amz-checksum-sha256 (S3 stores and checks it), and its MD5 (Content-MD5,
 * which S3 checks too), so a body damaged on the way is refused rather than
 * stored. A PUT is all or nothing on the service's side: no reader sees a
 * partial object. The SHA-256 is also stored with the object, as user
 * metadata (x-amz-meta-sha256, which every S3 returns on GET), and a GET
 * whose body does not match it (cut short by something on the way yet
 * framed as whole) is retried like a broken connection, never delivered.
 */
#include "sigv4.h"
#include "storage_int.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_EXPIRES_S  604800 /* SigV4's longest presigned validity, 7 days */
#define MAX_BACKOFF_MS 10000
/* A ListObjectsV2 reply of `n` keys is at most this long (a <Contents> of one of
 * our keys is well under 1 KiB). */
#define LIST_REPLY_BYTES(n) ((size_t)(n)*2048 + 65536)

typedef struct {
    storage_t *s;
    const gf_config_t *cfg;
    net_t *net;
    sigv4_creds creds;
    char *scheme;
    char *host; /* the Host header: host[:port] (no default port), with the bucket in front
                 * when virtual-hosted */
    int path_style;
    uint64_t rng;
} s3_t;

/* Whether gf_url_parse's `host` is an IP address: an IPv6 literal (its brackets taken off,
 * so a ':' is left) or dotted digits. */
static int is_address(const char *host)
{
    return strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
}

static void *s3_open(storage_t *s, const gf_config_t *cfg, gf_err_t *err)
{
    gf_url_t u;
    gf_err_t why = {0};
    if (gf_url_parse(cfg->s3_endpoint, &u, &why) < 0) {
        gf_err_set(err, GF_EINVAL, "config", "FARM_S3_ENDPOINT: %s", why.msg); /* not echoed */
        return NULL;
    }
    const char *bad = NULL;
    if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
        bad = "the scheme must be http or https";
    else if (u.user || u.password)
        bad = "credentials go in FARM_S3_ACCESS_KEY_ID and FARM_S3_SECRET_ACCESS_KEY";
    else if (u.path[0] != '\0' && strcmp(u.path, "/") != 0)
        bad = "no path: scheme://host[:port]";
    else if (!cfg->s3_path_style && is_address(u.host))
        bad = "virtual-hosted addressing (FARM_S3_PATH_STYLE=0) needs a host name";
    if (bad) {
        /* Not echoed: it may hold the credentials it is refused for. */
        gf_err_set(err, GF_EINVAL, "config", "FARM_S3_ENDPOINT: %s", bad);
        gf_url_dispose(&u);
        return NULL;
    }
    net_t *net = net_new(storage__loop(s), err);
    if (net == NULL) {
        gf_url_dispose(&u);
        return NULL;
    }
    s3_t *b = gf_xcalloc(1, sizeof(*b));
    b->s = s;
    b->cfg = cfg;
    b->net = net;
    b->creds =
        (sigv4_creds){cfg->s3_access_key_id, cfg->s3_secret_access_key, cfg->s3_region, "s3"};
    b->scheme = gf_xstrdup(u.scheme);
    b->path_style = (int)cfg->s3_path_style;
    gf_buf_t h = {0};
    if (!b->path_style)
        gf_buf_printf(&h, "%s.", cfg->s3_bucket);
    /* gf_url_parse takes an IPv6 literal's brackets off (libpq and hiredis want the bare
     * address); a URL and a Host header need them back. */
    gf_buf_printf(&h, strchr(u.host, ':') ? "[%s]" : "%s", u.host);
    /* The scheme's default port is left out, of the URLs and of the Host we sign: a browser
     * or curl leaves it out of the Host it sends, so a presigned URL signed for "host:443"
     * would never match. */
    int default_port = (strcmp(u.scheme, "http") == 0 && u.port == 80) ||
                       (strcmp(u.scheme, "https") == 0 && u.port == 443);
    if (u.port && !default_port)
        gf_buf_printf(&h, ":%d", u.port);
    b->host = h.p;
    b->rng = uv_hrtime() | 1;
    gf_url_dispose(&u);
    return b;
}

/* The path of a key (or of the bucket, for NULL), unencoded. */
static char *path_of(const s3_t *b, const char *key)
{
    gf_buf_t p = {0};
    if (b->path_style)
        gf_buf_printf(&p, "/%s", b->cfg->s3_bucket);
    if (key)
        gf_buf_printf(&p, "/%s%s", b->cfg->s3_prefix, key);
    else if (!b->path_style)
        gf_buf_puts(&p, "/");
    return p.p;
}

static char *url_of(const s3_t *b, const char *path)
{
    gf_buf_t u = {0};
    gf_buf_printf(&u, "%s://%s", b->scheme, b->host);
    sigv4_uri_encode(&u, path, 1);
    return u.p;
}

static void base64(const unsigned char *d, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, d, (int)n);
}

static void on_xfer(net_resp_t *resp, void *data);

static void sha256_hex(const unsigned char sha[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[sha[i] >> 4];
        out[2 * i + 1] = digits[sha[i] & 15];
    }
    out[64] = '\0';
}

static const char *method_of(storage_op_kind k)
{
    switch (k) {
    case OP_PUT:
        return "PUT";
    case OP_GET:
        return "GET";
    case OP_DELETE:
        return "DELETE";
    case OP_CHECK:
        return "HEAD";
    case OP_LIST:
        return "GET";
    }
    return "GET";
}

static void send_op(s3_t *b, storage_op_t *op)
{
    const char *method = method_of(op->kind);
    char amz_date[17], sha_hex[65] = SIGV4_EMPTY_SHA256, sha_b64[48], md5_b64[32];
    sigv4_amz_date(gf_clock_unix_ms() / 1000, amz_date);
    sigv4_kv h[9];
    size_t nh = 0;
    h[nh++] = (sigv4_kv){"host", b->host};
    h[nh++] = (sigv4_kv){"x-amz-date", amz_date};
    if (op->kind == OP_PUT) {
        unsigned char sha[32], md5[16];
        unsigned int mlen = 0;
        SHA256(op->body, op->len, sha);
        sha256_hex(sha, sha_hex);
        EVP_Digest(op->body, op->len, md5, &mlen, EVP_md5(), NULL);
        base64(sha, 32, sha_b64);
        base64(md5, 16, md5_b64);
        h[nh++] = (sigv4_kv){"content-type", op->ctype};
        h[nh++] = (sigv4_kv){"content-md5", md5_b64};
        h[nh++] = (sigv4_kv){"x-amz-checksum-sha256", sha_b64};
        h[nh++] = (sigv4_kv){"x-amz-meta-sha256", sha_hex};
    }
    h[nh++] = (sigv4_kv){"x-amz-content-sha256", sha_hex};
    char *path = path_of(b, op->key);
    char *url = url_of(b, path);
    /* ListObjectsV2: the query signed and sent alike */
    char max_keys[24];
    sigv4_kv q[4];
    size_t nq = 0;
    if (op->kind == OP_LIST) {
        snprintf(max_keys, sizeof(max_keys), "%zu", op->max);
        q[nq++] = (sigv4_kv){"list-type", "2"};
        q[nq++] = (sigv4_kv){"max-keys", max_keys};
        if (b->cfg->s3_prefix[0])
            q[nq++] = (sigv4_kv){"prefix", b->cfg->s3_prefix};
        if (op->cursor)
            q[nq++] = (sigv4_kv){"continuation-token", op->cursor};
        gf_buf_t u = {0};
        gf_buf_puts(&u, url);
        free(url);
        for (size_t i = 0; i < nq; i++) {
            gf_buf_puts(&u, i ? "&" : "?");
            sigv4_uri_encode(&u, q[i].name, 0);
            gf_buf_puts(&u, "=");
            sigv4_uri_encode(&u, q[i].value, 0);
        }
        url = u.p;
    }
    char *auth = sigv4_authorization(&b->creds, amz_date, method, path, q, nq, h, nh, sha_hex);
    const char *lines[12];
    gf_buf_t hb[10] = {{0}};
    size_t nl = 0;
    for (size_t i = 0; i < nh; i++) {
        gf_buf_printf(&hb[i], "%s: %s", h[i].name, h[i].value);
        lines[nl++] = hb[i].p;
    }
    gf_buf_printf(&hb[nh], "Authorization: %s", auth);
    lines[nl++] = hb[nh].p;
    lines[nl] = NULL;
    net_req_t req = {
        .method = method,
        .url = url,
        .headers = lines,
        .body = op->kind == OP_PUT ? (const char *)op->body : NULL,
        .body_len = op->kind == OP_PUT ? op->len : 0,
        .timeout_ms = op->timeout_ms ? op->timeout_ms : (uint64_t)b->cfg->storage_timeout_ms,
        .connect_timeout_ms =
            op->timeout_ms ? op->timeout_ms : (uint64_t)b->cfg->storage_timeout_ms,
        .max_bytes = op->kind == OP_LIST ? LIST_REPLY_BYTES(op->max)
                                         : (size_t)b->cfg->storage_max_object_bytes,
        .public_only = 0, /* the operator's endpoint, often on a private network */
    };
    op->attempts++;
    op->xfer = net_start(b->net, &req, on_xfer, op);
    for (size_t i = 0; i <= nh; i++)
        gf_buf_dispose(&hb[i]);
    free(auth);
    free(url);
    free(path);
}

static void on_backoff(uv_timer_t *t)
{
    storage_op_t *op = t->data;
    send_op(op->b, op);
}

/* The text of the first <tag>...</tag> in [p, end) (`len` bytes), or NULL. S3's documents
 * are flat enough for this; a value holding an XML entity is the caller's to refuse. */
static const char *xml_text(const char *p, const char *end, const char *tag, size_t *len)
{
    char open[40], close[40];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = p ? strstr(p, open) : NULL;
    if (a == NULL || a >= end)
        return NULL;
    a += strlen(open);
    const char *e = strstr(a, close);
    if (e == NULL || e > end)
        return NULL;
    *len = (size_t)(e - a);
    return a;
}

/* Whether the reply is an S3 error document whose <Code> is `name` (read from the body, not
 * from a caller's buffer, which may be too short to hold it). */
static int s3_code_is(const net_resp_t *r, const char *name)
{
    size_t len = 0;
    const char *c = r->body ? xml_text(r->body, r->body + r->len, "Code", &len) : NULL;
    return c && len == strlen(name) && strncmp(c, name, len) == 0;
}

/*
 * Whether a 404 to a GET says the object itself is missing: S3's NoSuchKey,
 * or no document at all (a server that sends none for a missing key).
 * NoSuchBucket, or a page from something in front of S3 (a proxy during a
 * reroute), says nothing of the object: taken for "missing", a worker's
 * read would fail its image for good instead of handing the job back.
 */
static int object_missing(const net_resp_t *r)
{
    return r->len == 0 || s3_code_is(r, "NoSuchKey");
}

/* The <Code> of an S3 error document, for the log ("SignatureDoesNotMatch"); else the
 * status (an empty <Code> names nothing). */
static void s3_code(const net_resp_t *r, char *out, size_t n)
{
    size_t len = 0;
    const char *c = r->body ? xml_text(r->body, r->body + r->len, "Code", &len) : NULL;
    if (c && len > 0 && len < n)
        snprintf(out, n, "%.*s", (int)len, c);
    else
        snprintf(out, n, "HTTP %ld", r->status);
}

/* "2026-12-05T12:00:00.000Z" (`len` bytes): Unix seconds, or -1. */
static long long iso_time(const char *p, size_t len)
{
    char buf[40];
    struct tm tm = {0};
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    const char *rest = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL || (*rest != '.' && *rest != 'Z'))
        return -1;
    return (long long)timegm(&tm);
}

/*
 * A ListObjectsV2 reply into op's page: each <Contents>'s <Key> (the prefix
 * taken off), <LastModified> and <Size>, and the <NextContinuationToken> when
 * <IsTruncated> is true. GF_EIO when it is not such a document.
 */
static int read_listing(storage_op_t *op, const net_resp_t *r)
{
    const s3_t *b = op->b;
    const char *p = r->body ? r->body : "", *end = p + r->len;
    size_t len = 0, plen = strlen(b->cfg->s3_prefix);
    if (strstr(p, "<ListBucketResult") == NULL)
        return gf_err_set(&op->err, GF_EIO, STORAGE_DOMAIN, "list: not a ListBucketResult");
    for (const char *c = p; (c = strstr(c, "<Contents>")) != NULL;) {
        const char *ce = strstr(c, "</Contents>");
        if (ce == NULL)
            return gf_err_set(&op->err, GF_EIO, STORAGE_DOMAIN, "list: <Contents> not closed");
        size_t klen = 0, tlen = 0, slen = 0;
        const char *k = xml_text(c, ce, "Key", &klen);
        const char *t = xml_text(c, ce, "LastModified", &tlen);
        const char *sz = xml_text(c, ce, "Size", &slen);
        long long when = t ? iso_time(t, tlen) : -1;
        if (k == NULL || when < 0 || sz == NULL)
            return gf_err_set(&op->err, GF_EIO, STORAGE_DOMAIN,
                              "list: a <Contents> without Key, LastModified or Size");
        /* Ours start with the prefix and hold no entity (storage__list_add skips the rest). */
        if (klen > plen && klen < STORAGE_KEY_MAX + plen &&
            strncmp(k, b->cfg->s3_prefix, plen) == 0) {
            char key[STORAGE_KEY_MAX + 1];
            snprintf(key, sizeof(key), "%.*s", (int)(klen - plen), k + plen);
            storage__list_add(op, key, when, strtoll(sz, NULL, 10));
        }
        c = ce;
    }
    const char *tr = xml_text(p, end, "IsTruncated", &len);
    if (tr && len == 4 && strncmp(tr, "true", 4) == 0) {
        const char *tok = xml_text(p, end, "NextContinuationToken", &len);
        if (tok == NULL || len == 0 || memchr(tok, '&', len) != NULL || len >= 4 * STORAGE_KEY_MAX)
            return gf_err_set(&op->err, GF_EIO, STORAGE_DOMAIN,
                              "list: truncated without a usable NextContinuationToken");
        op->next_cursor = gf_xstrndup(tok, len);
    }
    return 0;
}

/* Whether a GET's body is the one stored (when the object carries our checksum). */
static int body_matches(const net_resp_t *r)
{
    const char *want = net_header(r, "x-amz-meta-sha256");
    if (want == NULL)
        return 1; /* written by another client: the transport's framing is all we have */
    unsigned char sha[32];
    char hex[65];
    SHA256((const unsigned char *)(r->body ? r->body : ""), r->len, sha);
    sha256_hex(sha, hex);
    return strcasecmp(want, hex) == 0;
}

/* What an S3 error code (or, without one, the status) asks of the operator, or "". */
static const char *hint_of(const char *code, long status)
{
    if (code[0] == '\0' && status == 403) /* a HEAD's answer carries no document */
        return ": access refused, check FARM_S3_ACCESS_KEY_ID, FARM_S3_SECRET_ACCESS_KEY and "
               "the bucket's policy";
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return ": the service refused our signature, check FARM_S3_SECRET_ACCESS_KEY";
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return ": the service does not know FARM_S3_ACCESS_KEY_ID";
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return ": this machine's clock is too far from the service's";
    return "";
}

int storage__s3_judge(const net_resp_t *r, storage_op_kind kind, int *retry, char *code, size_t n)
{
    *retry = 0;
    code[0] = '\0';
    if (r->too_big)
        return GF_ETOOBIG;
    if (r->curl_code != 0) {
        *retry = 1;
        return net_timed_out(r->curl_code) ? GF_ETIMEDOUT : GF_EUNAVAIL;
    }
    if (r->status >= 200 && r->status < 300)
        return GF_OK;
    /* Already gone. S3 answers a delete of a missing key 204; a 404 counts only with
     * its NoSuchKey, since a bodiless one is something in front of S3 (no route during
     * a reroute), and taking it for "gone" would drop the deletion with the bytes kept. */
    if (r->status == 404 && kind == OP_DELETE && s3_code_is(r, "NoSuchKey"))
        return GF_OK;
    s3_code(r, code, n);
    /* S3 answers 400 RequestTimeout to a PUT whose body stalled on the way (about 20 s
     * without a byte): the stall our own timeout would have retried, noticed first on
     * its side, so as transient as a 5xx. Any other 400 is a request it refuses. */
    *retry = r->status >= 500 || r->status == 429 ||
             (r->status == 400 && s3_code_is(r, "RequestTimeout"));
    if (*retry)
        return GF_EUNAVAIL;
    /* A check, a list or a put addresses the bucket: its 404 is no such bucket. */
    if (kind == OP_DELETE)
        return GF_EINVAL; /* its 404 meant something else than the key (above) */
    return r->status == 404 && (kind != OP_GET || object_missing(r)) ? GF_ENOTFOUND : GF_EINVAL;
}

static void on_xfer(net_resp_t *resp, void *data)
{
    storage_op_t *op = data;
    s3_t *b = op->b;
    int retry;
    char code[64];
    op->xfer = NULL;
    gf_err_clear(&op->err);
    int st = storage__s3_judge(resp, op->kind, &retry, code, sizeof(code));
    if (st == GF_ETOOBIG) {
        gf_err_set(&op->err, GF_ETOOBIG, STORAGE_DOMAIN, "%s is larger than %lld bytes", op->key,
                   b->cfg->storage_max_object_bytes);
    } else if (resp->curl_code != 0) {
        gf_err_setd(&op->err, st, STORAGE_DOMAIN, resp->curl_code, "%s %s: %s", method_of(op->kind),
                    op->key ? op->key : "bucket", resp->curl_msg);
    } else if (st == GF_OK && op->kind == OP_GET && resp->status >= 200 && resp->status < 300 &&
               !body_matches(resp)) {
        retry = 1;
        gf_err_set(&op->err, GF_EIO, STORAGE_DOMAIN,
                   "GET %s: %zu bytes that do not match the object's x-amz-meta-sha256 (cut "
                   "short or damaged on the way)",
                   op->key, resp->len);
    } else if (st == GF_OK && op->kind == OP_LIST) {
        read_listing(op, resp);
    } else if (st == GF_OK) {
        if (op->kind == OP_GET && resp->status >= 200 && resp->status < 300) {
            const char *etag = net_header(resp, "etag");
            op->obj.data = (unsigned char *)net_take_body(resp, &op->obj.len);
            snprintf(op->obj.etag, sizeof(op->obj.etag), "%s", etag ? etag : "");
        }
    } else {
        /* The judge names an error document's <Code>, else "HTTP <status>". */
        const char *named = strncmp(code, "HTTP ", 5) == 0 ? "" : code;
        gf_err_setd(&op->err, st, STORAGE_DOMAIN, resp->status, "%s %s: %s%sHTTP %ld%s%s",
                    method_of(op->kind), op->key ? op->key : b->cfg->s3_bucket, named,
                    named[0] ? " (" : "", resp->status, named[0] ? ")" : "",
                    hint_of(named, resp->status));
    }
    if (retry && op->kind != OP_CHECK && op->attempts < b->cfg->storage_attempts) {
        GF_LOG(GF_LOG_INFO, &(gf_log_ctx){.component = STORAGE_DOMAIN}, "retrying: %s",
               op->err.msg);
        uint64_t base = (uint64_t)b->cfg->storage_backoff_ms << (op->attempts - 1);
        if (base > MAX_BACKOFF_MS)
            base = MAX_BACKOFF_MS;
        b->rng ^= b->rng << 13;
        b->rng ^= b->rng >> 7;
        b->rng ^= b->rng << 17;
        uint64_t wait = base * 3 / 4 + (base ? b->rng % (base / 2 + 1) : 0);
        if (!op->timer_init) {
            uv_timer_init(storage__loop(b->s), &op->timer);
            op->timer_init = 1;
        }
        op->timer.data = op;
        uv_timer_start(&op->timer, on_backoff, wait, 0);
        return;
    }
    storage__finish(op);
}

static void s3_start(void *bp, storage_op_t *op)
{
    op->b = bp;
    send_op(bp, op);
}

static void s3_cancel(void *bp, storage_op_t *op)
{
    (void)bp;
    if (op->xfer)
        net_abort(op->xfer);
    op->xfer = NULL;
    if (op->timer_init)
        uv_timer_stop(&op->timer);
}

static char *s3_read_url(void *bp, const char *key, long long expires_unix_s, gf_err_t *err)
{
    s3_t *b = bp;
    long long now = gf_clock_unix_ms() / 1000;
    long long ttl = expires_unix_s - now;
    if (ttl < 1)
        return gf_err_set(err, GF_EINVAL, STORAGE_DOMAIN, "the URL would be expired"), NULL;
    if (ttl > MAX_EXPIRES_S)
        ttl = MAX_EXPIRES_S;
    char amz_date[17];
    sigv4_amz_date(now, amz_date);
    char *path = path_of(b, key);
    char *q = sigv4_presign_query(&b->creds, amz_date, (long)ttl, "GET", path, b->host);
    char *url = url_of(b, path);
    gf_buf_t out = {0};
    gf_buf_printf(&out, "%s?%s", url, q);
    free(q);
    free(url);
    free(path);
    return out.p;
}

typedef struct {
    s3_t *b;
    void (*cb)(void *data);
    void *data;
} s3_closing_t;

static void on_net_closed(void *data)
{
    s3_closing_t *c = data;
    free(c->b->scheme);
    free(c->b->host);
    free(c->b);
    c->cb(c->data);
    free(c);
}

static void s3_close(void *bp, void (*cb)(void *data), void *data)
{
    s3_closing_t *c = gf_xcalloc(1, sizeof(*c));
    c->b = bp;
    c->cb = cb;
    c->data = data;
    net_close(c->b->net, on_net_closed, c);
}

const storage_backend_t storage__s3 = {
    .name = "s3",
    .open = s3_open,
    .start = s3_start,
    .cancel = s3_cancel,
    .read_url = s3_read_url,
    .close = s3_close,
    .threaded = 0,
};
