/*
 * tests/integration/api/files.c - uploads, signed file URLs and presets over
 * real HTTP against a real farm-api (and a real farm-worker for the files of
 * a finished generation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "api.h"
#include "api_harness.h"
#include "support.h"

#define SECRET      "files-jwt-secret-0123456789"
#define FILE_SECRET "file-secret-files-0123456789"

static char base[64];
static pid_t api_pid, worker_pid;
static char *tok, *other;

/*
 * Starts the binary named by the environment variable `bin_env` with this
 * file's settings, its api on `port`, and `setting` ("NAME=value") on top if
 * not NULL; its log goes to `log_name` in the test's directory.
 */
static pid_t spawn2(const char *bin_env, int port, const char *setting, const char *setting2,
                    const char *log_name);

static pid_t spawn(const char *bin_env, int port, const char *setting, const char *log_name)
{
    return spawn2(bin_env, port, setting, NULL, log_name);
}

static pid_t spawn_with(const char *bin_env, int port, const char *const *settings,
                        const char *log_name);

static pid_t spawn2(const char *bin_env, int port, const char *setting, const char *setting2,
                    const char *log_name)
{
    const char *const settings[] = {setting, setting2, NULL};
    return spawn_with(bin_env, port, setting ? settings : NULL, log_name);
}

/* As spawn, with `settings` (NULL-terminated; NULL: none) on top. */
static pid_t spawn_with(const char *bin_env, int port, const char *const *settings,
                        const char *log_name)
{
    char port_env[64], storage_env[600];
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    char *extra[16] = {port_env,
                       storage_env,
                       "FARM_JWT_SECRET=" SECRET,
                       "FARM_FILE_SECRET=" FILE_SECRET,
                       "FARM_UPLOAD_MAX_BYTES=200000",
                       "FARM_UPLOAD_MAX_PIXELS=1000000",
                       "FARM_WORKER_METRICS_PORT=0",
                       "FARM_PROVIDER=local"};
    size_t n = 8;
    for (size_t i = 0; settings && settings[i] && n + 1 < sizeof(extra) / sizeof(extra[0]); i++)
        extra[n++] = (char *)settings[i];
    return ts_spawn_farm(bin_env, extra, "%s", log_name);
}

static int setup(void **state)
{
    (void)state;
    if (VIPS_INIT("api_files"))
        return -1;
    int port = ts_free_port();
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    api_pid = spawn("FARM_TEST_API_BIN", port, NULL, "api.log");
    worker_pid = spawn("FARM_TEST_WORKER_BIN", port, NULL, "worker.log");
    char a[37], b[37];
    gf_uuid4(a);
    gf_uuid4(b);
    api_claims_t ca = {.sub = a, .plan = "pro", .ttl_s = 3600};
    api_claims_t cb = {.sub = b, .plan = "pro", .ttl_s = 3600};
    tok = api_token_issue(SECRET, &ca, NULL);
    other = api_token_issue(SECRET, &cb, NULL);
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", base);
    return ts_wait_http(url, 200, NULL, 20) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = ts_stop(api_pid, SIGTERM, 15) != 0;
    bad |= ts_stop(worker_pid, SIGTERM, 40) != 0;
    free(tok);
    free(other);
    vips_shutdown();
    return bad ? -1 : 0;
}

static ts_http_t post_image(const char *ctype, const void *data, size_t len, const char *t)
{
    char url[128], auth[1024], ct[64];
    snprintf(url, sizeof(url), "%s/v1/uploads", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t);
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
    const char *h[] = {auth, ct, NULL};
    return ts_http("POST", url, h, data, len);
}

/* An image made with libvips: a gradient of w x h saved as `suffix` (".png", ".jpg[Q=90]"). */
static void *make_image(int w, int h, const char *suffix, int orientation, size_t *len)
{
    VipsImage *img = NULL, *u8 = NULL;
    void *buf = NULL;
    /* orientation < 0: all black, which compresses to almost nothing (a pixel bomb). */
    assert_int_equal(orientation < 0 ? vips_black(&img, w, h, NULL) : vips_xyz(&img, w, h, NULL),
                     0);
    assert_int_equal(vips_cast_uchar(img, &u8, NULL), 0);
    if (orientation > 0)
        vips_image_set_int(u8, "orientation", orientation);
    assert_int_equal(vips_image_write_to_buffer(u8, suffix, &buf, len, NULL), 0);
    g_object_unref(img);
    g_object_unref(u8);
    return buf;
}

static void test_uploads_are_checked_by_their_bytes(void **state)
{
    (void)state;
    size_t len;
    void *png = make_image(64, 48, ".png", 0, &len);
    ts_http_t r = post_image("image/png", png, len, tok);
    au_expect(&r, 201, "\"format\":\"png\",\"width\":64,\"height\":48");
    /* Truncated: the same PNG cut in half. */
    r = post_image("image/png", png, len / 2, tok);
    au_expect(&r, 422, "\"code\":\"invalid_image\"");
    /* The media type's parameters do not matter. */
    r = post_image("image/png; foo=bar", png, len, tok);
    au_expect(&r, 201, "\"format\":\"png\"");
    r = post_image("image/pngx", png, len, tok);
    au_expect(&r, 415, "\"code\":\"unsupported_media_type\"");
    /* A PNG declared as JPEG is judged by its bytes: accepted as what it is. */
    r = post_image("image/jpeg", png, len, tok);
    au_expect(&r, 201, "\"format\":\"png\"");
    g_free(png);
    /* EXIF orientation 6 (rotate 90): a 40x20 JPEG is stored as 20x40. */
    void *jpg = make_image(40, 20, ".jpg[Q=90]", 6, &len);
    r = post_image("image/jpeg", jpg, len, tok);
    au_expect(&r, 201, "\"format\":\"jpeg\",\"width\":20,\"height\":40");
    g_free(jpg);
    const char *text = "this is not an image at all, only text bytes";
    r = post_image("image/png", text, strlen(text), tok);
    au_expect(&r, 415, "\"code\":\"unsupported_media_type\"");
    r = post_image("text/plain", text, strlen(text), tok);
    au_expect(&r, 415, "\"code\":\"unsupported_media_type\"");
    /* A pixel bomb: a few KB declaring 4 MP, over FARM_UPLOAD_MAX_PIXELS (1 MP here). */
    void *bomb = make_image(2000, 2000, ".png", -1, &len);
    assert_true(len < 200000);
    r = post_image("image/png", bomb, len, tok);
    au_expect(&r, 422, "\"code\":\"invalid_image\"");
    g_free(bomb);
    /* Over FARM_UPLOAD_MAX_BYTES (200 KB here). */
    char *huge = calloc(1, 300000);
    r = post_image("image/png", huge, 300000, tok);
    au_expect(&r, 413, "\"code\":\"payload_too_large\"");
    free(huge);
}

static void test_presets_are_served(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/presets", base);
    char auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, NULL};
    ts_http_t r = ts_http("GET", url, h, NULL, 0);
    assert_int_equal(r.status, 200);
    /* Keypoints read as the preset files write them: 0.135, not 0.13500000536441803. */
    assert_non_null(strstr(r.body, "[0.5,0.135,1.0]"));
    assert_null(strstr(r.body, "0000000"));
    json_t *p = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    assert_true(json_array_size(json_object_get(p, "poses")) >= 20);
    json_t *pose = json_array_get(json_object_get(p, "poses"), 0);
    assert_int_equal(json_array_size(json_object_get(pose, "keypoints")), 18);
    assert_non_null(
        json_object_get(json_array_get(json_object_get(p, "styles"), 0), "prompt_suffix"));
    char name[80];
    snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(pose, "name")));
    snprintf(url, sizeof(url), "%s%s", base, json_string_value(json_object_get(pose, "map_url")));
    json_decref(p);
    /* The map_url is signed: an <img>, which sends no header, can show it. */
    r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len > 8 && memcmp(r.body, "\x89PNG", 4) == 0);
    size_t first_len = r.body_len;
    char *first = malloc(first_len);
    memcpy(first, r.body, first_len);
    ts_http_dispose(&r);
    /* Later requests get the same map (rendered once, then served from memory). */
    r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, first_len);
    assert_memory_equal(r.body, first, first_len);
    free(first);
    ts_http_dispose(&r);
    /* Unsigned, it takes a token, as every /v1 route (API.md); so does the list. */
    snprintf(url, sizeof(url), "%s/v1/presets/poses/%s.png", base, name);
    r = ts_http("GET", url, NULL, NULL, 0);
    au_expect(&r, 401, NULL);
    r = ts_http("GET", url, h, NULL, 0);
    au_expect(&r, 200, NULL);
    snprintf(url, sizeof(url), "%s/v1/presets/poses/%s.png?exp=99999999999&sig=%064d", base, name,
             0);
    r = ts_http("GET", url, NULL, NULL, 0);
    au_expect(&r, 401, NULL);
    snprintf(url, sizeof(url), "%s/v1/presets", base);
    r = ts_http("GET", url, NULL, NULL, 0);
    au_expect(&r, 401, NULL);
}

static void test_signed_urls_work_and_nothing_else_does(void **state)
{
    (void)state;
    char url[1024], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/generations", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    const char *body = "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}";
    ts_http_t r = ts_http("POST", url, h, body, strlen(body));
    assert_int_equal(r.status, 202);
    json_t *created = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    snprintf(url, sizeof(url), "%s%s", base,
             json_string_value(json_object_get(created, "events_url")));
    r = ts_http("GET", url, h, NULL, 0); /* ends after the terminal event */
    assert_non_null(strstr(r.body, "event: succeeded"));
    ts_http_dispose(&r);
    snprintf(url, sizeof(url), "%s%s", base, json_string_value(json_object_get(created, "url")));
    json_decref(created);
    r = ts_http("GET", url, h, NULL, 0);
    json_t *gen = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    const char *file = json_string_value(
        json_object_get(json_array_get(json_object_get(gen, "outputs"), 0), "url"));
    assert_non_null(file);
    /* Signed: loads with no header at all, as an <img> tag would. */
    snprintf(url, sizeof(url), "%s%s", base, file);
    r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "Content-Type: image/webp"));
    const char *et = strcasestr(r.headers, "ETag: ");
    assert_non_null(et);
    char etag[128];
    snprintf(etag, sizeof(etag), "%.*s", (int)strcspn(et + 6, "\r\n"), et + 6);
    assert_non_null(strcasestr(r.headers, "Cache-Control: private, max-age="));
    /* Cached for as long as the URL is valid, and no longer. */
    long max_age = strtol(strcasestr(r.headers, "max-age=") + 8, NULL, 10);
    long url_exp = strtol(strstr(url, "exp=") + 4, NULL, 10);
    assert_true(max_age > 0);
    assert_true(max_age <= url_exp - (long)time(NULL) + 1);
    ts_http_dispose(&r);
    /* A cached copy is revalidated: the tag alone, weak, in a list, or "*". */
    char inm[4][300];
    snprintf(inm[0], sizeof(inm[0]), "If-None-Match: %s", etag);
    snprintf(inm[1], sizeof(inm[1]), "If-None-Match: W/%s", etag);
    snprintf(inm[2], sizeof(inm[2]), "If-None-Match: \"other\", %s", etag);
    snprintf(inm[3], sizeof(inm[3]), "If-None-Match: *");
    for (int i = 0; i < 4; i++) {
        const char *hh[] = {inm[i], NULL};
        r = ts_http("GET", url, hh, NULL, 0);
        /* RFC 9110 8.6: a 304's length could only be the 200's; none is sent. */
        assert_null(strcasestr(r.headers, "Content-Length:"));
        au_expect(&r, 304, NULL);
    }
    static const char *const stale[] = {"If-None-Match: \"other\"", "If-None-Match: **",
                                        "If-None-Match: \"x\", *zzz"};
    for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
        const char *hh[] = {stale[i], NULL};
        r = ts_http("GET", url, hh, NULL, 0);
        au_expect(&r, 200, NULL);
    }
    /* Tampered signature: 404. */
    char bad[1024];
    snprintf(bad, sizeof(bad), "%s", url);
    char *sig = strstr(bad, "sig=") + 4;
    sig[0] = sig[0] == 'a' ? 'b' : 'a';
    r = ts_http("GET", bad, NULL, NULL, 0);
    au_expect(&r, 404, "not_found");
    /* Expired: 404. */
    snprintf(bad, sizeof(bad), "%s", url);
    char *exp = strstr(bad, "exp=") + 4;
    memcpy(exp, "1000000", 7);
    r = ts_http("GET", bad, NULL, NULL, 0);
    au_expect(&r, 404, "not_found");
    /* Without a signature: the owner's token works, another user's does not. */
    snprintf(bad, sizeof(bad), "%s", url);
    *strchr(bad, '?') = '\0';
    r = ts_http("GET", bad, h, NULL, 0);
    au_expect(&r, 200, NULL);
    char other_auth[1024];
    snprintf(other_auth, sizeof(other_auth), "Authorization: Bearer %s", other);
    const char *h2[] = {other_auth, NULL};
    r = ts_http("GET", bad, h2, NULL, 0);
    au_expect(&r, 404, "not_found");
    /* A path that leaves the storage root is never served. */
    snprintf(bad, sizeof(bad), "%s/v1/files/..%%2F..%%2Fetc/passwd/x?exp=9999999999&sig=0", base);
    r = ts_http("GET", bad, h, NULL, 0);
    au_expect(&r, 404, "not_found");
    json_decref(gen);
}

/* POSTs a generation as `t`; returns the status and fills `id` on 202. */
static long post_generation(const char *t, const char *body, char id[37], char *resp, size_t n)
{
    char url[256], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/generations", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    ts_http_t r = ts_http("POST", url, h, body, strlen(body));
    long status = r.status;
    snprintf(resp, n, "%s", r.body);
    const char *p = strstr(r.body, "\"id\":\"");
    if (p && id)
        snprintf(id, 37, "%s", p + 6);
    ts_http_dispose(&r);
    return status;
}

/* Follows a generation's events to its end; returns the terminal event's name line. */
static int ends_succeeded(const char *t, const char *id)
{
    char url[256], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/generations/%s/events", base, id);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t);
    const char *h[] = {auth, NULL};
    ts_http_t r = ts_http("GET", url, h, NULL, 0);
    int ok = strstr(r.body, "event: succeeded") != NULL;
    ts_http_dispose(&r);
    return ok;
}

/* GET `path` on the api at `at` ("http://127.0.0.1:PORT") with `t`'s token (NULL: none). */
static long get_status(const char *at, const char *path, const char *t)
{
    char url[1400], auth[1024];
    snprintf(url, sizeof(url), "%s%s", at, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t ? t : "");
    const char *h[] = {auth, NULL};
    ts_http_t r = ts_http("GET", url, t ? h : NULL, NULL, 0);
    long status = r.status;
    ts_http_dispose(&r);
    return status;
}

/* GET `path` on the api at `at` as `t`: 200 and its JSON body. */
static json_t *get_json_at(const char *at, const char *t, const char *path)
{
    char url[1400], auth[1024];
    snprintf(url, sizeof(url), "%s%s", at, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t);
    const char *h[] = {auth, NULL};
    ts_http_t r = ts_http("GET", url, h, NULL, 0);
    if (r.status != 200)
        fail_msg("GET %s: %ld %s", url, r.status, r.body ? r.body : "");
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    ts_http_dispose(&r);
    return j;
}

/*
 * Rotating FARM_JWT_SECRET and FARM_FILE_SECRET (docs/operations.md, "Rotating secrets"):
 * an api given the new secrets and the old ones as *_PREVIOUS accepts tokens and file URLs
 * signed with either, signs its own URLs with the new one only, and still refuses what
 * neither signed. A *_PREVIOUS that is short or the current secret is refused at start.
 */
static void test_secrets_can_be_rotated(void **state)
{
    (void)state;
    char id[37], resp[2048], path[1200];
    const char *body = "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}";
    assert_int_equal(post_generation(tok, body, id, resp, sizeof(resp)), 202);
    assert_true(ends_succeeded(tok, id));
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    json_t *gen = get_json_at(base, tok, path);
    char old_url[1024];
    snprintf(old_url, sizeof(old_url), "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(gen, "outputs"), 0), "url")));
    json_decref(gen);

    const char *new_jwt = "files-jwt-secret-NEW-0123456789",
               *new_file = "file-secret-NEW-0123456789";
    char s1[96], s2[96], s3[96], s4[96];
    snprintf(s1, sizeof(s1), "FARM_JWT_SECRET=%s", new_jwt);
    snprintf(s2, sizeof(s2), "FARM_JWT_SECRET_PREVIOUS=%s", SECRET);
    snprintf(s3, sizeof(s3), "FARM_FILE_SECRET=%s", new_file);
    snprintf(s4, sizeof(s4), "FARM_FILE_SECRET_PREVIOUS=%s", FILE_SECRET);
    int port = ts_free_port();
    char rotated[64], url[128];
    snprintf(rotated, sizeof(rotated), "http://127.0.0.1:%d", port);
    const char *const both[] = {s1, s2, s3, s4, NULL};
    pid_t api2 = spawn_with("FARM_TEST_API_BIN", port, both, "api-rotated.log");
    snprintf(url, sizeof(url), "%s/readyz", rotated);
    assert_true(ts_wait_http(url, 200, NULL, 20));

    char user[37];
    gf_uuid4(user);
    api_claims_t c = {.sub = user, .plan = "pro", .ttl_s = 3600};
    char *tok_new = api_token_issue(new_jwt, &c, NULL);
    char *tok_other = api_token_issue("files-jwt-secret-OTHER-012345", &c, NULL);
    assert_int_equal(get_status(rotated, "/v1/credits", tok), 200);       /* the old secret's */
    assert_int_equal(get_status(rotated, "/v1/credits", tok_new), 200);   /* the new one's */
    assert_int_equal(get_status(rotated, "/v1/credits", tok_other), 401); /* neither */
    assert_int_equal(get_status(base, "/v1/credits", tok_new), 401);      /* not before */
    /* A URL signed with the old file secret loads; one this api signs uses the new one. */
    assert_int_equal(get_status(rotated, old_url, NULL), 200);
    gen = get_json_at(rotated, tok, path);
    const char *new_url = json_string_value(
        json_object_get(json_array_get(json_object_get(gen, "outputs"), 0), "url"));
    assert_non_null(new_url);
    assert_int_equal(get_status(rotated, new_url, NULL), 200);
    assert_int_equal(get_status(base, new_url, NULL), 404); /* the old api knows only the old */
    /* Signed with neither: refused. */
    char forged[1200], sig[65];
    snprintf(forged, sizeof(forged), "%s", old_url);
    char *q = strchr(forged, '?');
    long exp = strtol(strstr(forged, "exp=") + 4, NULL, 10);
    *q = '\0';
    img_file_sig("file-secret-OTHER-0123456789", forged + strlen("/v1/files/"), exp, sig);
    snprintf(q, sizeof(forged) - (size_t)(q - forged), "?exp=%ld&sig=%s", exp, sig);
    assert_int_equal(get_status(rotated, forged, NULL), 404);
    json_decref(gen);
    free(tok_new);
    free(tok_other);
    assert_int_equal(ts_stop(api2, SIGTERM, 15), 0);

    /* A second secret that is short, or the current one: exit 2 at start. */
    const char *const bad[][3] = {
        {s1, "FARM_JWT_SECRET_PREVIOUS=short", NULL},
        {s3, "FARM_FILE_SECRET_PREVIOUS=file-secret-NEW-0123456789", NULL}};
    for (int i = 0; i < 2; i++) {
        pid_t p = spawn_with("FARM_TEST_API_BIN", ts_free_port(), bad[i], "api-bad-secret.log");
        assert_int_equal(ts_stop(p, 0, 15), 2);
    }
}

/* POSTs `body` as `t` with Idempotency-Key `key`; returns the status, `resp` the body. */
static long post_keyed(const char *t, const char *key, const char *body, char *resp, size_t n)
{
    char url[256], auth[1024], idem[160];
    snprintf(url, sizeof(url), "%s/v1/generations", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t);
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key);
    const char *h[] = {auth, idem, "Content-Type: application/json", NULL};
    ts_http_t r = ts_http("POST", url, h, body, strlen(body));
    long status = r.status;
    snprintf(resp, n, "%s", r.body);
    ts_http_dispose(&r);
    return status;
}

/*
 * The key decides before the references (API.md: the same key within 24 h
 * answers the first generation, another body 409): an upload the first
 * request named and that was deleted since does not turn its replay into 404.
 */
static void test_a_replay_outlives_the_upload_it_named(void **state)
{
    (void)state;
    char sub[37];
    gf_uuid4(sub);
    api_claims_t claims = {.sub = sub, .plan = "pro", .ttl_s = 3600};
    char *mine = api_token_issue(SECRET, &claims, NULL); /* a fresh upload quota */
    size_t len;
    void *png = make_image(64, 64, ".png", 0, &len);
    ts_http_t r = post_image("image/png", png, len, mine);
    g_free(png);
    assert_int_equal(r.status, 201);
    char upload[37], path[256], body[512], other_body[512], resp[4096], gen[37];
    snprintf(upload, sizeof(upload), "%s", strstr(r.body, "\"id\":\"") + 6);
    ts_http_dispose(&r);
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"kept\",\"width\":256,\"height\":256,"
             "\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    assert_int_equal(post_keyed(mine, "replay-after-delete", body, resp, sizeof(resp)), 202);
    snprintf(gen, sizeof(gen), "%s", strstr(resp, "\"id\":\"") + 6);
    char auth[1024];
    snprintf(path, sizeof(path), "%s/v1/uploads/%s", base, upload);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", mine);
    r = ts_http("DELETE", path, (const char *[]){auth, NULL}, NULL, 0);
    assert_int_equal(r.status, 204);
    assert_null(strcasestr(r.headers, "Content-Length:")); /* RFC 9110 8.6: never on a 204 */
    ts_http_dispose(&r);
    assert_int_equal(post_keyed(mine, "replay-after-delete", body, resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, gen));
    snprintf(other_body, sizeof(other_body),
             "{\"kind\":\"avatar\",\"prompt\":\"changed\",\"width\":256,\"height\":256,"
             "\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    assert_int_equal(post_keyed(mine, "replay-after-delete", other_body, resp, sizeof(resp)), 409);
    assert_non_null(strstr(resp, "\"code\":\"idempotency_conflict\""));
    /* A new key meets the deleted upload. */
    assert_int_equal(post_keyed(mine, "new-after-delete", body, resp, sizeof(resp)), 404);
    assert_non_null(strstr(resp, "\"field\":\"identity\""));
    assert_true(ends_succeeded(mine, gen));
    free(mine);
}

static void test_references_must_be_the_callers_own(void **state)
{
    (void)state;
    size_t len;
    void *png = make_image(64, 64, ".png", 0, &len);
    ts_http_t r = post_image("image/png", png, len, tok);
    g_free(png);
    assert_int_equal(r.status, 201);
    char upload[37];
    snprintf(upload, sizeof(upload), "%s", strstr(r.body, "\"id\":\"") + 6);
    ts_http_dispose(&r);
    char body[512], resp[4096], gen[37], gen2[37];
    /* The owner's upload as identity and as a pose map: accepted and generated. */
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"me\",\"width\":256,\"height\":256,"
             "\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    assert_int_equal(post_generation(tok, body, gen, resp, sizeof(resp)), 202);
    assert_true(ends_succeeded(tok, gen));
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"me\",\"width\":256,\"height\":256,"
             "\"poses\":[{\"upload_id\":\"%s\"}]}",
             upload);
    assert_int_equal(post_generation(tok, body, gen2, resp, sizeof(resp)), 202);
    assert_true(ends_succeeded(tok, gen2));
    /* Another user cannot use them: 404, as if they did not exist. */
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"not me\",\"identity\":{\"upload_id\":\"%s\"}}",
             upload);
    assert_int_equal(post_generation(other, body, NULL, resp, sizeof(resp)), 404);
    assert_non_null(strstr(resp, "\"field\":\"identity\""));
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"not me\",\"identity\":{\"generation_id\":"
             "\"%s\",\"index\":0}}",
             gen);
    assert_int_equal(post_generation(other, body, NULL, resp, sizeof(resp)), 404);
    assert_int_equal(post_generation(tok, body, NULL, resp, sizeof(resp)), 202);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"not me\",\"poses\":[{\"upload_id\":\"%s\"}]}",
             upload);
    assert_int_equal(post_generation(other, body, NULL, resp, sizeof(resp)), 404);
    assert_non_null(strstr(resp, "\"field\":\"poses\""));
}

/* Files in `dir` (0 when it does not exist). */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A new user with a token, a small PNG to upload, and where its uploads go. */
typedef struct {
    char user[37], dir[700];
    char *token;
    void *png;
    size_t len;
} new_uploader_t;

static void new_uploader(new_uploader_t *u)
{
    gf_uuid4(u->user);
    api_claims_t c = {.sub = u->user, .plan = "pro", .ttl_s = 3600};
    u->token = api_token_issue(SECRET, &c, NULL);
    u->png = make_image(32, 32, ".png", 0, &u->len);
    snprintf(u->dir, sizeof(u->dir), "%s/storage/%s/uploads", ts_env("FARM_TEST_TMPDIR"), u->user);
}

static void new_uploader_dispose(new_uploader_t *u)
{
    g_free(u->png);
    free(u->token);
}

/* Postgres down: the upload is answered 503 and its stored file goes (its id was never given). */
static void test_an_upload_that_cannot_be_recorded_leaves_no_file(void **state)
{
    (void)state;
    new_uploader_t u;
    new_uploader(&u);
    const char *t = u.token, *dir = u.dir;
    void *png = u.png;
    size_t len = u.len;
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_STOP\" >/dev/null 2>&1"), 0);
    ts_http_t r = post_image("image/png", png, len, t);
    long status = r.status;
    ts_http_dispose(&r);
    /* The file is removed on the thread pool after the answer. */
    int files = count_files(dir);
    for (int i = 0; i < 50 && files > 0; i++) {
        usleep(100 * 1000);
        files = count_files(dir);
    }
    assert_int_equal(ts_sh("sh -c \"$FARM_TEST_PG_START\" >/dev/null 2>&1"), 0);
    assert_int_equal(status, 503);
    assert_int_equal(files, 0);
    /* And with Postgres back, the same upload is stored and recorded. */
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", base);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    r = post_image("image/png", png, len, t);
    au_expect(&r, 201, "\"format\":\"png\"");
    assert_int_equal(count_files(dir), 1);
    new_uploader_dispose(&u);
}

/*
 * A record that does not answer in time: 503, but the stored file stays. The
 * INSERT may still commit after the answer, and a row must never name a file
 * that is gone (an orphan file is the lesser harm).
 */
/* Rows of `user` in uploads. */
static int count_upload_rows(const char *user)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "exit $(psql -XAt \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM uploads WHERE "
             "user_id = '%s'\")",
             user);
    return ts_sh("%s", cmd);
}

/*
 * An upload whose INSERT waits on a lock held `lock_s` seconds, on an api of
 * its own whose calls give up waiting for a connection after 300 ms and
 * whose statements Postgres cancels after `statement_ms`. Returns the answer.
 */
static long upload_behind_a_lock(const new_uploader_t *u, const char *statement_ms, int lock_s)
{
    char url[128], saved[64];
    int port = ts_free_port();
    pid_t api2 = spawn2("FARM_TEST_API_BIN", port, "FARM_DB_CALL_TIMEOUT_MS=300", statement_ms,
                        "api-timeout.log");
    snprintf(saved, sizeof(saved), "%s", base);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "%s/readyz", base);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    /* The user exists first, so only the upload's INSERT waits. */
    snprintf(url, sizeof(url), "%s/v1/credits", base);
    char auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", u->token);
    const char *h[] = {auth, NULL};
    ts_http_t r = ts_http("GET", url, h, NULL, 0);
    au_expect(&r, 200, NULL);
    /* Another session holds the uploads table. */
    assert_int_equal(ts_sh("psql -X -q \"$FARM_DATABASE_URL\" -c 'BEGIN' "
                           "-c 'LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE' "
                           "-c 'SELECT pg_sleep(%d)' -c 'COMMIT' >/dev/null 2>&1 &",
                           lock_s),
                     0);
    assert_int_equal(
        ts_sh("for i in $(seq 100); do [ \"$(psql -XAt \"$FARM_DATABASE_URL\" -c "
              "\"SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
              "WHERE c.relname = 'uploads' AND l.mode = 'AccessExclusiveLock' AND "
              "l.granted\")\" = 1 ] && exit 0; sleep 0.05; done; exit 1"),
        0);
    r = post_image("image/png", u->png, u->len, u->token);
    long status = r.status;
    ts_http_dispose(&r);
    sleep((unsigned)lock_s + 1); /* the lock is gone, and whatever was on its way has landed */
    snprintf(base, sizeof(base), "%s", saved);
    assert_int_equal(ts_stop(api2, SIGTERM, 15), 0);
    return status;
}

/*
 * A new uploader's upload behind a lock (upload_behind_a_lock): answered `status`, leaving
 * `kept` files and upload rows.
 */
static void assert_upload_behind_a_lock(const char *statement_ms, int lock_s, long status, int kept)
{
    new_uploader_t u;
    new_uploader(&u);
    assert_int_equal(upload_behind_a_lock(&u, statement_ms, lock_s), status);
    assert_int_equal(count_files(u.dir), kept);
    assert_int_equal(count_upload_rows(u.user), kept);
    new_uploader_dispose(&u);
}

/*
 * A statement already sent is not abandoned when the call's own timer runs
 * out: Postgres decides. Here the lock goes before Postgres' statement
 * timeout, so the upload is recorded and answered 201 - never a 503 for an
 * upload that exists.
 */
static void test_an_upload_whose_record_waits_is_recorded(void **state)
{
    (void)state;
    assert_upload_behind_a_lock("FARM_DB_STATEMENT_TIMEOUT_MS=5000", 2, 201, 1);
}

/* Past Postgres' statement timeout the INSERT is rolled back: 503, and no row and no file. */
static void test_an_upload_past_the_statement_timeout_leaves_nothing(void **state)
{
    (void)state;
    assert_upload_behind_a_lock("FARM_DB_STATEMENT_TIMEOUT_MS=1000", 3, 503, 0);
}

/* A noise JPEG of w x h at quality q: small at a low q, several times larger once the
 * upload is normalised (re-encoded at the farm's quality). */
static void *make_noise_jpeg(int w, int h, int q, size_t *len)
{
    VipsImage *img = NULL, *u8 = NULL;
    void *buf = NULL;
    assert_int_equal(vips_gaussnoise(&img, w, h, "mean", 128.0, "sigma", 60.0, NULL), 0);
    assert_int_equal(vips_cast_uchar(img, &u8, NULL), 0);
    assert_int_equal(vips_jpegsave_buffer(u8, &buf, len, "Q", q, NULL), 0);
    g_object_unref(img);
    g_object_unref(u8);
    return buf;
}

/*
 * FARM_STORAGE_MAX_OBJECT_BYTES bounds what storage reads back: an upload over it once
 * normalised is 413, with no file and no row, never a 201 whose file is never served. An
 * api of its own with the bound at 64 KiB, and uploads taken up to that (a larger upload
 * limit is refused at start): a 400 x 400 noise JPEG at quality 20 (about 35 KB) is
 * about 90 KB once normalised.
 */
static void test_an_upload_over_the_storage_object_bound_is_refused(void **state)
{
    (void)state;
    new_uploader_t u;
    new_uploader(&u);
    size_t len;
    void *noise = make_noise_jpeg(400, 400, 20, &len);
    assert_true(len < 65536);
    char url[128], saved[64];
    int port = ts_free_port();
    pid_t api2 = spawn2("FARM_TEST_API_BIN", port, "FARM_STORAGE_MAX_OBJECT_BYTES=65536",
                        "FARM_UPLOAD_MAX_BYTES=65536", "api-object-bound.log");
    snprintf(saved, sizeof(saved), "%s", base);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "%s/readyz", base);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    ts_http_t small = post_image("image/png", u.png, u.len, u.token);
    ts_http_t big = post_image("image/jpeg", noise, len, u.token);
    snprintf(base, sizeof(base), "%s", saved);
    assert_int_equal(ts_stop(api2, SIGTERM, 15), 0);
    au_expect(&small, 201, "\"format\":\"png\"");
    au_expect_error(&big, 413, "payload_too_large", NULL);
    assert_int_equal(count_files(u.dir), 1);
    assert_int_equal(count_upload_rows(u.user), 1);
    g_free(noise);
    new_uploader_dispose(&u);
}

/*
 * SIGTERM while uploads are still being decoded on the thread pool: the api
 * stops (FARM_SHUTDOWN_S=0 cuts their connections at once) and exits 0. A decode
 * that finishes after storage has closed answers nothing and stores nothing;
 * it must not reach the closed client (it did: a segfault, 139).
 */
static void test_sigterm_while_uploads_decode_exits_cleanly(void **state)
{
    (void)state;
    new_uploader_t u;
    new_uploader(&u);
    size_t len;
    void *noise = make_noise_jpeg(600, 600, 20, &len);
    char path[700];
    snprintf(path, sizeof(path), "%s/decode-at-stop.jpg", ts_env("FARM_TEST_TMPDIR"));
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(noise, 1, len, fp), len);
    fclose(fp);
    const char *settings[] = {"FARM_SHUTDOWN_S=0", "UV_THREADPOOL_SIZE=2", NULL};
    int port = ts_free_port();
    pid_t api2 = spawn_with("FARM_TEST_API_BIN", port, settings, "api-decode-at-stop.log");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    /* 30 uploads at once: one decodes at a time, the rest wait for it. */
    assert_int_equal(ts_sh("for i in $(seq 30); do curl -s -o /dev/null -m 20 "
                           "-H 'Authorization: Bearer %s' -H 'Content-Type: image/jpeg' "
                           "--data-binary @'%s' http://127.0.0.1:%d/v1/uploads & done; "
                           "sleep 0.3",
                           u.token, path, port),
                     0);
    assert_int_equal(ts_stop(api2, SIGTERM, 15), 0);
    ts_sh("wait; sleep 0.2");
    unlink(path);
    g_free(noise);
    new_uploader_dispose(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uploads_are_checked_by_their_bytes),
        cmocka_unit_test(test_presets_are_served),
        cmocka_unit_test(test_signed_urls_work_and_nothing_else_does),
        cmocka_unit_test(test_secrets_can_be_rotated),
        cmocka_unit_test(test_references_must_be_the_callers_own),
        cmocka_unit_test(test_a_replay_outlives_the_upload_it_named),
        cmocka_unit_test(test_an_upload_that_cannot_be_recorded_leaves_no_file),
        cmocka_unit_test(test_an_upload_whose_record_waits_is_recorded),
        cmocka_unit_test(test_an_upload_past_the_statement_timeout_leaves_nothing),
        cmocka_unit_test(test_an_upload_over_the_storage_object_bound_is_refused),
        cmocka_unit_test(test_sigterm_while_uploads_decode_exits_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
