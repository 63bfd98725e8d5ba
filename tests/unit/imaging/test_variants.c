/*
 * tests/unit/imaging/test_variants.c - imaging/variants.c: a provider image
 * becomes full, 512, 256, thumb and export variants of the right size and
 * format, each decodable, stripped and reported with its sha256; a provider
 * image of the wrong size or that does not decode fails as invalid_output.
 */
#include "imaging_test.h"

#include <stdlib.h>
#include <string.h>

static const img_export_preset story = {"instagram_story", 1080, 1920, IMG_FORMAT_JPEG, 88};
static const img_export_preset linkedin = {"linkedin_post", 1200, 627, IMG_FORMAT_JPEG, 88};
static const img_export_preset print = {"print_4x6", 1800, 1200, IMG_FORMAT_PNG, 0};
static const img_export_preset banner = {"banner_webp", 1500, 500, IMG_FORMAT_WEBP, 80};

typedef struct {
    const char *name;
    img_format format;
    int width, height;
} expect_t;

static void check_variants(const img_variants *v, const expect_t *want, size_t n)
{
    assert_int_equal(v->count, n);
    for (size_t i = 0; i < n; i++) {
        const img_variant *x = &v->items[i];
        char hex[65];
        assert_string_equal(x->name, want[i].name);
        assert_int_equal(x->format, want[i].format);
        assert_int_equal(img_sniff(x->data.data, x->data.len), want[i].format);
        assert_int_equal(x->width, want[i].width);
        assert_int_equal(x->height, want[i].height);
        img_sha256_hex(x->data.data, x->data.len, hex);
        assert_string_equal(hex, x->sha256);
        VipsImage *im = imgt_decode(x->data.data, x->data.len);
        assert_int_equal(im->Xsize, want[i].width);
        assert_int_equal(im->Ysize, want[i].height);
        assert_int_equal(im->BandFmt, VIPS_FORMAT_UCHAR);
        assert_int_equal(vips_image_get_typeof(im, VIPS_META_EXIF_NAME), 0);
        assert_int_equal(vips_image_get_typeof(im, VIPS_META_XMP_NAME), 0);
        assert_int_equal(vips_image_get_typeof(im, VIPS_META_ICC_NAME), 0);
        g_object_unref(im);
    }
}

/* The variants of `bytes`, a w x h provider image, with `n_exports` export presets: made without
 * error. */
static void make_ok(const void *bytes, size_t n, int w, int h,
                    const img_export_preset *const *exports, size_t n_exports, img_variants *v)
{
    img_post_opts o = {
        .expect_width = w, .expect_height = h, .exports = exports, .n_exports = n_exports};
    gf_err_t err = {0};
    assert_int_equal(img_variants_make(bytes, n, &o, v, &err), 0);
}

/* The variants, without exports, of a w x h test picture (imgt_picture) in `fmt`. */
static void variants_of_picture(int w, int h, img_format fmt, img_variants *v)
{
    size_t n;
    unsigned char *bytes = imgt_picture(w, h, fmt, &n);
    make_ok(bytes, n, w, h, NULL, 0, v);
    g_free(bytes);
}

/* Variant `i` is the full variant's bytes, in a buffer of its own. */
static void assert_bytes_of_full(const img_variants *v, size_t i)
{
    assert_int_equal(v->items[i].data.len, v->items[0].data.len);
    assert_memory_equal(v->items[i].data.data, v->items[0].data.data, v->items[0].data.len);
    assert_ptr_not_equal(v->items[i].data.data, v->items[0].data.data);
}

static void test_square_image_gives_every_variant(void **state)
{
    (void)state;
    size_t n;
    unsigned char *png = imgt_picture(1024, 1024, IMG_FORMAT_PNG, &n);
    const img_export_preset *exports[] = {&story, &linkedin, &print, &banner};
    img_variants v;
    make_ok(png, n, 1024, 1024, exports, 4, &v);
    const expect_t want[] = {
        {"full", IMG_FORMAT_WEBP, 1024, 1024},
        {"512", IMG_FORMAT_WEBP, 512, 512},
        {"256", IMG_FORMAT_WEBP, 256, 256},
        {"thumb", IMG_FORMAT_JPEG, 128, 128},
        {"instagram_story", IMG_FORMAT_JPEG, 1080, 1920},
        {"linkedin_post", IMG_FORMAT_JPEG, 1200, 627},
        {"print_4x6", IMG_FORMAT_PNG, 1800, 1200},
        {"banner_webp", IMG_FORMAT_WEBP, 1500, 500},
    };
    check_variants(&v, want, sizeof(want) / sizeof(want[0]));
    img_variants_dispose(&v);
    assert_null(v.items);
    g_free(png);
}

/* A portrait provider image: the squares are cropped, the thumb is whole. */
static void test_portrait_image_jpeg_input(void **state)
{
    (void)state;
    img_variants v;
    variants_of_picture(768, 1024, IMG_FORMAT_JPEG, &v);
    const expect_t want[] = {
        {"full", IMG_FORMAT_WEBP, 768, 1024},
        {"512", IMG_FORMAT_WEBP, 512, 512},
        {"256", IMG_FORMAT_WEBP, 256, 256},
        {"thumb", IMG_FORMAT_JPEG, 96, 128},
    };
    check_variants(&v, want, 4);
    img_variants_dispose(&v);
}

/* The smallest size API.md allows: the 512 is an upscale, the 256 is the
 * provider image itself, so its bytes are the full variant's. A 384 square
 * gets its 256 by a resize of its own. */
static void test_small_square_images(void **state)
{
    (void)state;
    const expect_t want256[] = {
        {"full", IMG_FORMAT_WEBP, 256, 256},
        {"512", IMG_FORMAT_WEBP, 512, 512},
        {"256", IMG_FORMAT_WEBP, 256, 256},
        {"thumb", IMG_FORMAT_JPEG, 128, 128},
    };
    const expect_t want384[] = {
        {"full", IMG_FORMAT_WEBP, 384, 384},
        {"512", IMG_FORMAT_WEBP, 512, 512},
        {"256", IMG_FORMAT_WEBP, 256, 256},
        {"thumb", IMG_FORMAT_JPEG, 128, 128},
    };
    img_variants v;
    variants_of_picture(256, 256, IMG_FORMAT_PNG, &v);
    check_variants(&v, want256, 4);
    assert_bytes_of_full(&v, 2);
    img_variants_dispose(&v);

    variants_of_picture(384, 384, IMG_FORMAT_PNG, &v);
    check_variants(&v, want384, 4);
    img_variants_dispose(&v);
}

/* The attention crop keeps the subject: the bright disc sits right of centre
 * near the top, so a centred crop of a wide image would cut it away. */
static void test_attention_crop_follows_the_subject(void **state)
{
    (void)state;
    img_variants v;
    variants_of_picture(1536, 512, IMG_FORMAT_PNG, &v);
    VipsImage *sq = imgt_decode(v.items[1].data.data, v.items[1].data.len);
    double max = 0;
    assert_int_equal(vips_max(sq, &max, NULL), 0);
    assert_true(max >= 240); /* the disc (250, 200, 40) is in the crop */
    g_object_unref(sq);
    img_variants_dispose(&v);
}

/* Mean absolute difference per band value (0..255) between two images of
 * the same size: an independent measure of how alike two results look. */
static double mean_diff(VipsImage *a, VipsImage *b)
{
    VipsImage *d = NULL, *ad = NULL;
    double avg = 1e9;
    assert_int_equal(a->Xsize, b->Xsize);
    assert_int_equal(a->Ysize, b->Ysize);
    assert_int_equal(vips_subtract(a, b, &d, NULL), 0);
    assert_int_equal(vips_abs(d, &ad, NULL), 0);
    assert_int_equal(vips_avg(ad, &avg, NULL), 0);
    g_object_unref(ad);
    g_object_unref(d);
    return avg;
}

/* The variant `i` of `v` against libvips' one-step thumbnail of the whole
 * provider image `src` at w x h (attention-cropped when `crop`): what the
 * user gets must look like that within `tol`, and the disc (the subject)
 * must be in it. */
static void compare_direct(const img_variants *v, size_t i, VipsImage *src, int w, int h, int crop,
                           double tol)
{
    VipsImage *ref = NULL;
    if (crop)
        assert_int_equal(vips_thumbnail_image(src, &ref, w, "height", h, "crop",
                                              VIPS_INTERESTING_ATTENTION, "size", VIPS_SIZE_BOTH,
                                              NULL),
                         0);
    else
        assert_int_equal(vips_thumbnail_image(src, &ref, w, "height", h, NULL), 0);
    VipsImage *got = imgt_decode(v->items[i].data.data, v->items[i].data.len);
    double d = mean_diff(got, ref), max = 0;
    assert_true(d <= tol);
    assert_int_equal(vips_max(got, &max, NULL), 0);
    assert_true(max >= 235); /* the disc (250, 200, 40) is in view */
    g_object_unref(got);
    g_object_unref(ref);
}

/*
 * The 512, 256 and thumb are derived one from the other (the 256 from the
 * 512, a square's thumb from the 256, a crop's search on a scaled copy held
 * in memory); each must look like libvips' own thumbnail of the provider
 * image made in one step, with the same crop. The bounds sit above the lossy
 * encoders' own error (about 1 here); a centred instead of an attention crop
 * of the wide image differs by 14.
 */
static void test_derived_variants_match_one_step_thumbnails(void **state)
{
    (void)state;
    const struct {
        int w, h;
        img_format fmt;
    } cases[] = {{256, 256, IMG_FORMAT_PNG}, /* the 512 enlarged by img__double */
                 {1024, 1024, IMG_FORMAT_PNG},
                 {768, 1024, IMG_FORMAT_JPEG},
                 {1536, 512, IMG_FORMAT_PNG},
                 {1024, 640, IMG_FORMAT_WEBP}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t n;
        unsigned char *bytes = imgt_picture(cases[c].w, cases[c].h, cases[c].fmt, &n);
        img_variants v;
        make_ok(bytes, n, cases[c].w, cases[c].h, NULL, 0, &v);
        VipsImage *src = imgt_decode(bytes, n);
        compare_direct(&v, 1, src, 512, 512, 1, 2.0);
        compare_direct(&v, 2, src, 256, 256, 1, 2.5);
        compare_direct(&v, 3, src, 128, 128, 0, 3.0);
        g_object_unref(src);
        img_variants_dispose(&v);
        g_free(bytes);
    }
}

/* A 512 x 512 provider image is its own 512: the full variant's bytes. */
static void test_512_square_is_its_own_512(void **state)
{
    (void)state;
    img_variants v;
    variants_of_picture(512, 512, IMG_FORMAT_PNG, &v);
    const expect_t want[] = {
        {"full", IMG_FORMAT_WEBP, 512, 512},
        {"512", IMG_FORMAT_WEBP, 512, 512},
        {"256", IMG_FORMAT_WEBP, 256, 256},
        {"thumb", IMG_FORMAT_JPEG, 128, 128},
    };
    check_variants(&v, want, 4);
    assert_bytes_of_full(&v, 1);
    img_variants_dispose(&v);
}

static void test_alpha_input_flattened_for_jpeg(void **state)
{
    (void)state;
    VipsImage *black = NULL, *rgba = NULL;
    assert_int_equal(vips_black(&black, 256, 256, "bands", 4, NULL), 0);
    assert_int_equal(vips_cast_uchar(black, &rgba, NULL), 0);
    rgba->Type = VIPS_INTERPRETATION_sRGB;
    size_t n;
    unsigned char *png = imgt_encode(rgba, IMG_FORMAT_PNG, &n);
    g_object_unref(black);
    g_object_unref(rgba);
    img_variants v;
    make_ok(png, n, 256, 256, NULL, 0, &v);
    VipsImage *thumb = imgt_decode(v.items[3].data.data, v.items[3].data.len);
    unsigned char px[3];
    imgt_pixel(thumb, 64, 64, px); /* transparent became white */
    assert_true(px[0] > 245 && px[1] > 245 && px[2] > 245);
    g_object_unref(thumb);
    img_variants_dispose(&v);
    g_free(png);
}

static void expect_invalid_output(const void *data, size_t len, int w, int h)
{
    img_post_opts o = {.expect_width = w, .expect_height = h};
    img_variants v = {(img_variant *)1, 99};
    gf_err_t err = {0};
    assert_int_equal(img_variants_make(data, len, &o, &v, &err), GF_EPROVIDER);
    assert_int_equal(img_err_reason(&err), IMG_REASON_INVALID_OUTPUT);
    assert_null(v.items);
    assert_int_equal(v.count, 0);
    assert_int_equal(vips_error_buffer()[0], '\0');
    img_variants_dispose(&v);
}

static void test_wrong_size_or_undecodable_is_invalid_output(void **state)
{
    (void)state;
    size_t n;
    unsigned char *png = imgt_picture(512, 512, IMG_FORMAT_PNG, &n);
    expect_invalid_output(png, n, 1024, 1024);
    expect_invalid_output(png, n, 512, 768);
    expect_invalid_output(png, n / 2, 512, 512);              /* truncated */
    expect_invalid_output(png, 30, 512, 512);                 /* header only */
    expect_invalid_output("{\"error\":\"x\"}", 13, 512, 512); /* JSON, not an image */
    expect_invalid_output("", 0, 512, 512);
    g_free(png);
}

static void test_bad_options_refused(void **state)
{
    (void)state;
    size_t n;
    unsigned char *png = imgt_picture(64, 64, IMG_FORMAT_PNG, &n);
    img_variants v;
    gf_err_t err = {0};
    img_post_opts none = {0};
    assert_int_equal(img_variants_make(png, n, &none, &v, &err), GF_EINVAL);
    const img_export_preset bad = {"bad", 0, 100, IMG_FORMAT_JPEG, 80};
    const img_export_preset *exports[] = {&bad};
    img_post_opts o = {.expect_width = 64, .expect_height = 64, .exports = exports, .n_exports = 1};
    gf_err_clear(&err);
    assert_int_equal(img_variants_make(png, n, &o, &v, &err), GF_EINVAL);
    img_variants_dispose(&v);
    g_free(png);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_square_image_gives_every_variant),
        cmocka_unit_test(test_portrait_image_jpeg_input),
        cmocka_unit_test(test_small_square_images),
        cmocka_unit_test(test_attention_crop_follows_the_subject),
        cmocka_unit_test(test_alpha_input_flattened_for_jpeg),
        cmocka_unit_test(test_derived_variants_match_one_step_thumbnails),
        cmocka_unit_test(test_512_square_is_its_own_512),
        cmocka_unit_test(test_wrong_size_or_undecodable_is_invalid_output),
        cmocka_unit_test(test_bad_options_refused),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
