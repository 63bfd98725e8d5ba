/*
 * tests/unit/imaging/test_webp.c - imaging/webp.c: an 8-bit sRGB image
 * encoded by libwebp straight from memory gives byte for byte the file of
 * libvips' webpsave at the same settings once img__webp_strip() has removed
 * its metadata; any other image still goes through webpsave, stripped.
 */
#include "imaging_test.h"
#include "imaging_int.h"

/* What img__encode gave before webp.c: webpsave at our settings, stripped. */
static void webpsave_stripped(VipsImage *im, int q, img_buf *out)
{
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(vips_webpsave_buffer(im, &buf, &len, "Q", q, "strip", TRUE, "effort",
                                          IMG_WEBP_EFFORT, NULL),
                     0);
    out->data = buf;
    out->len = len;
    assert_int_equal(img__webp_strip(out), 0);
}

static void assert_same_as_webpsave(VipsImage *im, int q)
{
    img_buf ours = {0}, theirs = {0};
    assert_true(img__webp_direct(im));
    assert_int_equal(img__encode(im, IMG_FORMAT_WEBP, q, &ours), 0);
    webpsave_stripped(im, q, &theirs);
    assert_int_equal(ours.len, theirs.len);
    assert_memory_equal(ours.data, theirs.data, ours.len);
    img_buf_dispose(&ours);
    img_buf_dispose(&theirs);
}

static void test_rgb_is_webpsave_byte_for_byte(void **state)
{
    (void)state;
    const struct {
        int w, h, q;
    } cases[] = {{256, 256, 85}, {512, 512, 85}, {128, 128, 80},
                 {77, 41, 85},   {1, 1, 85},     {300, 200, 50}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        VipsImage *im = imgt_textured(cases[i].w, cases[i].h, 3, 0);
        assert_same_as_webpsave(im, cases[i].q);
        g_object_unref(im);
    }
}

static void test_rgba_is_webpsave_byte_for_byte(void **state)
{
    (void)state;
    for (int alpha = 0; alpha <= 1; alpha++) {
        VipsImage *im = imgt_textured(256, 192, 4, alpha);
        assert_same_as_webpsave(im, 85);
        g_object_unref(im);
    }
}

/* A pipeline not yet computed is computed, and encoded as webpsave does. */
static void test_lazy_image_is_computed_first(void **state)
{
    (void)state;
    VipsImage *im = imgt_textured(200, 160, 3, 0), *flipped = NULL;
    assert_int_equal(vips_flip(im, &flipped, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
    flipped->Type = VIPS_INTERPRETATION_sRGB;
    assert_same_as_webpsave(flipped, 85);
    g_object_unref(flipped);
    g_object_unref(im);
}

/* What libwebp is not handed straight (one band, here) still goes through
 * webpsave, and leaves it without metadata. */
static void test_other_images_go_through_webpsave(void **state)
{
    (void)state;
    VipsImage *rgb = imgt_textured(64, 48, 3, 0), *grey = NULL;
    assert_int_equal(vips_colourspace(rgb, &grey, VIPS_INTERPRETATION_B_W, NULL), 0);
    assert_false(img__webp_direct(grey));
    img_buf out = {0};
    assert_int_equal(img__encode(grey, IMG_FORMAT_WEBP, 85, &out), 0);
    assert_int_equal(img_sniff(out.data, out.len), IMG_FORMAT_WEBP);
    VipsImage *back = imgt_decode(out.data, out.len);
    assert_int_equal(back->Xsize, 64);
    assert_int_equal(vips_image_get_typeof(back, VIPS_META_EXIF_NAME), 0);
    g_object_unref(back);
    img_buf_dispose(&out);
    g_object_unref(grey);
    g_object_unref(rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rgb_is_webpsave_byte_for_byte),
        cmocka_unit_test(test_rgba_is_webpsave_byte_for_byte),
        cmocka_unit_test(test_lazy_image_is_computed_first),
        cmocka_unit_test(test_other_images_go_through_webpsave),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
