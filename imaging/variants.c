/*
 * imaging/variants.c - a provider image into the outputs of API.md: full,
 * 512, 256, thumb and the requested export presets.
 *
 * The provider's bytes are decoded exactly once into an sRGB memory image,
 * and every variant is cut from that copy: decoding per variant would double
 * the cost of the most expensive step. The 512 is computed into memory once,
 * the 256 is cut from it (already a square attention crop, so it has the
 * same framing at a quarter of the work), and a square image's thumb from
 * the 256 (see img_variants_make()). A provider image is trusted no more
 * than an upload: it must be PNG/JPEG/WebP by its bytes, decode without
 * error and have the size we asked for, or the whole image fails as
 * invalid_output.
 */
#include "imaging_int.h"

#include <stdio.h>
#include <string.h>

#define FULL_QUALITY  85
#define THUMB_SIZE    128
#define THUMB_QUALITY 80
#define SIDE_MAX      16384 /* no provider returns more; bounds the decode */

void img_variants_dispose(img_variants *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->count; i++)
        img_buf_dispose(&v->items[i].data);
    GF_FREE(v->items);
    v->count = 0;
}

/* Encodes `im` as the next variant of `out`. */
static int add_variant(img_variants *out, const char *name, VipsImage *im, img_format fmt,
                       int quality, gf_err_t *err)
{
    img_variant *v = &out->items[out->count];

    memset(v, 0, sizeof(*v));
    snprintf(v->name, sizeof(v->name), "%s", name);
    if (img__encode(im, fmt, quality, &v->data) != 0) {
        char what[64];
        snprintf(what, sizeof(what), "while encoding variant %s", name);
        return img__vips_fail(err, GF_EIO, IMG_REASON_NONE, what);
    }
    v->format = fmt;
    v->width = vips_image_get_width(im);
    v->height = vips_image_get_height(im);
    img_sha256_hex(v->data.data, v->data.len, v->sha256);
    out->count++;
    return 0;
}

/* Adds a copy of the variant `from` (already in `out`) under `name`: the
 * encoding of an image identical to its own at the same format and quality. */
static void add_copy(img_variants *out, const char *name, size_t from)
{
    const img_variant *src = &out->items[from];
    img_variant *v = &out->items[out->count];

    *v = *src;
    snprintf(v->name, sizeof(v->name), "%s", name);
    v->data.data = g_memdup2(src->data.data, src->data.len);
    out->count++;
}

/*
 * The square `in` scaled to side x side. Without an alpha band that is
 * vips_resize at side / width: the pixels vips_thumbnail_image gives (it
 * makes the same resize), without its set-up around it, which cost a
 * 1024 -> 512 about 15 % more. An exact 2x enlargement (a 256 provider
 * image's 512) is img__double's and an exact halving (1024 -> 512, 512 ->
 * 256, 256 -> 128) img__halve's: the same pixels again, a fraction of the
 * time. With alpha, thumbnail premultiplies first, so it stays.
 */
static int scale_square(VipsImage *in, int side, VipsImage **out)
{
    if (vips_image_hasalpha(in))
        return vips_thumbnail_image(in, out, side, "height", side, "size", VIPS_SIZE_BOTH, NULL);
    if (side == 2 * in->Xsize && in->BandFmt == VIPS_FORMAT_UCHAR)
        return img__double(in, out);
    if (2 * side == in->Xsize && in->BandFmt == VIPS_FORMAT_UCHAR)
        return img__halve(in, out);
    return vips_resize(in, out, (double)side / in->Xsize, NULL);
}

/* Scales `in` to cover w x h and cuts that out where vips' attention
 * heuristic (skin, saturation, edges) finds the subject. When `in` already
 * has the aspect of w x h nothing is cut, so the search is skipped: the
 * pixels are the same as with it. */
static int cover_crop(VipsImage *in, int w, int h, VipsImage **out)
{
    if (in->Xsize == in->Ysize && w == h)
        return scale_square(in, w, out);
    if ((long long)in->Xsize * h == (long long)in->Ysize * w)
        return vips_thumbnail_image(in, out, w, "height", h, "size", VIPS_SIZE_BOTH, NULL);
    return vips_thumbnail_image(in, out, w, "height", h, "crop", VIPS_INTERESTING_ATTENTION, "size",
                                VIPS_SIZE_BOTH, NULL);
}

/* Replaces the pipeline *im by its pixels in memory (the old ref dropped):
 * an image that is encoded and also resized again is then computed once,
 * not once per reader. 0 or -1 (vips error set). */
static int materialise(VipsImage **im)
{
    VipsImage *mem = img__copy_memory(*im);

    g_object_unref(*im);
    *im = mem;
    return mem != NULL ? 0 : -1;
}

/*
 * The 512 square of `mem` (*out, a new ref), held in memory when the 256 is
 * cut from it (`source`). A square `mem` is only scaled. Otherwise it is
 * scaled to cover 512 x 512 first and that scaled image is held in memory
 * while the attention search reads it and the crop is cut from it:
 * vips_thumbnail_image with a crop would compute the resize twice (once for
 * the search, once for the pixels cut out).
 */
static int square_512(VipsImage *mem, int source, VipsImage **out)
{
    VipsImage *scaled = NULL;
    int rc;

    *out = NULL;
    if (mem->Xsize == mem->Ysize) {
        if (cover_crop(mem, 512, 512, out) != 0)
            return -1;
        return source ? materialise(out) : 0;
    }
    /* Cover: the shorter side becomes 512; the longer side's bound is one no
     * scale reaches, so the thumbnail fits the shorter side exactly. */
    if (mem->Xsize < mem->Ysize)
        rc = vips_thumbnail_image(mem, &scaled, 512, "height", VIPS_MAX_COORD, "size",
                                  VIPS_SIZE_BOTH, NULL);
    else
        rc = vips_thumbnail_image(mem, &scaled, VIPS_MAX_COORD, "height", 512, "size",
                                  VIPS_SIZE_BOTH, NULL);
    if (rc != 0 || materialise(&scaled) != 0)
        return -1;
    rc = vips_smartcrop(scaled, out, 512, 512, "interesting", VIPS_INTERESTING_ATTENTION, NULL);
    g_object_unref(scaled);
    return rc;
}

static int check_opts(const img_post_opts *o, gf_err_t *err)
{
    if (o->expect_width < 1 || o->expect_width > SIDE_MAX || o->expect_height < 1 ||
        o->expect_height > SIDE_MAX)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "expected size %dx%d is out of range",
                          o->expect_width, o->expect_height);
    if (o->n_exports > 0 && o->exports == NULL)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "n_exports without exports");
    for (size_t i = 0; i < o->n_exports; i++) {
        const img_export_preset *e = o->exports[i];
        if (e == NULL || e->width < 1 || e->width > SIDE_MAX || e->height < 1 ||
            e->height > SIDE_MAX || e->format == IMG_FORMAT_NONE)
            return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "export %zu is malformed", i);
    }
    return 0;
}

/* Decodes the provider image once into sRGB memory (*out, a new ref); the
 * size is checked on the header, before the decode. */
static int decode_checked(const void *data, size_t len, const img_post_opts *o, VipsImage **out,
                          gf_err_t *err)
{
    img_format fmt = img_sniff(data, len);
    VipsImage *hdr, *srgb;

    if (fmt == IMG_FORMAT_NONE)
        return gf_err_setd(err, GF_EPROVIDER, IMG_DOMAIN, IMG_REASON_INVALID_OUTPUT,
                           "provider image is not PNG, JPEG or WebP (%zu bytes)", len);
    hdr = img__load(data, len, fmt, VIPS_ACCESS_SEQUENTIAL);
    if (hdr == NULL)
        return img__vips_fail(err, GF_EPROVIDER, IMG_REASON_INVALID_OUTPUT,
                              "while reading the provider image's header");
    if (hdr->Xsize != o->expect_width || hdr->Ysize != o->expect_height) {
        gf_err_setd(err, GF_EPROVIDER, IMG_DOMAIN, IMG_REASON_INVALID_OUTPUT,
                    "provider image is %dx%d, asked for %dx%d", hdr->Xsize, hdr->Ysize,
                    o->expect_width, o->expect_height);
        g_object_unref(hdr);
        return GF_EPROVIDER;
    }
    srgb = img__to_srgb(hdr);
    g_object_unref(hdr);
    *out = srgb ? img__copy_memory(srgb) : NULL;
    if (srgb != NULL)
        g_object_unref(srgb);
    if (*out == NULL)
        return img__vips_fail(err, GF_EPROVIDER, IMG_REASON_INVALID_OUTPUT,
                              "while decoding the provider image");
    return 0;
}

/* The fixed variants img_variants_make() adds first, in its order. */
static const struct {
    const char *name;
    img_format fmt;
} fixed_variants[] = {{"full", IMG_FORMAT_WEBP},
                      {"512", IMG_FORMAT_WEBP},
                      {"256", IMG_FORMAT_WEBP},
                      {"thumb", IMG_FORMAT_JPEG}};

int img_variant_spec(const img_export_preset *const *exports, size_t n_exports, size_t i,
                     const char **name, img_format *fmt)
{
    size_t nf = sizeof(fixed_variants) / sizeof(fixed_variants[0]);
    if (i < nf) {
        *name = fixed_variants[i].name;
        *fmt = fixed_variants[i].fmt;
        return 0;
    }
    if (i - nf >= n_exports)
        return -1;
    *name = exports[i - nf]->name;
    *fmt = exports[i - nf]->format;
    return 0;
}

int img_variants_make(const void *data, size_t len, const img_post_opts *o, img_variants *out,
                      gf_err_t *err)
{
    VipsObject *ctx = NULL;
    VipsImage **t;
    VipsImage *mem;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = check_opts(o, err);
    if (rc < 0)
        return rc;
    rc = decode_checked(data, len, o, &mem, err);
    if (rc < 0)
        return rc;
    ctx = VIPS_OBJECT(vips_image_new());
    t = (VipsImage **)vips_object_local_array(ctx, 4 + (int)o->n_exports);
    t[0] = mem;
    out->items = gf_xcalloc(4 + o->n_exports, sizeof(img_variant));

    rc = add_variant(out, fixed_variants[0].name, mem, fixed_variants[0].fmt, FULL_QUALITY, err);
    if (rc < 0)
        goto fail;
    /*
     * Each smaller square comes from the one above it, held in memory, so
     * no resize runs twice and no attention search runs on a square. A
     * square provider image of 512 or 256 is that variant itself (the same
     * bytes as the full one); a square no wider than 512 gives its own 256
     * (never the upscaled 512). The thumb of a square at least 256 wide is
     * the 256 scaled once more (the same framing: nothing is cut from a
     * square); any other image's thumb is the whole image fitted into 128.
     */
    int square = mem->Xsize == mem->Ysize;
    int own_512 = square && mem->Xsize == 512;
    int own_256 = square && mem->Xsize == 256;
    int src_256_is_mem = square && mem->Xsize <= 512;
    int thumb_from_256 = square && mem->Xsize >= 256;
    if (own_512)
        t[1] = g_object_ref(mem);
    else if (square_512(mem, !src_256_is_mem, &t[1]) != 0) {
        rc = img__vips_fail(err, GF_EIO, IMG_REASON_NONE, "while resizing to 512");
        goto fail;
    }
    if (own_256)
        t[2] = g_object_ref(mem);
    else if (cover_crop(src_256_is_mem ? mem : t[1], 256, 256, &t[2]) != 0 ||
             (thumb_from_256 && materialise(&t[2]) != 0)) {
        rc = img__vips_fail(err, GF_EIO, IMG_REASON_NONE, "while resizing to 256");
        goto fail;
    }
    if ((thumb_from_256
             ? scale_square(t[2], THUMB_SIZE, &t[3])
             : vips_thumbnail_image(mem, &t[3], THUMB_SIZE, "height", THUMB_SIZE, NULL)) != 0) {
        rc = img__vips_fail(err, GF_EIO, IMG_REASON_NONE, "while resizing to the thumb");
        goto fail;
    }
    if (own_512)
        add_copy(out, fixed_variants[1].name, 0);
    else if ((rc = add_variant(out, fixed_variants[1].name, t[1], fixed_variants[1].fmt,
                               FULL_QUALITY, err)) < 0)
        goto fail;
    if (own_256)
        add_copy(out, fixed_variants[2].name, 0);
    else if ((rc = add_variant(out, fixed_variants[2].name, t[2], fixed_variants[2].fmt,
                               FULL_QUALITY, err)) < 0)
        goto fail;
    if ((rc = add_variant(out, fixed_variants[3].name, t[3], fixed_variants[3].fmt, THUMB_QUALITY,
                          err)) < 0)
        goto fail;
    for (size_t i = 0; i < o->n_exports; i++) {
        const img_export_preset *e = o->exports[i];
        if (cover_crop(mem, e->width, e->height, &t[4 + i]) != 0) {
            rc = img__vips_fail(err, GF_EIO, IMG_REASON_NONE, "while cropping an export");
            goto fail;
        }
        rc = add_variant(out, e->name, t[4 + i], e->format, e->quality, err);
        if (rc < 0)
            goto fail;
    }
    g_object_unref(ctx);
    return 0;
fail:
    img_variants_dispose(out);
    g_object_unref(ctx);
    return rc;
}
