/*
 * tests/integration/providers/images.c - the fake provider's images are the
 * compressed files real providers send, and the adapters get them whole: HF
 * answers a JPEG (whatever the Accept), BFL, fal and Replicate serve the
 * output_format the farm asks for (png) as a zlib-deflated PNG at zlib's
 * default level, and a provider's own default (Replicate's webp) when none is
 * asked. libvips, an independent decoder, reads each at the requested size,
 * and each is a picture, not a flat colour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "providers_util.h"
#include "support.h"

static int reset(void **state)
{
    return pt_suite_reset(state, "{\"latency_ms\":0,\"hf_format\":\"jpeg\",\"polls\":1}");
}

/* Decodes `b` with libvips: its size and the standard deviation of its pixels. */
static void vips_decode(const unsigned char *b, size_t n, int *w, int *h, double *sd)
{
    VipsImage *im = vips_image_new_from_buffer(b, n, "", "fail", TRUE, NULL);
    if (im == NULL)
        fail_msg("libvips cannot decode: %s", vips_error_buffer());
    *w = vips_image_get_width(im);
    *h = vips_image_get_height(im);
    if (vips_deviate(im, sd, NULL) != 0)
        fail_msg("vips_deviate: %s", vips_error_buffer());
    g_object_unref(im);
}

static unsigned be32(const unsigned char *p)
{
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

/* The sum of a PNG's IDAT lengths; the first IDAT's first two bytes (the zlib header). */
static size_t png_idat(const unsigned char *b, size_t n, unsigned char zhdr[2])
{
    size_t total = 0;
    zhdr[0] = zhdr[1] = 0;
    for (size_t p = 8; p + 12 <= n;) {
        size_t len = be32(b + p);
        if (memcmp(b + p + 4, "IDAT", 4) == 0) {
            if (total == 0 && len >= 2)
                memcpy(zhdr, b + p + 8, 2);
            total += len;
        }
        p += 12 + len;
    }
    return total;
}

static void run(const char *provider, const char *prompt, int w, int h, pt_result_t *r)
{
    gf_config_t *cfg = pt_config(&fake, provider, NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    assert_non_null(p);
    provider_req_t q = pt_req(prompt, w, h);
    pt_run(&loop, p, &q, r);
    pt_close(&loop, p, cfg);
    if (r->status != 0)
        fail_msg("%s: status %d: %s", provider, r->status, r->err.err.msg);
}

static void test_hf_answers_a_jpeg_of_the_requested_size(void **state)
{
    (void)state;
    pt_result_t r = {0};
    run("hf", "a fox in the snow", 1024, 768, &r);
    assert_string_equal(r.mime, "image/jpeg");
    assert_memory_equal(r.img, "\xff\xd8\xff", 3);
    int w, h;
    double sd;
    vips_decode(r.img, r.len, &w, &h, &sd);
    assert_int_equal(w, 1024);
    assert_int_equal(h, 768);
    assert_true(sd > 10); /* a picture, not a flat colour */
    /* A JPEG's size: far below the 2.3 MB of raw RGB, far above a flat colour's few KB. */
    assert_true(r.len > 30000 && r.len < 1000000);
    pt_result_dispose(&r);
}

static void check_png(const pt_result_t *r, int want_w, int want_h)
{
    assert_string_equal(r->mime, "image/png");
    assert_memory_equal(r->img, "\x89PNG\r\n\x1a\n", 8);
    unsigned char zhdr[2];
    size_t idat = png_idat(r->img, r->len, zhdr), raw = ((size_t)want_w * 3 + 1) * want_h;
    /* Deflated, not stored: well below the raw rows, and zlib's header says so (0x78, then
     * FLEVEL 2, the default level: 0x9c). Stored blocks would be 5 bytes per 64 KiB above raw. */
    assert_true(idat < raw * 3 / 4);
    assert_int_equal(zhdr[0], 0x78);
    assert_int_equal(zhdr[1], 0x9c);
    int w, h;
    double sd;
    vips_decode(r->img, r->len, &w, &h, &sd);
    assert_int_equal(w, want_w);
    assert_int_equal(h, want_h);
    assert_true(sd > 10);
}

/* The farm asks BFL, fal and Replicate for png: each serves a deflated PNG. */
static void test_png_answers_are_zlib_compressed(void **state)
{
    (void)state;
    static const char *const providers[] = {"bfl", "fal", "replicate"};
    for (size_t i = 0; i < 3; i++) {
        pt_result_t r = {0};
        run(providers[i], "a lighthouse at dusk", 512, 384, &r);
        check_png(&r, 512, 384);
        pt_result_dispose(&r);
    }
}

/* The same call gets the same bytes; another seed may get another picture of the pool. */
static void test_images_are_deterministic_and_varied(void **state)
{
    (void)state;
    pt_result_t a = {0}, b = {0};
    run("hf", "a quiet harbour", 256, 256, &a);
    run("hf", "a quiet harbour", 256, 256, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.img, b.img, a.len);
    int differs = 0;
    for (int i = 0; i < 16 && !differs; i++) {
        char prompt[64];
        snprintf(prompt, sizeof(prompt), "a quiet harbour %d", i);
        pt_result_t c = {0};
        run("hf", prompt, 256, 256, &c);
        differs = c.len != a.len || memcmp(c.img, a.img, a.len) != 0;
        pt_result_dispose(&c);
    }
    assert_true(differs);
    pt_result_dispose(&a);
    pt_result_dispose(&b);
}

/* A raw POST to the fake's Replicate: the answer's output URL, or NULL; the status into *st. */
static char *replicate_output(const char *input_extra, long *st)
{
    char url[256], body[512];
    snprintf(url, sizeof(url), "%s/replicate/v1/models/o/m/predictions", fake.base);
    snprintf(body, sizeof(body),
             "{\"input\":{\"prompt\":\"a kite\",\"aspect_ratio\":\"custom\",\"width\":128,"
             "\"height\":128%s}}",
             input_extra);
    const char *hdr[] = {"Authorization: Bearer r8_x", "Content-Type: application/json",
                         "Prefer: wait=5", NULL};
    ts_http_t r = ts_http("POST", url, hdr, body, strlen(body));
    *st = r.status;
    char *out = NULL;
    const char *at = r.body ? strstr(r.body, "\"output\":[\"") : NULL;
    if (at) {
        at += strlen("\"output\":[\"");
        out = strndup(at, strcspn(at, "\""));
    }
    ts_http_dispose(&r);
    return out;
}

/* Replicate's default is webp, jpg and png when asked; any other output_format is refused. */
static void test_replicate_output_format(void **state)
{
    (void)state;
    static const struct {
        const char *extra, *ext, *mime, *magic;
    } rows[] = {
        {"", ".webp", "image/webp", "RIFF"},
        {",\"output_format\":\"jpg\"", ".jpg", "image/jpeg", "\xff\xd8\xff"},
        {",\"output_format\":\"png\"", ".png", "image/png", "\x89PNG"},
    };
    for (size_t i = 0; i < 3; i++) {
        long st;
        char *out = replicate_output(rows[i].extra, &st);
        assert_non_null(out);
        assert_non_null(strstr(out, rows[i].ext));
        ts_http_t img = ts_http("GET", out, NULL, NULL, 0);
        assert_int_equal(img.status, 200);
        char want[64];
        snprintf(want, sizeof(want), "content-type: %s\r\n", rows[i].mime);
        assert_non_null(strcasestr(img.headers, want));
        assert_memory_equal(img.body, rows[i].magic, strlen(rows[i].magic));
        int w, h;
        double sd;
        vips_decode((const unsigned char *)img.body, img.body_len, &w, &h, &sd);
        assert_int_equal(w, 128);
        assert_int_equal(h, 128);
        ts_http_dispose(&img);
        free(out);
    }
    long st;
    char *out = replicate_output(",\"output_format\":\"gif\"", &st);
    assert_null(out);
    assert_int_equal(st, 422);
}

/* The image faults act on the compressed images: truncated and corrupt JPEGs are refused. */
static void test_faults_on_jpeg(void **state)
{
    (void)state;
    static const char *const markers[] = {"[[truncated]]", "[[corrupt_image]]"};
    for (size_t i = 0; i < 2; i++) {
        char prompt[64];
        snprintf(prompt, sizeof(prompt), "a broken fox %s", markers[i]);
        gf_config_t *cfg = pt_config(&fake, "hf", NULL);
        provider_t *p = provider_new(&loop, cfg, NULL, NULL);
        pt_result_t r = {0};
        provider_req_t q = pt_req(prompt, 1024, 1024);
        pt_run(&loop, p, &q, &r);
        assert_true(r.status < 0);
        assert_int_equal(r.err.code, PROVIDER_E_INVALID_OUTPUT);
        pt_result_dispose(&r);
        pt_close(&loop, p, cfg);
    }
}

int main(void)
{
    if (VIPS_INIT("providers_images"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hf_answers_a_jpeg_of_the_requested_size, reset),
        cmocka_unit_test_setup(test_png_answers_are_zlib_compressed, reset),
        cmocka_unit_test_setup(test_images_are_deterministic_and_varied, reset),
        cmocka_unit_test_setup(test_replicate_output_format, reset),
        cmocka_unit_test_setup(test_faults_on_jpeg, reset),
    };
    int rc = cmocka_run_group_tests(tests, pt_suite_setup, pt_suite_teardown);
    vips_shutdown();
    return rc;
}
