/*
 * tests/integration/api/edge.c - farm-api on the open internet, tried as a
 * hostile client would, over real sockets against a real farm-api:
 * pipelining clients that never read, many unauthenticated 10 MiB uploads,
 * refusals that ordinary clients (Node's fetch) must be able to read, rate
 * limits per plan and action with their RateLimit-* headers, the process's
 * bound on uploads in flight, the upload quota per user, and bodies for no
 * route. Memory is checked on
 * the api's RSS (/proc/PID/status), the bound the issue sets: 64 MiB.
 */
#include "api.h"
#include "api_harness.h"
#include "proc_status.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <vips/vips.h>

#define MIB (1024L * 1024L)

static long rss_kib(pid_t pid)
{
    long kib = proc_status_kib(pid, "VmRSS");
    assert_true(kib >= 0); /* the api is alive and Linux reports its RSS */
    return kib;
}

static int port_of_base(void)
{
    const char *colon = strrchr(au_base, ':');
    return atoi(colon + 1);
}

/* A connected, non-blocking socket to the api. */
static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of_base())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Writes what the socket takes now; returns the bytes written. */
static size_t write_some(int fd, const char *p, size_t n)
{
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    return w > 0 ? (size_t)w : 0;
}

/* Reads until the status line is in, within `timeout_s`; the status, or -1. */
static int read_status(int fd, double timeout_s, char *body, size_t cap)
{
    char buf[8192];
    size_t len = 0;
    double until = ts_now() + timeout_s;
    while (ts_now() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL && strncmp(buf, "HTTP/1.1 ", 9) == 0) {
            /* the whole (small) JSON body, for the callers that look at it */
            double more = ts_now() + 1;
            while (body && ts_now() < more && len < sizeof(buf) - 1 && !strstr(end, "}}")) {
                if (poll(&p, 1, 50) > 0 && (r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
                    buf[len += (size_t)r] = '\0';
                else if (r == 0)
                    break;
            }
            if (body)
                snprintf(body, cap, "%s", buf);
            return atoi(buf + 9);
        }
    }
    return -1;
}

static pid_t api;

/*
 * The api's settings for the memory tests: ASan keeps freed blocks in a
 * quarantine (256 MiB by default) that RSS would count as ours; with it
 * small, RSS is what the api itself holds. Leak checking stays on.
 */
static const char *const memory_env[] = {
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=4", NULL};

static int teardown(void **state)
{
    (void)state;
    if (api > 0)
        ts_stop(api, SIGTERM, 20);
    api = 0;
    return 0;
}

/* A normal client's /healthz while the others misbehave: the slowest of `n`, in ms. */
static double healthz_worst_ms(int n)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", au_base);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double t0 = ts_now();
        ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
        double ms = (ts_now() - t0) * 1000;
        long status = r.status;
        ts_http_dispose(&r);
        assert_int_equal(status, 200);
        if (ms > worst)
            worst = ms;
    }
    return worst;
}

static void test_pipelining_client_that_never_reads_is_bounded(void **state)
{
    (void)state;
    api = au_api_start(memory_env);
    assert_true(api > 0);
    enum { N = 50 };
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: edge\r\n\r\n";
    static char burst[64 * 1024];
    size_t one = sizeof(req) - 1, per = sizeof(burst) / one;
    for (size_t i = 0; i < per; i++)
        memcpy(burst + i * one, req, one);
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = dial();
    long before = rss_kib(api), peak = before;
    size_t sent = 0;
    double until = ts_now() + 8;
    while (ts_now() < until) {
        for (int i = 0; i < N; i++)
            sent += write_some(fds[i], burst, per * one);
        long now = rss_kib(api);
        if (now > peak)
            peak = now;
        usleep(20000);
    }
    double worst = healthz_worst_ms(20);
    long growth_mib = (peak - before) / 1024;
    print_message("pipelined %zu requests on %d connections: api RSS %ld -> %ld KiB (+%ld MiB); "
                  "healthz worst %.1f ms\n",
                  sent / one, N, before, peak, growth_mib, worst);
    /* the clients did pipeline far more than the bound lets through */
    assert_true(sent / one > (size_t)N * 1000);
    assert_true(growth_mib < 64);
    /* the normal client was answered (healthz_worst_ms asserts each 200); how fast is
     * measured by scripts/bench edge on a release build, not asserted here */
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

static void test_unauthenticated_uploads_are_refused_at_the_headers(void **state)
{
    (void)state;
    api = au_api_start(memory_env);
    assert_true(api > 0);
    enum { N = 500 };
    static const char head[] = "POST /v1/uploads HTTP/1.1\r\nHost: edge\r\n"
                               "Content-Type: image/png\r\nContent-Length: 10485760\r\n\r\n";
    static char chunk[64 * 1024];
    memset(chunk, 'x', sizeof(chunk));
    int *fds = calloc(N, sizeof(int));
    long before = rss_kib(api);
    for (int i = 0; i < N; i++) {
        fds[i] = dial();
        assert_int_equal(write_some(fds[i], head, sizeof(head) - 1), sizeof(head) - 1);
        write_some(fds[i], chunk, sizeof(chunk));
    }
    long peak = rss_kib(api);
    int refused = 0, unauthorized = 0;
    for (int i = 0; i < N; i++) {
        /* answered without the other 10 MiB ever being sent */
        int st = read_status(fds[i], 10, NULL, 0);
        refused += st == 401 || st == 429;
        unauthorized += st == 401;
        long now = rss_kib(api);
        if (now > peak)
            peak = now;
        close(fds[i]);
    }
    free(fds);
    long growth_mib = (peak - before) / 1024;
    print_message("%d uploads of 10 MiB: %d refused (%d 401, the rest 429 by the per-address "
                  "bucket); api RSS +%ld MiB\n",
                  N, refused, unauthorized, growth_mib);
    assert_int_equal(refused, N);
    assert_true(unauthorized > 0);
    /* What a connection holds while its headers are checked is at most a read of
     * their size (16 KiB: 8 MiB for 500), and nothing once refused; keeping each
     * 64 KiB first read grew this by 40 MiB. */
    assert_true(growth_mib < 32);
}

static void test_fetch_reads_the_refusal_of_an_upload(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_RATE_LIMITS=anonymous=1000/1000", NULL};
    api = au_api_start(extra);
    assert_true(api > 0);
    char *tok = au_token(NULL, NULL, NULL, NULL);
    /* Node's fetch (undici), as a frontend's server would use it: 413 and 401 as JSON. */
    int rc =
        ts_sh("node %s/tests/edge/refusal.mjs %s %s", ts_env("FARM_TEST_SOURCE_DIR"), au_base, tok);
    free(tok);
    assert_int_equal(rc, 0);
}

static void test_rate_limits_per_plan_and_action(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_RATE_LIMITS=uploads=60/2,reads=60/3,pro.reads=60/5",
                                        NULL};
    api = au_api_start(extra);
    assert_true(api > 0);
    char *free_tok = au_token(NULL, "free", NULL, NULL);
    char *pro_tok = au_token(NULL, "pro", NULL, NULL);
    /* reads: 3 for a free user, then 429 with the headers and Retry-After */
    for (int i = 0; i < 4; i++) {
        ts_http_t r = au_call("GET", "/v1/credits", free_tok, NULL, NULL);
        assert_int_equal(r.status, i < 3 ? 200 : 429);
        assert_non_null(strstr(r.headers, "RateLimit-Limit: 3"));
        assert_non_null(strstr(r.headers, "RateLimit-Remaining:"));
        /* Reset: until the bucket is whole again (a token a second), not until the next. */
        char reset[40];
        snprintf(reset, sizeof(reset), "RateLimit-Reset: %d\r\n", i < 3 ? i + 1 : 3);
        if (strstr(r.headers, reset) == NULL)
            fail_msg("request %d: no \"RateLimit-Reset: %d\" in:\n%s", i, i < 3 ? i + 1 : 3,
                     r.headers);
        if (i == 3) {
            assert_non_null(strstr(r.headers, "Retry-After:"));
            assert_non_null(strstr(r.body, "\"rate_limited\""));
        }
        ts_http_dispose(&r);
    }
    /* a pro user has its plan's 5 */
    for (int i = 0; i < 6; i++) {
        ts_http_t r = au_call("GET", "/v1/credits", pro_tok, NULL, NULL);
        assert_int_equal(r.status, i < 5 ? 200 : 429);
        ts_http_dispose(&r);
    }
    /* uploads: their own bucket (2), refused before the body with the same headers */
    for (int i = 0; i < 3; i++) {
        ts_http_t r =
            au_call("POST", "/v1/uploads", pro_tok, "not an image", "Content-Type: image/png");
        assert_int_equal(r.status, i < 2 ? 415 : 429); /* 415: the bytes are not an image */
        assert_non_null(strstr(r.headers, "RateLimit-Limit: 2"));
        ts_http_dispose(&r);
    }
    free(free_tok);
    free(pro_tok);
}

/*
 * An expired token of ours, or none at all, is 401 even when the address's anonymous bucket
 * is empty: behind a proxy every user shares that bucket, and a client told 429 would never
 * refresh its token or send its user to sign in. A token that is not ours still takes from
 * the bucket.
 */
static void test_an_expired_token_is_401_when_the_anonymous_bucket_is_empty(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_RATE_LIMITS=anonymous=1/2", NULL};
    api = au_api_start(extra);
    assert_true(api > 0);
    char user[37];
    gf_uuid4(user);
    api_claims_t c = {.sub = user, .ttl_s = 1};
    char *expired = api_token_issue(AU_SECRET, &c, NULL),
         *forged = api_token_issue("not-ours-0123456789", &c, NULL);
    assert_non_null(expired);
    assert_non_null(forged);
    for (int i = 0; i < 3; i++) { /* the bucket of 2, then 429 */
        ts_http_t r = au_call("GET", "/v1/credits", forged, NULL, NULL);
        assert_int_equal(r.status, i < 2 ? 401 : 429);
        ts_http_dispose(&r);
    }
    usleep(2100 * 1000); /* past its exp (whole seconds) */
    for (int i = 0; i < 3; i++) {
        ts_http_t r = au_call("GET", "/v1/credits", expired, NULL, NULL);
        assert_non_null(strcasestr(r.headers, "WWW-Authenticate: Bearer"));
        au_expect_error(&r, 401, "unauthorized", NULL);
    }
    /* No token at all: 401 too, for the signed-out page that must send its user to sign in. */
    for (int i = 0; i < 3; i++) {
        ts_http_t r = au_call("GET", "/v1/credits", NULL, NULL, NULL);
        au_expect_error(&r, 401, "unauthorized", NULL);
    }
    ts_http_t r = au_call("GET", "/v1/credits", forged, NULL, NULL);
    au_expect_error(&r, 429, "rate_limited", NULL);
    free(expired);
    free(forged);
}

static void test_uploads_in_flight_are_bounded(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_UPLOAD_MAX_INFLIGHT=2", NULL};
    api = au_api_start(extra);
    assert_true(api > 0);
    char *tok = au_token(NULL, NULL, NULL, NULL);
    char head[1024];
    snprintf(head, sizeof(head),
             "POST /v1/uploads HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: image/png\r\nContent-Length: 1000000\r\n\r\npartial",
             tok);
    /* two slow uploads hold the process's two places */
    int slow[2];
    for (int i = 0; i < 2; i++) {
        slow[i] = dial();
        write_some(slow[i], head, strlen(head));
    }
    usleep(300000);
    int third = dial();
    write_some(third, head, strlen(head));
    char answer[8192];
    assert_int_equal(read_status(third, 5, answer, sizeof(answer)), 503);
    assert_non_null(strstr(answer, "Retry-After: 1"));
    assert_non_null(strstr(answer, "\"unavailable\""));
    close(third);
    /* other requests are answered meanwhile (how fast: scripts/bench edge) */
    healthz_worst_ms(10);
    /* the places come back when the slow ones go */
    close(slow[0]);
    close(slow[1]);
    usleep(300000);
    ts_http_t r = au_call("POST", "/v1/uploads", tok, "not an image", "Content-Type: image/png");
    au_expect(&r, 415, NULL);
    free(tok);
}

static void test_a_body_for_no_route_is_not_read(void **state)
{
    (void)state;
    api = au_api_start(NULL);
    assert_true(api > 0);
    static const char head[] = "POST /v1/nothing-here HTTP/1.1\r\nHost: edge\r\n"
                               "Content-Length: 10485760\r\n\r\npartial";
    int fd = dial();
    write_some(fd, head, sizeof(head) - 1);
    char answer[8192];
    assert_int_equal(read_status(fd, 5, answer, sizeof(answer)), 404);
    assert_non_null(strstr(answer, "\"not_found\""));
    close(fd);
    static const char put[] = "PUT /v1/credits HTTP/1.1\r\nHost: edge\r\n"
                              "Content-Length: 10485760\r\n\r\npartial";
    fd = dial();
    write_some(fd, put, sizeof(put) - 1);
    assert_int_equal(read_status(fd, 5, answer, sizeof(answer)), 405);
    assert_non_null(strstr(answer, "Allow: GET"));
    close(fd);
}

/* --- the upload quota ------------------------------------------------------------------ */

/* A PNG made with libvips: a gradient of w x h. */
static void *make_png(int w, int h, size_t *len)
{
    VipsImage *img = NULL, *u8 = NULL;
    void *buf = NULL;
    assert_int_equal(vips_xyz(&img, w, h, NULL), 0);
    assert_int_equal(vips_cast_uchar(img, &u8, NULL), 0);
    assert_int_equal(vips_image_write_to_buffer(u8, ".png", &buf, len, NULL), 0);
    g_object_unref(img);
    g_object_unref(u8);
    return buf;
}

static ts_http_t post_png(const char *tok, const void *png, size_t len)
{
    char url[128], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/uploads", au_base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, "Content-Type: image/png", NULL};
    return ts_http("POST", url, h, png, len);
}

/* The uploads of `user` Postgres keeps. */
static int upload_rows(const char *user)
{
    return ts_sh("exit $(psql -XAt \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM uploads WHERE "
                 "user_id = '%s'\")",
                 user);
}

/* The files in the user's upload folder of the quota tests' storage; waits up to 5 s for
 * `want` (a refused upload's file is removed after its answer). */
static int upload_files(const char *user, int want)
{
    char dir[700];
    snprintf(dir, sizeof(dir), "%s/quota-storage/%s/uploads", ts_env("FARM_TEST_TMPDIR"), user);
    int n = -1;
    for (int i = 0; i < 50 && n != want; i++) {
        if (i > 0)
            usleep(100 * 1000);
        n = 0;
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d)) != NULL;)
            n += e->d_name[0] != '.';
        if (d)
            closedir(d);
    }
    return n;
}

/* A farm-api with the quotas `quotas` (FARM_UPLOAD_QUOTAS=...), uploads not rate limited. */
static void quota_api_start(const char *quotas)
{
    static char storage[700], q[256];
    snprintf(storage, sizeof(storage), "FARM_STORAGE_DIR=%s/quota-storage",
             ts_env("FARM_TEST_TMPDIR"));
    snprintf(q, sizeof(q), "FARM_UPLOAD_QUOTAS=%s", quotas);
    const char *const extra[] = {storage, q, "FARM_RATE_LIMITS=uploads=1000/1000", NULL};
    api = au_api_start(extra);
    assert_true(api > 0);
}

static void expect_quota_429(ts_http_t *r, const char *axis)
{
    char name[64];
    snprintf(name, sizeof(name), "the upload quota (%s)", axis);
    if (r->status != 429 || !strstr(r->body, name))
        fprintf(stderr, "got %ld: %s\n", r->status, r->body);
    assert_int_equal(r->status, 429);
    assert_non_null(strstr(r->body, "\"code\":\"rate_limited\""));
    assert_non_null(strstr(r->body, name));
    assert_non_null(strstr(r->headers, "Retry-After: "));
    assert_non_null(strstr(r->headers, "RateLimit-Limit: 1000"));
    assert_non_null(strstr(r->headers, "RateLimit-Remaining: "));
}

static void test_upload_quota_by_count(void **state)
{
    (void)state;
    quota_api_start("count=2,bytes=0");
    size_t len;
    void *png = make_png(32, 32, &len);
    char user[37], other[37];
    char *tok = au_token(NULL, "free", NULL, user), *tok2 = au_token(NULL, "free", NULL, other);
    for (int i = 0; i < 2; i++) {
        ts_http_t r = post_png(tok, png, len);
        assert_int_equal(r.status, 201);
        ts_http_dispose(&r);
    }
    /* the third is refused, naming the quota, and nothing of it is kept */
    ts_http_t r = post_png(tok, png, len);
    expect_quota_429(&r, "count");
    assert_non_null(strstr(r.body, "at most 2 uploads per user"));
    ts_http_dispose(&r);
    assert_int_equal(upload_rows(user), 2);
    assert_int_equal(upload_files(user, 2), 2);
    /* another user has a quota of their own */
    r = post_png(tok2, png, len);
    assert_int_equal(r.status, 201);
    ts_http_dispose(&r);
    assert_int_equal(upload_rows(other), 1);
    g_free(png);
    free(tok);
    free(tok2);
}

static void test_upload_quota_by_bytes_per_plan(void **state)
{
    (void)state;
    size_t len;
    void *png = make_png(64, 64, &len);
    /* What it is stored as (re-encoded, it may be larger than sent), on an api without a
     * bytes quota. */
    quota_api_start("count=0,bytes=0");
    char *probe = au_token(NULL, "pro", NULL, NULL);
    ts_http_t p = post_png(probe, png, len);
    assert_int_equal(p.status, 201);
    long long stored = atoll(strstr(p.body, "\"bytes\":") + 8);
    ts_http_dispose(&p);
    free(probe);
    ts_stop(api, SIGTERM, 20);
    /* Room for three and a half of these; the count quota is lifted for pro (0). */
    long long one = stored > (long long)len ? stored : (long long)len;
    long long quota = one * 3 + one / 2;
    char quotas[128];
    snprintf(quotas, sizeof(quotas), "count=2,pro.count=0,bytes=%lld", quota);
    quota_api_start(quotas);
    char user[37], other[37];
    char *tok = au_token(NULL, "pro", NULL, user), *tok2 = au_token(NULL, "pro", NULL, other);
    long long kept = 0, last = 0;
    int accepted = 0;
    for (;;) {
        ts_http_t r = post_png(tok, png, len);
        if (r.status != 201) {
            expect_quota_429(&r, "bytes");
            char want[64];
            snprintf(want, sizeof(want), "at most %lld bytes", quota);
            assert_non_null(strstr(r.body, want));
            ts_http_dispose(&r);
            break;
        }
        const char *b = strstr(r.body, "\"bytes\":");
        assert_non_null(b);
        last = atoll(b + 8);
        kept += last;
        accepted++;
        ts_http_dispose(&r);
        assert_true(accepted <= 10);
    }
    print_message("bytes quota %lld: %d uploads of %zu bytes (%lld stored each) kept %lld\n", quota,
                  accepted, len, last, kept);
    /* more than the count quota of other plans, and refused only when this one would
     * pass the quota: by its Content-Length at the headers, or its stored bytes at insert */
    assert_int_equal(accepted, 3);
    assert_true(kept <= quota);
    assert_true(kept + (long long)len > quota || kept + last > quota);
    assert_int_equal(upload_rows(user), accepted);
    assert_int_equal(upload_files(user, accepted), accepted);
    ts_http_t r = post_png(tok2, png, len);
    assert_int_equal(r.status, 201);
    ts_http_dispose(&r);
    g_free(png);
    free(tok);
    free(tok2);
}

/* The head of a POST /v1/uploads of `len` bytes of `type` as `tok`; its length. */
static int upload_head(char *head, size_t cap, const char *tok, const char *type, size_t len)
{
    return snprintf(head, cap,
                    "POST /v1/uploads HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                    tok, type, len);
}

/*
 * Uploads sent at once all pass the check at the headers (the user keeps
 * none yet); the one at insert, under the user's lock, lets exactly the
 * quota's count through.
 */
static void test_concurrent_uploads_cannot_share_the_last_place(void **state)
{
    (void)state;
    quota_api_start("count=2,bytes=0");
    enum { N = 8 };
    size_t len;
    void *png = make_png(256, 256, &len);
    char user[37];
    char *tok = au_token(NULL, NULL, NULL, user);
    char head[1024];
    int hn = upload_head(head, sizeof(head), tok, "image/png", len);
    char *req = malloc((size_t)hn + len);
    memcpy(req, head, (size_t)hn);
    memcpy(req + hn, png, len);
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = dial();
    for (int i = 0; i < N; i++) {
        size_t off = 0, total = (size_t)hn + len;
        double until = ts_now() + 5;
        while (off < total && ts_now() < until) {
            size_t w = write_some(fds[i], req + off, total - off);
            off += w;
            if (w == 0)
                usleep(1000);
        }
        assert_int_equal(off, total);
    }
    int created = 0, over = 0;
    char answer[8192];
    for (int i = 0; i < N; i++) {
        int st = read_status(fds[i], 20, answer, sizeof(answer));
        created += st == 201;
        over += st == 429 && strstr(answer, "the upload quota (count)") != NULL;
        close(fds[i]);
    }
    print_message("%d uploads at once, quota 2: %d created, %d over the quota\n", N, created, over);
    assert_int_equal(created, 2);
    assert_int_equal(over, N - 2);
    assert_int_equal(upload_rows(user), 2);
    assert_int_equal(upload_files(user, 2), 2);
    free(req);
    g_free(png);
    free(tok);
}

/*
 * Three 2 KB lossless WebPs of 6000 x 6000 black pixels sent at once to an
 * api started with `budget` (FARM_UPLOAD_MAX_INFLIGHT_BYTES) and `more` (a
 * setting or NULL), which let one decode run at a time: each
 * waits for the one before (farm_upload_decodes_waiting), no more than one
 * decode's memory is held at any scrape, and none is refused or lost.
 */
static void three_webps_decode_one_at_a_time(const char *budget, const char *more)
{
    static char storage[700];
    snprintf(storage, sizeof(storage), "FARM_STORAGE_DIR=%s/quota-storage",
             ts_env("FARM_TEST_TMPDIR"));
    const char *const extra[] = {storage, "FARM_RATE_LIMITS=uploads=1000/1000", budget, more, NULL};
    api = au_api_start(extra);
    assert_true(api > 0);
    enum { N = 3, SIDE = 6000 };
    VipsImage *black = NULL;
    void *webp = NULL;
    size_t len;
    assert_int_equal(vips_black(&black, SIDE, SIDE, "bands", 3, NULL), 0);
    assert_int_equal(vips_webpsave_buffer(black, &webp, &len, "lossless", TRUE, NULL), 0);
    g_object_unref(black);
    assert_true(len < 4096);
    char user[37];
    char *tok = au_token(NULL, NULL, NULL, user);
    char head[1024];
    int hn = upload_head(head, sizeof(head), tok, "image/webp", len);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = dial();
        assert_int_equal(write_some(fds[i], head, (size_t)hn), (size_t)hn);
        assert_int_equal(write_some(fds[i], (const char *)webp, len), len);
    }
    /* One decode's memory at most, and someone waiting, while they run. */
    char metrics[256];
    snprintf(metrics, sizeof(metrics), "%s/metrics", au_base);
    const double one = (double)SIDE * SIDE * 9;
    double most_held = 0, most_waiting = 0;
    int created = 0, answered[N] = {0};
    char answer[8192];
    for (double until = ts_now() + 120; created < N && ts_now() < until;) {
        double held = au_metric(metrics, "\nfarm_upload_decode_bytes ", -1);
        double waiting = au_metric(metrics, "\nfarm_upload_decodes_waiting ", -1);
        most_held = held > most_held ? held : most_held;
        most_waiting = waiting > most_waiting ? waiting : most_waiting;
        for (int i = 0; i < N; i++) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            if (answered[i] || poll(&p, 1, 0) <= 0)
                continue;
            answered[i] = read_status(fds[i], 5, answer, sizeof(answer));
            if (answered[i] != 201)
                fail_msg("upload %d: %d %s", i, answered[i], answer);
            assert_non_null(strstr(answer, "\"width\":6000"));
            created++;
        }
        usleep(50 * 1000);
    }
    print_message("%d WebP uploads of %dx%d: %d created; at most %.0f MB decoding, %.0f waiting; "
                  "api VmHWM %ld MiB\n",
                  N, SIDE, SIDE, created, most_held / 1e6, most_waiting,
                  proc_status_kib(api, "VmHWM") / 1024);
    assert_int_equal(created, N);
    assert_true(most_held > 0 && most_held <= one); /* one at a time */
    assert_true(most_waiting >= 1);
    assert_int_equal(au_metric(metrics, "\nfarm_upload_decode_bytes ", -1), 0);
    assert_int_equal(au_metric(metrics, "\nfarm_upload_decodes_waiting ", -1), 0);
    assert_int_equal(upload_rows(user), N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    g_free(webp);
    free(tok);
}

/* Each holds about 300 MB while it decodes, which the bodies' bound says nothing of: a
 * budget of 16 MiB for whole decodes runs one at a time (one always runs). */
static void test_uploads_decoded_whole_wait_for_room(void **state)
{
    (void)state;
    three_webps_decode_one_at_a_time("FARM_UPLOAD_MAX_INFLIGHT_BYTES=16777216", NULL);
}

/* Whatever the memory allows, decodes leave one thread of the libuv pool to the reads of
 * GET /v1/files and /readyz: a pool of 2 decodes one upload at a time. */
static void test_uploads_leave_a_pool_thread_free(void **state)
{
    (void)state;
    three_webps_decode_one_at_a_time("FARM_UPLOAD_MAX_INFLIGHT_BYTES=68719476736",
                                     "UV_THREADPOOL_SIZE=2");
}

static void test_bad_quotas_stop_the_api(void **state)
{
    (void)state;
    static const char *const bad[] = {"count=-1", "count=2,count=3", "gold.count=1", "bytes=1G",
                                      "files=2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char log[700];
        snprintf(log, sizeof(log), "%s/quota-bad.log", ts_env("FARM_TEST_TMPDIR"));
        int rc = ts_sh("env FARM_UPLOAD_QUOTAS='%s' FARM_API_PORT=0 FARM_JWT_SECRET=" AU_SECRET
                       " FARM_FILE_SECRET=x0123456789abcdef '%s' 2>'%s'; test $? -ne 0 && "
                       "grep -q FARM_UPLOAD_QUOTAS '%s'",
                       bad[i], ts_env("FARM_TEST_API_BIN"), log, log);
        assert_int_equal(rc, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pipelining_client_that_never_reads_is_bounded, teardown),
        cmocka_unit_test_teardown(test_unauthenticated_uploads_are_refused_at_the_headers,
                                  teardown),
        cmocka_unit_test_teardown(test_fetch_reads_the_refusal_of_an_upload, teardown),
        cmocka_unit_test_teardown(test_rate_limits_per_plan_and_action, teardown),
        cmocka_unit_test_teardown(test_an_expired_token_is_401_when_the_anonymous_bucket_is_empty,
                                  teardown),
        cmocka_unit_test_teardown(test_uploads_in_flight_are_bounded, teardown),
        cmocka_unit_test_teardown(test_a_body_for_no_route_is_not_read, teardown),
        cmocka_unit_test_teardown(test_upload_quota_by_count, teardown),
        cmocka_unit_test_teardown(test_upload_quota_by_bytes_per_plan, teardown),
        cmocka_unit_test_teardown(test_concurrent_uploads_cannot_share_the_last_place, teardown),
        cmocka_unit_test_teardown(test_uploads_decoded_whole_wait_for_room, teardown),
        cmocka_unit_test_teardown(test_uploads_leave_a_pool_thread_free, teardown),
        cmocka_unit_test(test_bad_quotas_stop_the_api),
    };
    if (VIPS_INIT("api_edge"))
        return 1;
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    vips_shutdown();
    return failed;
}
