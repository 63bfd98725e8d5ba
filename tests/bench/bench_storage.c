/*
 * bench_storage IMAGES IN_FLIGHT: the load generator of `scripts/bench
 * storage` (not a test). Makes one image's four avatar variants (full WebP,
 * 512, 256, thumb) from a 1024x1024 pose map with imaging, then, through the
 * storage backend the environment configures (FARM_STORAGE, FARM_S3_*,
 * FARM_STORAGE_DIR), puts the four under a new generation's keys and gets
 * them back, IMAGES times, IN_FLIGHT images at once. Prints "<images/s>"
 * (1 decimal) on stdout; exits 1 on any failed operation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "imaging.h"
#include "storage.h"

extern char **environ;

static storage_t *st;
static img_variants vars;
static int images, limit, started, finished, failed, in_flight;
static char user[37];

typedef struct {
    char gen[37];
    int pending;
    int phase; /* 0 putting, 1 getting */
} one_t;

static void start_one(void);

static void key_of(const one_t *o, size_t i, char key[IMG_KEY_MAX])
{
    img_storage_key(user, o->gen, 0, vars.items[i].name, vars.items[i].format, key, NULL);
}

static void one_done(one_t *o)
{
    free(o);
    finished++;
    in_flight--;
    start_one();
}

static void on_got(storage_t *s, const gf_err_t *err, storage_object_t *obj, void *data)
{
    (void)s;
    (void)obj;
    one_t *o = data;
    if (err->code != 0) {
        fprintf(stderr, "bench_storage: get: %s\n", err->msg);
        failed++;
    }
    if (--o->pending == 0)
        one_done(o);
}

static void on_put(storage_t *s, const gf_err_t *err, void *data)
{
    (void)s;
    one_t *o = data;
    if (err->code != 0) {
        fprintf(stderr, "bench_storage: put: %s\n", err->msg);
        failed++;
    }
    if (--o->pending > 0)
        return;
    o->phase = 1;
    o->pending = (int)vars.count;
    for (size_t i = 0; i < vars.count; i++) {
        char key[IMG_KEY_MAX];
        key_of(o, i, key);
        if (storage_get(st, key, on_got, o) < 0) {
            failed++;
            o->pending--;
        }
    }
    if (o->pending == 0)
        one_done(o);
}

static void start_one(void)
{
    while (started < images && in_flight < limit) {
        one_t *o = calloc(1, sizeof(*o));
        gf_uuid4(o->gen);
        started++;
        in_flight++;
        o->pending = (int)vars.count;
        for (size_t i = 0; i < vars.count; i++) {
            char key[IMG_KEY_MAX];
            key_of(o, i, key);
            if (storage_put(st, key, vars.items[i].data.data, vars.items[i].data.len,
                            img_format_mime(vars.items[i].format), on_put, o) < 0) {
                failed++;
                o->pending--;
            }
        }
    }
}

static void on_closed(void *data)
{
    (void)data;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_storage IMAGES IN_FLIGHT\n");
        return 2;
    }
    images = atoi(argv[1]);
    limit = atoi(argv[2]);
    if (images < 1 || limit < 1) {
        fprintf(stderr, "bench_storage: IMAGES and IN_FLIGHT must be positive\n");
        return 2;
    }
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    if (cfg == NULL || img_init(cfg, &err) < 0) {
        fprintf(stderr, "bench_storage: %s\n", err.msg);
        return 1;
    }
    img_keypoint kp[IMG_POSE_KEYPOINTS];
    for (int i = 0; i < IMG_POSE_KEYPOINTS; i++)
        kp[i] = (img_keypoint){0.2f + 0.03f * (float)i, 0.1f + 0.04f * (float)i, 1.0f};
    img_buf png = {0};
    img_post_opts o = {.expect_width = 1024, .expect_height = 1024};
    if (img_pose_render(kp, 1024, 1024, &png, &err) < 0 ||
        img_variants_make(png.data, png.len, &o, &vars, &err) < 0) {
        fprintf(stderr, "bench_storage: %s\n", err.msg);
        return 1;
    }
    img_buf_dispose(&png);
    gf_uuid4(user);
    uv_loop_t *loop = uv_default_loop();
    st = storage_new(loop, cfg, NULL, &err);
    if (st == NULL) {
        fprintf(stderr, "bench_storage: %s\n", err.msg);
        return 1;
    }
    uint64_t t0 = uv_hrtime();
    start_one();
    while (finished < images)
        uv_run(loop, UV_RUN_ONCE);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    storage_close(st, on_closed, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    img_variants_dispose(&vars);
    img_shutdown();
    gf_cfg_free(cfg);
    if (failed) {
        fprintf(stderr, "bench_storage: %d operations failed\n", failed);
        return 1;
    }
    printf("%.1f\n", images / secs);
    return 0;
}
