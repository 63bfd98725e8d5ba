/*
 * tests/bench/bench_imaging.c - the load generator of `scripts/bench imaging`.
 *
 *   bench_imaging IMAGE THREADS SECONDS
 *
 * Runs the avatar post-process (img_variants_make: full + 512 + 256 + thumb)
 * on IMAGE over and over from THREADS threads for SECONDS, the way the
 * worker runs it on the libuv pool: one pipeline per thread, vips' own
 * concurrency from FARM_VIPS_CONCURRENCY (default 1), malloc set up by
 * img_keep_heap(). Prints one line,
 * "<images> <elapsed seconds>", on stdout; the script turns it into img/s.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "imaging.h"

extern char **environ;

typedef struct {
    const unsigned char *data;
    size_t len;
    int width, height;
    double deadline;
    atomic_long done;
    atomic_int failed;
} bench_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    bench_t *b = arg;
    img_post_opts o = {.expect_width = b->width, .expect_height = b->height};

    while (now() < b->deadline && !atomic_load(&b->failed)) {
        img_variants v;
        gf_err_t err = {0};
        if (img_variants_make(b->data, b->len, &o, &v, &err) != 0) {
            fprintf(stderr, "bench_imaging: %s\n", err.msg);
            atomic_store(&b->failed, 1);
        } else {
            atomic_fetch_add(&b->done, 1);
        }
        img_variants_dispose(&v);
    }
    return NULL;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    buf = gf_xmalloc((size_t)n);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    bench_t b = {0};
    gf_err_t err = {0};
    gf_config_t *cfg;
    img_info info;
    img_limits lim = {.max_bytes = (size_t)1 << 30, .max_pixels = (uint64_t)1 << 40};
    int threads;
    double secs, start;

    if (argc != 4 || (threads = atoi(argv[2])) < 1 || (secs = atof(argv[3])) <= 0) {
        fprintf(stderr, "usage: bench_imaging IMAGE THREADS SECONDS\n");
        return 2;
    }
    unsigned char *data = read_file(argv[1], &b.len);
    if (data == NULL) {
        fprintf(stderr, "bench_imaging: cannot read %s\n", argv[1]);
        return 1;
    }
    cfg = gf_cfg_load(environ, &err);
    if (cfg == NULL || img_init(cfg, &err) != 0 ||
        img_upload_probe(data, b.len, &lim, &info, &err) != 0) {
        fprintf(stderr, "bench_imaging: %s\n", err.msg);
        return 1;
    }
    gf_cfg_free(cfg);
    img_keep_heap(); /* as the worker does */
    b.data = data;
    b.width = info.width;
    b.height = info.height;
    pthread_t *t = gf_xcalloc((size_t)threads, sizeof(*t));
    start = now();
    b.deadline = start + secs;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, run, &b) != 0) {
            fprintf(stderr, "bench_imaging: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("%ld %.3f\n", atomic_load(&b.done), now() - start);
    free(t);
    free(data);
    img_shutdown();
    return atomic_load(&b.failed) ? 1 : 0;
}
