/*
 * tests/unit/imaging/test_vips.c - img__copy_memory() (imaging/vips.c), which
 * computes a pipeline into memory on the calling thread at
 * FARM_VIPS_CONCURRENCY=1: it gives the pixels, size and header of libvips'
 * own vips_image_copy_memory() for each decoder, at sizes that are not a
 * multiple of its strip; a decoder's failure is its failure, with nothing
 * handed back; an image in memory comes back as itself; and with more
 * threads asked for it is libvips' copy that runs.
 */
#include "imaging_test.h"
#include "imaging_int.h"

#include <string.h>

/* The image of `data` as libvips' copy and as ours have the same header
 * fields and pixels. */
static void assert_same_as_vips(const void *data, size_t len, img_format fmt)
{
    VipsImage *a = img__load(data, len, fmt, VIPS_ACCESS_SEQUENTIAL);
    VipsImage *b = img__load(data, len, fmt, VIPS_ACCESS_SEQUENTIAL);
    assert_non_null(a);
    assert_non_null(b);
    VipsImage *theirs = vips_image_copy_memory(a);
    VipsImage *ours = img__copy_memory(b);
    assert_non_null(theirs);
    assert_non_null(ours);
    assert_ptr_not_equal(ours, b);
    assert_false(vips_image_ispartial(ours));
    assert_int_equal(ours->Xsize, theirs->Xsize);
    assert_int_equal(ours->Ysize, theirs->Ysize);
    assert_int_equal(ours->Bands, theirs->Bands);
    assert_int_equal(ours->BandFmt, theirs->BandFmt);
    assert_int_equal(ours->Type, theirs->Type);
    assert_true(ours->Xres == theirs->Xres && ours->Yres == theirs->Yres);
    size_t n = VIPS_IMAGE_SIZEOF_IMAGE(ours);
    assert_int_equal(n, VIPS_IMAGE_SIZEOF_IMAGE(theirs));
    assert_memory_equal(VIPS_IMAGE_ADDR(ours, 0, 0), VIPS_IMAGE_ADDR(theirs, 0, 0), n);
    g_object_unref(ours);
    g_object_unref(theirs);
    g_object_unref(a);
    g_object_unref(b);
}

static void test_decodes_as_vips_copy_does(void **state)
{
    (void)state;
    const struct {
        int w, h;
    } sizes[] = {{1, 1}, {77, 41}, {256, 256}, {300, 97}, {64, 1000}};
    const img_format fmts[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
            size_t len;
            unsigned char *data = imgt_picture(sizes[i].w, sizes[i].h, fmts[f], &len);
            assert_same_as_vips(data, len, fmts[f]);
            g_free(data);
        }
    /* With alpha, through the sRGB conversion the decode uses. */
    VipsImage *rgba = imgt_textured(130, 70, 4, 1);
    size_t len;
    unsigned char *png = imgt_encode(rgba, IMG_FORMAT_PNG, &len);
    assert_same_as_vips(png, len, IMG_FORMAT_PNG);
    g_free(png);
    g_object_unref(rgba);
}

/* A file cut short fails here, says so, and hands nothing back; one with
 * pixels overwritten gets libvips' own verdict on it (libjpeg reads over
 * some damage with a warning only): the same failure, or the same pixels. */
static void test_decoder_failure_is_a_failure(void **state)
{
    (void)state;
    const img_format fmts[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG};
    for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
        size_t len;
        unsigned char *data = imgt_picture(300, 300, fmts[f], &len);
        for (int damage = 0; damage < 3; damage++) {
            unsigned char *bad = g_memdup2(data, len);
            size_t n = len;
            if (damage == 0)
                n = len / 2; /* cut short */
            else
                memset(bad + len / 3, damage == 1 ? 0xff : 0x00, len / 3);
            VipsImage *a = img__load(bad, n, fmts[f], VIPS_ACCESS_SEQUENTIAL);
            VipsImage *b = img__load(bad, n, fmts[f], VIPS_ACCESS_SEQUENTIAL);
            assert_non_null(a); /* the header is whole */
            assert_non_null(b);
            vips_error_clear();
            VipsImage *theirs = vips_image_copy_memory(a);
            vips_error_clear();
            VipsImage *ours = img__copy_memory(b);
            if (damage == 0)
                assert_null(theirs);
            if (theirs == NULL) {
                assert_null(ours);
                assert_true(vips_error_buffer()[0] != '\0');
            } else {
                assert_non_null(ours);
                size_t sz = VIPS_IMAGE_SIZEOF_IMAGE(ours);
                assert_int_equal(sz, VIPS_IMAGE_SIZEOF_IMAGE(theirs));
                assert_memory_equal(VIPS_IMAGE_ADDR(ours, 0, 0), VIPS_IMAGE_ADDR(theirs, 0, 0), sz);
                g_object_unref(ours);
                g_object_unref(theirs);
            }
            vips_error_clear();
            g_object_unref(a);
            g_object_unref(b);
            g_free(bad);
        }
        g_free(data);
    }
}

/* An image in memory is handed back as itself, one reference more. */
static void test_memory_image_is_itself(void **state)
{
    (void)state;
    VipsImage *im = imgt_textured(40, 30, 3, 0);
    VipsImage *m = img__copy_memory(im);
    assert_ptr_equal(m, im);
    g_object_unref(m);
    g_object_unref(im);
}

/* With threads asked for (FARM_VIPS_CONCURRENCY above 1), vips' own copy
 * runs: the same pixels. */
static void test_more_threads_same_pixels(void **state)
{
    (void)state;
    int was = vips_concurrency_get();
    vips_concurrency_set(2);
    size_t len;
    unsigned char *data = imgt_picture(200, 150, IMG_FORMAT_PNG, &len);
    assert_same_as_vips(data, len, IMG_FORMAT_PNG);
    g_free(data);
    vips_concurrency_set(was);
    assert_int_equal(vips_concurrency_get(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decodes_as_vips_copy_does),
        cmocka_unit_test(test_decoder_failure_is_a_failure),
        cmocka_unit_test(test_memory_image_is_itself),
        cmocka_unit_test(test_more_threads_same_pixels),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
