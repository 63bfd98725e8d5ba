/*
 * storage_farm: a farm whose machines share nothing but Redis, Postgres and
 * S3. farm-api and two farm-workers with FARM_STORAGE=s3, each started in its
 * own empty working directory, against the fixture's S3 server (s3rver behind
 * a gateway that checks every signature with the AWS SDK's signer):
 * - an avatar with an uploaded identity and a pose generation with a preset
 *   and an uploaded pose map succeed; every output, fetched through its
 *   signed URL with the redirect followed, is the bytes it claims and decodes;
 *   the presigned GET expires no later than the signed URL; `farm reconcile`
 *   is clean; no process wrote a file in its working directory;
 * - FARM_S3_SERVE=proxy serves the same bytes with an ETag and 304;
 * - S3 down while a worker stores: retried, then delivered; down for good:
 *   the image is released, nothing charged, no output listed;
 * - a wrong secret: /readyz names storage, an upload fails with 503 and the
 *   log says the signature was refused; a missing bucket stops the start;
 * - through the fixture's fault proxy (tests/s3/faults.js): PUTs answered
 *   500, 503, 429, stalled past the timeout or cut mid-body are retried with
 *   backoff and the generation is delivered, charged once; faults that
 *   outlast the retries release the image (credits and ledger say so, no
 *   output listed); the api never serves a file whose GET came back cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "api_harness.h"
#include "farm_fixture.h"
#include "s3_faults.h"
#include "support.h"

static char common[6][300];
static pid_t api_pid, proxy_pid, workers[2];
static char proxy_base[64];
static char *tok;
static char user[37];

/* Starts `bin` in a new empty directory TMP/`name` with the common S3 settings
 * plus `extra`; its log is TMP/`name`.log. */
static pid_t start_in(const char *bin, const char *name, const char *const *extra)
{
    char dir[600], log_path[600], script[1400];
    snprintf(dir, sizeof(dir), "%s/%s", ts_env("FARM_TEST_TMPDIR"), name);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(log_path, sizeof(log_path), "%s/%s.log", ts_env("FARM_TEST_TMPDIR"), name);
    snprintf(script, sizeof(script), "cd '%s' && exec '%s'", dir, bin);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    char *env[24];
    size_t n = 0;
    for (size_t i = 0; i < 6; i++)
        env[n++] = common[i];
    env[n++] = "FARM_JWT_SECRET=" AU_SECRET;
    env[n++] = AU_FILE_SECRET_ENV;
    env[n++] = "FARM_PROVIDER=local";
    env[n++] = "FARM_WORKER_METRICS_PORT=0";
    env[n++] = "FARM_STORAGE_BACKOFF_MS=200";
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof(env) / sizeof(env[0]); i++)
        env[n++] = (char *)extra[i];
    env[n] = NULL;
    return ts_spawn(argv, env, log_path);
}

static pid_t start_api(const char *name, char base[64], const char *const *more)
{
    static char port_env[4][64];
    static int k;
    int port = ts_free_port();
    char *pe = port_env[k++ % 4];
    snprintf(pe, 64, "FARM_API_PORT=%d", port);
    snprintf(base, 64, "http://127.0.0.1:%d", port);
    const char *extra[8] = {pe};
    for (size_t i = 0; more && more[i] && i < 6; i++)
        extra[i + 1] = more[i];
    return start_in(ts_env("FARM_TEST_API_BIN"), name, extra);
}

static int setup(void **state)
{
    (void)state;
    snprintf(common[0], sizeof(common[0]), "FARM_STORAGE=s3");
    snprintf(common[1], sizeof(common[1]), "FARM_S3_ENDPOINT=%s", ts_env("FARM_TEST_S3_ENDPOINT"));
    snprintf(common[2], sizeof(common[2]), "FARM_S3_BUCKET=farm");
    snprintf(common[3], sizeof(common[3]), "FARM_S3_PREFIX=farm/");
    snprintf(common[4], sizeof(common[4]), "FARM_S3_ACCESS_KEY_ID=S3RVER");
    snprintf(common[5], sizeof(common[5]), "FARM_S3_SECRET_ACCESS_KEY=S3RVER");
    if (VIPS_INIT("storage_farm") != 0)
        return -1;
    api_pid = start_api("api", au_base, NULL);
    const char *pm[] = {"FARM_S3_SERVE=proxy", NULL};
    proxy_pid = start_api("api-proxy", proxy_base, pm);
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", au_base);
    if (!ts_wait_http(url, 200, NULL, 30))
        return -1;
    snprintf(url, sizeof(url), "%s/readyz", proxy_base);
    if (!ts_wait_http(url, 200, NULL, 30))
        return -1;
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof(name), "worker%d", i);
        /* Retries reach past the 1.5 s S3 is down in test_s3_down_while_storing. */
        const char *more[] = {"FARM_STORAGE_ATTEMPTS=8", NULL};
        workers[i] = start_in(ts_env("FARM_TEST_WORKER_BIN"), name, more);
    }
    tok = au_token(NULL, "pro", NULL, user);
    return au_grant(user, 10000, "storage") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = 0;
    pid_t all[] = {api_pid, proxy_pid, workers[0], workers[1]};
    for (size_t i = 0; i < 4; i++)
        if (all[i] > 0) /* never 0: that would signal the whole process group */
            bad |= ts_stop(all[i], SIGTERM, 40) != 0;
    free(tok);
    vips_shutdown();
    return bad ? -1 : 0;
}

/* The generation `id`, once it ended within 120 s, as `status`. */
static json_t *ended_as(const char *id, const char *status)
{
    json_t *g = au_wait_status(tok, id, AU_ENDED, 120);
    assert_non_null(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), status);
    return g;
}

/* A header's value from a raw header block, into `out`. */
static int header(const char *headers, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1 + strspn(p + nl + 1, " ");
            snprintf(out, n, "%.*s", (int)strcspn(v, "\r\n"), v);
            return 1;
        }
    }
    return 0;
}

static long long query_num(const char *url, const char *name)
{
    const char *p = strstr(url, name);
    return p ? atoll(p + strlen(name)) : -1;
}

/* Every output through its signed URL: 302 to S3, the bytes it claims, decodes. */
static void check_outputs(json_t *gen)
{
    json_t *outputs = json_object_get(gen, "outputs"), *o;
    size_t i;
    assert_true(json_array_size(outputs) > 0);
    json_array_foreach(outputs, i, o)
    {
        const char *url = json_string_value(json_object_get(o, "url"));
        assert_non_null(url);
        char full[1400], loc[2048];
        snprintf(full, sizeof(full), "%s%s", au_base, url);
        ts_http_t r = ts_http("GET", full, NULL, NULL, 0);
        assert_int_equal(r.status, 302);
        assert_true(header(r.headers, "Location", loc, sizeof(loc)));
        ts_http_dispose(&r);
        assert_int_equal(
            strncmp(loc, ts_env("FARM_TEST_S3_ENDPOINT"), strlen(ts_env("FARM_TEST_S3_ENDPOINT"))),
            0);
        /* The presigned GET ends no later than the signed URL. */
        long long exp = query_num(url, "exp=");
        struct tm tm = {0};
        const char *d = strstr(loc, "X-Amz-Date=") + 11;
        assert_non_null(strptime(d, "%Y%m%dT%H%M%SZ", &tm));
        long long signed_at = (long long)timegm(&tm);
        assert_true(signed_at + query_num(loc, "X-Amz-Expires=") <= exp);
        r = ts_http("GET", loc, NULL, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal((long long)r.body_len, json_integer_value(json_object_get(o, "bytes")));
        unsigned char md[32];
        char hex[65];
        SHA256((const unsigned char *)r.body, r.body_len, md);
        for (int k = 0; k < 32; k++)
            sprintf(hex + 2 * k, "%02x", md[k]);
        assert_string_equal(hex, json_string_value(json_object_get(o, "sha256")));
        /* The same URL with the owner's token is served by the api itself: a
         * client following the redirect with its Authorization would be refused. */
        char auth[1200];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        const char *h[] = {auth, NULL};
        ts_http_t t = ts_http("GET", full, h, NULL, 0);
        assert_int_equal(t.status, 200);
        assert_int_equal(t.body_len, r.body_len);
        assert_memory_equal(t.body, r.body, r.body_len);
        ts_http_dispose(&t);
        VipsImage *img = vips_image_new_from_buffer(r.body, r.body_len, "", "fail", TRUE, NULL);
        assert_non_null(img);
        double avg;
        assert_int_equal(vips_avg(img, &avg, NULL), 0); /* every pixel decodes */
        assert_int_equal(vips_image_get_width(img),
                         json_integer_value(json_object_get(o, "width")));
        g_object_unref(img);
        ts_http_dispose(&r);
    }
}

static void no_local_files(void)
{
    const char *names[] = {"api", "api-proxy", "worker0", "worker1"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ts_sh("test -z \"$(find '%s/%s' -type f | head -1)\"",
                               ts_env("FARM_TEST_TMPDIR"), names[i]),
                         0);
}

static char last_output_url[1400];
static long long last_output_bytes;

static void test_identity_and_pose_generations_on_s3(void **state)
{
    (void)state;
    char identity[37], posemap[37], body[1024], id[37];
    ff_upload_png(tok, 96, 64, identity);
    ff_upload_png(tok, 256, 256, posemap);
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"count\":2,\"width\":256,"
             "\"height\":256,\"identity\":{\"upload_id\":\"%s\"}}",
             identity);
    au_create(tok, body, id);
    json_t *g = ended_as(id, "succeeded");
    check_outputs(g);
    json_decref(g);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"a dancer\",\"count\":1,\"width\":256,"
             "\"height\":256,\"identity\":{\"upload_id\":\"%s\"},"
             "\"poses\":[{\"preset\":\"standing-arms-crossed\"},{\"upload_id\":\"%s\"}]}",
             identity, posemap);
    au_create(tok, body, id);
    g = ended_as(id, "succeeded");
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 0);
    check_outputs(g);
    json_t *o = json_array_get(json_object_get(g, "outputs"), 0);
    snprintf(last_output_url, sizeof(last_output_url), "%s",
             json_string_value(json_object_get(o, "url")));
    last_output_bytes = json_integer_value(json_object_get(o, "bytes"));
    json_decref(g);
    assert_int_equal(ts_sh("'%s' reconcile >&2", ts_env("FARM_TEST_CLI")), 0);
    no_local_files();
}

static void test_proxy_mode_serves_with_etag(void **state)
{
    (void)state;
    assert_true(last_output_url[0]);
    char full[1600], inm[200], etag[160];
    snprintf(full, sizeof(full), "%s%s", proxy_base, last_output_url);
    ts_http_t r = ts_http("GET", full, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal((long long)r.body_len, last_output_bytes);
    assert_true(header(r.headers, "ETag", etag, sizeof(etag)));
    assert_true(etag[0] == '"');
    ts_http_dispose(&r);
    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    const char *h[] = {inm, NULL};
    r = ts_http("GET", full, h, NULL, 0);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    ts_http_dispose(&r);
    /* The redirecting api answers the same URL with 302, never the bytes. */
    snprintf(full, sizeof(full), "%s%s", au_base, last_output_url);
    r = ts_http("GET", full, NULL, NULL, 0);
    au_expect(&r, 302, NULL);
}

static void *restart_later(void *arg)
{
    (void)arg;
    usleep(1500 * 1000);
    ts_sh("sh -c \"$FARM_TEST_S3_START\"");
    return NULL;
}

static void test_s3_down_while_storing(void **state)
{
    (void)state;
    const char *body = "{\"kind\":\"avatar\",\"prompt\":\"an owl\",\"count\":1,\"width\":256,"
                       "\"height\":256}";
    char id[37];
    /* Down, back 1.5 s later: the worker's puts are retried and delivered. */
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_S3_STOP\""), 0);
    pthread_t t;
    pthread_create(&t, NULL, restart_later, NULL);
    au_create(tok, body, id);
    pthread_join(t, NULL);
    json_t *g = ended_as(id, "succeeded");
    check_outputs(g);
    json_decref(g);
}

static void test_s3_down_for_good_releases(void **state)
{
    (void)state;
    /* A worker that gives up after two tries, the others stopped. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ts_stop(workers[i], SIGTERM, 40), 0);
        workers[i] = 0;
    }
    const char *more[] = {"FARM_STORAGE_ATTEMPTS=2", NULL};
    workers[0] = start_in(ts_env("FARM_TEST_WORKER_BIN"), "worker-giving-up", more);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_S3_STOP\""), 0);
    char id[37];
    au_create(tok,
              "{\"kind\":\"avatar\",\"prompt\":\"a cat\",\"count\":1,\"width\":256,\"height\":256}",
              id);
    json_t *g = au_wait_status(tok, id, AU_ENDED, 120);
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_S3_START\""), 0);
    assert_non_null(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_array_size(json_object_get(g, "outputs")), 0);
    json_decref(g);
    assert_int_equal(ts_sh("'%s' reconcile >&2", ts_env("FARM_TEST_CLI")), 0);
}

static void test_a_wrong_secret_is_reported(void **state)
{
    (void)state;
    char base[64], url[128];
    const char *more[] = {"FARM_S3_SECRET_ACCESS_KEY=wrong-secret", NULL};
    pid_t p = start_api("api-wrong-secret", base, more);
    snprintf(url, sizeof(url), "%s/readyz", base);
    /* reported, while the api stays ready: API.md's readiness is Redis and Postgres */
    assert_true(ts_wait_http(url, 200, "\"storage\":\"refused\"", 30));
    char save[64];
    snprintf(save, sizeof(save), "%s", au_base);
    snprintf(au_base, sizeof(au_base), "%s", base);
    ts_http_t r = au_call("POST", "/v1/uploads", tok, "\x89PNG", "Content-Type: image/png");
    assert_true(r.status >= 400);
    ts_http_dispose(&r);
    /* A real image: refused by S3 at the put, answered 503. */
    r = ff_post_png(tok, 32, 32);
    assert_int_equal(r.status, 503);
    ts_http_dispose(&r);
    snprintf(au_base, sizeof(au_base), "%s", save);
    assert_int_equal(ts_stop(p, SIGTERM, 15), 0);
    /* the first request's error names the cause and the variable, never the secret */
    assert_int_equal(ts_sh("grep -q 'SignatureDoesNotMatch (HTTP 403): the service refused our "
                           "signature, check FARM_S3_SECRET_ACCESS_KEY' "
                           "'%s/api-wrong-secret.log'",
                           ts_env("FARM_TEST_TMPDIR")),
                     0);
    assert_int_equal(
        ts_sh("grep -q wrong-secret '%s/api-wrong-secret.log'", ts_env("FARM_TEST_TMPDIR")), 1);
}

/* Waits for `p` to exit at start with status 2, its log naming FARM_S3_BUCKET. */
static void stopped_at_start(pid_t p, const char *name)
{
    int status = 0;
    double end = ts_now() + 30;
    pid_t got = 0;
    while (ts_now() < end && (got = waitpid(p, &status, WNOHANG)) == 0)
        usleep(100 * 1000);
    assert_int_equal(got, p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_int_equal(ts_sh("grep -q 'FARM_S3_BUCKET=no-such-bucket: no such bucket' '%s/%s.log'",
                           ts_env("FARM_TEST_TMPDIR"), name),
                     0);
}

static void test_a_missing_bucket_stops_the_start(void **state)
{
    (void)state;
    char base[64];
    const char *more[] = {"FARM_S3_BUCKET=no-such-bucket", NULL};
    stopped_at_start(start_api("api-no-bucket", base, more), "api-no-bucket");
    stopped_at_start(start_in(ts_env("FARM_TEST_WORKER_BIN"), "worker-no-bucket", more),
                     "worker-no-bucket");
}

/* --- faults, through the fault proxy ------------------------------------------- */

static char faults_endpoint_env[200];

/* A worker on the fault proxy (the others stopped): 4 tries of at most 1.5 s each. */
static void start_faulty_worker(void)
{
    for (int i = 0; i < 2; i++) {
        if (workers[i] > 0)
            assert_int_equal(ts_stop(workers[i], SIGTERM, 40), 0);
        workers[i] = 0;
    }
    snprintf(faults_endpoint_env, sizeof(faults_endpoint_env), "FARM_S3_ENDPOINT=%s",
             ts_env("FARM_TEST_S3_FAULTS_ENDPOINT"));
    const char *more[] = {faults_endpoint_env, "FARM_STORAGE_ATTEMPTS=4",
                          "FARM_STORAGE_TIMEOUT_MS=1500", NULL};
    workers[0] = start_in(ts_env("FARM_TEST_WORKER_BIN"), "worker-faults", more);
}

/* A field of GET /v1/credits. */
static long long credits(const char *field)
{
    json_t *j = au_get_json(tok, "/v1/credits");
    long long v = json_integer_value(json_object_get(j, field));
    json_decref(j);
    return v;
}

/* The sum of the caller's ledger entries of `kind` for generation `id`. */
static long long ledger_sum(const char *id, const char *kind)
{
    json_t *j = au_get_json(tok, "/v1/credits/ledger?limit=100");
    long long sum = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "items"), i, e)
    {
        const char *g = json_string_value(json_object_get(e, "generation_id"));
        const char *k = json_string_value(json_object_get(e, "kind"));
        if (g && k && strcmp(g, id) == 0 && strcmp(k, kind) == 0)
            sum += json_integer_value(json_object_get(e, "amount"));
    }
    json_decref(j);
    return sum;
}

/* Each variant's PUTs refused, stalled or cut, once or twice: retried, delivered. */
static void test_faults_during_puts_are_retried_then_delivered(void **state)
{
    (void)state;
    start_faulty_worker();
    assert_int_equal(s3f_clear(), 0);
    assert_int_equal(s3f_add("PUT", "/0-full.", 1, "status", 500, 0), 0);
    assert_int_equal(s3f_add("PUT", "/0-full.", 1, "status", 503, 0), 0);
    assert_int_equal(s3f_add("PUT", "/0-512.", 1, "stall", 0, 6000), 0);
    assert_int_equal(s3f_add("PUT", "/0-256.", 1, "cut", 0, 0), 0);
    assert_int_equal(s3f_add("PUT", "/0-thumb.", 1, "status", 429, 0), 0);
    assert_int_equal(s3f_add("PUT", "/0-thumb.", 1, "status", 503, 0), 0);
    long long balance = credits("balance");
    char id[37];
    au_create(tok,
              "{\"kind\":\"avatar\",\"prompt\":\"a heron\",\"count\":1,\"width\":256,"
              "\"height\":256}",
              id);
    json_t *g = ended_as(id, "succeeded");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    assert_int_equal(json_array_size(json_object_get(g, "outputs")), 4);
    check_outputs(g); /* the cut one included: whole, decodes */
    json_decref(g);
    /* Every fault was met, and each variant stored by its last try. */
    assert_int_equal(s3f_rules_left(), 0);
    const char *variants[] = {"/0-full.", "/0-512.", "/0-256.", "/0-thumb."};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(s3f_seen("PUT", variants[i], "pass"), 1);
    assert_int_equal(s3f_seen("PUT", "/0-512.", "stall"), 1);
    assert_int_equal(s3f_seen("PUT", "/0-256.", "cut"), 1);
    /* with backoff: 200 ms then 400 ms (FARM_STORAGE_BACKOFF_MS=200), at least 3/4 of each */
    double t[3];
    assert_int_equal(s3f_times("PUT", "/0-full.", NULL, t, 3), 3);
    assert_true(t[1] - t[0] >= 0.15);
    assert_true(t[2] - t[1] >= 0.30);
    /* the stalled try ended by the 1.5 s timeout, well before the stall would */
    assert_int_equal(s3f_times("PUT", "/0-512.", NULL, t, 3), 2);
    assert_true(t[1] - t[0] >= 1.5 && t[1] - t[0] < 6.0);
    /* charged once */
    assert_int_equal(credits("balance"), balance - 10);
    assert_int_equal(credits("held"), 0);
    assert_int_equal(ledger_sum(id, "capture"), 10);
    assert_int_equal(ledger_sum(id, "release"), 0);
    assert_int_equal(ts_sh("'%s' reconcile >&2", ts_env("FARM_TEST_CLI")), 0);
}

/* One image's PUTs refused past the last try: that image released, never charged. */
static void test_outputs_that_cannot_be_stored_are_released(void **state)
{
    (void)state;
    assert_true(workers[0] > 0);
    assert_int_equal(s3f_clear(), 0);
    assert_int_equal(s3f_add("PUT", "/1-full.", 4, "status", 503, 0), 0);
    long long balance = credits("balance");
    char id[37];
    au_create(tok,
              "{\"kind\":\"avatar\",\"prompt\":\"two herons\",\"count\":2,\"width\":256,"
              "\"height\":256}",
              id);
    json_t *g = ended_as(id, "partial");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "images_failed")), 1);
    /* the stored image's four variants, and nothing of the other */
    json_t *outputs = json_object_get(g, "outputs"), *o;
    size_t i;
    assert_int_equal(json_array_size(outputs), 4);
    json_array_foreach(outputs, i, o)
        assert_int_equal(json_integer_value(json_object_get(o, "index")), 0);
    check_outputs(g);
    json_decref(g);
    assert_int_equal(s3f_seen("PUT", "/1-full.", "status 503"), 4);
    assert_int_equal(s3f_rules_left(), 0);
    /* the ledger: 20 held, 10 captured, 10 released; the balance down by 10 only */
    assert_int_equal(ledger_sum(id, "hold"), 20);
    assert_int_equal(ledger_sum(id, "capture"), 10);
    assert_int_equal(ledger_sum(id, "release"), 10);
    assert_int_equal(credits("balance"), balance - 10);
    assert_int_equal(credits("held"), 0);
    assert_int_equal(ts_sh("'%s' reconcile >&2", ts_env("FARM_TEST_CLI")), 0);
}

/* FARM_S3_SERVE=proxy on the fault proxy: a GET cut short is never served truncated. */
static void test_the_api_never_serves_a_cut_file(void **state)
{
    (void)state;
    assert_true(last_output_url[0]);
    char base[64], full[1600], ready[128];
    const char *more[] = {faults_endpoint_env, "FARM_S3_SERVE=proxy", NULL};
    pid_t p = start_api("api-faults", base, more);
    snprintf(ready, sizeof(ready), "%s/readyz", base);
    assert_true(ts_wait_http(ready, 200, "\"storage\":\"ok\"", 30));
    assert_int_equal(s3f_clear(), 0);
    snprintf(full, sizeof(full), "%s%s", base, last_output_url);
    /* cut once: the api reads it again and serves it whole */
    assert_int_equal(s3f_add("GET", "/0-", 1, "cut", 0, 0), 0);
    ts_http_t r = ts_http("GET", full, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal((long long)r.body_len, last_output_bytes);
    ts_http_dispose(&r);
    assert_int_equal(s3f_seen("GET", "/0-", "cut"), 1);
    assert_int_equal(s3f_seen("GET", "/0-", "pass"), 1);
    /* cut on every try: an error, not the half */
    assert_int_equal(s3f_add("GET", "/0-", 4, "cut", 0, 0), 0);
    r = ts_http("GET", full, NULL, NULL, 0);
    assert_int_equal(r.status, 503);
    assert_null(strstr(r.headers, "image/"));
    ts_http_dispose(&r);
    assert_int_equal(s3f_rules_left(), 0);
    assert_int_equal(ts_stop(p, SIGTERM, 15), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_and_pose_generations_on_s3),
        cmocka_unit_test(test_proxy_mode_serves_with_etag),
        cmocka_unit_test(test_s3_down_while_storing),
        cmocka_unit_test(test_a_wrong_secret_is_reported),
        cmocka_unit_test(test_a_missing_bucket_stops_the_start),
        cmocka_unit_test(test_s3_down_for_good_releases),
        cmocka_unit_test(test_faults_during_puts_are_retried_then_delivered),
        cmocka_unit_test(test_outputs_that_cannot_be_stored_are_released),
        cmocka_unit_test(test_the_api_never_serves_a_cut_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
