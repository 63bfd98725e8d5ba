/*
 * tests/unit/imaging/test_scale2x.c - imaging/scale2x.c: img__double and
 * img__halve give byte for byte the pixels of libvips' own
 * vips_resize(in, 2.0) and (in, 0.5) (what vips_thumbnail_image makes of an
 * image without alpha), on noise that overshoots and clips, at odd and
 * small sizes and at the edges, with the same resolution and
 * interpretation; anything but an uncoded 8-bit image (and, to halve, one of
 * odd sides) is refused.
 */
#include "imaging_test.h"
#include "imaging_int.h"

#include <string.h>

/* A w x h image of `bands` bands of independent noise, 8-bit, in memory. */
static VipsImage *noise(int w, int h, int bands, double sigma)
{
    VipsImage *b[4] = {0}, *joined = NULL, *u8 = NULL;
    for (int i = 0; i < bands; i++)
        assert_int_equal(vips_gaussnoise(&b[i], w, h, "mean", 128.0, "sigma", sigma, NULL), 0);
    assert_int_equal(vips_bandjoin(b, &joined, bands, NULL), 0);
    assert_int_equal(vips_cast_uchar(joined, &u8, NULL), 0);
    VipsImage *mem = vips_image_copy_memory(u8);
    assert_non_null(mem);
    for (int i = 0; i < bands; i++)
        g_object_unref(b[i]);
    g_object_unref(joined);
    g_object_unref(u8);
    return mem;
}

/* img__double(in) and vips_resize(in, 2.0), or img__halve(in) and
 * vips_resize(in, 0.5), are the same image. */
static void assert_same_as_vips(VipsImage *in, int halve)
{
    VipsImage *ours = NULL, *resized = NULL;
    assert_int_equal(halve ? img__halve(in, &ours) : img__double(in, &ours), 0);
    assert_int_equal(vips_resize(in, &resized, halve ? 0.5 : 2.0, NULL), 0);
    VipsImage *theirs = vips_image_copy_memory(resized);
    assert_non_null(theirs);
    assert_int_equal(ours->Xsize, theirs->Xsize);
    assert_int_equal(ours->Ysize, theirs->Ysize);
    assert_int_equal(ours->Bands, theirs->Bands);
    assert_int_equal(ours->BandFmt, VIPS_FORMAT_UCHAR);
    /* The encoders write the resolution (WebP's EXIF): it must not move either. */
    assert_true(ours->Xres == theirs->Xres && ours->Yres == theirs->Yres);
    assert_int_equal(ours->Type, theirs->Type);
    size_t line = VIPS_IMAGE_SIZEOF_LINE(ours);
    assert_int_equal(line, VIPS_IMAGE_SIZEOF_LINE(theirs));
    for (int y = 0; y < ours->Ysize; y++)
        assert_memory_equal(VIPS_IMAGE_ADDR(ours, 0, y), VIPS_IMAGE_ADDR(theirs, 0, y), line);
    g_object_unref(ours);
    g_object_unref(resized);
    g_object_unref(theirs);
}

/* Noise images (see noise()) of each size, band count and spread, doubled or halved. */
typedef struct {
    int w, h, bands;
    double sigma;
} noise_case_t;

static const noise_case_t doubled[] = {{256, 256, 3, 90}, {256, 256, 3, 10}, {37, 64, 3, 90},
                                       {64, 37, 1, 90},   {5, 4, 3, 120},    {2, 3, 1, 120},
                                       {1, 1, 3, 90},     {300, 200, 2, 60}};
static const noise_case_t halved[] = {{1024, 1024, 3, 90}, {512, 512, 3, 10}, {256, 256, 3, 120},
                                      {64, 30, 1, 90},     {22, 40, 2, 90},   {12, 12, 3, 120},
                                      {4, 6, 3, 90},       {2, 2, 1, 90}};

typedef struct {
    int halve;
    const noise_case_t *cases;
    size_t n;
} noise_cases_t;

static noise_cases_t doubling = {0, doubled, sizeof(doubled) / sizeof(doubled[0])};
static noise_cases_t halving = {1, halved, sizeof(halved) / sizeof(halved[0])};

/* Run once with `doubling` and once with `halving` as its state (see main). */
static void test_same_pixels_as_vips_resize(void **state)
{
    const noise_cases_t *set = *state;
    for (size_t c = 0; c < set->n; c++) {
        const noise_case_t *k = &set->cases[c];
        VipsImage *in = noise(k->w, k->h, k->bands, k->sigma);
        assert_same_as_vips(in, set->halve);
        g_object_unref(in);
    }
}

/* Hard edges: black, grey and white stripes overshoot both ends (the clip). */
static void test_same_pixels_on_hard_edges(void **state)
{
    (void)state;
    VipsImage *grey = NULL, *bars = NULL, *rgb = NULL;
    assert_int_equal(vips_xyz(&grey, 64, 48, NULL), 0);
    VipsImage *x = NULL, *odd = NULL;
    assert_int_equal(vips_extract_band(grey, &x, 0, NULL), 0);
    assert_int_equal(vips_remainder_const1(x, &odd, 3, NULL), 0);
    assert_int_equal(vips_linear1(odd, &bars, 127.5, 0.0, "uchar", TRUE, NULL), 0);
    VipsImage *three[3] = {bars, bars, bars};
    assert_int_equal(vips_bandjoin(three, &rgb, 3, NULL), 0);
    VipsImage *mem = vips_image_copy_memory(rgb);
    assert_non_null(mem);
    assert_same_as_vips(mem, 0);
    assert_same_as_vips(mem, 1);
    g_object_unref(mem);
    g_object_unref(rgb);
    g_object_unref(bars);
    g_object_unref(odd);
    g_object_unref(x);
    g_object_unref(grey);
}

static void test_halve_refuses_odd_sides(void **state)
{
    (void)state;
    VipsImage *in = noise(5, 4, 3, 10), *out = (VipsImage *)1;
    assert_int_equal(img__halve(in, &out), -1);
    assert_null(out);
    assert_true(strstr(vips_error_buffer(), "even") != NULL);
    vips_error_clear();
    g_object_unref(in);
}

static void test_refuses_other_formats(void **state)
{
    (void)state;
    VipsImage *black = NULL, *f = NULL, *out = (VipsImage *)1;
    assert_int_equal(vips_black(&black, 8, 8, "bands", 3, NULL), 0);
    assert_int_equal(vips_cast_float(black, &f, NULL), 0);
    assert_int_equal(img__double(f, &out), -1);
    assert_null(out);
    assert_true(strstr(vips_error_buffer(), "8-bit") != NULL);
    vips_error_clear();
    assert_int_equal(img__halve(f, &out), -1);
    assert_null(out);
    assert_true(strstr(vips_error_buffer(), "8-bit") != NULL);
    vips_error_clear();
    g_object_unref(f);
    g_object_unref(black);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        {"test_double_same_pixels_as_vips_resize", test_same_pixels_as_vips_resize, NULL, NULL,
         &doubling},
        {"test_halve_same_pixels_as_vips_resize", test_same_pixels_as_vips_resize, NULL, NULL,
         &halving},
        cmocka_unit_test(test_same_pixels_on_hard_edges),
        cmocka_unit_test(test_halve_refuses_odd_sides),
        cmocka_unit_test(test_refuses_other_formats),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
