/*
 * imaging/upload.c - validating and normalizing a user's upload
 * (API.md POST /v1/uploads).
 *
 * The checks run cheapest first, and nothing is decoded before the header
 * has passed: body size, type by magic bytes, then the dimensions the header
 * declares. A 20-byte file claiming 30000 x 30000 is refused before a single
 * pixel buffer exists. Only then is the image decoded, once, with fail_on
 * = error, so a truncated or corrupt upload is refused rather than stored
 * half grey.
 */
#include "imaging_int.h"

#include <string.h>

img_limits img_limits_from_config(const gf_config_t *cfg)
{
    img_limits lim = {
        .max_bytes = (size_t)cfg->upload_max_bytes,
        .max_pixels = (uint64_t)cfg->upload_max_pixels,
    };
    return lim;
}

/*
 * What a whole decode holds per pixel (img_info.decode_bytes): measured with
 * `vips copy` of a 6000 x 6000 lossless WebP to WebP at Q 92, 313 MB at its
 * peak for 36 M pixels (8.7 bytes each).
 */
#define IMG_DECODE_BYTES_PER_PIXEL 9

/*
 * The checks of img_upload_probe(); on success `*header` holds the image
 * opened lazily (header parsed, no pixels) for the caller to unref.
 */
static int probe(const void *data, size_t len, const img_limits *lim, img_info *info,
                 VipsImage **header, gf_err_t *err)
{
    img_format fmt;
    VipsImage *im;
    uint64_t pixels;

    memset(info, 0, sizeof(*info));
    if (len > lim->max_bytes)
        return gf_err_setd(err, GF_ETOOBIG, IMG_DOMAIN, IMG_REASON_TOO_MANY_BYTES,
                           "upload of %zu bytes is over the limit of %zu", len, lim->max_bytes);
    fmt = img_sniff(data, len);
    if (fmt == IMG_FORMAT_NONE)
        return gf_err_setd(err, GF_EINVAL, IMG_DOMAIN, IMG_REASON_UNSUPPORTED,
                           "upload is not PNG, JPEG or WebP by its bytes");
    /* Sequential access: only the header is read here. */
    im = img__load(data, len, fmt, VIPS_ACCESS_SEQUENTIAL);
    if (im == NULL)
        return img__vips_fail(err, GF_EINVAL, IMG_REASON_UNDECODABLE,
                              "while reading the upload's header");
    pixels = (uint64_t)vips_image_get_width(im) * (uint64_t)vips_image_get_height(im);
    if (pixels > lim->max_pixels) {
        gf_err_setd(err, GF_ETOOBIG, IMG_DOMAIN, IMG_REASON_TOO_MANY_PIXELS,
                    "upload declares %dx%d = %llu pixels; the limit is %llu",
                    vips_image_get_width(im), vips_image_get_height(im), (unsigned long long)pixels,
                    (unsigned long long)lim->max_pixels);
        g_object_unref(im);
        return GF_ETOOBIG;
    }
    info->format = fmt;
    info->width = vips_image_get_width(im);
    info->height = vips_image_get_height(im);
    info->bytes = len;
    if (fmt == IMG_FORMAT_WEBP || vips_image_get_orientation(im) > 1)
        info->decode_bytes = (size_t)pixels * IMG_DECODE_BYTES_PER_PIXEL;
    *header = im;
    return 0;
}

int img_upload_probe(const void *data, size_t len, const img_limits *lim, img_info *info,
                     gf_err_t *err)
{
    VipsImage *im = NULL;
    int rc = probe(data, len, lim, info, &im, err);

    if (rc == 0)
        g_object_unref(im);
    return rc;
}

/* Quality of re-encoded lossy uploads: high, since they feed a model. */
#define UPLOAD_QUALITY 92

int img_upload_normalize(const void *data, size_t len, const img_limits *lim, img_buf *out,
                         img_info *info, gf_err_t *err)
{
    VipsObject *ctx;
    VipsImage **t;
    VipsImage *im = NULL, *cur;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = probe(data, len, lim, info, &im, err);
    if (rc < 0)
        return rc;
    ctx = VIPS_OBJECT(vips_image_new());
    t = (VipsImage **)vips_object_local_array(ctx, 3);
    t[0] = im;
    cur = im;
    /*
     * Upright images stream from decoder to encoder (sequential access, no
     * full-size buffer). Rotating needs the whole image, so it is reopened
     * with random access, which decodes it once into memory (or a temp file
     * above vips' disc threshold) before vips_autorot reads it.
     */
    if (vips_image_get_orientation(im) > 1) {
        t[1] = img__load(data, len, info->format, VIPS_ACCESS_RANDOM);
        if (t[1] == NULL || vips_autorot(t[1], &t[2], NULL) != 0) {
            rc =
                img__vips_fail(err, GF_EINVAL, IMG_REASON_UNDECODABLE, "while decoding the upload");
            goto done;
        }
        cur = t[2];
    }
    cur = img__to_srgb(cur);
    if (cur == NULL) {
        rc = img__vips_fail(err, GF_EINVAL, IMG_REASON_UNDECODABLE, "while converting to sRGB");
        goto done;
    }
    /* The decoder runs here: its failures (fail_on=error) surface from the save. */
    if (img__encode(cur, info->format, UPLOAD_QUALITY, out) != 0) {
        rc = img__vips_fail(err, GF_EINVAL, IMG_REASON_UNDECODABLE, "while decoding the upload");
        g_object_unref(cur);
        goto done;
    }
    info->width = vips_image_get_width(cur);
    info->height = vips_image_get_height(cur);
    info->bytes = out->len;
    img_sha256_hex(out->data, out->len, info->sha256);
    g_object_unref(cur);
done:
    g_object_unref(ctx);
    return rc;
}
