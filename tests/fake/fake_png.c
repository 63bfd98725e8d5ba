/*
 * tests/fake/fake_png.c - images with no codec: a PNG of the exact requested
 * size from stored (uncompressed) deflate blocks, CRC32 and Adler-32, plus the
 * image faults (corrupt magic, truncated, stalled, chunked abort, JSON on 200,
 * a mismatched Content-Type, the image inline as HF's {"data":[{"b64_json"}]},
 * whose `b64_json:garbage` is not base64).
 */
#include "fake.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_of(const unsigned char *b, size_t n)
{
    if (crc_table[1] == 0)
        crc_init();
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Appends a chunk (length, type, data, CRC over type+data) at `out`; returns its size. */
static size_t chunk(unsigned char *out, const char *type, const unsigned char *data, size_t n)
{
    put32(out, (uint32_t)n);
    memcpy(out + 4, type, 4);
    if (n)
        memcpy(out + 8, data, n);
    put32(out + 8 + n, crc32_of(out + 4, n + 4));
    return n + 12;
}

uint64_t fake_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

unsigned char *fake_png(int w, int h, uint64_t seed, size_t *len)
{
    size_t row = (size_t)w * 3 + 1;
    size_t raw_len = row * (size_t)h;
    unsigned char *raw = malloc(raw_len);
    unsigned char c0[3] = {(unsigned char)seed, (unsigned char)(seed >> 8),
                           (unsigned char)(seed >> 16)};
    for (int y = 0; y < h; y++) {
        unsigned char *p = raw + (size_t)y * row;
        p[0] = 0; /* filter: none */
        for (int x = 0; x < w; x++) {
            p[1 + x * 3] = (unsigned char)(c0[0] + x * 255 / w);
            p[2 + x * 3] = (unsigned char)(c0[1] + y * 255 / h);
            p[3 + x * 3] = c0[2];
        }
    }
    /* zlib stream: header, stored blocks of <= 65535 bytes, Adler-32. */
    size_t nblocks = (raw_len + 65534) / 65535;
    size_t z_len = 2 + raw_len + nblocks * 5 + 4;
    unsigned char *z = malloc(z_len);
    size_t o = 0;
    z[o++] = 0x78;
    z[o++] = 0x01;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < raw_len; i += 65535) {
        size_t n = raw_len - i < 65535 ? raw_len - i : 65535;
        z[o++] = i + n == raw_len ? 1 : 0;
        z[o++] = (unsigned char)n;
        z[o++] = (unsigned char)(n >> 8);
        z[o++] = (unsigned char)~n;
        z[o++] = (unsigned char)(~n >> 8);
        memcpy(z + o, raw + i, n);
        o += n;
        /* Adler-32 with the modulo taken every 5552 bytes (zlib's NMAX: the
         * most that cannot overflow 32 bits), not twice a byte. */
        for (size_t k = 0; k < n;) {
            size_t end = n - k > 5552 ? k + 5552 : n;
            for (; k < end; k++) {
                a += raw[i + k];
                b += a;
            }
            a %= 65521;
            b %= 65521;
        }
    }
    put32(z + o, (b << 16) | a);
    o += 4;
    free(raw);
    unsigned char ihdr[13];
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0;
    ihdr[12] = 0;
    unsigned char *png = malloc(8 + 25 + o + 12 + 12);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    size_t p = 8;
    p += chunk(png + p, "IHDR", ihdr, 13);
    p += chunk(png + p, "IDAT", z, o);
    p += chunk(png + p, "IEND", NULL, 0);
    free(z);
    *len = p;
    return png;
}

void fake_send_image(fake_t *f, gf_http_req_t *r, int w, int h, uint64_t seed,
                     const char *content_type, const fake_fault_t *ft)
{
    const char *mode = ft ? ft->mode : "";
    if (strcmp(mode, "json_on_200") == 0) {
        json_t *b = json_pack("{s:s}", "error", "Internal error while generating (json on 200)");
        fake_json(r, 200, b);
        return;
    }
    size_t len;
    unsigned char *png = fake_png(w, h, seed, &len);
    if (strcmp(mode, "b64_json") == 0) {
        /* HF's JSON success shape: the image inline, base64 (OpenSSL's encoder). */
        char *b64 = malloc(4 * ((len + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, png, (int)len);
        if (strcmp(ft->arg, "garbage") == 0)
            memcpy(b64, "!!!!", 4); /* not base64 */
        fake_json(r, 200, json_pack("{s:[{s:s}]}", "data", "b64_json", b64));
        free(b64);
        free(png);
        return;
    }
    if (strcmp(mode, "corrupt_image") == 0)
        memcpy(png, "GARBAGE!", 8);
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
        gf_buf_append(&b, (const char *)png, part);
        if (strcmp(mode, "stall_body") == 0)
            fake_raw_stall(f, r, b.p, b.len);
        else
            fake_raw_close(r, b.p, b.len);
        gf_buf_dispose(&b);
        free(png);
        return;
    }
    if (strcmp(mode, "content_type_mismatch") == 0)
        content_type = "image/jpeg";
    gf_http_respond(r, 200, content_type, (const char *)png, len);
    free(png);
}
