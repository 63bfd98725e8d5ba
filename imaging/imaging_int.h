/*
 * imaging/imaging_int.h - helpers shared by the files of imaging/, never
 * included by another module (it exposes libvips types).
 */
#ifndef IMG_IMAGING_INT_H
#define IMG_IMAGING_INT_H

#include <vips/vips.h>

#include "imaging.h"

#define IMG_DOMAIN "imaging"

/*
 * Records a libvips failure: `what` plus the text of vips' process-wide error
 * buffer (context only: another thread may have added to it), then clears
 * the buffer so the next failure starts clean. Returns `code`.
 */
int img__vips_fail(gf_err_t *err, gf_status code, img_reason reason, const char *what);

/*
 * Opens `data` lazily with the loader of `fmt` (never vips' own sniffing, so
 * no other loader can be reached), failing on any decoder error once pixels
 * are read. Only the header is parsed here. Returns a new image or NULL.
 */
VipsImage *img__load(const void *data, size_t len, img_format fmt, VipsAccess access);

/*
 * `in` with its pixels in memory, as vips_image_copy_memory(): a new reference
 * when they are there already, else a memory image computed from its
 * pipeline (a decoder's failure surfaces here). At FARM_VIPS_CONCURRENCY=1
 * the pipeline runs on the calling thread, without vips' threads. Returns a
 * new image or NULL (vips error set).
 */
VipsImage *img__copy_memory(VipsImage *in);

/*
 * Converts to 8-bit sRGB (through an embedded ICC profile when present) with
 * at most one alpha band kept. Returns a new image or NULL (vips error set).
 */
VipsImage *img__to_srgb(VipsImage *in);

/*
 * Encodes `in` as `fmt` at `quality` with all metadata stripped into `out`
 * (bytes allocated with g_malloc, img_buf_dispose() frees them). JPEG has no alpha: it is flattened
 * on white. Returns 0 or -1 (vips error set).
 */
int img__encode(VipsImage *in, img_format fmt, int quality, img_buf *out);

/*
 * `in` (8-bit, uncoded; computed into memory if it is not) enlarged exactly
 * twice, or reduced exactly twice (even sides only), into a new memory image
 * *out, with the pixels of vips_resize(in, 2.0) or (in, 0.5), only faster
 * (imaging/scale2x.c). Return 0 or -1 (vips error set).
 */
int img__double(VipsImage *in, VipsImage **out);
int img__halve(VipsImage *in, VipsImage **out);

/*
 * libwebp's method for every WebP we write: 2 encodes the full-size variant
 * about 30 % faster than the default 4 for about the same size at q85
 * (scripts/bench imaging).
 */
#define IMG_WEBP_EFFORT 2

/* Drops EXIF, XMP and ICCP chunks from an encoded WebP in place. 0 or -1. */
int img__webp_strip(img_buf *b);

/* 1 when img__webp_encode() takes `in`: uncoded 8-bit sRGB, 3 or 4 bands, one page. */
int img__webp_direct(const VipsImage *in);

/*
 * `in` (img__webp_direct; when its pixels are not in memory, they are
 * computed into a copy dropped afterwards, and `in` is left as it was) encoded
 * by libwebp at `quality` and IMG_WEBP_EFFORT into `out` (g_malloc): the
 * bytes of webpsave with strip, then img__webp_strip() (imaging/webp.c).
 * 0 or -1 (vips error set).
 */
int img__webp_encode(VipsImage *in, int quality, img_buf *out);

/* 1 when img__jpeg_encode() takes `in` at `quality`: uncoded 8-bit sRGB, 3
 * bands, one page, quality 1..89 (jpegsave keeps chroma whole from 90). */
int img__jpeg_direct(const VipsImage *in, int quality);

/*
 * `in` (img__jpeg_direct; when its pixels are not in memory, they are
 * computed into a copy dropped afterwards, and `in` is left as it was) encoded
 * by libjpeg at `quality` into `out` (g_malloc): the bytes of jpegsave with
 * strip (imaging/jpeg.c). 0 or -1 (vips error set).
 */
int img__jpeg_encode(VipsImage *in, int quality, img_buf *out);

#endif
