/*
 * providers/local.c - the offline renderer: an image from prompt and seed with
 * no network, so the farm runs on a machine with no provider token.
 *
 * Deterministic (the same prompt, seed and size give the same bytes), the
 * requested size, visibly different for different prompts or seeds (colours,
 * gradient direction and discs come from a hash of both), and honest: it
 * writes "local preview" across the image. What it does with references is
 * as plain (caps.c says it takes both): a pose map is drawn over the
 * picture (its non-black pixels), and an identity is inset, a quarter wide,
 * in the bottom-right corner; it does not keep the person, it shows it got
 * it. Rendering runs on the libuv thread pool (uv_queue_work); the work
 * touches only its own record (the reference bytes are the call's, which
 * outlives the work: the call cannot end while it is busy).
 */
#include "provider_int.h"

#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

typedef struct {
    uv_work_t work;
    provider_call_t *call;
    /* inputs, copied */
    char *prompt;
    int64_t seed;
    int width, height;
    const unsigned char *pose, *identity; /* borrowed from the call */
    size_t pose_len, identity_len;
    /* outputs */
    unsigned char *png;
    size_t png_len;
    char errmsg[200];
} local_job_t;

static int local_init(provider_adapter_t *a, gf_err_t *err)
{
    (void)a;
    if (VIPS_INIT("genfarm") != 0) {
        gf_err_set(err, GF_EIO, "provider", "vips_init failed: %s", vips_error_buffer());
        vips_error_clear();
        return GF_EIO;
    }
    return 0;
}

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t mix(uint64_t *x)
{
    /* splitmix64 */
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The picture without the text: a two-colour gradient and a few discs. */
static unsigned char *paint(const local_job_t *j)
{
    uint64_t st = fnv1a(j->prompt, 14695981039346656037ULL) ^ (uint64_t)j->seed * 31;
    unsigned char c0[3], c1[3], cd[6][3];
    for (int k = 0; k < 3; k++) {
        c0[k] = (unsigned char)(mix(&st) & 0xff);
        c1[k] = (unsigned char)(mix(&st) & 0xff);
    }
    int dx = (int)(mix(&st) % 3) - 1, dy = dx == 0 ? 1 : (int)(mix(&st) % 3) - 1;
    int ndisc = 3 + (int)(mix(&st) % 4);
    int cx[6], cy[6], rr[6];
    for (int d = 0; d < ndisc; d++) {
        cx[d] = (int)(mix(&st) % (uint64_t)j->width);
        cy[d] = (int)(mix(&st) % (uint64_t)j->height);
        rr[d] = (int)(mix(&st) % (uint64_t)(j->width / 4 + 1)) + j->width / 16 + 4;
        for (int k = 0; k < 3; k++)
            cd[d][k] = (unsigned char)(mix(&st) & 0xff);
    }
    size_t stride = (size_t)j->width * 3;
    unsigned char *px = gf_xmalloc(stride * (size_t)j->height);
    double span = (double)(abs(dx) * j->width + abs(dy) * j->height) + 1;
    for (int y = 0; y < j->height; y++) {
        for (int x = 0; x < j->width; x++) {
            double t =
                ((dx >= 0 ? x : j->width - x) * abs(dx) + (dy >= 0 ? y : j->height - y) * abs(dy)) /
                span;
            unsigned char *p = px + (size_t)y * stride + (size_t)x * 3;
            for (int k = 0; k < 3; k++)
                p[k] = (unsigned char)(c0[k] + (c1[k] - c0[k]) * t);
            for (int d = 0; d < ndisc; d++) {
                long ex = x - cx[d], ey = y - cy[d];
                if (ex * ex + ey * ey <= (long)rr[d] * rr[d])
                    memcpy(p, cd[d], 3);
            }
        }
    }
    return px;
}

/* Blends a 1-band text mask (0..255) into the RGB pixels at (x0, y0) in `rgb`. */
static void blend(unsigned char *px, const local_job_t *j, const unsigned char *mask, int mw,
                  int mh, int x0, int y0, const unsigned char rgb[3])
{
    for (int y = 0; y < mh; y++) {
        if (y + y0 < 0 || y + y0 >= j->height)
            continue;
        for (int x = 0; x < mw; x++) {
            if (x + x0 < 0 || x + x0 >= j->width)
                continue;
            unsigned a = mask[(size_t)y * (size_t)mw + (size_t)x];
            unsigned char *p = px + ((size_t)(y + y0) * (size_t)j->width + (size_t)(x + x0)) * 3;
            for (int k = 0; k < 3; k++)
                p[k] = (unsigned char)((p[k] * (255 - a) + rgb[k] * a) / 255);
        }
    }
}

/* `bytes` decoded and scaled to w x h (`force`: exactly, else to width w), as packed RGB. */
static unsigned char *decode_rgb(const unsigned char *bytes, size_t len, int w, int h, int force,
                                 int *ow, int *oh)
{
    VipsImage *t = NULL, *flat = NULL, *rgb = NULL;
    unsigned char *out = NULL;
    if (vips_thumbnail_buffer((void *)bytes, len, &t, w, "height", h, "size",
                              force ? VIPS_SIZE_FORCE : VIPS_SIZE_BOTH, NULL) != 0)
        goto done;
    if (vips_image_hasalpha(t) ? vips_flatten(t, &flat, NULL) != 0 : vips_copy(t, &flat, NULL) != 0)
        goto done;
    if (vips_colourspace(flat, &rgb, VIPS_INTERPRETATION_sRGB, NULL) != 0)
        goto done;
    size_t n = 0;
    void *mem = vips_image_write_to_memory(rgb, &n);
    if (mem && rgb->Bands == 3 && n == (size_t)rgb->Xsize * (size_t)rgb->Ysize * 3) {
        out = gf_xmalloc(n);
        memcpy(out, mem, n);
        *ow = rgb->Xsize;
        *oh = rgb->Ysize;
    }
    g_free(mem);
done:
    if (rgb)
        g_object_unref(rgb);
    if (flat)
        g_object_unref(flat);
    if (t)
        g_object_unref(t);
    return out;
}

/* The references, drawn for what they are: the pose map over, the identity inset. 0 or -1. */
static int draw_refs(unsigned char *px, const local_job_t *j)
{
    int w, h;
    if (j->pose) {
        unsigned char *pm = decode_rgb(j->pose, j->pose_len, j->width, j->height, 1, &w, &h);
        if (pm == NULL)
            return -1;
        for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
            if (pm[3 * i] | pm[3 * i + 1] | pm[3 * i + 2])
                memcpy(px + 3 * i, pm + 3 * i, 3);
        free(pm);
    }
    if (j->identity) {
        int side = j->width / 4 > 8 ? j->width / 4 : 8;
        unsigned char *id = decode_rgb(j->identity, j->identity_len, side, side, 0, &w, &h);
        if (id == NULL)
            return -1;
        int x0 = j->width - w - 4, y0 = j->height - h - 4;
        for (int y = 0; y < h && x0 >= 0 && y0 >= 0; y++)
            memcpy(px + ((size_t)(y0 + y) * (size_t)j->width + (size_t)x0) * 3,
                   id + (size_t)y * (size_t)w * 3, (size_t)w * 3);
        free(id);
    }
    return 0;
}

static void on_work(uv_work_t *w)
{
    local_job_t *j = w->data;
    unsigned char *px = paint(j);
    VipsImage *text = NULL, *img = NULL;
    void *mask = NULL, *buf = NULL;
    size_t mlen = 0, len = 0;
    int dpi = j->width >= 512 ? 150 : j->width >= 256 ? 96 : 48;
    if (vips_text(&text, "local preview", "width", j->width * 3 / 4, "dpi", dpi, NULL) != 0)
        goto fail;
    mask = vips_image_write_to_memory(text, &mlen);
    if (mask == NULL)
        goto fail;
    int mw = text->Xsize, mh = text->Ysize;
    int x0 = (j->width - mw) / 2, y0 = (j->height - mh) / 2;
    blend(px, j, mask, mw, mh, x0 + 2, y0 + 2, (const unsigned char[]){0, 0, 0});
    blend(px, j, mask, mw, mh, x0, y0, (const unsigned char[]){255, 255, 255});
    if (draw_refs(px, j) < 0)
        goto fail;
    img = vips_image_new_from_memory(px, (size_t)j->width * (size_t)j->height * 3, j->width,
                                     j->height, 3, VIPS_FORMAT_UCHAR);
    if (img == NULL || vips_pngsave_buffer(img, &buf, &len, "compression", 1, NULL) != 0)
        goto fail;
    j->png = gf_xmalloc(len);
    memcpy(j->png, buf, len);
    j->png_len = len;
    goto done;
fail:
    snprintf(j->errmsg, sizeof(j->errmsg), "vips: %s", vips_error_buffer());
    vips_error_clear();
done:
    g_free(buf);
    g_free(mask);
    if (img)
        g_object_unref(img);
    if (text)
        g_object_unref(text);
    free(px);
}

static void on_after_work(uv_work_t *w, int status)
{
    local_job_t *j = w->data;
    provider_call_t *c = j->call;
    c->busy = 0;
    if (status == UV_ECANCELED || c->canceled)
        provider__call_fail(c, PROVIDER_F_CANCELED, 0, "canceled");
    else if (j->png == NULL)
        /* Offline and free: unlike a provider's broken reply, worth running again. */
        provider__call_fail(c, PROVIDER_F_SERVER, 0, "rendering failed: %s", j->errmsg);
    else {
        unsigned char *png = j->png;
        j->png = NULL;
        provider__call_succeed(c, png, j->png_len);
    }
    free(j->png);
    free(j->prompt);
    free(j);
}

static void local_submit(provider_call_t *c)
{
    local_job_t *j = gf_xcalloc(1, sizeof(*j));
    j->call = c;
    j->prompt = gf_xstrdup(c->req.prompt);
    j->seed = c->req.seed;
    j->width = c->req.width;
    j->height = c->req.height;
    j->pose = c->req.pose_image;
    j->pose_len = c->req.pose_len;
    j->identity = c->req.identity_image;
    j->identity_len = c->req.identity_len;
    j->work.data = j;
    snprintf(c->request_id, sizeof(c->request_id), "local-%016llx",
             (unsigned long long)(fnv1a(j->prompt, 14695981039346656037ULL) ^ (uint64_t)j->seed));
    provider__call_progress(c, -1, "running");
    c->busy = 1;
    int rc = uv_queue_work(provider__call_loop(c), &j->work, on_work, on_after_work);
    if (rc < 0) {
        c->busy = 0;
        free(j->prompt);
        free(j);
        provider__call_fail(c, PROVIDER_F_SERVER, 0, "uv_queue_work: %s", uv_strerror(rc));
    }
}

const provider_ops provider_local_ops = {
    .name = "local",
    .init = local_init,
    .submit = local_submit,
    .cancel = NULL, /* the render is short; a canceled call drops its result */
    .free = NULL,
};
