/*
 * imaging/scale2x.c - an 8-bit image in memory enlarged or reduced exactly
 * twice, with the pixels libvips' vips_resize(in, 2.0) or (in, 0.5) gives
 * it (with vector code off, as img_init() sets), computed directly.
 *
 * Enlarging, libvips uses its bicubic (Catmull-Rom) interpolator through
 * vips_affine: output x sits at input x / 2 - 0.5, whose 12-bit weights are
 * (0, 4096, 0, 0) on an input pixel (odd x) and (-256, 2304, 2304, -256)
 * halfway between two (even x), over the four pixels around it, with edge
 * pixels repeated. Each of the four rows is weighted and rounded to an
 * integer first, then the column of the four results, rounded and clipped
 * to 0..255. vips_affine looks up a window and weights per output pixel
 * through an interpolator call; at exactly 2x both passes are plain loops
 * in 16-bit lanes the compiler vectorises (an avatar's 256 -> 512 went from
 * about 11 ms to about 0.8 ms, then 0.4 ms in 16 bits).
 *
 * Reducing, libvips runs vips_reducev then vips_reduceh with its Lanczos-3
 * kernel: output y is the weighted sum of input rows 2y - 5 .. 2y + 6 (edges
 * repeated), with the 12-bit weights LANCZOS3_HALF, rounded and clipped to
 * 8 bits, then the same across. Their C paths (vector code off) walk a
 * generic mask per pixel; at exactly 2x the mask is one, and the loops below
 * do the same sums in a fraction of the time. (With vector code on, libvips'
 * reducev uses 6-bit weights and gives other pixels.)
 *
 * The unit test compares both with vips_resize byte for byte: a libvips
 * whose kernels differ fails it.
 */
#include "imaging_int.h"

#include <stdint.h>

/*
 * The halfway weights over a, b, c, d, rounded: (-256, 2304, 2304, -256) /
 * 4096 with 2048 added before the arithmetic shift by 12, which is the same
 * as (-1, 9, 9, -1) / 16 with 8 added before a shift by 4 (every term is a
 * multiple of 256). In that form every sum of the enlargement fits 16 bits:
 * across, 0..255 gives -32..287, and down from those, -1142..5238 with the
 * 8 added; so the compiler can use 16-bit lanes, twice as many per vector as
 * 32-bit ones.
 */
static inline int16_t halfway(int16_t a, int16_t b, int16_t c, int16_t d)
{
    return (int16_t)((int16_t)(9 * (b + c) - (a + d) + 8) >> 4);
}

static inline unsigned char clip(int v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static inline int clamp_index(int i, int n)
{
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/*
 * The row `in` (w pixels of `bands` samples) enlarged across into `row` (2w
 * pixels). Pixel 2x is halfway between input pixels x - 1 and x, pixel 2x + 1
 * is input pixel x. The halfway samples are computed first, sample by sample
 * into `mid` (w pixels): away from the edges that is one plain loop, since
 * sample i's neighbours are i - 2 bands .. i + bands whatever its band. Then
 * the two kinds are interleaved.
 */
static void across(const unsigned char *restrict in, int w, int bands, int16_t *restrict mid,
                   int16_t *restrict row)
{
    size_t b = (size_t)bands, n = (size_t)w * b;
    size_t lo = w > 2 ? 2 * b : n, hi = w > 2 ? n - b : n; /* [lo, hi) needs no clamp */
    for (size_t i = lo; i < hi; i++)
        mid[i] = halfway(in[i - 2 * b], in[i - b], in[i], in[i + b]);
    for (int x = 0; x < w; x++) {
        if (x >= 2 && x < w - 1)
            continue;
        const unsigned char *p2 = in + (size_t)clamp_index(x - 2, w) * b;
        const unsigned char *p1 = in + (size_t)clamp_index(x - 1, w) * b;
        const unsigned char *p0 = in + (size_t)x * b;
        const unsigned char *n1 = in + (size_t)clamp_index(x + 1, w) * b;
        for (size_t k = 0; k < b; k++)
            mid[(size_t)x * b + k] = halfway(p2[k], p1[k], p0[k], n1[k]);
    }
    if (bands == 3) { /* the usual case, with the sample count known */
        for (size_t x = 0; x < (size_t)w; x++)
            for (size_t k = 0; k < 3; k++) {
                row[6 * x + k] = mid[3 * x + k];
                row[6 * x + 3 + k] = in[3 * x + k];
            }
        return;
    }
    for (size_t x = 0; x < (size_t)w; x++)
        for (size_t k = 0; k < b; k++) {
            row[2 * x * b + k] = mid[x * b + k];
            row[(2 * x + 1) * b + k] = in[x * b + k];
        }
}

/* Two output rows from the four enlarged rows around them: `even` halfway
 * between r1 and r0, `odd` on r0. */
static void down(const int16_t *restrict r2, const int16_t *restrict r1, const int16_t *restrict r0,
                 const int16_t *restrict n1, unsigned char *restrict even,
                 unsigned char *restrict odd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        even[i] = clip(halfway(r2[i], r1[i], r0[i], n1[i]));
        odd[i] = clip(r0[i]);
    }
}

/* A new memory image of w x h with the bands, interpretation and resolution
 * of `in` (vips_thumbnail_image keeps the resolution too: the encoders write
 * it), ready to be written, or NULL (vips error set). */
static VipsImage *new_like(VipsImage *in, int w, int h)
{
    VipsImage *im = vips_image_new_memory();
    vips_image_init_fields(im, w, h, in->Bands, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE, in->Type,
                           in->Xres, in->Yres);
    if (vips_image_write_prepare(im) != 0) {
        g_object_unref(im);
        return NULL;
    }
    return im;
}

/* 0 when `in` is an uncoded 8-bit image whose pixels can be read from memory
 * (computed there if needed); else -1 with a vips error naming `who`. */
static int check_input(VipsImage *in, const char *who)
{
    if (in->BandFmt != VIPS_FORMAT_UCHAR || in->Coding != VIPS_CODING_NONE ||
        in->Xsize > VIPS_MAX_COORD / 2 || in->Ysize > VIPS_MAX_COORD / 2) {
        vips_error(IMG_DOMAIN, "%s takes an uncoded 8-bit image", who);
        return -1;
    }
    return vips_image_wio_input(in);
}

int img__double(VipsImage *in, VipsImage **out)
{
    *out = NULL;
    if (check_input(in, "img__double") != 0)
        return -1;
    int w = in->Xsize, h = in->Ysize, bands = in->Bands;
    size_t row_len = (size_t)2 * w * bands;
    VipsImage *im = new_like(in, 2 * w, 2 * h);
    if (im == NULL)
        return -1;
    /* The input rows enlarged across, four at a time: row i in slot i % 4.
     * Output rows 2y and 2y + 1 read rows y - 2 .. y + 1 (edges repeated),
     * four rows in a row of input, so never two in one slot. */
    int16_t *ring = g_malloc(row_len * 4 * sizeof(*ring));
    int16_t *mid = g_malloc(row_len / 2 * sizeof(*mid));
    int done = 0; /* rows 0 .. done - 1 were enlarged across */
    for (int y = 0; y < h; y++) {
        for (; done <= y + 1 && done < h; done++)
            across(VIPS_IMAGE_ADDR(in, 0, done), w, bands, mid,
                   ring + row_len * (size_t)(done % 4));
#define ROW(i) (ring + row_len * (size_t)(clamp_index((i), h) % 4))
        down(ROW(y - 2), ROW(y - 1), ROW(y), ROW(y + 1), VIPS_IMAGE_ADDR(im, 0, 2 * y),
             VIPS_IMAGE_ADDR(im, 0, 2 * y + 1), row_len);
#undef ROW
    }
    g_free(mid);
    g_free(ring);
    *out = im;
    return 0;
}

/* libvips 8.14's Lanczos-3 weights for a 2x reduction, in 4096ths, of input
 * 2y - 5 + i for output y (the same down and across). */
static const int LANCZOS3_HALF[12] = {15, 61, -139, -272, 555, 1828, 1828, 555, -272, -139, 61, 15};

/* Output row y of the reduction down: the rows r[0..11] (edges repeated),
 * weighted. The weights are symmetric: r[i] and r[11 - i] share one. */
static void reduce_down(const unsigned char *const r[12], unsigned char *restrict out, size_t n)
{
    const unsigned char *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2],
                                  *restrict r3 = r[3], *restrict r4 = r[4], *restrict r5 = r[5],
                                  *restrict r6 = r[6], *restrict r7 = r[7], *restrict r8 = r[8],
                                  *restrict r9 = r[9], *restrict r10 = r[10], *restrict r11 = r[11];
    const int *c = LANCZOS3_HALF;
    for (size_t i = 0; i < n; i++) {
        int s = c[0] * (r0[i] + r11[i]) + c[1] * (r1[i] + r10[i]) + c[2] * (r2[i] + r9[i]) +
                c[3] * (r3[i] + r8[i]) + c[4] * (r4[i] + r7[i]) + c[5] * (r5[i] + r6[i]);
        out[i] = clip((s + 2048) >> 12);
    }
}

/*
 * The row `in` (w pixels of `bands` samples) reduced across into `out` (w / 2
 * pixels). Away from the edges each band is copied into a plane of its own
 * first (`plane`, `sum`: w scratch samples each), so the weighted sums run
 * over one plane with fixed strides, a loop the compiler vectorises; then
 * they are put back in place.
 */
static void reduce_across(const unsigned char *restrict in, int w, int bands,
                          unsigned char *restrict plane, unsigned char *restrict sum,
                          unsigned char *restrict out)
{
    const int *c = LANCZOS3_HALF;
    int lo = w >= 12 ? 3 : w / 2, hi = w >= 12 ? (w - 7) / 2 + 1 : w / 2; /* no clamp in [lo, hi) */
    size_t b = (size_t)bands;
    for (size_t k = 0; k < b; k++) {
        for (size_t x = 0; x < (size_t)w; x++)
            plane[x] = in[x * b + k];
        for (int x = lo; x < hi; x++) {
            const unsigned char *p = plane + 2 * x - 5;
            int v = c[0] * (p[0] + p[11]) + c[1] * (p[1] + p[10]) + c[2] * (p[2] + p[9]) +
                    c[3] * (p[3] + p[8]) + c[4] * (p[4] + p[7]) + c[5] * (p[5] + p[6]);
            sum[x] = clip((v + 2048) >> 12);
        }
        for (int x = lo; x < hi; x++)
            out[(size_t)x * b + k] = sum[x];
    }
    for (int x = 0; x < w / 2; x++) {
        if (x >= lo && x < hi)
            continue;
        for (size_t k = 0; k < b; k++) {
            int s = 2048;
            for (int i = 0; i < 12; i++)
                s += c[i] * in[(size_t)clamp_index(2 * x - 5 + i, w) * b + k];
            out[(size_t)x * b + k] = clip(s >> 12);
        }
    }
}

int img__halve(VipsImage *in, VipsImage **out)
{
    *out = NULL;
    if (check_input(in, "img__halve") != 0)
        return -1;
    int w = in->Xsize, h = in->Ysize;
    if (w % 2 != 0 || h % 2 != 0) {
        vips_error(IMG_DOMAIN, "%s", "img__halve takes an image of even sides");
        return -1;
    }
    VipsImage *im = new_like(in, w / 2, h / 2);
    if (im == NULL)
        return -1;
    size_t row_len = (size_t)w * in->Bands;
    unsigned char *down = g_malloc(row_len + 2 * (size_t)w);
    unsigned char *plane = down + row_len, *sum = plane + w;
    for (int y = 0; y < h / 2; y++) {
        const unsigned char *r[12];
        for (int i = 0; i < 12; i++)
            r[i] = VIPS_IMAGE_ADDR(in, 0, clamp_index(2 * y - 5 + i, h));
        reduce_down(r, down, row_len);
        reduce_across(down, w, in->Bands, plane, sum, VIPS_IMAGE_ADDR(im, 0, y));
    }
    g_free(down);
    *out = im;
    return 0;
}
