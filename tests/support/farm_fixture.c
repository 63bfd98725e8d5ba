/*
 * tests/support/farm_fixture.c - one farm for a test program (farm_fixture.h):
 * its settings, its processes started and stopped, and the checks the tests
 * on it share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "farm_fixture.h"

int ff_s3;
char ff_storage_dir[600], ff_fake_env[128];
int ff_metrics_port;
pid_t ff_api_pid, ff_worker_pid, ff_fake_pid;
char *ff_tok;
char ff_user[37];

static const ff_farm_t *ff;
static char s3_env[6][300], dir_env[700], metrics_env[64];

/* The storage settings and the farm's shared ones into `env`; how many. */
static size_t common_env(char **env)
{
    size_t n = 0;
    if (ff_s3) {
        for (size_t i = 0; i < 6; i++)
            env[n++] = s3_env[i];
    } else {
        env[n++] = dir_env;
    }
    for (size_t i = 0; ff->both && ff->both[i]; i++)
        env[n++] = (char *)ff->both[i];
    return n;
}

/* Appends the NULL-terminated `more` (may be NULL) to `env` at `n`; the new count. */
static size_t append(char **env, size_t n, const char *const *more)
{
    for (size_t i = 0; more && more[i]; i++)
        env[n++] = (char *)more[i];
    return n;
}

static pid_t start_worker(void)
{
    char *env[48];
    size_t n = common_env(env);
    env[n++] = ff_fake_env;
    env[n++] = "FARM_JWT_SECRET=" AU_SECRET;
    env[n++] = AU_FILE_SECRET_ENV;
    env[n++] = metrics_env;
    n = append(env, n, ff->worker);
    env[n] = NULL;
    return ts_spawn_farm("FARM_TEST_WORKER_BIN", env, "worker.log");
}

int ff_wants_s3(void)
{
    const char *endpoint = getenv("FARM_TEST_S3_ENDPOINT");
    return endpoint != NULL && endpoint[0] != '\0';
}

int ff_setup(const ff_farm_t *farm)
{
    ff = farm;
    ff_s3 = ff_wants_s3();
    if (ff_s3) {
        const char *endpoint = getenv("FARM_TEST_S3_ENDPOINT");
        snprintf(s3_env[0], sizeof(s3_env[0]), "FARM_STORAGE=s3");
        snprintf(s3_env[1], sizeof(s3_env[1]), "FARM_S3_ENDPOINT=%s", endpoint);
        snprintf(s3_env[2], sizeof(s3_env[2]), "FARM_S3_BUCKET=farm");
        snprintf(s3_env[3], sizeof(s3_env[3]), "FARM_S3_PREFIX=%s", farm->s3_prefix);
        snprintf(s3_env[4], sizeof(s3_env[4]), "FARM_S3_ACCESS_KEY_ID=S3RVER");
        snprintf(s3_env[5], sizeof(s3_env[5]), "FARM_S3_SECRET_ACCESS_KEY=S3RVER");
    }
    snprintf(ff_storage_dir, sizeof(ff_storage_dir), "%s/storage", ts_env("FARM_TEST_TMPDIR"));
    snprintf(dir_env, sizeof(dir_env), "FARM_STORAGE_DIR=%s", ff_storage_dir);
    ff_metrics_port = farm->metrics ? ts_free_port() : 0;
    snprintf(metrics_env, sizeof(metrics_env), "FARM_WORKER_METRICS_PORT=%d", ff_metrics_port);
    ff_fake_pid = ts_fake_start(farm->fake_latency_ms, ff_fake_env);
    if (ff_fake_env[0] == '\0')
        return -1;
    char *extra[48];
    size_t n = common_env(extra);
    n = append(extra, n, farm->api);
    extra[n] = NULL;
    ff_api_pid = au_api_start((const char *const *)extra);
    if (ff_api_pid < 0)
        return -1;
    ff_worker_pid = start_worker();
    if (ff_metrics_port > 0) {
        /* The first reading of a worker metric must find the worker listening. */
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", ff_metrics_port);
        if (!ts_wait_http(url, 200, NULL, 20))
            return -1;
    }
    ff_tok = au_token(NULL, "pro", NULL, ff_user);
    return au_grant(ff_user, 10000, farm->reason) == 0 ? 0 : -1;
}

int ff_teardown(void)
{
    int bad = ts_stop_farm(ff_worker_pid, ff_api_pid, ff_fake_pid);
    free(ff_tok);
    ff_tok = NULL;
    return bad ? -1 : 0;
}

void ff_dump_logs(int lines)
{
    ts_sh("for f in \"$FARM_TEST_TMPDIR\"/*.log; do echo \"== $f\"; tail -n %d \"$f\"; done >&2",
          lines);
}

double ff_worker_metric(const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", ff_metrics_port);
    return au_metric(url, series, 0);
}
ts_http_t ff_post_png(const char *tok, int w, int h)
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
    return r;
}

void ff_upload_png(const char *tok, int w, int h, char id[37])
{
    ts_http_t r = ff_post_png(tok, w, h);
    assert_int_equal(r.status, 201);
    au_id_of(&r, id);
    ts_http_dispose(&r);
}

void ff_output_key(json_t *o, char key[300])
{
    const char *url = json_string_value(json_object_get(o, "url"));
    assert_non_null(url);
    const char *p = strstr(url, "/v1/files/");
    assert_non_null(p);
    p += strlen("/v1/files/");
    snprintf(key, 300, "%.*s", (int)strcspn(p, "?"), p);
}

int ff_interop(const char *op, const char *key, const char *arg)
{
    return ts_sh("cd '%s/tests/s3' && FARM_S3_ENDPOINT='%s' FARM_S3_BUCKET=farm FARM_S3_PREFIX=%s "
                 "FARM_S3_ACCESS_KEY_ID=S3RVER FARM_S3_SECRET_ACCESS_KEY=S3RVER "
                 "node interop.js %s '%s' '%s' >&2",
                 ts_env("FARM_TEST_SOURCE_DIR"), ts_env("FARM_TEST_S3_ENDPOINT"), ff->s3_prefix, op,
                 key, arg ? arg : "");
}

int ff_object_present(const char *key, const char *sha)
{
    if (ff_s3)
        return ff_interop("get", key, sha) == 0;
    return ts_sh("test \"$(sha256sum < '%s/%s' | cut -c1-64)\" = '%s'", ff_storage_dir, key, sha) ==
           0;
}
