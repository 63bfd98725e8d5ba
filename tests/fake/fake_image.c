/*
 * tests/fake/fake_image.c - the fake's images, compressed as the real
 * providers send them: JPEG (libjpeg-turbo, quality 90), PNG (rows filtered
 * as libpng's heuristic does, deflated by zlib at its default level) and WEBP
 * (libwebp, quality 80, Replicate's default output_quality). Each picture is
 * a smooth gradient with soft blobs, a ripple and per-pixel noise, so its
 * size and decode cost are those of a generated picture, not a flat colour.
 *
 * Encoding a 1024x1024 PNG takes far longer than answering a call, so images
 * come from a pool: per (format, width, height) VARIANTS pictures, each
 * encoded the first time a call picks it (the seed chooses which), then
 * served from the pool (gf_http_respond copies only what the socket does not
 * take at once). The pool holds at most POOL_MAX_BYTES: the least recently
 * used sizes are dropped first.
 *
 * Then the image faults: corrupt magic, truncated, stalled, chunked abort,
 * JSON on 200, a mismatched Content-Type (PNG bytes labelled image/jpeg, as
 * recorded from HF and fal), the image inline as HF's {"data":[{"b64_json"}]},
 * whose `b64_json:garbage` is not base64.
 */
#include "fake.h"
#include "png_write.h"

#include <jpeglib.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/encode.h>
#include <zlib.h>

#define VARIANTS       4
#define POOL_MAX_BYTES ((size_t)64 << 20)

typedef struct pool_set {
    struct pool_set *prev, *next; /* most recently used first */
    fake_format_t fmt;
    int w, h;
    unsigned char *img[VARIANTS];
    size_t len[VARIANTS];
} pool_set_t;

static pool_set_t *pool_head, *pool_tail;
static size_t pool_bytes;

uint64_t fake_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* --- formats ----------------------------------------------------------------------- */

int fake_format_parse(const char *name, fake_format_t *out)
{
    if (strcmp(name, "jpeg") == 0 || strcmp(name, "jpg") == 0)
        *out = FAKE_JPEG;
    else if (strcmp(name, "png") == 0)
        *out = FAKE_PNG;
    else if (strcmp(name, "webp") == 0)
        *out = FAKE_WEBP;
    else
        return -1;
    return 0;
}

const char *fake_format_mime(fake_format_t fmt)
{
    return fmt == FAKE_PNG ? "image/png" : fmt == FAKE_WEBP ? "image/webp" : "image/jpeg";
}

const char *fake_format_ext(fake_format_t fmt)
{
    return fmt == FAKE_PNG ? "png" : fmt == FAKE_WEBP ? "webp" : "jpeg";
}

/* --- the picture ------------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static unsigned char clamp8(double v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (unsigned char)(v + 0.5);
}

/*
 * RGB, w * h * 3 bytes: a diagonal gradient between two colours, three soft
 * blobs of a third, a ripple whose phase wanders down the picture, and noise
 * (luma +-6, chroma +-2), all from `variant` and the size.
 */
static unsigned char *render(int w, int h, int variant)
{
    uint64_t s = mix(((uint64_t)w << 40) ^ ((uint64_t)h << 20) ^ (uint64_t)variant ^ 0x9e3779b9);
    double c[3][3];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            s = mix(s + 1);
            c[i][k] = 40 + (double)(s % 176);
        }
    double bx[3], by[3], br[3];
    for (int i = 0; i < 3; i++) {
        s = mix(s + 7);
        bx[i] = (double)(s % 1000) / 1000.0 * w;
        by[i] = (double)((s >> 20) % 1000) / 1000.0 * h;
        br[i] = (0.08 + (double)((s >> 40) % 100) / 500.0) * (w < h ? w : h);
    }
    double fx = 6.2831853 * (3 + (double)(s % 5)) / w, fy = 6.2831853 * 2 / h;
    unsigned char *rgb = malloc((size_t)w * h * 3);
    uint64_t n = mix(s ^ 0x5bd1e995);
    for (int y = 0; y < h; y++) {
        double phase = 2.0 * sin(y * fy);
        for (int x = 0; x < w; x++) {
            double t = ((double)x / w + (double)y / h) / 2.0, blob = 0;
            for (int i = 0; i < 3; i++) {
                double dx = x - bx[i], dy = y - by[i];
                blob += 1.0 / (1.0 + (dx * dx + dy * dy) / (br[i] * br[i]));
            }
            blob = blob > 1 ? 1 : blob;
            double ripple = 14.0 * sin(x * fx + phase);
            n ^= n << 13, n ^= n >> 7, n ^= n << 17; /* xorshift64 */
            double luma = (double)(n % 13) - 6;
            unsigned char *p = rgb + ((size_t)y * w + x) * 3;
            for (int k = 0; k < 3; k++) {
                double v = c[0][k] + (c[1][k] - c[0][k]) * t;
                v += (c[2][k] - v) * blob * 0.8;
                p[k] = clamp8(v + ripple + luma + (double)((n >> (16 + 8 * k)) % 5) - 2);
            }
        }
    }
    return rgb;
}

/* --- encoders ---------------------------------------------------------------------- */

static unsigned char *encode_jpeg(const unsigned char *rgb, int w, int h, size_t *len)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long n = 0;
    cinfo.err = jpeg_std_error(&jerr); /* errors exit: a test server's codec cannot fail here */
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &out, &n);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * w * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *len = n;
    return out; /* malloc'd by libjpeg's memory destination */
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/*
 * Filters one row into out (its filter byte first) with each of PNG's five
 * filters and keeps the one whose bytes, read as signed, sum smallest in
 * magnitude: libpng's heuristic for truecolour images.
 */
static void filter_row(const unsigned char *cur, const unsigned char *prev, size_t n,
                       unsigned char *out, unsigned char *tmp)
{
    long best = -1;
    for (int f = 0; f < 5; f++) {
        long sum = 0;
        tmp[0] = (unsigned char)f;
        for (size_t i = 0; i < n; i++) {
            int a = i >= 3 ? cur[i - 3] : 0, b = prev ? prev[i] : 0;
            int c = i >= 3 && prev ? prev[i - 3] : 0;
            int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
            unsigned char v = (unsigned char)(cur[i] - pred);
            tmp[1 + i] = v;
            sum += v < 128 ? v : 256 - v;
        }
        if (best < 0 || sum < best) {
            best = sum;
            memcpy(out, tmp, n + 1);
        }
    }
}

static unsigned char *encode_png(const unsigned char *rgb, int w, int h, size_t *len)
{
    size_t row = (size_t)w * 3, raw_len = (row + 1) * (size_t)h;
    unsigned char *raw = malloc(raw_len), *tmp = malloc(row + 1);
    for (int y = 0; y < h; y++)
        filter_row(rgb + row * y, y ? rgb + row * (y - 1) : NULL, row, raw + (row + 1) * y, tmp);
    free(tmp);
    uLong bound = compressBound((uLong)raw_len);
    unsigned char *png = malloc(8 + 25 + 12 + bound + 12);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13];
    png_put32(ihdr, (uint32_t)w);
    png_put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    size_t p = 8 + png_put_chunk(png + 8, "IHDR", ihdr, 13);
    uLongf zlen = bound;
    if (compress2(png + p + 8, &zlen, raw, (uLong)raw_len, Z_DEFAULT_COMPRESSION) != Z_OK) {
        fprintf(stderr, "farm-fake-provider: zlib failed\n");
        abort();
    }
    free(raw);
    p += png_put_chunk(png + p, "IDAT", png + p + 8, zlen);
    p += png_put_chunk(png + p, "IEND", NULL, 0);
    *len = p;
    return png;
}

static unsigned char *encode_webp(const unsigned char *rgb, int w, int h, size_t *len)
{
    uint8_t *out = NULL;
    size_t n = WebPEncodeRGB(rgb, w, h, w * 3, 80, &out);
    if (n == 0) {
        fprintf(stderr, "farm-fake-provider: libwebp failed\n");
        abort();
    }
    unsigned char *copy = malloc(n); /* the pool frees with free() */
    memcpy(copy, out, n);
    WebPFree(out);
    *len = n;
    return copy;
}

/* --- the pool ---------------------------------------------------------------------- */

static void set_unlink(pool_set_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        pool_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        pool_tail = s->prev;
    s->prev = s->next = NULL;
}

static void set_push(pool_set_t *s)
{
    s->next = pool_head;
    if (pool_head)
        pool_head->prev = s;
    pool_head = s;
    if (pool_tail == NULL)
        pool_tail = s;
}

static void set_free(pool_set_t *s)
{
    for (int v = 0; v < VARIANTS; v++) {
        pool_bytes -= s->len[v];
        free(s->img[v]);
    }
    free(s);
}

const unsigned char *fake_image(fake_format_t fmt, int w, int h, uint64_t seed, size_t *len)
{
    pool_set_t *s = pool_head;
    while (s && (s->fmt != fmt || s->w != w || s->h != h))
        s = s->next;
    if (s)
        set_unlink(s);
    else {
        s = gf_xcalloc(1, sizeof(*s));
        s->fmt = fmt;
        s->w = w;
        s->h = h;
    }
    set_push(s);
    int v = (int)(mix(seed) % VARIANTS);
    if (s->img[v] == NULL) {
        unsigned char *rgb = render(w, h, v);
        s->img[v] = fmt == FAKE_PNG    ? encode_png(rgb, w, h, &s->len[v])
                    : fmt == FAKE_WEBP ? encode_webp(rgb, w, h, &s->len[v])
                                       : encode_jpeg(rgb, w, h, &s->len[v]);
        free(rgb);
        pool_bytes += s->len[v];
        while (pool_bytes > POOL_MAX_BYTES && pool_tail != s) {
            pool_set_t *old = pool_tail;
            set_unlink(old);
            set_free(old);
        }
    }
    *len = s->len[v];
    return s->img[v];
}

void fake_images_end(void)
{
    while (pool_head) {
        pool_set_t *s = pool_head;
        set_unlink(s);
        set_free(s);
    }
}

/* --- answers ----------------------------------------------------------------------- */

void fake_send_image(fake_t *f, gf_http_req_t *r, int w, int h, uint64_t seed, fake_format_t fmt,
                     const fake_fault_t *ft)
{
    const char *mode = ft ? ft->mode : "";
    if (strcmp(mode, "json_on_200") == 0) {
        json_t *b = json_pack("{s:s}", "error", "Internal error while generating (json on 200)");
        fake_json(r, 200, b);
        return;
    }
    const char *content_type = fake_format_mime(fmt);
    if (strcmp(mode, "content_type_mismatch") == 0) {
        /* Labelled image/jpeg, the bytes another format (PNG, unless that is the label's). */
        if (fmt == FAKE_JPEG)
            fmt = FAKE_PNG;
        content_type = "image/jpeg";
    }
    size_t len;
    const unsigned char *img = fake_image(fmt, w, h, seed, &len);
    if (strcmp(mode, "b64_json") == 0) {
        /* HF's JSON success shape: the image inline, base64 (OpenSSL's encoder). */
        char *b64 = malloc(4 * ((len + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, img, (int)len);
        if (strcmp(ft->arg, "garbage") == 0)
            memcpy(b64, "!!!!", 4); /* not base64 */
        fake_json(r, 200, json_pack("{s:[{s:s}]}", "data", "b64_json", b64));
        free(b64);
        return;
    }
    if (strcmp(mode, "corrupt_image") == 0) {
        unsigned char *bad = malloc(len);
        memcpy(bad, img, len);
        memcpy(bad, "GARBAGE!", 8);
        gf_http_respond(r, 200, content_type, (const char *)bad, len);
        free(bad);
        return;
    }
    if (strcmp(mode, "truncated") == 0 || strcmp(mode, "stall_body") == 0 ||
        strcmp(mode, "chunked_abort") == 0) {
        int chunked = strcmp(mode, "chunked_abort") == 0;
        size_t part = len / 2;
        if (strcmp(mode, "stall_body") == 0 && ft->arg[0])
            part = (size_t)atol(ft->arg) < len ? (size_t)atol(ft->arg) : part;
        gf_buf_t b = {0};
        if (chunked)
            gf_buf_printf(&b,
                          "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n%zx\r\n",
                          content_type, len);
        else
            gf_buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                          content_type, len);
        gf_buf_append(&b, (const char *)img, part);
        if (strcmp(mode, "stall_body") == 0)
            fake_raw_stall(f, r, b.p, b.len);
        else
            fake_raw_close(r, b.p, b.len);
        gf_buf_dispose(&b);
        return;
    }
    gf_http_respond(r, 200, content_type, (const char *)img, len);
}
