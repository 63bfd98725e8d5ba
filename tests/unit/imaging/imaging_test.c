/*
 * tests/unit/imaging/imaging_test.c - helpers of the imaging tests.
 */
#include "imaging_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int imgt_setup(void **state)
{
    char *envp[] = {NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(envp, &err);

    (void)state;
    if (cfg == NULL)
        return -1;
    int rc = img_init(cfg, &err);
    gf_cfg_free(cfg);
    return rc;
}

int imgt_teardown(void **state)
{
    (void)state;
    img_shutdown();
    return 0;
}

unsigned char *imgt_encode(VipsImage *im, img_format fmt, size_t *len)
{
    void *buf = NULL;
    int rc = -1;

    switch (fmt) {
    case IMG_FORMAT_PNG:
        rc = vips_pngsave_buffer(im, &buf, len, NULL);
        break;
    case IMG_FORMAT_JPEG:
        rc = vips_jpegsave_buffer(im, &buf, len, "Q", 90, NULL);
        break;
    case IMG_FORMAT_WEBP:
        rc = vips_webpsave_buffer(im, &buf, len, "Q", 90, NULL);
        break;
    case IMG_FORMAT_NONE:
        break;
    }
    assert_int_equal(rc, 0);
    return buf;
}

unsigned char *imgt_picture(int w, int h, img_format fmt, size_t *len)
{
    unsigned char *px = malloc((size_t)w * h * 3);
    double cx = w * 0.7, cy = h * 0.35, r = (w < h ? w : h) * 0.12;

    assert_non_null(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = px + ((size_t)y * w + x) * 3;
            int in = hypot(x - cx, y - cy) < r;
            p[0] = in ? 250 : (unsigned char)(x * 120 / w);
            p[1] = in ? 200 : (unsigned char)(y * 120 / h);
            p[2] = in ? 40 : 90;
        }
    VipsImage *im =
        vips_image_new_from_memory_copy(px, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    free(px);
    assert_non_null(im);
    im->Type = VIPS_INTERPRETATION_sRGB;
    unsigned char *out = imgt_encode(im, fmt, len);
    g_object_unref(im);
    return out;
}

VipsImage *imgt_decode(const void *data, size_t len)
{
    VipsImage *im = vips_image_new_from_buffer(data, len, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    if (im == NULL)
        fail_msg("does not decode: %s", vips_error_buffer());
    VipsImage *mem = vips_image_copy_memory(im);
    g_object_unref(im);
    if (mem == NULL)
        fail_msg("does not decode fully: %s", vips_error_buffer());
    return mem;
}

void imgt_pixel(VipsImage *im, int x, int y, unsigned char rgb[3])
{
    assert_int_equal(im->BandFmt, VIPS_FORMAT_UCHAR);
    assert_true(x >= 0 && x < im->Xsize && y >= 0 && y < im->Ysize);
    unsigned char *p = VIPS_IMAGE_ADDR(im, x, y);
    for (int b = 0; b < 3; b++)
        rgb[b] = p[im->Bands >= 3 ? b : 0];
}

VipsImage *imgt_textured(int w, int h, int bands, int alpha)
{
    size_t n = (size_t)w * h * bands;
    unsigned char *px = malloc(n);
    unsigned s = 12345;

    assert_non_null(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = px + ((size_t)y * w + x) * bands;
            s = s * 1103515245u + 12345u;
            int noise = (int)((s >> 16) % 24) - 12;
            int disc = (x - w / 3) * (x - w / 3) + (y - h / 2) * (y - h / 2) < w * h / 16;
            for (int k = 0; k < 3; k++) {
                int v = (disc ? 220 - 60 * k : (x * (90 + 40 * k)) / w + (y * 70) / h) + noise;
                p[k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            if (bands == 4)
                p[3] = alpha ? (unsigned char)(255 - (x * 255) / w) : 255;
        }
    VipsImage *im = vips_image_new_from_memory_copy(px, n, w, h, bands, VIPS_FORMAT_UCHAR);
    free(px);
    assert_non_null(im);
    im->Type = VIPS_INTERPRETATION_sRGB;
    return im;
}
