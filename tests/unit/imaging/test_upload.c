/*
 * tests/unit/imaging/test_upload.c - imaging/upload.c: uploads are checked
 * by their bytes and header before any decode, decoded once strictly,
 * turned upright and stripped of every piece of metadata.
 */
#include "imaging_test.h"
#include "png_write.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const img_limits limits = {.max_bytes = 10 * 1024 * 1024, .max_pixels = 40000000};

static void expect_refused(const void *data, size_t len, const img_limits *lim, gf_status code,
                           img_reason reason)
{
    gf_err_t err = {0};
    img_buf out = {(unsigned char *)"x", 1};
    img_info info;

    assert_int_equal(img_upload_normalize(data, len, lim, &out, &info, &err), code);
    assert_int_equal(err.code, code);
    assert_int_equal(img_err_reason(&err), reason);
    assert_null(out.data);
    assert_int_equal(vips_error_buffer()[0], '\0'); /* copied into err, then cleared */
}

static void test_sniff_by_bytes_not_names(void **state)
{
    (void)state;
    size_t n;
    unsigned char *png = imgt_picture(8, 8, IMG_FORMAT_PNG, &n);
    assert_int_equal(img_sniff(png, n), IMG_FORMAT_PNG);
    g_free(png);
    unsigned char *jpg = imgt_picture(8, 8, IMG_FORMAT_JPEG, &n);
    assert_int_equal(img_sniff(jpg, n), IMG_FORMAT_JPEG);
    g_free(jpg);
    unsigned char *webp = imgt_picture(8, 8, IMG_FORMAT_WEBP, &n);
    assert_int_equal(img_sniff(webp, n), IMG_FORMAT_WEBP);
    g_free(webp);
    assert_int_equal(img_sniff("GIF89a\x01\x00\x01\x00", 10), IMG_FORMAT_NONE);
    assert_int_equal(img_sniff("RIFF\0\0\0\0WAVE", 12), IMG_FORMAT_NONE);
    assert_int_equal(img_sniff("\x89PNG", 4), IMG_FORMAT_NONE);
    assert_int_equal(img_sniff(NULL, 0), IMG_FORMAT_NONE);
}

static void test_each_format_normalizes_and_decodes(void **state)
{
    (void)state;
    img_format fmts[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};
    for (size_t i = 0; i < 3; i++) {
        size_t n;
        unsigned char *in = imgt_picture(300, 200, fmts[i], &n);
        gf_err_t err = {0};
        img_buf out;
        img_info info;
        assert_int_equal(img_upload_normalize(in, n, &limits, &out, &info, &err), 0);
        assert_int_equal(info.format, fmts[i]);
        assert_int_equal(img_sniff(out.data, out.len), fmts[i]);
        assert_int_equal(info.width, 300);
        assert_int_equal(info.height, 200);
        assert_int_equal(info.bytes, out.len);
        char hex[65];
        img_sha256_hex(out.data, out.len, hex);
        assert_string_equal(hex, info.sha256);
        VipsImage *im = imgt_decode(out.data, out.len);
        assert_int_equal(im->Xsize, 300);
        assert_int_equal(im->Bands, 3);
        g_object_unref(im);
        img_buf_dispose(&out);
        g_free(in);
    }
}

/* Inserts a JPEG COM segment holding `text` right after SOI. */
static unsigned char *with_comment(const unsigned char *jpg, size_t n, const char *text,
                                   size_t *out_len)
{
    size_t t = strlen(text), seg = 4 + t;
    unsigned char *out = malloc(n + seg);
    assert_non_null(out);
    memcpy(out, jpg, 2);
    out[2] = 0xff;
    out[3] = 0xfe;
    out[4] = (unsigned char)((t + 2) >> 8);
    out[5] = (unsigned char)(t + 2);
    memcpy(out + 6, text, t);
    memcpy(out + 2 + seg, jpg + 2, n - 2);
    *out_len = n + seg;
    return out;
}

static int has_bytes(const unsigned char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

/*
 * A 200x100 JPEG, left half red and right half blue, with EXIF orientation 6
 * (display rotated 90 degrees clockwise), an EXIF Artist, XMP and a comment.
 * Upright it is 100x200 with red on top; and none of the metadata survives.
 */
static void test_exif_orientation_applied_and_metadata_gone(void **state)
{
    (void)state;
    unsigned char px[200 * 100 * 3];
    for (int y = 0; y < 100; y++)
        for (int x = 0; x < 200; x++) {
            unsigned char *p = px + (y * 200 + x) * 3;
            p[0] = x < 100 ? 230 : 10;
            p[1] = 10;
            p[2] = x < 100 ? 10 : 230;
        }
    VipsImage *im = vips_image_new_from_memory_copy(px, sizeof(px), 200, 100, 3, VIPS_FORMAT_UCHAR);
    im->Type = VIPS_INTERPRETATION_sRGB;
    vips_image_set_int(im, VIPS_META_ORIENTATION, 6);
    vips_image_set_string(im, "exif-ifd0-Artist", "Jane Secretperson");
    static const char xmp[] = "<x:xmpmeta xmlns:x='adobe:ns:meta/'>GPSsecret</x:xmpmeta>";
    vips_image_set_blob_copy(im, VIPS_META_XMP_NAME, xmp, sizeof(xmp) - 1);
    size_t n, m;
    unsigned char *plain = imgt_encode(im, IMG_FORMAT_JPEG, &n);
    g_object_unref(im);
    unsigned char *jpg = with_comment(plain, n, "secret comment", &m);
    g_free(plain);

    /* The input really carries what we expect to be removed. */
    VipsImage *src = vips_image_new_from_buffer(jpg, m, "", NULL);
    assert_non_null(src);
    assert_int_equal(vips_image_get_orientation(src), 6);
    assert_true(vips_image_get_typeof(src, VIPS_META_EXIF_NAME) != 0);
    assert_true(vips_image_get_typeof(src, VIPS_META_XMP_NAME) != 0);
    g_object_unref(src);
    assert_true(has_bytes(jpg, m, "Secretperson") && has_bytes(jpg, m, "secret comment"));

    gf_err_t err = {0};
    img_buf out;
    img_info info;
    /* turning needs the whole image: its decode's memory is counted */
    assert_int_equal(img_upload_probe(jpg, m, &limits, &info, &err), 0);
    assert_int_equal(info.decode_bytes, 200 * 100 * 9);
    assert_int_equal(img_upload_normalize(jpg, m, &limits, &out, &info, &err), 0);
    assert_int_equal(info.width, 100);
    assert_int_equal(info.height, 200);
    VipsImage *o = imgt_decode(out.data, out.len);
    assert_int_equal(o->Xsize, 100);
    assert_int_equal(o->Ysize, 200);
    unsigned char top[3], bottom[3];
    imgt_pixel(o, 50, 20, top);
    imgt_pixel(o, 50, 180, bottom);
    assert_true(top[0] > 180 && top[2] < 60);       /* red on top */
    assert_true(bottom[2] > 180 && bottom[0] < 60); /* blue below */
    assert_int_equal(vips_image_get_typeof(o, VIPS_META_EXIF_NAME), 0);
    assert_int_equal(vips_image_get_typeof(o, VIPS_META_XMP_NAME), 0);
    assert_int_equal(vips_image_get_typeof(o, VIPS_META_ICC_NAME), 0);
    assert_true(vips_image_get_orientation(o) <= 1);
    g_object_unref(o);
    assert_false(has_bytes(out.data, out.len, "Secretperson"));
    assert_false(has_bytes(out.data, out.len, "GPSsecret"));
    assert_false(has_bytes(out.data, out.len, "secret comment"));
    assert_false(has_bytes(out.data, out.len, "Exif"));
    img_buf_dispose(&out);
    free(jpg);
}

static void test_grey_16bit_png_becomes_8bit_srgb(void **state)
{
    (void)state;
    VipsImage *g = NULL, *g16 = NULL;
    assert_int_equal(vips_black(&g, 64, 48, NULL), 0);
    assert_int_equal(vips_cast(g, &g16, VIPS_FORMAT_USHORT, NULL), 0);
    g16->Type = VIPS_INTERPRETATION_GREY16;
    size_t n;
    unsigned char *png = imgt_encode(g16, IMG_FORMAT_PNG, &n);
    g_object_unref(g);
    g_object_unref(g16);
    gf_err_t err = {0};
    img_buf out;
    img_info info;
    assert_int_equal(img_upload_normalize(png, n, &limits, &out, &info, &err), 0);
    VipsImage *o = imgt_decode(out.data, out.len);
    assert_int_equal(o->Bands, 3);
    assert_int_equal(o->BandFmt, VIPS_FORMAT_UCHAR);
    g_object_unref(o);
    img_buf_dispose(&out);
    g_free(png);
}

static void test_truncated_uploads_refused(void **state)
{
    (void)state;
    img_format fmts[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};
    for (size_t i = 0; i < 3; i++) {
        size_t n;
        unsigned char *in = imgt_picture(400, 300, fmts[i], &n);
        expect_refused(in, n / 2, &limits, GF_EINVAL, IMG_REASON_UNDECODABLE);
        expect_refused(in, 40, &limits, GF_EINVAL, IMG_REASON_UNDECODABLE);
        g_free(in);
    }
}

/* Returns the offset of the first PNG chunk of `type`. */
static size_t png_chunk(const unsigned char *p, size_t n, const char *type)
{
    for (size_t off = 8; off + 8 <= n;) {
        size_t len = (size_t)p[off] << 24 | p[off + 1] << 16 | p[off + 2] << 8 | p[off + 3];
        if (memcmp(p + off + 4, type, 4) == 0)
            return off;
        off += 12 + len;
    }
    fail_msg("no %s chunk", type);
    return 0;
}

static void test_corrupt_uploads_refused(void **state)
{
    (void)state;
    size_t n;
    /* PNG: scribble over the image data (its CRC no longer matches). */
    unsigned char *png = imgt_picture(400, 300, IMG_FORMAT_PNG, &n);
    size_t idat = png_chunk(png, n, "IDAT");
    memset(png + idat + 8 + 10, 0xa5, 64);
    expect_refused(png, n, &limits, GF_EINVAL, IMG_REASON_UNDECODABLE);
    g_free(png);
    /* JPEG: garbage where the quantization and Huffman tables were. */
    unsigned char *jpg = imgt_picture(400, 300, IMG_FORMAT_JPEG, &n);
    memset(jpg + 20, 0x5a, 200);
    expect_refused(jpg, n, &limits, GF_EINVAL, IMG_REASON_UNDECODABLE);
    g_free(jpg);
    /* WebP: a RIFF header followed by noise. */
    unsigned char *webp = imgt_picture(400, 300, IMG_FORMAT_WEBP, &n);
    memset(webp + 20, 0x33, n - 20);
    expect_refused(webp, n, &limits, GF_EINVAL, IMG_REASON_UNDECODABLE);
    g_free(webp);
}

/*
 * A 90-odd byte PNG whose header declares 30000 x 30000 RGB: 2.7 GB if
 * decoded. It must be refused on the header, as too many pixels - had it been
 * decoded, it would have failed as undecodable (it holds one row at most).
 */
static void test_huge_dimensions_refused_before_decoding(void **state)
{
    (void)state;
    unsigned char png[256], ihdr[13] = {0}, idat[32];
    size_t n = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    png_put32(ihdr, 30000);
    png_put32(ihdr + 4, 30000);
    ihdr[8] = 8; /* bit depth */
    ihdr[9] = 2; /* RGB */
    n += png_put_chunk(png + n, "IHDR", ihdr, sizeof(ihdr));
    unsigned char raw[8] = {0};
    uLongf zlen = sizeof(idat);
    assert_int_equal(compress(idat, &zlen, raw, sizeof(raw)), Z_OK);
    n += png_put_chunk(png + n, "IDAT", idat, zlen);
    n += png_put_chunk(png + n, "IEND", NULL, 0);
    assert_true(n < 100);

    gf_err_t err = {0};
    img_info info;
    assert_int_equal(img_upload_probe(png, n, &limits, &info, &err), GF_ETOOBIG);
    assert_int_equal(img_err_reason(&err), IMG_REASON_TOO_MANY_PIXELS);
    assert_non_null(strstr(err.msg, "30000x30000"));
    expect_refused(png, n, &limits, GF_ETOOBIG, IMG_REASON_TOO_MANY_PIXELS);

    /* The same for a JPEG whose frame header is patched to 30000 x 30000. */
    size_t jn;
    unsigned char *jpg = imgt_picture(64, 64, IMG_FORMAT_JPEG, &jn);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < jn; i++)
        if (jpg[i] == 0xff && (jpg[i + 1] == 0xc0 || jpg[i + 1] == 0xc2)) {
            sof = i;
            break;
        }
    assert_true(sof > 0);
    jpg[sof + 5] = 30000 >> 8;
    jpg[sof + 6] = 30000 & 0xff;
    jpg[sof + 7] = 30000 >> 8;
    jpg[sof + 8] = 30000 & 0xff;
    expect_refused(jpg, jn, &limits, GF_ETOOBIG, IMG_REASON_TOO_MANY_PIXELS);
    g_free(jpg);
}

static void test_pixel_limit_is_configurable(void **state)
{
    (void)state;
    size_t n;
    unsigned char *in = imgt_picture(100, 100, IMG_FORMAT_PNG, &n);
    img_limits tight = {.max_bytes = limits.max_bytes, .max_pixels = 9999};
    expect_refused(in, n, &tight, GF_ETOOBIG, IMG_REASON_TOO_MANY_PIXELS);
    tight.max_pixels = 10000;
    gf_err_t err = {0};
    img_info info;
    assert_int_equal(img_upload_probe(in, n, &tight, &info, &err), 0);
    assert_int_equal(info.width * info.height, 10000);
    assert_int_equal(info.decode_bytes, 0); /* an upright PNG streams */
    g_free(in);
    /* WebP decodes whole (libvips 8.14), and the encoder takes it whole */
    in = imgt_picture(100, 100, IMG_FORMAT_WEBP, &n);
    assert_int_equal(img_upload_probe(in, n, &tight, &info, &err), 0);
    assert_int_equal(info.decode_bytes, 100 * 100 * 9);
    g_free(in);
}

static void test_wrong_type_and_oversize_refused(void **state)
{
    (void)state;
    static const char gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9"
                              "\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00"
                              "\x02\x02\x44\x01\x00;";
    expect_refused(gif, sizeof(gif) - 1, &limits, GF_EINVAL, IMG_REASON_UNSUPPORTED);
    expect_refused("<svg xmlns='http://www.w3.org/2000/svg'/>", 41, &limits, GF_EINVAL,
                   IMG_REASON_UNSUPPORTED);
    expect_refused("", 0, &limits, GF_EINVAL, IMG_REASON_UNSUPPORTED);
    size_t n;
    unsigned char *in = imgt_picture(64, 64, IMG_FORMAT_PNG, &n);
    img_limits small = {.max_bytes = n - 1, .max_pixels = limits.max_pixels};
    expect_refused(in, n, &small, GF_ETOOBIG, IMG_REASON_TOO_MANY_BYTES);
    g_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff_by_bytes_not_names),
        cmocka_unit_test(test_each_format_normalizes_and_decodes),
        cmocka_unit_test(test_exif_orientation_applied_and_metadata_gone),
        cmocka_unit_test(test_grey_16bit_png_becomes_8bit_srgb),
        cmocka_unit_test(test_truncated_uploads_refused),
        cmocka_unit_test(test_corrupt_uploads_refused),
        cmocka_unit_test(test_huge_dimensions_refused_before_decoding),
        cmocka_unit_test(test_pixel_limit_is_configurable),
        cmocka_unit_test(test_wrong_type_and_oversize_refused),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
