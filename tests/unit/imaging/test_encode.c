/*
 * tests/unit/imaging/test_encode.c - imaging/webp.c and imaging/jpeg.c,
 * the encoders that take an image straight from memory:
 * - WebP: an 8-bit sRGB image encoded by libwebp gives byte for byte the
 *   file of libvips' webpsave at the same settings once img__webp_strip()
 *   has removed its metadata; any other image still goes through webpsave,
 *   stripped.
 * - JPEG: an 8-bit sRGB image encoded by libjpeg gives byte for byte the
 *   file of libvips' jpegsave with strip at the same quality; an image with
 *   alpha is flattened first, and what libjpeg is not handed straight
 *   (quality 90 and up, one band) still goes through jpegsave.
 */
#include "imaging_test.h"
#include "imaging_int.h"

#include <string.h>

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

/* `a` holds the same bytes as `b`. */
static void assert_same_bytes(const img_buf *a, const img_buf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

/* libwebp's file of `im` (img__webp_encode itself, and img__encode, which
 * must hand it over) is webpsave's, stripped. */
static void assert_same_as_webpsave(VipsImage *im, int q)
{
    img_buf direct = {0}, ours = {0}, theirs = {0};
    assert_true(img__webp_direct(im));
    assert_int_equal(img__webp_encode(im, q, &direct), 0);
    assert_int_equal(img__encode(im, IMG_FORMAT_WEBP, q, &ours), 0);
    webpsave_stripped(im, q, &theirs);
    assert_same_bytes(&direct, &theirs);
    assert_same_bytes(&ours, &theirs);
    img_buf_dispose(&direct);
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

/* img__encode's JPEG of `im` is jpegsave's of `ref` (im itself, or its flattening). */
static void assert_same_as_jpegsave(VipsImage *im, VipsImage *ref, int q)
{
    img_buf ours = {0}, theirs = {0};
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(img__encode(im, IMG_FORMAT_JPEG, q, &ours), 0);
    assert_int_equal(vips_jpegsave_buffer(ref, &buf, &len, "Q", q, "strip", TRUE, NULL), 0);
    theirs.data = buf;
    theirs.len = len;
    assert_same_bytes(&ours, &theirs);
    if (img__jpeg_direct(ref, q)) { /* and libjpeg's own, not a fall-back's */
        img_buf direct = {0};
        assert_int_equal(img__jpeg_encode(ref, q, &direct), 0);
        assert_same_bytes(&direct, &theirs);
        img_buf_dispose(&direct);
    }
    img_buf_dispose(&ours);
    img_buf_dispose(&theirs);
}

static void test_rgb_is_jpegsave_byte_for_byte(void **state)
{
    (void)state;
    const struct {
        int w, h, q;
    } cases[] = {{128, 128, 80}, {77, 41, 88}, {1, 1, 80},
                 {300, 200, 50}, {64, 48, 89}, {1080, 1920, 88}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        VipsImage *im = imgt_textured(cases[i].w, cases[i].h, 3, 0);
        assert_true(img__jpeg_direct(im, cases[i].q));
        assert_same_as_jpegsave(im, im, cases[i].q);
        g_object_unref(im);
    }
}

/* Alpha is flattened on white, then the flattened pixels are encoded directly. */
static void test_alpha_is_flattened_then_encoded(void **state)
{
    (void)state;
    VipsImage *im = imgt_textured(120, 90, 4, 1), *flat = NULL;
    VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
    assert_int_equal(vips_flatten(im, &flat, "background", white, NULL), 0);
    vips_area_unref(VIPS_AREA(white));
    assert_true(img__jpeg_direct(flat, 80));
    assert_same_as_jpegsave(im, flat, 80);
    g_object_unref(flat);
    g_object_unref(im);
}

/* From quality 90 jpegsave keeps chroma whole, and one band is grey: both
 * stay with jpegsave, which gives what it always gave. */
static void test_other_images_go_through_jpegsave(void **state)
{
    (void)state;
    VipsImage *rgb = imgt_textured(64, 48, 3, 0), *grey = NULL;
    assert_false(img__jpeg_direct(rgb, 90));
    assert_same_as_jpegsave(rgb, rgb, 92);
    assert_int_equal(vips_colourspace(rgb, &grey, VIPS_INTERPRETATION_B_W, NULL), 0);
    assert_false(img__jpeg_direct(grey, 80));
    assert_same_as_jpegsave(grey, grey, 80);
    g_object_unref(grey);
    g_object_unref(rgb);
}

/* A pipeline not yet computed is computed, and encoded as webpsave and
 * jpegsave do; the pipeline itself stays a pipeline (the pixels computed
 * for the encode are not kept in it, an export's full frame among them). */
static void test_lazy_image_is_computed_first(void **state)
{
    (void)state;
    VipsImage *im = imgt_textured(200, 160, 3, 0), *flipped = NULL;
    assert_int_equal(vips_flip(im, &flipped, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
    flipped->Type = VIPS_INTERPRETATION_sRGB;
    assert_same_as_webpsave(flipped, 85);
    assert_int_equal(flipped->dtype, VIPS_IMAGE_PARTIAL);
    g_object_unref(flipped);
    assert_int_equal(vips_flip(im, &flipped, VIPS_DIRECTION_VERTICAL, NULL), 0);
    assert_true(img__jpeg_direct(flipped, 80));
    assert_same_as_jpegsave(flipped, flipped, 80);
    assert_int_equal(flipped->dtype, VIPS_IMAGE_PARTIAL);
    g_object_unref(flipped);
    g_object_unref(im);
}

/* What the encoders cannot write is refused with the reason, and nothing
 * is handed back: WebP's side limit, libjpeg's (through its longjmp), a
 * quality outside 0..100. */
static void test_encoder_failures_say_why(void **state)
{
    (void)state;
    img_buf out = {0};
    VipsImage *wide = imgt_textured(16384, 4, 3, 0);
    vips_error_clear();
    assert_int_equal(img__webp_encode(wide, 85, &out), -1);
    assert_null(out.data);
    assert_non_null(strstr(vips_error_buffer(), "16383"));
    g_object_unref(wide);

    VipsImage *rgb = imgt_textured(8, 8, 3, 0);
    vips_error_clear();
    assert_int_equal(img__webp_encode(rgb, 101, &out), -1);
    assert_null(out.data);
    assert_non_null(strstr(vips_error_buffer(), "quality 101"));
    g_object_unref(rgb);

    VipsImage *too_wide = imgt_textured(65501, 2, 3, 0);
    vips_error_clear();
    assert_int_equal(img__jpeg_encode(too_wide, 80, &out), -1);
    assert_null(out.data);
    assert_non_null(strstr(vips_error_buffer(), "libjpeg"));
    g_object_unref(too_wide);
    vips_error_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rgb_is_webpsave_byte_for_byte),
        cmocka_unit_test(test_rgba_is_webpsave_byte_for_byte),
        cmocka_unit_test(test_other_images_go_through_webpsave),
        cmocka_unit_test(test_rgb_is_jpegsave_byte_for_byte),
        cmocka_unit_test(test_alpha_is_flattened_then_encoded),
        cmocka_unit_test(test_other_images_go_through_jpegsave),
        cmocka_unit_test(test_lazy_image_is_computed_first),
        cmocka_unit_test(test_encoder_failures_say_why),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
