/*
 * imaging/vips.c - libvips set up for a server, and the small pieces every
 * pipeline shares: formats, error translation, loading, sRGB, encoding,
 * sha256.
 *
 * Invariants: every image is loaded by the loader its bytes name (vips' own
 * loader search never runs, so untrusted or exotic loaders are unreachable
 * even if unblocked), with fail_on=error; every encoded output is stripped of
 * metadata; the vips error buffer is cleared after each failure we record.
 */
#include "imaging_int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <vips/vector.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

/* ---- formats ------------------------------------------------------------- */

const char *img_format_name(img_format f)
{
    switch (f) {
    case IMG_FORMAT_PNG:
        return "png";
    case IMG_FORMAT_JPEG:
        return "jpeg";
    case IMG_FORMAT_WEBP:
        return "webp";
    case IMG_FORMAT_NONE:
        break;
    }
    return "";
}

const char *img_format_ext(img_format f)
{
    return f == IMG_FORMAT_JPEG ? "jpg" : img_format_name(f);
}

const char *img_format_mime(img_format f)
{
    switch (f) {
    case IMG_FORMAT_PNG:
        return "image/png";
    case IMG_FORMAT_JPEG:
        return "image/jpeg";
    case IMG_FORMAT_WEBP:
        return "image/webp";
    case IMG_FORMAT_NONE:
        break;
    }
    return "application/octet-stream";
}

img_format img_format_from_name(const char *name)
{
    if (name == NULL)
        return IMG_FORMAT_NONE;
    if (strcmp(name, "png") == 0)
        return IMG_FORMAT_PNG;
    if (strcmp(name, "jpeg") == 0)
        return IMG_FORMAT_JPEG;
    if (strcmp(name, "webp") == 0)
        return IMG_FORMAT_WEBP;
    return IMG_FORMAT_NONE;
}

img_format img_sniff(const void *data, size_t len)
{
    const unsigned char *p = data;

    if (p == NULL)
        return IMG_FORMAT_NONE;
    if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return IMG_FORMAT_PNG;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return IMG_FORMAT_JPEG;
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return IMG_FORMAT_WEBP;
    return IMG_FORMAT_NONE;
}

/* ---- errors -------------------------------------------------------------- */

img_reason img_err_reason(const gf_err_t *err)
{
    if (err == NULL || err->code == GF_OK || err->domain == NULL ||
        strcmp(err->domain, IMG_DOMAIN) != 0)
        return IMG_REASON_NONE;
    return (img_reason)err->detail;
}

int img__vips_fail(gf_err_t *err, gf_status code, img_reason reason, const char *what)
{
    char *text = vips_error_buffer_copy();

    /* Log lines never hold newlines, and vips ends each message with one. */
    for (char *c = text; c && *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = (c[1] == '\0') ? '\0' : ' ';
    gf_err_setd(err, code, IMG_DOMAIN, reason, "%s: %s", what,
                text && *text ? text : "libvips gave no reason");
    g_free(text);
    vips_error_clear();
    return code;
}

/* ---- process setup ------------------------------------------------------- */

/*
 * libvips reports decoder trouble through g_warning as well as its error
 * buffer. For a refused upload the error record already carries it, so the
 * warnings go to our JSON log at debug level instead of raw stderr lines.
 */
static void on_vips_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
    (void)domain;
    (void)level;
    (void)data;
    GF_LOG(GF_LOG_DEBUG, &(gf_log_ctx){.component = IMG_DOMAIN}, "libvips: %s", msg);
}

int img_init(const gf_config_t *cfg, gf_err_t *err)
{
    if (VIPS_INIT("genfarm") != 0)
        return img__vips_fail(err, GF_EUNAVAIL, IMG_REASON_NONE, "while starting libvips");
    /*
     * One thread per pipeline: the libuv pool already runs as many pipelines
     * as there are pool threads, and vips' own threads would only contend
     * with them (and with the loop's file-system work) for the same cores.
     */
    vips_concurrency_set((int)cfg->vips_concurrency);
    /*
     * No run-time generated SIMD code (orc): with orc 0.4.33 (Debian 12) a
     * worker crashed in orc_code_free while a pool thread tore down a resize
     * pipeline and others ran theirs. The C paths give the same pixels; and
     * no code is written into executable memory at run time.
     */
    vips_vector_set_enabled(FALSE);
    /*
     * The operation cache pays off when the same image is processed again;
     * a farm sees each image once, so by default it only holds memory.
     */
    if (cfg->vips_cache_mb == 0) {
        vips_cache_set_max(0);
        vips_cache_set_max_mem(0);
    } else {
        vips_cache_set_max(1000);
        vips_cache_set_max_mem((size_t)cfg->vips_cache_mb * 1024 * 1024);
    }
    vips_cache_set_max_files(0);
    /* Defence in depth: we call format loaders by name, but nothing should
     * ever reach the loaders libvips itself marks unsafe for hostile input. */
    vips_block_untrusted_set(TRUE);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                      on_vips_log, NULL);
    return 0;
}

void img_keep_heap(void)
{
    /*
     * Each image allocates and frees blocks of megabytes (the decoded image,
     * the resized squares, libwebp's encoder state). Under glibc's default
     * adaptive limits the larger ones are mmapped and the freed top of a
     * heap is given back, so every image faults its working set in afresh:
     * page faults and clearing fresh pages took 15 % of a single-thread
     * `scripts/bench imaging` (perf), 5 % with these limits. They are the
     * ones glibc's adaptive rule ends at for big blocks (32 MiB, twice that
     * kept free); set up front, each pool thread reuses the same memory
     * image after image. Tuning only: a failure (ASan's allocator ignores
     * mallopt) leaves the defaults.
     */
    (void)mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    (void)mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

void img_shutdown(void)
{
    vips_shutdown();
}

/* ---- buffers and digests ------------------------------------------------- */

void img_buf_dispose(img_buf *b)
{
    if (b == NULL)
        return;
    g_free(b->data); /* vips allocates encoded buffers with g_malloc */
    b->data = NULL;
    b->len = 0;
}

void img_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char digits[] = "0123456789abcdef";

    /* EVP_Digest only fails on allocation failure inside OpenSSL. */
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        fprintf(stderr, "{\"level\":\"error\",\"component\":\"imaging\","
                        "\"msg\":\"EVP_Digest(sha256) failed\"}\n");
        abort();
    }
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

/* ---- pipeline pieces ----------------------------------------------------- */

/*
 * Rows computed per request by img__copy_memory(). Of 16 to 128 rows, 32 to
 * 64 cost the least for a PNG or JPEG decode, at 256 and 1024 square (128,
 * the strip vips' own sink takes for a decode, costs a JPEG about 40 %
 * more); what is decoded is the same. The loaders' own line caches turn any
 * height into the rows they decode, so it does not need to match theirs.
 */
#define COPY_ROWS 48

VipsImage *img__copy_memory(VipsImage *in)
{
    /* In memory already, or threads asked for: what vips' own copy does. */
    if (!vips_image_ispartial(in) || vips_concurrency_get() > 1)
        return vips_image_copy_memory(in);
    /*
     * One thread per pipeline: vips' sink would hand every strip to a
     * worker thread of its own and wait for it (two futex round trips a
     * strip, and the thread switches), which cost a 256 square PNG's
     * decode 30 % more CPU than computing the same strips here, in order,
     * which is all a sequential loader allows anyway.
     *
     * The header and metadata reach `out` through `hdr`, dropped at once:
     * that unlinks `out` from `in` (vips_image_write does the same with a
     * call it does not export), so invalidating `in` later does not reach
     * pixels that no longer depend on it.
     */
    VipsImage *hdr = vips_image_new();
    VipsImage *out = vips_image_new_memory();
    int rc = vips_image_pio_input(in) != 0 ||
             vips_image_pipelinev(hdr, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL) != 0 ||
             vips_image_pipelinev(out, VIPS_DEMAND_STYLE_THINSTRIP, hdr, NULL) != 0 ||
             vips_image_write_prepare(out) != 0;
    g_object_unref(hdr);
    VipsRegion *from = rc == 0 ? vips_region_new(in) : NULL;
    VipsRegion *to = from != NULL ? vips_region_new(out) : NULL;
    VipsRect all = {0, 0, out->Xsize, out->Ysize};
    rc = to == NULL || vips_region_image(to, &all) != 0;
    for (int y = 0; rc == 0 && y < out->Ysize; y += COPY_ROWS) {
        VipsRect rows = {0, y, out->Xsize, VIPS_MIN(COPY_ROWS, out->Ysize - y)};
        rc = vips_region_prepare_to(from, to, &rows, 0, y);
    }
    VIPS_UNREF(from);
    VIPS_UNREF(to);
    if (rc != 0) {
        g_object_unref(out);
        return NULL;
    }
    return out;
}

VipsImage *img__load(const void *data, size_t len, img_format fmt, VipsAccess access)
{
    VipsImage *out = NULL;
    void *buf = (void *)data; /* vips' loaders take a non-const pointer they only read */
    int rc = -1;

    switch (fmt) {
    case IMG_FORMAT_PNG:
        rc = vips_pngload_buffer(buf, len, &out, "access", access, "fail_on", VIPS_FAIL_ON_ERROR,
                                 NULL);
        break;
    case IMG_FORMAT_JPEG:
        rc = vips_jpegload_buffer(buf, len, &out, "access", access, "fail_on", VIPS_FAIL_ON_ERROR,
                                  NULL);
        break;
    case IMG_FORMAT_WEBP:
        rc = vips_webpload_buffer(buf, len, &out, "access", access, "fail_on", VIPS_FAIL_ON_ERROR,
                                  NULL);
        break;
    case IMG_FORMAT_NONE:
        vips_error(IMG_DOMAIN, "%s", "unsupported format");
        break;
    }
    return rc == 0 ? out : NULL;
}

/* ICC import of an embedded profile; NULL (vips error cleared) when the
 * profile is unusable, so the caller can fall back to the plain conversion. */
static VipsImage *icc_to_srgb(VipsImage *in)
{
    VipsImage *out = NULL;

    if (!vips_image_get_typeof(in, VIPS_META_ICC_NAME))
        return NULL;
    if (vips_icc_transform(in, &out, "srgb", "embedded", TRUE, "depth", 8, NULL) != 0) {
        /* A broken profile should not cost the user the image. */
        vips_error_clear();
        return NULL;
    }
    return out;
}

VipsImage *img__to_srgb(VipsImage *in)
{
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 4);
    VipsImage *cur, *out = NULL;

    t[0] = icc_to_srgb(in);
    cur = t[0] ? t[0] : in;
    if (vips_colourspace(cur, &t[1], VIPS_INTERPRETATION_sRGB, NULL) != 0)
        goto done;
    cur = t[1];
    if (cur->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(cur, &t[2], NULL) != 0)
            goto done;
        cur = t[2];
    }
    /* sRGB plus at most one alpha band: extra channels mean nothing to us. */
    int want = vips_image_hasalpha(cur) ? 4 : 3;
    if (cur->Bands > want) {
        if (vips_extract_band(cur, &t[3], 0, "n", want, NULL) != 0)
            goto done;
        cur = t[3];
    }
    out = cur;
    g_object_ref(out);
done:
    g_object_unref(ctx);
    return out;
}

static int flatten_white(VipsImage *in, VipsImage **out)
{
    VipsArrayDouble *bg = vips_array_double_newv(3, 255.0, 255.0, 255.0);
    int rc = vips_flatten(in, out, "background", bg, NULL);

    vips_area_unref(VIPS_AREA(bg));
    return rc;
}

int img__encode(VipsImage *in, img_format fmt, int quality, img_buf *out)
{
    VipsImage *flat = NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc = -1;

    switch (fmt) {
    case IMG_FORMAT_WEBP:
        if (img__webp_direct(in))
            return img__webp_encode(in, quality, out);
        rc = vips_webpsave_buffer(in, &buf, &len, "Q", quality, "strip", TRUE, "effort",
                                  IMG_WEBP_EFFORT, NULL);
        break;
    case IMG_FORMAT_JPEG:
        if (vips_image_hasalpha(in)) {
            if (flatten_white(in, &flat) != 0)
                return -1;
            in = flat;
        }
        if (img__jpeg_direct(in, quality)) {
            rc = img__jpeg_encode(in, quality, out);
            if (flat != NULL)
                g_object_unref(flat);
            return rc;
        }
        rc = vips_jpegsave_buffer(in, &buf, &len, "Q", quality, "strip", TRUE, NULL);
        break;
    case IMG_FORMAT_PNG:
        rc = vips_pngsave_buffer(in, &buf, &len, "strip", TRUE, "compression", 6, NULL);
        break;
    case IMG_FORMAT_NONE:
        vips_error(IMG_DOMAIN, "%s", "no output format");
        break;
    }
    if (flat != NULL)
        g_object_unref(flat);
    if (rc != 0)
        return -1;
    out->data = buf;
    out->len = len;
    if (fmt == IMG_FORMAT_WEBP && img__webp_strip(out) != 0) {
        img_buf_dispose(out);
        vips_error(IMG_DOMAIN, "%s", "webpsave wrote an unexpected container");
        return -1;
    }
    return 0;
}

void img_file_sig(const char *secret, const char *key, long exp, char out[65])
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "%s\n%ld", key, exp);
    if (n < 0 || n >= (int)sizeof(msg))
        n = (int)strlen(msg); /* keys are far shorter (img_storage_key) */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, (size_t)n, mac,
         &maclen);
    out[0] = '\0';
    for (unsigned int i = 0; i < maclen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}
