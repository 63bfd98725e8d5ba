/*
 * storage_s3: storage/ against a real S3 server (s3rver, which checks every
 * SigV4 signature and presigned URL) that the fixture starts, and against a
 * second client, the AWS SDK for JavaScript (tests/s3/interop.js): what the
 * farm stores, the SDK reads back byte for byte, and what the SDK stores, the
 * farm reads. Also: presigned URLs fetched by libcurl (an endpoint's default
 * port left out of them), an IPv6 literal endpoint, virtual-hosted
 * addressing, a wrong secret, a missing bucket (no key in it "already gone"
 * nor "missing"), s3rver down during a PUT, the async contract, and the
 * configuration refused at start. Through the fixture's fault proxy
 * (tests/s3/faults.js): 500/503/429, S3's 400 RequestTimeout and stalled
 * PUTs retried with backoff then delivered, a DELETE's 404 NoSuchKey taken
 * for "already gone", a PUT cut mid-body never leaving part of an object, a
 * GET cut short never delivered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <unistd.h>

#include "core.h"
#include "s3_faults.h"
#include "storage.h"
#include "storage_util.h"
#include "support.h"

#define USER "0b7c0f4e-8a52-4a49-9d4e-3b1a5c6d7e8f"
#define GEN  "5f0e4a2b-1c3d-4e5f-8a9b-0c1d2e3f4a5b"

static char endpoint_env[200], vhost_env[200], faults_env[200];

/* A config from the environment (without FARM_TEST_*, FARM_S3_*, FARM_STORAGE*) plus
 * `overrides` first. */
static gf_config_t *cfg_with(const char *const *overrides, gf_err_t *err)
{
    static const char *const drop[] = {"FARM_TEST_", "FARM_S3_", "FARM_STORAGE", NULL};
    char **env = ts_environ_with(overrides, drop);
    gf_config_t *cfg = gf_cfg_load(env, err);
    free(env);
    return cfg;
}
static gf_config_t *s3_cfg(const char *secret, const char *bucket, int vhost)
{
    static char secret_env[100], bucket_env[100];
    snprintf(secret_env, sizeof(secret_env), "FARM_S3_SECRET_ACCESS_KEY=%s", secret);
    snprintf(bucket_env, sizeof(bucket_env), "FARM_S3_BUCKET=%s", bucket);
    const char *o[] = {"FARM_STORAGE=s3",
                       vhost ? vhost_env : endpoint_env,
                       bucket_env,
                       "FARM_S3_ACCESS_KEY_ID=S3RVER",
                       secret_env,
                       vhost ? "FARM_S3_PATH_STYLE=0" : "FARM_S3_PATH_STYLE=1",
                       "FARM_S3_PREFIX=t/",
                       "FARM_STORAGE_ATTEMPTS=8",
                       "FARM_STORAGE_BACKOFF_MS=100",
                       "FARM_STORAGE_TIMEOUT_MS=5000",
                       NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = cfg_with(o, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err.msg);
    return cfg;
}

/* Through the fault proxy: `attempts` tries of at most `timeout_ms` each, 100 ms backoff. */
static gf_config_t *faults_cfg(int attempts, int timeout_ms)
{
    static char attempts_env[64], timeout_env[64];
    snprintf(attempts_env, sizeof(attempts_env), "FARM_STORAGE_ATTEMPTS=%d", attempts);
    snprintf(timeout_env, sizeof(timeout_env), "FARM_STORAGE_TIMEOUT_MS=%d", timeout_ms);
    const char *o[] = {"FARM_STORAGE=s3",
                       faults_env,
                       "FARM_S3_BUCKET=farm",
                       "FARM_S3_ACCESS_KEY_ID=S3RVER",
                       "FARM_S3_SECRET_ACCESS_KEY=S3RVER",
                       "FARM_S3_PREFIX=t/",
                       attempts_env,
                       "FARM_STORAGE_BACKOFF_MS=100",
                       timeout_env,
                       NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = cfg_with(o, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err.msg);
    return cfg;
}

/* --- one call run to its end -------------------------------------------------- */

/* A loop and a storage_t on `cfg`, opened at the start of a test and closed at its end. */
typedef struct {
    uv_loop_t loop;
    gf_config_t *cfg;
    storage_t *s;
} fx_t;

static storage_t *open_s3(uv_loop_t *loop, gf_config_t *cfg)
{
    gf_err_t err = {0};
    storage_t *s = storage_new(loop, cfg, NULL, &err);
    if (s == NULL)
        fail_msg("storage_new: %s", err.msg);
    assert_string_equal(storage_backend(s), "s3");
    return s;
}

static void fx_open(fx_t *f, gf_config_t *cfg)
{
    uv_loop_init(&f->loop);
    f->cfg = cfg;
    f->s = open_s3(&f->loop, cfg);
}

/* Through the fault proxy (see faults_cfg), its rules and log cleared. */
static void fx_open_faults(fx_t *f, int attempts, int timeout_ms)
{
    uv_loop_init(&f->loop);
    f->cfg = faults_cfg(attempts, timeout_ms);
    f->s = open_s3(&f->loop, f->cfg);
    assert_int_equal(s3f_clear(), 0);
}

static int closed;
static void on_closed(void *data)
{
    (void)data;
    closed = 1;
}

/* Closes the storage (never inside storage_close), then the config and the loop. */
static void fx_close(fx_t *f)
{
    closed = 0;
    storage_close(f->s, on_closed, NULL);
    f->s = NULL;
    assert_int_equal(closed, 0);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    gf_cfg_free(f->cfg);
    uv_loop_close(&f->loop);
}

/*
 * cmocka fixtures: a test finds a zeroed fx_t in *state and opens it with its
 * config (fx_setup), or finds it open on s3rver's bucket "farm", path-style,
 * with the right secret (fx_setup_farm). It closes it itself; fx_teardown
 * closes what a failed test left open, and frees it.
 */
static int fx_setup(void **state)
{
    *state = calloc(1, sizeof(fx_t));
    return *state ? 0 : -1;
}

static int fx_setup_farm(void **state)
{
    if (fx_setup(state) < 0)
        return -1;
    fx_open(*state, s3_cfg("S3RVER", "farm", 0));
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    if (f->s)
        fx_close(f);
    free(f);
    return 0;
}

/*
 * The end of a call started with `r` as its callback's data: the start
 * returned `rc` (must be 0), then the loop runs until the callback ran, once.
 */
static su_result_t finish(fx_t *f, su_result_t *r, int rc)
{
    assert_int_equal(rc, 0);
    su_wait(&f->loop, r);
    return *r;
}

static su_result_t put(fx_t *f, const char *key, const void *d, size_t n)
{
    su_result_t r = {.in_call = 1};
    return finish(f, &r, storage_put(f->s, key, d, n, "image/png", su_on_done, &r));
}

static su_result_t get(fx_t *f, const char *key)
{
    su_result_t r = {.in_call = 1};
    return finish(f, &r, storage_get(f->s, key, su_on_got, &r));
}

static su_result_t del(fx_t *f, const char *key)
{
    su_result_t r = {.in_call = 1};
    return finish(f, &r, storage_delete(f->s, key, su_on_done, &r));
}

static su_result_t check(fx_t *f)
{
    su_result_t r = {.in_call = 1};
    return finish(f, &r, storage_check(f->s, 2000, su_on_done, &r));
}

/* `key` reads back without error as exactly the `n` bytes of `b`. */
static void assert_reads_back(fx_t *f, const char *key, const unsigned char *b, size_t n)
{
    su_result_t r = get(f, key);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.len, n);
    assert_memory_equal(r.data, b, n);
    free(r.data);
}

/* A GET of the presigned `url` answers `status`. */
static void assert_url_answers(const char *url, long status)
{
    ts_http_t h = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(h.status, status);
    ts_http_dispose(&h);
}

static void sha_hex(const void *d, size_t n, char out[65])
{
    unsigned char md[32];
    SHA256(d, n, md);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* A body of `n` bytes that differs from any other the tests use. */
static unsigned char *body_of(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 131u + seed * 7u) ^ (i >> 8));
    return b;
}

/* A body of `n` bytes (body_of(n, seed)) that put stored under `key` without error. */
static unsigned char *stored(fx_t *f, const char *key, size_t n, unsigned seed)
{
    unsigned char *b = body_of(n, seed);
    assert_int_equal(put(f, key, b, n).err.code, 0);
    return b;
}

static int interop(const char *op, const char *key, const char *arg)
{
    return ts_sh("cd '%s/tests/s3' && FARM_S3_ENDPOINT='%s' FARM_S3_BUCKET=farm FARM_S3_PREFIX=t/ "
                 "FARM_S3_ACCESS_KEY_ID=S3RVER FARM_S3_SECRET_ACCESS_KEY=S3RVER "
                 "node interop.js %s '%s' '%s' >&2",
                 ts_env("FARM_TEST_SOURCE_DIR"), ts_env("FARM_TEST_S3_ENDPOINT"), op, key,
                 arg ? arg : "");
}

/* The SDK reads `key` (under the prefix) as exactly the `n` bytes of `b`. */
static void assert_the_sdk_reads(const char *key, const void *b, size_t n)
{
    char hex[65];
    sha_hex(b, n, hex);
    assert_int_equal(interop("get", key, hex), 0);
}

/* --- tests ------------------------------------------------------------------- */

static void test_put_get_delete_and_the_sdk_agrees(void **state)
{
    fx_t *f = *state;
    const char *key = USER "/" GEN "/0-full.png";
    size_t n = 300 * 1024;
    unsigned char *b = stored(f, key, n, 1);
    /* The SDK reads exactly these bytes (under the prefix). */
    assert_the_sdk_reads(key, b, n);
    su_result_t r = get(f, key);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.len, n);
    assert_memory_equal(r.data, b, n);
    assert_true(r.etag[0] == '"');
    free(r.data);
    /* A retried put overwrites the same object. */
    unsigned char *b2 = body_of(n / 2, 2);
    assert_int_equal(put(f, key, b2, n / 2).err.code, 0);
    r = get(f, key);
    assert_int_equal(r.len, n / 2);
    assert_memory_equal(r.data, b2, n / 2);
    free(r.data);
    /* Delete: gone for us and for the SDK; deleting again is no error. */
    assert_int_equal(del(f, key).err.code, 0);
    assert_int_equal(get(f, key).err.code, GF_ENOTFOUND);
    assert_int_equal(interop("absent", key, NULL), 0);
    assert_int_equal(del(f, key).err.code, 0);
    assert_int_equal(check(f).err.code, 0);
    free(b);
    free(b2);
    fx_close(f);
}

static void test_the_farm_reads_what_the_sdk_stored(void **state)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/sdk-body", ts_env("FARM_TEST_TMPDIR"));
    size_t n = 70000;
    unsigned char *b = body_of(n, 3);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
    const char *key = USER "/uploads/" GEN ".webp";
    assert_int_equal(interop("put", key, path), 0);
    fx_t *f = *state;
    fx_open(f, s3_cfg("S3RVER", "farm", 0));
    assert_reads_back(f, key, b, n);
    free(b);
    fx_close(f);
}

static void test_presigned_urls_open_the_object_until_they_expire(void **state)
{
    fx_t *f = *state;
    const char *key = USER "/" GEN "/1-thumb.jpg";
    unsigned char *b = stored(f, key, 5000, 4);
    gf_err_t err = {0};
    long long now = gf_clock_unix_ms() / 1000;
    char *url = storage_read_url(f->s, key, now + 60, &err);
    assert_non_null(url);
    assert_non_null(strstr(url, "X-Amz-Expires=60&"));
    ts_http_t h = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body_len, 5000);
    assert_memory_equal(h.body, b, 5000);
    ts_http_dispose(&h);
    /* One character of the signature changed: refused. */
    char *sig = strstr(url, "X-Amz-Signature=") + 16;
    *sig = *sig == '0' ? '1' : '0';
    assert_url_answers(url, 403);
    free(url);
    /* An URL that would already be expired is not made; one of 2 s stops working. The clock
     * is read again: the requests above may have taken past `now + 1` on a loaded machine. */
    now = gf_clock_unix_ms() / 1000;
    assert_null(storage_read_url(f->s, key, now - 1, &err));
    assert_int_equal(err.code, GF_EINVAL);
    url = storage_read_url(f->s, key, now + 2, &err);
    assert_non_null(url);
    sleep(4);
    assert_url_answers(url, 403);
    free(url);
    free(b);
    fx_close(f);
}

/* A presigned URL of `key` for 60 s, made by a storage_t on `endpoint` (which sends nothing). */
static char *read_url_on(fx_t *f, const char *endpoint, const char *key)
{
    char endpoint_var[200];
    snprintf(endpoint_var, sizeof(endpoint_var), "FARM_S3_ENDPOINT=%s", endpoint);
    const char *o[] = {"FARM_STORAGE=s3",
                       endpoint_var,
                       "FARM_S3_BUCKET=farm",
                       "FARM_S3_ACCESS_KEY_ID=S3RVER",
                       "FARM_S3_SECRET_ACCESS_KEY=S3RVER",
                       "FARM_S3_PREFIX=t/",
                       NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = cfg_with(o, &err);
    assert_non_null(cfg);
    storage_t *s = open_s3(&f->loop, cfg);
    char *url = storage_read_url(s, key, gf_clock_unix_ms() / 1000 + 60, &err);
    assert_non_null(url);
    closed = 0;
    storage_close(s, on_closed, NULL);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    gf_cfg_free(cfg);
    return url;
}

/*
 * An endpoint written with its scheme's default port: left out of the presigned URL and of
 * the Host it is signed for, since a browser sends "Host: 127.0.0.1" to port 80. The
 * fixture's gateway, which checks presigned URLs with the AWS SDK's signer, is asked with
 * that Host for the URL's path and query.
 */
static void test_a_default_port_is_left_out_of_presigned_urls(void **state)
{
    fx_t *f = *state;
    const char *key = USER "/" GEN "/3-thumb.jpg";
    unsigned char *b = stored(f, key, 3000, 16);
    char *url = read_url_on(f, "http://127.0.0.1:80", key);
    char there[1000];
    snprintf(there, sizeof(there), "http://127.0.0.1:%s%s", ts_env("FARM_TEST_S3_PORT"),
             strchr(url + strlen("http://"), '/'));
    ts_http_t h = ts_http("GET", there, (const char *[]){"Host: 127.0.0.1", NULL}, NULL, 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body_len, 3000);
    assert_memory_equal(h.body, b, 3000);
    ts_http_dispose(&h);
    assert_true(strncmp(url, "http://127.0.0.1/farm/t/", 24) == 0);
    free(url);
    url = read_url_on(f, "https://s3.example.com:443", key);
    assert_true(strncmp(url, "https://s3.example.com/farm/t/", 30) == 0);
    free(url);
    free(b);
    fx_close(f);
}

static void test_virtual_hosted_addressing(void **state)
{
    fx_t *f = *state;
    fx_open(f, s3_cfg("S3RVER", "farm", 1));
    const char *key = USER "/" GEN "/2-full.webp";
    unsigned char *b = stored(f, key, 4096, 5);
    /* Path-style reads (the SDK's) find it in the same bucket. */
    assert_the_sdk_reads(key, b, 4096);
    assert_reads_back(f, key, b, 4096);
    gf_err_t err = {0};
    char *url = storage_read_url(f->s, key, gf_clock_unix_ms() / 1000 + 30, &err);
    assert_non_null(strstr(url, "://farm.s3.localhost:"));
    assert_url_answers(url, 200);
    free(url);
    free(b);
    fx_close(f);
}

static void test_a_wrong_secret_is_refused_and_named(void **state)
{
    fx_t *f = *state;
    fx_open(f, s3_cfg("not-the-secret", "farm", 0));
    su_result_t r = put(f, USER "/" GEN "/0-full.png", "x", 1);
    assert_int_equal(r.err.code, GF_EINVAL);
    assert_int_equal(r.err.detail, 403);
    assert_non_null(strstr(r.err.msg, "SignatureDoesNotMatch"));
    assert_non_null(strstr(r.err.msg, "check FARM_S3_SECRET_ACCESS_KEY"));
    assert_null(strstr(r.err.msg, "not-the-secret"));
    r = check(f);
    assert_int_equal(r.err.code, GF_EINVAL);
    /* a HEAD's 403 carries no S3 code: the variables to check are named all the same */
    assert_non_null(strstr(r.err.msg, "HTTP 403: access refused, check FARM_S3_ACCESS_KEY_ID"));
    assert_null(strstr(r.err.msg, "not-the-secret"));
    fx_close(f);
}

static void test_a_missing_bucket_fails_the_check(void **state)
{
    fx_t *f = *state;
    fx_open(f, s3_cfg("S3RVER", "no-such-bucket", 0));
    su_result_t r = check(f);
    assert_int_equal(r.err.code, GF_ENOTFOUND);
    assert_int_equal(r.err.detail, 404);
    fx_close(f);
}

/* In a bucket that does not exist no key is "already gone" nor "missing": S3's 404
 * NoSuchBucket fails a delete (its deletion is kept, to be tried again) and a read. */
static void test_a_missing_bucket_fails_deletes_and_reads(void **state)
{
    fx_t *f = *state;
    fx_open(f, s3_cfg("S3RVER", "no-such-bucket", 0));
    const char *key = USER "/" GEN "/0-full.webp";
    su_result_t r = del(f, key);
    assert_true(r.err.code < 0);
    assert_int_equal(r.err.detail, 404);
    assert_non_null(strstr(r.err.msg, "NoSuchBucket"));
    r = get(f, key);
    assert_true(r.err.code < 0);
    assert_int_not_equal(r.err.code, GF_ENOTFOUND);
    assert_int_equal(r.err.detail, 404);
    assert_non_null(strstr(r.err.msg, "NoSuchBucket"));
    assert_null(r.data);
    fx_close(f);
}

static void *restart_later(void *arg)
{
    (void)arg;
    usleep(400 * 1000);
    ts_sh("sh -c \"$FARM_TEST_S3_START\"");
    return NULL;
}

/* s3rver down when the PUT starts: retried with backoff, delivered once it is back. */
static void test_a_put_outlives_the_server_going_down(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_S3_STOP\""), 0);
    pthread_t t;
    pthread_create(&t, NULL, restart_later, NULL);
    const char *key = USER "/" GEN "/3-full.png";
    unsigned char *b = body_of(20000, 6);
    su_result_t r = put(f, key, b, 20000);
    pthread_join(t, NULL);
    assert_int_equal(r.err.code, 0);
    r = get(f, key);
    assert_int_equal(r.err.code, 0);
    assert_memory_equal(r.data, b, 20000);
    free(r.data);
    /* Down for good: the error comes after the last attempt, not before. */
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_S3_STOP\""), 0);
    double t0 = ts_now();
    r = put(f, key, b, 20000);
    assert_int_equal(r.err.code, GF_EUNAVAIL);
    assert_true(ts_now() - t0 > 0.1 * (1 + 2 + 4 + 8) * 0.7);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_S3_START\""), 0);
    free(b);
    fx_close(f);
}

static void test_close_cancels_what_is_in_flight(void **state)
{
    fx_t *f = *state;
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_get(f->s, USER "/" GEN "/0-full.png", su_on_got, &r), 0);
    r.in_call = 0;
    closed = 0;
    storage_close(f->s, on_closed, NULL);
    f->s = NULL; /* closed here, not by the teardown */
    assert_int_equal(r.done, 1);
    assert_int_equal(r.err.code, GF_ECANCELED);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    gf_cfg_free(f->cfg);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Keys outside the layout's alphabet are refused at the call, the callback never runs. */
static void test_bad_keys_fail_at_once(void **state)
{
    fx_t *f = *state;
    su_result_t r = {0};
    const char *bad[] = {"../etc/passwd", "a//b", "/abs", "a/.hidden", "A/b", "a b", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(storage_put(f->s, bad[i], "x", 1, NULL, su_on_done, &r), GF_EINVAL);
        assert_int_equal(storage_get(f->s, bad[i], su_on_got, &r), GF_EINVAL);
        assert_int_equal(storage_delete(f->s, bad[i], su_on_done, &r), GF_EINVAL);
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.done, 0);
    fx_close(f);
}

static void refused(const char *const *o, const char *names)
{
    gf_err_t err = {0};
    gf_config_t *cfg = cfg_with(o, &err);
    assert_non_null(cfg);
    uv_loop_t loop;
    uv_loop_init(&loop);
    storage_t *s = storage_new(&loop, cfg, NULL, &err);
    assert_null(s);
    assert_int_equal(err.code, GF_EINVAL);
    if (strstr(err.msg, names) == NULL)
        fail_msg("expected %s in: %s", names, err.msg);
    assert_null(strstr(err.msg, "S3CRET")); /* no credential is echoed */
    gf_cfg_free(cfg);
    uv_loop_close(&loop);
}

/*
 * An IPv6 literal endpoint: its brackets kept in every URL and in the Host it signs. The
 * fixture's gateway listens on [::1] as well and checks each signature with the Host sent.
 * Virtual-hosted addressing on it is refused, as on any address.
 */
static void test_an_ipv6_endpoint_is_reached_and_signed_for(void **state)
{
    fx_t *f = *state;
    char base[100], endpoint_var[140];
    snprintf(base, sizeof(base), "http://[::1]:%s", ts_env("FARM_TEST_S3_PORT"));
    ts_http_t probe = ts_http("GET", base, NULL, NULL, 0);
    int listening = probe.status != 0;
    ts_http_dispose(&probe);
    if (!listening)
        skip(); /* no IPv6 on this machine: the gateway is not on [::1] */
    snprintf(endpoint_var, sizeof(endpoint_var), "FARM_S3_ENDPOINT=%s", base);
    refused((const char *[]){"FARM_STORAGE=s3", endpoint_var, "FARM_S3_BUCKET=farm",
                             "FARM_S3_ACCESS_KEY_ID=a", "FARM_S3_SECRET_ACCESS_KEY=b",
                             "FARM_S3_PATH_STYLE=0", NULL},
            "FARM_S3_PATH_STYLE=0");
    const char *o[] = {"FARM_STORAGE=s3",
                       endpoint_var,
                       "FARM_S3_BUCKET=farm",
                       "FARM_S3_ACCESS_KEY_ID=S3RVER",
                       "FARM_S3_SECRET_ACCESS_KEY=S3RVER",
                       "FARM_S3_PREFIX=t/",
                       "FARM_STORAGE_ATTEMPTS=2",
                       "FARM_STORAGE_TIMEOUT_MS=5000",
                       NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = cfg_with(o, &err);
    assert_non_null(cfg);
    fx_open(f, cfg);
    const char *key = USER "/" GEN "/4-thumb.jpg";
    unsigned char *b = stored(f, key, 7000, 17);
    assert_reads_back(f, key, b, 7000);
    assert_the_sdk_reads(key, b, 7000);
    char *url = storage_read_url(f->s, key, gf_clock_unix_ms() / 1000 + 60, &err);
    assert_non_null(url);
    assert_true(strncmp(url, base, strlen(base)) == 0 && url[strlen(base)] == '/');
    ts_http_t h = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body_len, 7000);
    assert_memory_equal(h.body, b, 7000);
    ts_http_dispose(&h);
    free(url);
    assert_int_equal(del(f, key).err.code, 0);
    assert_int_equal(interop("absent", key, NULL), 0);
    free(b);
    fx_close(f);
}

static void test_bad_combinations_are_refused_naming_the_variable(void **state)
{
    (void)state;
    refused((const char *[]){"FARM_STORAGE=s3", endpoint_env, "FARM_S3_ACCESS_KEY_ID=a",
                             "FARM_S3_SECRET_ACCESS_KEY=b", NULL},
            "FARM_S3_BUCKET");
    refused((const char *[]){"FARM_STORAGE=s3", "FARM_S3_BUCKET=farm", "FARM_S3_ACCESS_KEY_ID=a",
                             "FARM_S3_SECRET_ACCESS_KEY=b", NULL},
            "FARM_S3_ENDPOINT");
    refused((const char *[]){"FARM_STORAGE=s3", endpoint_env, "FARM_S3_BUCKET=farm",
                             "FARM_S3_SECRET_ACCESS_KEY=b", NULL},
            "FARM_S3_ACCESS_KEY_ID");
    refused((const char *[]){"FARM_STORAGE=local", "FARM_S3_BUCKET=farm", NULL}, "FARM_S3_BUCKET");
    refused((const char *[]){"FARM_STORAGE=local", "FARM_S3_SERVE=proxy", NULL}, "FARM_S3_SERVE");
    refused((const char *[]){"FARM_STORAGE=local", "FARM_S3_REGION=eu-west-1", NULL},
            "FARM_S3_REGION");
    refused((const char *[]){"FARM_STORAGE=local", "FARM_S3_PATH_STYLE=0", NULL},
            "FARM_S3_PATH_STYLE");
    refused((const char *[]){"FARM_STORAGE=s3", "FARM_S3_ENDPOINT=http://key:S3CRET@127.0.0.1:1",
                             "FARM_S3_BUCKET=farm", "FARM_S3_ACCESS_KEY_ID=a",
                             "FARM_S3_SECRET_ACCESS_KEY=b", NULL},
            "FARM_S3_ENDPOINT");
    refused((const char *[]){"FARM_STORAGE=s3", "FARM_S3_ENDPOINT=http://127.0.0.1:1/bucket",
                             "FARM_S3_BUCKET=farm", "FARM_S3_ACCESS_KEY_ID=a",
                             "FARM_S3_SECRET_ACCESS_KEY=b", NULL},
            "FARM_S3_ENDPOINT");
    refused((const char *[]){"FARM_STORAGE=s3", endpoint_env, "FARM_S3_BUCKET=farm",
                             "FARM_S3_ACCESS_KEY_ID=a", "FARM_S3_SECRET_ACCESS_KEY=b",
                             "FARM_S3_PATH_STYLE=0", NULL},
            "FARM_S3_PATH_STYLE=0");
    refused((const char *[]){"FARM_STORAGE=s3", endpoint_env, "FARM_S3_BUCKET=farm",
                             "FARM_S3_ACCESS_KEY_ID=a", "FARM_S3_SECRET_ACCESS_KEY=b",
                             "FARM_S3_PREFIX=farm", NULL},
            "FARM_S3_PREFIX");
}

/* --- faults, through the fault proxy -------------------------------------------- */

/* 500, 503 and 429 answers to a PUT: retried with a growing backoff, then stored whole. */
static void test_5xx_and_429_on_a_put_are_retried_with_backoff(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 4, 5000);
    const char *key = USER "/" GEN "/4-full.webp";
    assert_int_equal(s3f_add("PUT", "/4-full.webp", 1, "status", 500, 0), 0);
    assert_int_equal(s3f_add("PUT", "/4-full.webp", 1, "status", 503, 0), 0);
    assert_int_equal(s3f_add("PUT", "/4-full.webp", 1, "status", 429, 0), 0);
    unsigned char *b = body_of(150000, 11);
    double t0 = ts_now();
    su_result_t r = put(f, key, b, 150000);
    double took = ts_now() - t0;
    assert_int_equal(r.err.code, 0);
    /* three refused tries, then the fourth stored it */
    assert_int_equal(s3f_seen("PUT", "/4-full.webp", "status 500"), 1);
    assert_int_equal(s3f_seen("PUT", "/4-full.webp", "status 503"), 1);
    assert_int_equal(s3f_seen("PUT", "/4-full.webp", "status 429"), 1);
    assert_int_equal(s3f_seen("PUT", "/4-full.webp", "pass"), 1);
    assert_int_equal(s3f_rules_left(), 0);
    /* backoffs of 100, 200 and 400 ms, each at least 3/4 of that */
    assert_true(took >= 0.75 * (0.1 + 0.2 + 0.4));
    assert_the_sdk_reads(key, b, 150000);
    /* Faults that outlast the tries: the last error, after the last try. */
    assert_int_equal(s3f_add("PUT", "/4-full.webp", 4, "status", 503, 0), 0);
    r = put(f, key, b, 150000);
    assert_int_equal(r.err.code, GF_EUNAVAIL);
    assert_int_equal(r.err.detail, 503);
    assert_non_null(strstr(r.err.msg, "SlowDown"));
    assert_int_equal(s3f_seen("PUT", "/4-full.webp", "status 503"), 5);
    assert_int_equal(s3f_rules_left(), 0);
    free(b);
    fx_close(f);
}

/* S3's 400 RequestTimeout (its answer to a PUT whose body stalled): retried like a 5xx, stored. */
static void test_a_request_timeout_on_a_put_is_retried(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 3, 5000);
    const char *key = USER "/" GEN "/9-full.webp";
    assert_int_equal(s3f_add("PUT", "/9-full.webp", 1, "status", 400, 0), 0);
    unsigned char *b = body_of(40000, 15);
    su_result_t r = put(f, key, b, 40000);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(s3f_seen("PUT", "/9-full.webp", "status 400"), 1);
    assert_int_equal(s3f_seen("PUT", "/9-full.webp", "pass"), 1);
    assert_int_equal(s3f_rules_left(), 0);
    assert_reads_back(f, key, b, 40000);
    free(b);
    fx_close(f);
}

/* A DELETE answered 404 NoSuchKey (as some servers answer for a key already gone): done. */
static void test_a_delete_answered_no_such_key_succeeds(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 3, 5000);
    assert_int_equal(s3f_add("DELETE", "/9-thumb.jpg", 1, "status", 404, 0), 0);
    su_result_t r = del(f, USER "/" GEN "/9-thumb.jpg");
    assert_int_equal(r.err.code, 0);
    assert_int_equal(s3f_seen("DELETE", "/9-thumb.jpg", "status 404"), 1);
    assert_int_equal(s3f_seen("DELETE", "/9-thumb.jpg", NULL), 1); /* not tried again */
    fx_close(f);
}

/* A DELETE answered 404 with no body at all is not S3's word on the key (S3 answers a
 * delete of a missing key 204; this is a router in front of it, during a reroute): the
 * delete fails, so its storage_deletions row stays, and the object is still there. */
static void test_a_delete_answered_a_bare_404_fails(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 3, 5000);
    const char *key = USER "/" GEN "/8-thumb.jpg";
    unsigned char *b = body_of(3000, 16);
    su_result_t r = put(f, key, b, 3000);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(s3f_add("DELETE", "/8-thumb.jpg", 1, "bare", 404, 0), 0);
    r = del(f, key);
    assert_int_equal(r.err.code, GF_EINVAL);
    assert_int_equal(s3f_seen("DELETE", "/8-thumb.jpg", "bare 404"), 1);
    assert_reads_back(f, key, b, 3000);
    free(b);
    fx_close(f);
}

/* A PUT that gets no answer: timed out, tried again, stored. */
static void test_a_stalled_put_times_out_and_is_retried(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 3, 1000);
    const char *key = USER "/" GEN "/5-512.webp";
    assert_int_equal(s3f_add("PUT", "/5-512.webp", 1, "stall", 0, 8000), 0);
    unsigned char *b = body_of(60000, 12);
    double t0 = ts_now();
    su_result_t r = put(f, key, b, 60000);
    double took = ts_now() - t0;
    assert_int_equal(r.err.code, 0);
    assert_true(took >= 1.0 && took < 8.0); /* the timeout, not the stall, ended the first try */
    assert_int_equal(s3f_seen("PUT", "/5-512.webp", "stall"), 1);
    assert_int_equal(s3f_seen("PUT", "/5-512.webp", "pass"), 1);
    assert_reads_back(f, key, b, 60000);
    /* Stalled every time: GF_ETIMEDOUT after the last try. */
    assert_int_equal(s3f_add("PUT", "/5-512.webp", 3, "stall", 0, 8000), 0);
    r = put(f, key, b, 60000);
    assert_int_equal(r.err.code, GF_ETIMEDOUT);
    assert_int_equal(s3f_rules_left(), 0);
    free(b);
    fx_close(f);
}

/* A PUT cut mid-body: nothing of it is ever readable; retried, the whole object. */
static void test_a_put_cut_midway_never_leaves_part_of_an_object(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 3, 5000);
    unsigned char *b = body_of(300000, 13);
    /* Cut on every try: the put fails, and no reader finds anything under the key. */
    const char *lost = USER "/" GEN "/6-256.webp";
    assert_int_equal(s3f_add("PUT", "/6-256.webp", 3, "cut", 0, 0), 0);
    su_result_t r = put(f, lost, b, 300000);
    assert_int_equal(r.err.code, GF_EUNAVAIL);
    assert_int_equal(s3f_seen("PUT", "/6-256.webp", "cut"), 3);
    r = get(f, lost);
    assert_int_equal(r.err.code, GF_ENOTFOUND);
    assert_int_equal(interop("absent", lost, NULL), 0);
    /* Cut once: the retry stores the whole body, as both clients read it. */
    const char *key = USER "/" GEN "/7-256.webp";
    assert_int_equal(s3f_add("PUT", "/7-256.webp", 1, "cut", 0, 0), 0);
    r = put(f, key, b, 300000);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(s3f_seen("PUT", "/7-256.webp", "cut"), 1);
    assert_int_equal(s3f_seen("PUT", "/7-256.webp", "pass"), 1);
    assert_reads_back(f, key, b, 300000);
    assert_the_sdk_reads(key, b, 300000);
    free(b);
    fx_close(f);
}

/* A GET whose body arrives cut short yet framed as whole: never delivered. */
static void test_a_get_cut_short_is_never_delivered(void **state)
{
    fx_t *f = *state;
    fx_open_faults(f, 3, 5000);
    const char *key = USER "/" GEN "/8-thumb.jpg";
    unsigned char *b = stored(f, key, 80000, 14);
    /* cut once: the retry reads it whole */
    assert_int_equal(s3f_add("GET", "/8-thumb.jpg", 1, "cut", 0, 0), 0);
    assert_reads_back(f, key, b, 80000);
    assert_int_equal(s3f_seen("GET", "/8-thumb.jpg", "cut"), 1);
    assert_int_equal(s3f_seen("GET", "/8-thumb.jpg", "pass"), 1);
    /* cut every time: an error, no bytes */
    assert_int_equal(s3f_add("GET", "/8-thumb.jpg", 3, "cut", 0, 0), 0);
    su_result_t r = get(f, key);
    assert_int_equal(r.err.code, GF_EIO);
    assert_null(r.data);
    assert_int_equal(s3f_seen("GET", "/8-thumb.jpg", "cut"), 4);
    free(b);
    fx_close(f);
}

int main(void)
{
    snprintf(endpoint_env, sizeof(endpoint_env), "FARM_S3_ENDPOINT=%s",
             ts_env("FARM_TEST_S3_ENDPOINT"));
    snprintf(vhost_env, sizeof(vhost_env), "FARM_S3_ENDPOINT=http://s3.localhost:%s",
             ts_env("FARM_TEST_S3_PORT"));
    snprintf(faults_env, sizeof(faults_env), "FARM_S3_ENDPOINT=%s",
             ts_env("FARM_TEST_S3_FAULTS_ENDPOINT"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_delete_and_the_sdk_agrees, fx_setup_farm,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_the_farm_reads_what_the_sdk_stored, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_presigned_urls_open_the_object_until_they_expire,
                                        fx_setup_farm, fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_default_port_is_left_out_of_presigned_urls,
                                        fx_setup_farm, fx_teardown),
        cmocka_unit_test_setup_teardown(test_an_ipv6_endpoint_is_reached_and_signed_for, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_virtual_hosted_addressing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_wrong_secret_is_refused_and_named, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_bucket_fails_the_check, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_bucket_fails_deletes_and_reads, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_put_outlives_the_server_going_down, fx_setup_farm,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_what_is_in_flight, fx_setup_farm,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys_fail_at_once, fx_setup_farm, fx_teardown),
        cmocka_unit_test(test_bad_combinations_are_refused_naming_the_variable),
        cmocka_unit_test_setup_teardown(test_5xx_and_429_on_a_put_are_retried_with_backoff,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_request_timeout_on_a_put_is_retried, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_delete_answered_no_such_key_succeeds, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_delete_answered_a_bare_404_fails, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_stalled_put_times_out_and_is_retried, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_put_cut_midway_never_leaves_part_of_an_object,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_get_cut_short_is_never_delivered, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
