/*
 * tests/unit/imaging/test_vips.c - img__copy_memory() (imaging/vips.c), which
 * computes a pipeline into memory on the calling thread at
 * FARM_VIPS_CONCURRENCY=1. Against libvips' own vips_image_copy_memory() on
 * the same input, it gives the same pixels, header fields and metadata:
 * - for the decode the worker runs (each loader, then img__to_srgb) at sizes
 *   that are not a multiple of its strip, very wide and very tall ones, and
 *   inputs with ICC profiles, orientation, interlacing and 16 bits;
 * - for the pipelines the variants make (attention crop, flatten, crop);
 * - from four threads at once, none of them libvips'.
 * A damaged file gets libvips' own verdict, a failure hands nothing back; the
 * copy no longer depends on its input; an image in memory comes back as
 * itself; and from two threads asked for, libvips' threads compute it.
 */
#include "imaging_test.h"
#include "imaging_int.h"

#include <string.h>

/* `ours` and `theirs` hold the same pixels, fields and metadata. */
static void assert_same_image(VipsImage *ours, VipsImage *theirs)
{
    assert_false(vips_image_ispartial(ours));
    assert_int_equal(ours->Xsize, theirs->Xsize);
    assert_int_equal(ours->Ysize, theirs->Ysize);
    assert_int_equal(ours->Bands, theirs->Bands);
    assert_int_equal(ours->BandFmt, theirs->BandFmt);
    assert_int_equal(ours->Coding, theirs->Coding);
    assert_int_equal(ours->Type, theirs->Type);
    assert_true(ours->Xres == theirs->Xres && ours->Yres == theirs->Yres);
    assert_int_equal(ours->Xoffset, theirs->Xoffset);
    assert_int_equal(ours->Yoffset, theirs->Yoffset);
    size_t n = VIPS_IMAGE_SIZEOF_IMAGE(ours);
    assert_int_equal(n, VIPS_IMAGE_SIZEOF_IMAGE(theirs));
    assert_memory_equal(VIPS_IMAGE_ADDR(ours, 0, 0), VIPS_IMAGE_ADDR(theirs, 0, 0), n);
    gchar **mine = vips_image_get_fields(ours), **other = vips_image_get_fields(theirs);
    assert_int_equal(g_strv_length(mine), g_strv_length(other));
    for (size_t i = 0; mine[i] != NULL; i++) {
        if (strcmp(mine[i], "filename") == 0) /* a temporary name per image */
            continue;
        char *a = NULL, *b = NULL;
        assert_int_equal(vips_image_get_as_string(ours, mine[i], &a), 0);
        assert_int_equal(vips_image_get_as_string(theirs, mine[i], &b), 0);
        if (strcmp(a, b) != 0)
            fail_msg("field %s: %s, vips' copy has %s", mine[i], a, b);
        g_free(a);
        g_free(b);
    }
    g_strfreev(mine);
    g_strfreev(other);
}

/* Both copies of two pipelines built alike, compared; both pipelines are dropped. */
static void assert_copies_alike(VipsImage *for_vips, VipsImage *for_us)
{
    VipsImage *theirs = vips_image_copy_memory(for_vips);
    VipsImage *ours = img__copy_memory(for_us);
    assert_non_null(theirs);
    if (ours == NULL)
        fail_msg("img__copy_memory: %s", vips_error_buffer());
    assert_ptr_not_equal(ours, for_us);
    assert_same_image(ours, theirs);
    g_object_unref(ours);
    g_object_unref(theirs);
    g_object_unref(for_vips);
    g_object_unref(for_us);
}

/* The lazy decode the worker runs on `data`: the loader, then img__to_srgb. */
static VipsImage *lazy_decode(const void *data, size_t len, img_format fmt)
{
    VipsImage *loaded = img__load(data, len, fmt, VIPS_ACCESS_SEQUENTIAL);
    assert_non_null(loaded);
    VipsImage *srgb = img__to_srgb(loaded);
    g_object_unref(loaded);
    assert_non_null(srgb);
    return srgb;
}

static void assert_decodes_alike(const void *data, size_t len, img_format fmt)
{
    assert_copies_alike(lazy_decode(data, len, fmt), lazy_decode(data, len, fmt));
}

static void test_decodes_as_vips_copy_does(void **state)
{
    (void)state;
    const struct {
        int w, h;
    } sizes[] = {{1, 1}, {77, 41}, {256, 256}, {300, 97}, {5000, 1}, {10000, 300}, {48, 20000}};
    const img_format fmts[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
            if (fmts[f] == IMG_FORMAT_WEBP && sizes[i].h > 16383)
                continue; /* WebP's limit */
            size_t len;
            unsigned char *data = imgt_picture(sizes[i].w, sizes[i].h, fmts[f], &len);
            assert_decodes_alike(data, len, fmts[f]);
            g_free(data);
        }
}

/* An ICC profile, an orientation and a resolution survive, in each format. */
static void test_metadata_kept(void **state)
{
    (void)state;
    VipsImage *im = imgt_textured(333, 121, 3, 0);
    VipsBlob *icc = NULL;
    size_t n;
    assert_int_equal(vips_profile_load("srgb", &icc, NULL), 0);
    const void *profile = vips_blob_get(icc, &n);
    vips_image_set_blob_copy(im, VIPS_META_ICC_NAME, profile, n);
    vips_area_unref(VIPS_AREA(icc));
    vips_image_set_int(im, VIPS_META_ORIENTATION, 6);
    im->Xres = im->Yres = 300 / 25.4;
    const img_format fmts[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};
    for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
        size_t len;
        unsigned char *data = imgt_encode(im, fmts[f], &len);
        VipsImage *a = img__load(data, len, fmts[f], VIPS_ACCESS_SEQUENTIAL);
        VipsImage *b = img__load(data, len, fmts[f], VIPS_ACCESS_SEQUENTIAL);
        assert_non_null(a);
        assert_non_null(b);
        assert_true(vips_image_get_typeof(b, VIPS_META_ICC_NAME) != 0);
        assert_copies_alike(a, b);
        g_free(data);
    }
    g_object_unref(im);
}

/* Files that reach the loaders another way: interlaced PNG, progressive
 * JPEG, 16-bit PNG, grey PNG, and JPEG and WebP in Display P3 (converted
 * through their profile). */
static void test_other_inputs(void **state)
{
    (void)state;
    VipsImage *rgba = imgt_textured(517, 389, 4, 1), *x = NULL, *y = NULL;
    VipsBlob *p3 = NULL;
    size_t n;
    assert_int_equal(vips_profile_load("p3", &p3, NULL), 0);
    const void *profile = vips_blob_get(p3, &n);
    for (int k = 0; k < 6; k++) {
        void *buf = NULL;
        size_t len = 0;
        img_format fmt = IMG_FORMAT_PNG;
        int rc;
        if (k == 0) {
            rc = vips_pngsave_buffer(rgba, &buf, &len, "interlace", TRUE, NULL);
        } else if (k == 1) {
            fmt = IMG_FORMAT_JPEG;
            rc = vips_jpegsave_buffer(rgba, &buf, &len, "interlace", TRUE, NULL);
        } else if (k == 2) {
            assert_int_equal(vips_colourspace(rgba, &x, VIPS_INTERPRETATION_RGB16, NULL), 0);
            rc = vips_pngsave_buffer(x, &buf, &len, "bitdepth", 16, NULL);
            VIPS_UNREF(x);
        } else if (k == 3) {
            assert_int_equal(vips_colourspace(rgba, &x, VIPS_INTERPRETATION_B_W, NULL), 0);
            rc = vips_pngsave_buffer(x, &buf, &len, NULL);
            VIPS_UNREF(x);
        } else {
            assert_int_equal(vips_extract_band(rgba, &y, 0, "n", 3, NULL), 0);
            assert_int_equal(vips_copy(y, &x, NULL), 0);
            vips_image_set_blob_copy(x, VIPS_META_ICC_NAME, profile, n);
            fmt = k == 4 ? IMG_FORMAT_JPEG : IMG_FORMAT_WEBP;
            rc = fmt == IMG_FORMAT_JPEG ? vips_jpegsave_buffer(x, &buf, &len, NULL)
                                        : vips_webpsave_buffer(x, &buf, &len, NULL);
            VIPS_UNREF(x);
            VIPS_UNREF(y);
        }
        assert_int_equal(rc, 0);
        assert_decodes_alike(buf, len, fmt);
        g_free(buf);
    }
    vips_area_unref(VIPS_AREA(p3));
    g_object_unref(rgba);
}

/* The pipelines the variants compute: an attention crop, a flatten, a crop
 * and a copy (whose regions point into their input's). */
static void test_pipelines(void **state)
{
    (void)state;
    VipsImage *src = imgt_textured(640, 480, 4, 1);
    VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
    for (int k = 0; k < 4; k++) {
        VipsImage *p[2] = {NULL, NULL};
        for (int i = 0; i < 2; i++) {
            int rc;
            if (k == 0)
                rc = vips_thumbnail_image(src, &p[i], 300, "height", 200, "crop",
                                          VIPS_INTERESTING_ATTENTION, "size", VIPS_SIZE_BOTH, NULL);
            else if (k == 1)
                rc = vips_flatten(src, &p[i], "background", white, NULL);
            else if (k == 2)
                rc = vips_extract_area(src, &p[i], 3, 5, 500, 301, NULL);
            else
                rc = vips_copy(src, &p[i], "xres", 7.0, NULL);
            assert_int_equal(rc, 0);
        }
        assert_copies_alike(p[0], p[1]);
    }
    vips_area_unref(VIPS_AREA(white));
    g_object_unref(src);
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
                assert_same_image(ours, theirs);
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

static int invalidations;

static void on_invalidate(VipsImage *im, void *data)
{
    (void)im;
    (void)data;
    invalidations++;
}

/* The copy's pixels no longer depend on its input: invalidating the input
 * (as the operation cache does) does not reach it. */
static void test_copy_is_not_linked(void **state)
{
    (void)state;
    size_t len;
    unsigned char *data = imgt_picture(200, 100, IMG_FORMAT_PNG, &len);
    VipsImage *in = img__load(data, len, IMG_FORMAT_PNG, VIPS_ACCESS_SEQUENTIAL);
    VipsImage *copy = img__copy_memory(in);
    assert_non_null(copy);
    g_signal_connect(copy, "invalidate", G_CALLBACK(on_invalidate), NULL);
    invalidations = 0;
    vips_image_invalidate_all(in);
    assert_int_equal(invalidations, 0);
    g_object_unref(copy);
    g_object_unref(in);
    g_free(data);
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

static int ran_on_vips_thread;

/* A generate that passes its input through and notes whether a thread of
 * libvips' runs it. */
static int note_thread(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop)
{
    VipsRegion *in = seq;
    (void)a;
    (void)b;
    (void)stop;
    if (vips_thread_isvips())
        g_atomic_int_set(&ran_on_vips_thread, 1);
    if (vips_region_prepare(in, &out->valid) != 0)
        return -1;
    return vips_region_region(out, in, &out->valid, out->valid.left, out->valid.top);
}

/* At FARM_VIPS_CONCURRENCY=1 the caller's thread computes the copy; from 2,
 * libvips' threads do. */
static void test_who_computes(void **state)
{
    (void)state;
    int was = vips_concurrency_get();
    for (int threads = 1; threads <= 2; threads++) {
        VipsImage *black = NULL, *probe = vips_image_new();
        assert_int_equal(vips_black(&black, 64, 200, NULL), 0);
        assert_int_equal(vips_image_pipelinev(probe, VIPS_DEMAND_STYLE_THINSTRIP, black, NULL), 0);
        assert_int_equal(
            vips_image_generate(probe, vips_start_one, note_thread, vips_stop_one, black, NULL), 0);
        vips_object_local(probe, black);
        g_atomic_int_set(&ran_on_vips_thread, 0);
        vips_concurrency_set(threads);
        VipsImage *m = img__copy_memory(probe);
        vips_concurrency_set(was); /* before an assertion can leave */
        assert_non_null(m);
        assert_int_equal(g_atomic_int_get(&ran_on_vips_thread), threads > 1);
        g_object_unref(m);
        g_object_unref(probe);
    }
    assert_int_equal(vips_concurrency_get(), 1);
}

typedef struct {
    const unsigned char *data;
    size_t len;
    VipsImage *reference;
    int same; /* every round gave the reference's pixels */
} round_t;

/* Decodes and copies the PNG of `arg` 10 times, as a libuv pool thread would. */
static gpointer decode_rounds(gpointer arg)
{
    round_t *r = arg;
    r->same = 1;
    for (int i = 0; i < 10; i++) {
        VipsImage *loaded = img__load(r->data, r->len, IMG_FORMAT_PNG, VIPS_ACCESS_SEQUENTIAL);
        VipsImage *srgb = loaded ? img__to_srgb(loaded) : NULL;
        VipsImage *m = srgb ? img__copy_memory(srgb) : NULL;
        size_t n = VIPS_IMAGE_SIZEOF_IMAGE(r->reference);
        if (m == NULL || VIPS_IMAGE_SIZEOF_IMAGE(m) != n ||
            memcmp(VIPS_IMAGE_ADDR(m, 0, 0), VIPS_IMAGE_ADDR(r->reference, 0, 0), n) != 0)
            r->same = 0;
        VIPS_UNREF(m);
        VIPS_UNREF(srgb);
        VIPS_UNREF(loaded);
    }
    return NULL;
}

/* Four threads at once, none of them libvips', each get the pixels of vips'
 * own copy every time. */
static void test_threads_at_once(void **state)
{
    (void)state;
    VipsImage *im = imgt_textured(700, 500, 4, 1);
    size_t len;
    unsigned char *data = imgt_encode(im, IMG_FORMAT_PNG, &len);
    g_object_unref(im);
    VipsImage *srgb = lazy_decode(data, len, IMG_FORMAT_PNG);
    VipsImage *reference = vips_image_copy_memory(srgb);
    g_object_unref(srgb);
    assert_non_null(reference);
    round_t r[4];
    GThread *t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (round_t){.data = data, .len = len, .reference = reference};
        t[i] = g_thread_new("pool", decode_rounds, &r[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_thread_join(t[i]);
        assert_true(r[i].same);
    }
    g_object_unref(reference);
    g_free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decodes_as_vips_copy_does),
        cmocka_unit_test(test_metadata_kept),
        cmocka_unit_test(test_other_inputs),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_decoder_failure_is_a_failure),
        cmocka_unit_test(test_copy_is_not_linked),
        cmocka_unit_test(test_memory_image_is_itself),
        cmocka_unit_test(test_who_computes),
        cmocka_unit_test(test_threads_at_once),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
