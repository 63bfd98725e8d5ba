/*
 * imaging/jpeg.c - JPEG output: an 8-bit sRGB image encoded by libjpeg
 * straight from its pixels in memory.
 *
 * For an uncoded 8-bit sRGB image of 3 bands and one page, libvips 8.14's
 * jpegsave with strip and a quality below 90 (at 90 and above it turns
 * chroma subsampling off) gives libjpeg the pixels unchanged, with
 * libjpeg's defaults, jpeg_set_quality(Q, baseline) and no JFIF header.
 * Around that it runs its sink (a worker thread and a strip buffer per call,
 * even at FARM_VIPS_CONCURRENCY=1, handing each strip over through futexes)
 * and builds an operation object: for the 128x128 thumb that is most of the
 * call's CPU.
 * img__jpeg_encode() makes the same libjpeg calls on the pixels where they
 * lie: the same bytes (tests/unit/imaging/test_encode.c compares them).
 */
#include "imaging_int.h"

/* jpeglib.h needs FILE and size_t declared first. */
#include <stdio.h>
#include <setjmp.h>
#include <string.h>

#include <jpeglib.h>

/* Quality from which jpegsave stops subsampling chroma (its "auto" mode). */
#define JPEG_FULL_CHROMA_Q 90

int img__jpeg_direct(const VipsImage *in, int quality)
{
    return quality >= 1 && quality < JPEG_FULL_CHROMA_Q && in->Coding == VIPS_CODING_NONE &&
           in->BandFmt == VIPS_FORMAT_UCHAR && in->Bands == 3 &&
           in->Type == VIPS_INTERPRETATION_sRGB &&
           vips_image_get_page_height((VipsImage *)in) == in->Ysize;
}

/* libjpeg's error manager, leaving by longjmp instead of exit(). */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf back;
} jerr_t;

static void on_jpeg_error(j_common_ptr c)
{
    jerr_t *e = (jerr_t *)c->err;
    char msg[JMSG_LENGTH_MAX];
    c->err->format_message(c, msg);
    vips_error(IMG_DOMAIN, "libjpeg: %s", msg);
    longjmp(e->back, 1);
}

/* libjpeg's warnings and traces: compression warns of nothing the output
 * depends on, and libjpeg would print them to stderr, outside the log. */
static void on_jpeg_message(j_common_ptr c)
{
    (void)c;
}

/* libjpeg's output into a growing g_malloc buffer (img_buf's memory). */
typedef struct {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
} dest_t;

static void dest_init(j_compress_ptr c)
{
    dest_t *d = (dest_t *)c->dest;
    d->pub.next_output_byte = d->buf;
    d->pub.free_in_buffer = d->cap;
}

static boolean dest_grow(j_compress_ptr c)
{
    dest_t *d = (dest_t *)c->dest;
    size_t used = d->cap; /* libjpeg asks only once the buffer is full */
    d->cap *= 2;
    d->buf = g_realloc(d->buf, d->cap);
    d->pub.next_output_byte = d->buf + used;
    d->pub.free_in_buffer = d->cap - used;
    return TRUE;
}

static void dest_term(j_compress_ptr c)
{
    (void)c;
}

/* Encodes into d->buf (the caller's to free, also after a failure), or -1
 * (vips error set). Apart so that nothing setjmp may clobber lives in the
 * caller's frame. */
static int compress(VipsImage *in, int quality, dest_t *d)
{
    struct jpeg_compress_struct c;
    jerr_t e;

    memset(&c, 0, sizeof c); /* so that a failing create leaves nothing to misread */
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_jpeg_error;
    e.pub.output_message = on_jpeg_message;
    if (setjmp(e.back)) {
        jpeg_destroy_compress(&c);
        return -1;
    }
    jpeg_create_compress(&c);
    d->pub.init_destination = dest_init;
    d->pub.empty_output_buffer = dest_grow;
    d->pub.term_destination = dest_term;
    c.dest = &d->pub;
    c.image_width = (JDIMENSION)in->Xsize;
    c.image_height = (JDIMENSION)in->Ysize;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    c.write_JFIF_header = FALSE; /* jpegsave with strip writes none */
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = VIPS_IMAGE_ADDR(in, 0, (int)c.next_scanline);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return 0;
}

int img__jpeg_encode(VipsImage *in, int quality, img_buf *out)
{
    if (!img__jpeg_direct(in, quality)) {
        vips_error(IMG_DOMAIN, "%s", "img__jpeg_encode takes an 8-bit sRGB image");
        return -1;
    }
    /* The pixels in memory: a reference to `in` when they are there already,
     * else a copy computed from its pipeline (a decoder's failure surfaces
     * here), dropped after the encode so that `in` stays as small as it was. */
    VipsImage *m = img__copy_memory(in);
    if (m == NULL)
        return -1;
    /* About a bit per pixel for smooth images at these qualities; a noisy
     * one grows the buffer a few times (doubling). */
    dest_t d = {.cap = 4096 + (size_t)m->Xsize * m->Ysize / 8};
    d.buf = g_malloc(d.cap);
    int rc = compress(m, quality, &d);
    g_object_unref(m);
    if (rc != 0) {
        g_free(d.buf);
        return -1;
    }
    out->data = d.buf;
    out->len = d.cap - d.pub.free_in_buffer;
    return 0;
}
