/*
 * tests/integration/worker/faults.c - the worker when things go wrong, with
 * a real farm-api, real farm-workers and the fake provider (slow on purpose)
 * over real HTTP: a running generation is canceled promptly, keeping nothing
 * it did not finish; a worker killed with -9 in the middle of 20 generations
 * loses none of them and charges each exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "api_harness.h"
#include "imaging.h"
#include "store.h"
#include "support.h"

#define LATENCY_MS 4000

static char fake_env[128], storage_env[600];
static pid_t api_pid, fake_pid, worker_pid;
static char *tok;
static char user[37];

/*
 * A worker on the fake provider; `fallback` orders its adapters (NULL: hf
 * first); `more` is one more setting or NULL.
 */
static pid_t start_worker_more(const char *name, const char *fallback, const char *more,
                               const char *more2)
{
    char log_path[600];
    snprintf(log_path, sizeof(log_path), "%s/%s.log", ts_env("FARM_TEST_TMPDIR"), name);
    char *argv[] = {(char *)ts_env("FARM_TEST_WORKER_BIN"), NULL};
    char *extra[] = {fake_env,
                     storage_env,
                     "FARM_PROVIDER=fake",
                     "FARM_WORKER_METRICS_PORT=0",
                     "FARM_QUEUE_LEASE_S=2",
                     "FARM_QUEUE_TIERS=pro:4:1000,free:1:3",
                     "FARM_SWEEP_INTERVAL_S=1",
                     "FARM_SWEEP_STALE_S=3",
                     (char *)(fallback ? fallback : "FARM_PROVIDER_FALLBACK=hf,fal,bfl"),
                     (char *)more,
                     (char *)more2,
                     NULL};
    return ts_spawn(argv, extra, log_path);
}

static pid_t start_worker_with(const char *name, const char *fallback)
{
    return start_worker_more(name, fallback, NULL, NULL);
}

static pid_t start_worker(const char *name)
{
    return start_worker_with(name, NULL);
}

static int setup(void **state)
{
    (void)state;
    if (VIPS_INIT("worker_faults"))
        return -1;
    fake_pid = ts_fake_start(LATENCY_MS, fake_env);
    if (fake_env[0] == '\0')
        return -1;
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    const char *api_extra[] = {storage_env, /* uploads land where the workers read them */
                               "FARM_QUEUE_LEASE_S=2", "FARM_QUEUE_TIERS=pro:4:1000,free:1:3",
                               "FARM_RATE_LIMIT_BURST=1000",
                               /* configured as the workers are: it checks a request's provider */
                               "FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=hf,fal,bfl", NULL};
    api_pid = au_api_start(api_extra);
    worker_pid = start_worker("worker1");
    tok = au_token(NULL, "pro", NULL, user);
    if (api_pid < 0)
        return -1;
    return au_grant(user, 10000, "faults") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop_farm(worker_pid, api_pid, fake_pid);
    free(tok);
    vips_shutdown();
    return bad ? -1 : 0;
}

static ts_http_t api(const char *method, const char *path, const char *body)
{
    return au_call(method, path, tok, body, NULL);
}

/* On a failure, the processes' own words are what explains it: print their logs' tails. */
static void dump_logs(void)
{
    ts_sh("for f in \"$FARM_TEST_TMPDIR\"/*.log; do echo \"== $f\"; tail -n 15 \"$f\"; done >&2");
}

#define assert_found(g)                                                                            \
    do {                                                                                           \
        if ((g) == NULL)                                                                           \
            dump_logs();                                                                           \
        assert_non_null(g);                                                                        \
    } while (0)

static void create(const char *body, char id[37])
{
    au_create(tok, body, id);
}

/* Polls GET until the generation's status is one of `want` ("a|b"); returns it, or NULL. */
static json_t *wait_status(const char *id, const char *want, double timeout_s)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%.36s", id);
    double end = ts_now() + timeout_s;
    do {
        ts_http_t r = api("GET", path, NULL);
        json_t *g = json_loads(r.body, 0, NULL);
        ts_http_dispose(&r);
        const char *st = json_string_value(json_object_get(g, "status"));
        if (st) {
            char pattern[64];
            snprintf(pattern, sizeof(pattern), "|%s|", want);
            char needle[32];
            snprintf(needle, sizeof(needle), "|%s|", st);
            if (strstr(pattern, needle))
                return g;
        }
        json_decref(g);
        usleep(50000);
    } while (ts_now() < end);
    return NULL;
}

static void test_running_generation_is_canceled_promptly(void **state)
{
    (void)state;
    char id[37], path[128];
    create("{\"kind\":\"avatar\",\"prompt\":\"slow fox\",\"count\":2,\"width\":256,\"height\":256}",
           id);
    json_t *g = wait_status(id, "running", 15);
    assert_found(g);
    json_decref(g);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    double asked = ts_now();
    ts_http_t r = api("POST", path, NULL);
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    /* The provider takes LATENCY_MS per image: ending well before proves the abort. */
    g = wait_status(id, "canceled", 15);
    assert_found(g);
    assert_true(ts_now() - asked < LATENCY_MS / 1000.0 - 1.0);
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 20);
    json_decref(g);
}

static void test_kill_9_loses_nothing_and_charges_once(void **state)
{
    (void)state;
    enum { N = 20 };
    char ids[N][37];
    for (int i = 0; i < N; i++)
        create("{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}", ids[i]);
    /* Once the first worker holds them all, it dies without a word. */
    json_t *g = wait_status(ids[N - 1], "running", 15);
    assert_found(g);
    json_decref(g);
    assert_int_equal(ts_stop(worker_pid, SIGKILL, 5), 128 + SIGKILL);
    worker_pid = start_worker("worker2");
    for (int i = 0; i < N; i++) {
        g = wait_status(ids[i], "succeeded|partial|failed", 60);
        assert_found(g);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        assert_true(json_integer_value(json_object_get(g, "attempts")) >= 2);
        json_decref(g);
    }
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
}

static void test_partial_success_charges_only_finished_images(void **state)
{
    (void)state;
    char id[37];
    /* The first provider call is refused as bad input (not retryable); the second works. */
    create("{\"kind\":\"avatar\",\"prompt\":\"a fox [[validation_400*1]]\",\"count\":2,"
           "\"width\":256,\"height\":256}",
           id);
    json_t *g = wait_status(id, "succeeded|partial|failed", 30);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "partial");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "images_done")), 1);
    json_t *f = json_array_get(json_object_get(g, "failures"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f, "error"), "code")),
                        "provider_error");
    assert_true(json_is_false(json_object_get(json_object_get(f, "error"), "retryable")));
    /* Only the delivered image has outputs. */
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(g, "outputs"), i, o)
    {
        assert_int_equal(json_integer_value(json_object_get(o, "index")),
                         json_integer_value(json_object_get(
                             json_array_get(json_object_get(g, "outputs"), 0), "index")));
    }
    json_decref(g);
}

/* Uploads a w x h PNG as the test user; its id into `upload`. */
static void upload_png(int w, int h, char upload[37])
{
    VipsImage *img = NULL, *u8 = NULL;
    void *png = NULL;
    size_t len = 0;
    assert_int_equal(vips_xyz(&img, w, h, NULL), 0);
    assert_int_equal(vips_cast_uchar(img, &u8, NULL), 0);
    assert_int_equal(vips_image_write_to_buffer(u8, ".png", &png, &len, NULL), 0);
    g_object_unref(img);
    g_object_unref(u8);
    char url[256], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/uploads", au_base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *hd[] = {auth, "Content-Type: image/png", NULL};
    ts_http_t r = ts_http("POST", url, hd, png, len);
    g_free(png);
    assert_int_equal(r.status, 201);
    snprintf(upload, 37, "%s", strstr(r.body, "\"id\":\"") + 6);
    ts_http_dispose(&r);
}

/* A generation that refers to an upload, where one image fails: the worker survives it. */
static void test_failed_image_of_a_generation_with_an_identity(void **state)
{
    (void)state;
    char upload[37];
    upload_png(64, 64, upload);
    char body[512], id[37];
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"me [[validation_400*1]]\",\"count\":2,"
             "\"width\":256,\"height\":256,\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    create(body, id);
    json_t *g = wait_status(id, "succeeded|partial|failed", 30);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "partial");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    json_decref(g);
    /* The worker that ran it is still alive and well: the next generation runs too. */
    create("{\"kind\":\"avatar\",\"prompt\":\"after\",\"width\":256,\"height\":256}", id);
    g = wait_status(id, "succeeded", 30);
    assert_found(g);
    json_decref(g);
}

/* The fake's count of requests to `endpoint` ("bfl.submit"). */
static long fake_count(const char *endpoint)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/log", strchr(fake_env, '=') + 1);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    json_t *log = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    long n = (long)json_integer_value(json_object_get(json_object_get(log, "counts"), endpoint));
    json_decref(log);
    return n;
}

/* The fake's log entries for `endpoint` (hf.submit...), oldest first. */
static json_t *fake_requests(const char *endpoint)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/log", strchr(fake_env, '=') + 1);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    json_t *log = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    json_t *out = json_array(), *e;
    size_t i;
    json_array_foreach(json_object_get(log, "requests"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "endpoint")), endpoint) == 0)
            json_array_append(out, e);
    }
    json_decref(log);
    return out;
}

/* The person the user asked to keep is what the provider gets: the uploaded
 * identity's pixels go out with the request, not a text-only prompt (the bug
 * of the system this farm replaces). */
static void test_the_identity_image_reaches_the_provider(void **state)
{
    (void)state;
    char upload[37], body[512], id[37];
    upload_png(72, 40, upload); /* a size no preset or output has */
    long before = fake_count("hf.submit");
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"keep me\",\"width\":256,\"height\":256,"
             "\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    create(body, id);
    json_t *g = wait_status(id, "succeeded|partial|failed", 30);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_decref(g);
    assert_true(fake_count("hf.submit") > before);
    json_t *reqs = fake_requests("hf.submit");
    json_t *got = json_object_get(json_array_get(reqs, json_array_size(reqs) - 1), "received");
    assert_int_equal(json_integer_value(json_object_get(got, "count")), 1);
    json_t *ref = json_array_get(json_object_get(got, "images"), 0);
    assert_int_equal(json_integer_value(json_object_get(ref, "width")), 72);
    assert_int_equal(json_integer_value(json_object_get(ref, "height")), 40);
    json_decref(reqs);
}

/* The sha256 of the stored file of upload `id` (what the worker reads and sends). */
static void stored_sha(const char *id, char hex[65])
{
    char out[600];
    snprintf(out, sizeof(out), "%s/sha.%s", ts_env("FARM_TEST_TMPDIR"), id);
    assert_int_equal(ts_sh("sha256sum $(find '%s/storage' -name '*%s*' -type f | head -1) > '%s'",
                           ts_env("FARM_TEST_TMPDIR"), id, out),
                     0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%64s", hex), 1);
    fclose(f);
}

/* The sha256 of the pose map the farm draws for preset `name` at w x h. */
static void pose_sha(const char *name, int w, int h, char hex[65])
{
    gf_err_t err = {0};
    img_presets_t *p = img_presets_load(ts_env("FARM_PRESETS_DIR"), &err);
    assert_non_null(p);
    const img_pose_preset *pose = img_presets_pose_find(p, name);
    assert_non_null(pose);
    img_buf png = {0};
    assert_int_equal(img_pose_render(pose->keypoints, w, h, &png, &err), 0);
    img_sha256_hex(png.data, png.len, hex);
    img_buf_dispose(&png);
    img_presets_free(p);
}

/*
 * A pose generation with an identity and two pose presets, asked of one
 * provider: each of its two submits carries the identity's bytes as image 1
 * and that pose's map as image 2 (sha256 against what the farm draws), and
 * a prompt naming them with the style's suffix.
 */
static void pose_reaches(const char *provider)
{
    char upload[37], body[768], id[37], ep[32], tag[64];
    upload_png(72, 40, upload);
    snprintf(ep, sizeof(ep), "%s.submit", provider);
    snprintf(tag, sizeof(tag), "a dancer for %s", provider);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"%s\",\"width\":256,\"height\":256,"
             "\"style\":\"watercolor\",\"provider\":\"%s\",\"identity\":{\"upload_id\":\"%s\"},"
             "\"poses\":[{\"preset\":\"standing-arms-crossed\"},{\"preset\":\"standing-wave\"}]}",
             tag, provider, upload);
    create(body, id);
    json_t *g = wait_status(id, "succeeded|partial|failed", 60);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_decref(g);
    char want_id[65], want_pose[2][65];
    stored_sha(upload, want_id);
    pose_sha("standing-arms-crossed", 256, 256, want_pose[0]);
    pose_sha("standing-wave", 256, 256, want_pose[1]);
    json_t *reqs = fake_requests(ep);
    int seen[2] = {0, 0}, n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(reqs, i, e)
    {
        json_t *got = json_object_get(e, "received");
        const char *prompt = json_string_value(json_object_get(got, "prompt"));
        if (prompt == NULL || strstr(prompt, tag) == NULL)
            continue;
        n++;
        assert_non_null(strstr(prompt, "the person in image 1, in the pose of image 2"));
        assert_non_null(strstr(prompt, "watercolor painting, loose wet-on-wet washes"));
        assert_int_equal(json_integer_value(json_object_get(got, "count")), 2);
        json_t *im = json_object_get(got, "images");
        json_t *a = json_array_get(im, 0), *b = json_array_get(im, 1);
        assert_string_equal(json_string_value(json_object_get(a, "sha256")), want_id);
        assert_int_equal(json_integer_value(json_object_get(a, "width")), 72);
        assert_int_equal(json_integer_value(json_object_get(a, "height")), 40);
        assert_int_equal(json_integer_value(json_object_get(b, "width")), 256);
        const char *ps = json_string_value(json_object_get(b, "sha256"));
        for (int k = 0; k < 2; k++)
            seen[k] += strcmp(ps, want_pose[k]) == 0;
    }
    assert_int_equal(n, 2);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    json_decref(reqs);
}

static void test_pose_with_identity_reaches_hf(void **state)
{
    (void)state;
    pose_reaches("hf");
}

static void test_pose_with_identity_reaches_fal(void **state)
{
    (void)state;
    pose_reaches("fal");
}

static void test_pose_with_identity_reaches_bfl(void **state)
{
    (void)state;
    pose_reaches("bfl");
}

/* The credits and generation count of the test user, as GET answers them. */
static void user_state(const char *at, long long *available, size_t *gens)
{
    char url[256], auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *hd[] = {auth, NULL};
    snprintf(url, sizeof(url), "%s/v1/credits", at);
    ts_http_t r = ts_http("GET", url, hd, NULL, 0);
    json_t *c = json_loads(r.body, 0, NULL);
    *available = json_integer_value(json_object_get(c, "available"));
    json_decref(c);
    ts_http_dispose(&r);
    snprintf(url, sizeof(url), "%s/v1/generations?limit=100", at);
    r = ts_http("GET", url, hd, NULL, 0);
    c = json_loads(r.body, 0, NULL);
    *gens = json_array_size(json_object_get(c, "items"));
    json_decref(c);
    ts_http_dispose(&r);
}

/*
 * An api whose providers cannot honour the request: hf with Kontext (one
 * reference) for calls with references. A pose with an identity is 400
 * unsupported naming identity, a pose alone asked of a text-only bfl names
 * poses; nothing is held, nothing enqueued.
 */
static void test_unsupported_is_refused_before_any_hold(void **state)
{
    (void)state;
    char upload[37], body[512], port2[64], at[64], log_path[600];
    upload_png(32, 32, upload);
    int port = ts_free_port();
    snprintf(port2, sizeof(port2), "FARM_API_PORT=%d", port);
    snprintf(at, sizeof(at), "http://127.0.0.1:%d", port);
    snprintf(log_path, sizeof(log_path), "%s/api-unsupported.log", ts_env("FARM_TEST_TMPDIR"));
    char *argv[] = {(char *)ts_env("FARM_TEST_API_BIN"), NULL};
    char *extra[] = {port2,
                     storage_env,
                     "FARM_JWT_SECRET=" AU_SECRET,
                     "FARM_FILE_SECRET=test-file-secret-0123456789",
                     "FARM_RATE_LIMIT_BURST=1000",
                     "FARM_PROVIDER=fake",
                     "FARM_PROVIDER_FALLBACK=hf,bfl",
                     "FARM_HF_POSE_MODEL=black-forest-labs/FLUX.1-Kontext-dev",
                     "FARM_BFL_POSE_MODEL=flux-dev",
                     NULL};
    pid_t pid = ts_spawn(argv, extra, log_path);
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", at);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    long long avail0, avail1;
    size_t gens0, gens1;
    user_state(at, &avail0, &gens0);
    char auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *hd[] = {auth, "Content-Type: application/json", NULL};
    snprintf(url, sizeof(url), "%s/v1/generations", at);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"me\",\"identity\":{\"upload_id\":\"%s\"},"
             "\"poses\":[{\"preset\":\"standing-wave\"}]}",
             upload);
    ts_http_t r = ts_http("POST", url, hd, body, strlen(body));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"code\":\"unsupported\""));
    assert_non_null(strstr(r.body, "\"field\":\"identity\""));
    ts_http_dispose(&r);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"me\",\"provider\":\"bfl\","
             "\"poses\":[{\"preset\":\"standing-wave\"}]}");
    r = ts_http("POST", url, hd, body, strlen(body));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"code\":\"unsupported\""));
    assert_non_null(strstr(r.body, "\"field\":\"poses\""));
    ts_http_dispose(&r);
    user_state(at, &avail1, &gens1);
    assert_int_equal(avail1, avail0);
    assert_int_equal(gens1, gens0);
    assert_int_equal(ts_stop(pid, SIGTERM, 15), 0);
}

/* An identity whose stored file is gone: the images fail with a clear error and
 * everything is released; no provider is paid for an avatar without the person. */
static void test_a_lost_identity_fails_and_charges_nothing(void **state)
{
    (void)state;
    char upload[37], body[512], id[37];
    upload_png(48, 48, upload);
    assert_int_equal(
        ts_sh("find '%s/storage' -name '*%s*' -type f -delete", ts_env("FARM_TEST_TMPDIR"), upload),
        0);
    long before = fake_count("hf.submit");
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"lost me\",\"count\":2,\"width\":256,"
             "\"height\":256,\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    create(body, id);
    json_t *g = wait_status(id, "succeeded|partial|failed", 30);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 20); /* 2 x 10 */
    json_t *err = json_object_get(g, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "internal");
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "identity"));
    json_decref(g);
    assert_int_equal(fake_count("hf.submit"), before); /* nothing was sent to the provider */
}

static void test_every_image_failing_fails_with_its_error(void **state)
{
    (void)state;
    char id[37];
    create("{\"kind\":\"avatar\",\"prompt\":\"a fox [[validation_422]]\",\"width\":256,"
           "\"height\":256}",
           id);
    json_t *g = wait_status(id, "succeeded|partial|failed", 30);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    assert_string_equal(json_string_value(json_object_get(json_object_get(g, "error"), "code")),
                        "provider_error");
    json_decref(g);
}

/* A request that names a provider of the chain gets that one, not the chain's first. */
static void test_a_named_provider_is_the_one_used(void **state)
{
    (void)state;
    char id[37];
    create("{\"kind\":\"avatar\",\"prompt\":\"named\",\"width\":256,\"height\":256,"
           "\"provider\":\"bfl\"}",
           id);
    json_t *g = wait_status(id, "succeeded", 30);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "provider")), "bfl");
    json_decref(g);
    /* BFL is asynchronous: the worker persisted the request it polled, under bfl's name
     * (with the chain alone, hf would have answered first and persisted nothing). */
    store_conn_t *sc = store_conn_new(ts_env("FARM_DATABASE_URL"), NULL);
    assert_non_null(sc);
    store_call_t c;
    store_call_resume(&c, id);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    int bfl = 0; /* a persisted request "bfl:<id>" */
    for (size_t i = 0; i < c.res.resume.n_requests; i++)
        bfl |= strncmp(c.res.resume.requests[i].token, "bfl:", 4) == 0;
    assert_true(bfl);
    store_call_dispose(&c);
    store_conn_free(sc);
}

static void test_deadline_passed_before_start_expires(void **state)
{
    (void)state;
    char id[37];
    /* Nobody can start it in time: the only worker is paused past the deadline. */
    kill(worker_pid, SIGSTOP);
    create("{\"kind\":\"avatar\",\"prompt\":\"late fox\",\"deadline_s\":1,\"width\":256,"
           "\"height\":256}",
           id);
    sleep(2);
    kill(worker_pid, SIGCONT);
    json_t *g = wait_status(id, "expired", 30);
    assert_found(g);
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    json_decref(g);
}

static void test_sigterm_drains_running_generations(void **state)
{
    (void)state;
    char a[37], b[37];
    create("{\"kind\":\"avatar\",\"prompt\":\"fox a\",\"width\":256,\"height\":256}", a);
    create("{\"kind\":\"avatar\",\"prompt\":\"fox b\",\"width\":256,\"height\":256}", b);
    json_t *g = wait_status(b, "running", 15);
    assert_found(g);
    json_decref(g);
    g = wait_status(a, "running", 15);
    assert_found(g);
    json_decref(g);
    /* Running generations finish within FARM_WORKER_DRAIN_S, then the worker exits 0. */
    assert_int_equal(ts_stop(worker_pid, SIGTERM, 40), 0);
    worker_pid = 0;
    for (int i = 0; i < 2; i++) {
        g = wait_status(i ? b : a, "succeeded", 5);
        assert_found(g);
        json_decref(g);
    }
    worker_pid = start_worker("worker3");
}

static void test_kill_9_resumes_persisted_requests_instead_of_paying_again(void **state)
{
    (void)state;
    enum { N = 5 };
    /* Workers that use BFL (submit, then poll): its request is persisted before the wait. */
    ts_stop(worker_pid, SIGKILL, 10); /* idle: nothing of it to hand back */
    worker_pid = start_worker_with("worker-bfl-1", "FARM_PROVIDER_FALLBACK=bfl");
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/reset", strchr(fake_env, '=') + 1);
    ts_http_t r = ts_http("POST", url, NULL, "{}", 2);
    ts_http_dispose(&r);
    char ids[N][37];
    for (int i = 0; i < N; i++)
        create("{\"kind\":\"avatar\",\"prompt\":\"a bfl fox\",\"width\":256,\"height\":256}",
               ids[i]);
    /* Wait until every provider request is persisted, then kill the worker. */
    int persisted = 0;
    for (int t = 0; t < 200 && !persisted; t++) {
        persisted = ts_sh("test \"$(psql -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                          "generations WHERE status = 'running' AND provider_requests <> "
                          "'{}'::jsonb\")\" -ge %d",
                          N) == 0;
        if (!persisted)
            usleep(50000);
    }
    assert_true(persisted);
    assert_int_equal(fake_count("bfl.submit"), N);
    assert_int_equal(ts_stop(worker_pid, SIGKILL, 5), 128 + SIGKILL);
    worker_pid = start_worker_with("worker-bfl-2", "FARM_PROVIDER_FALLBACK=bfl");
    for (int i = 0; i < N; i++) {
        json_t *g = wait_status(ids[i], "succeeded|partial|failed", 60);
        assert_found(g);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
        json_decref(g);
    }
    /* The second worker polled the persisted requests: no second submission. */
    assert_int_equal(fake_count("bfl.submit"), N);
}

static void fake_config(const char *json)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/config", strchr(fake_env, '=') + 1);
    ts_http_t r = ts_http("POST", url, NULL, json, strlen(json));
    assert_int_equal(r.status, 200);
    ts_http_dispose(&r);
}

/* Each provider fault, on every adapter of the chain, ends as API.md documents it. */
static void test_every_fault_mode_ends_in_its_documented_error(void **state)
{
    (void)state;
    static const struct {
        const char *marker, *code;
        int retryable;
    } rows[] = {
        {"credits_402", "provider_error", 0},    {"auth_401", "provider_error", 0},
        {"validation_422", "provider_error", 0}, {"server_500", "provider_error", 1},
        {"json_on_200", "provider_error", 1},    {"corrupt_image", "invalid_output", 1},
        {"truncated", "invalid_output", 1},
    };
    enum { N = sizeof(rows) / sizeof(rows[0]) };
    char ids[N][37];
    /*
     * One adapter, and a breaker that stays closed: this checks the mapping of
     * each fault, not the breaker (an open one fails fast as provider_error).
     */
    ts_stop(worker_pid, SIGKILL, 10); /* idle */
    worker_pid = start_worker_more("worker-faults", "FARM_PROVIDER_FALLBACK=hf",
                                   "FARM_PROVIDER_BREAKER_FAILURES=1000",
                                   "FARM_PROVIDER_BREAKER_CREDITS_COOLDOWN_S=0");
    fake_config("{\"latency_ms\":0}");
    for (int i = 0; i < N; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"kind\":\"avatar\",\"prompt\":\"fox [[%s]]\",\"width\":256,\"height\":256}",
                 rows[i].marker);
        create(body, ids[i]);
    }
    json_t *got[N];
    for (int i = 0; i < N; i++)
        got[i] = wait_status(ids[i], "succeeded|partial|failed", 60);
    /* The fake goes back to its latency before anything can fail. */
    char latency[64];
    snprintf(latency, sizeof(latency), "{\"latency_ms\":%d}", LATENCY_MS);
    fake_config(latency);
    ts_stop(worker_pid, SIGTERM, 40);
    worker_pid = start_worker("worker-after-faults");
    for (int i = 0; i < N; i++) {
        json_t *g = got[i], *err = json_object_get(g, "error");
        fprintf(stderr, "%s: %s %s retryable=%d charged=%lld released=%lld\n", rows[i].marker,
                json_string_value(json_object_get(g, "status")),
                json_string_value(json_object_get(err, "code")),
                json_is_true(json_object_get(err, "retryable")),
                (long long)json_integer_value(json_object_get(g, "charged")),
                (long long)json_integer_value(json_object_get(g, "released")));
    }
    for (int i = 0; i < N; i++) {
        json_t *g = got[i], *err = json_object_get(g, "error");
        assert_found(g);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
        assert_string_equal(json_string_value(json_object_get(err, "code")), rows[i].code);
        assert_int_equal(json_is_true(json_object_get(err, "retryable")), rows[i].retryable);
        assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
        assert_int_equal(json_integer_value(json_object_get(g, "released")), 10);
    }
    for (int i = 0; i < N; i++)
        json_decref(got[i]);
}

static void test_paused_worker_loses_its_lease_and_charges_nothing(void **state)
{
    (void)state;
    char id[37];
    create("{\"kind\":\"avatar\",\"prompt\":\"paused fox\",\"width\":256,\"height\":256}", id);
    json_t *g = wait_status(id, "running", 15);
    assert_found(g);
    json_decref(g);
    /* Paused past its 2 s lease while the provider works; another worker takes over. */
    pid_t paused = worker_pid;
    kill(paused, SIGSTOP);
    worker_pid = start_worker("worker-after-pause");
    g = wait_status(id, "succeeded|partial|failed", 30);
    kill(paused, SIGCONT);
    assert_found(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_decref(g);
    /* The paused worker wakes up with a stale token: its late result is refused. */
    sleep(LATENCY_MS / 1000 + 1);
    g = wait_status(id, "succeeded", 5);
    assert_found(g);
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 10);
    assert_int_equal(json_integer_value(json_object_get(g, "images_done")), 1);
    json_decref(g);
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile-pause.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
    assert_int_equal(ts_stop(paused, SIGTERM, 40), 0); /* and it never crashed */
}

static void test_redis_restart_mid_run_loses_nothing(void **state)
{
    (void)state;
    enum { N = 200 };
    static char ids[N][37];
    pid_t second = start_worker("worker-second");
    for (int i = 0; i < N; i++)
        create("{\"kind\":\"avatar\",\"prompt\":\"many foxes\",\"width\":256,"
               "\"height\":256}",
               ids[i]);
    /* Redis goes away with generations queued and running, and comes back from its AOF. */
    int port = atoi(ts_env("FARM_TEST_REDIS_PORT"));
    assert_int_equal(ts_sh("redis-cli -p %d shutdown >/dev/null 2>&1 || true", port), 0);
    sleep(2);
    assert_int_equal(ts_sh("redis-server '%s' >/dev/null", ts_env("FARM_TEST_REDIS_CONF")), 0);
    for (int i = 0; i < N; i++) {
        json_t *g = wait_status(ids[i], "succeeded|partial|failed|canceled|expired", 120);
        assert_found(g);
        assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
        json_decref(g);
    }
    char out[600];
    snprintf(out, sizeof(out), "%s/reconcile-redis.out", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("'%s' reconcile > '%s' 2>&1", ts_env("FARM_TEST_CLI"), out), 0);
    assert_int_equal(ts_stop(second, SIGTERM, 60), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_running_generation_is_canceled_promptly),
        cmocka_unit_test(test_partial_success_charges_only_finished_images),
        cmocka_unit_test(test_failed_image_of_a_generation_with_an_identity),
        cmocka_unit_test(test_the_identity_image_reaches_the_provider),
        cmocka_unit_test(test_a_lost_identity_fails_and_charges_nothing),
        cmocka_unit_test(test_pose_with_identity_reaches_hf),
        cmocka_unit_test(test_pose_with_identity_reaches_fal),
        cmocka_unit_test(test_pose_with_identity_reaches_bfl),
        cmocka_unit_test(test_unsupported_is_refused_before_any_hold),
        cmocka_unit_test(test_every_image_failing_fails_with_its_error),
        cmocka_unit_test(test_every_fault_mode_ends_in_its_documented_error),
        cmocka_unit_test(test_a_named_provider_is_the_one_used),
        cmocka_unit_test(test_deadline_passed_before_start_expires),
        cmocka_unit_test(test_sigterm_drains_running_generations),
        cmocka_unit_test(test_kill_9_resumes_persisted_requests_instead_of_paying_again),
        cmocka_unit_test(test_paused_worker_loses_its_lease_and_charges_nothing),
        cmocka_unit_test(test_redis_restart_mid_run_loses_nothing),
        cmocka_unit_test(test_kill_9_loses_nothing_and_charges_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
