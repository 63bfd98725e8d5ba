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

static uint32_t crc_table[8][256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            crc_table[t][n] = crc_table[0][crc_table[t - 1][n] & 0xff] ^ (crc_table[t - 1][n] >> 8);
}

/* CRC-32 (PNG's, zlib's) eight bytes a step (slicing-by-8). */
static uint32_t crc32_of(const unsigned char *b, size_t n)
{
    if (crc_table[0][1] == 0)
        crc_init();
    uint32_t c = 0xFFFFFFFFu;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint32_t lo = c ^ ((uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
                           (uint32_t)b[i + 3] << 24);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][b[i + 4]] ^
            crc_table[2][b[i + 5]] ^ crc_table[1][b[i + 6]] ^ crc_table[0][b[i + 7]];
    }
    for (; i < n; i++)
        c = crc_table[0][(c ^ b[i]) & 0xff] ^ (c >> 8);
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

/* A zlib stream of stored blocks written as its raw bytes come: `out` and
 * `o` where the next byte goes, the bytes the current block still takes,
 * the raw bytes still to come, and the Adler-32 sums so far. */
typedef struct {
    unsigned char *out;
    size_t o, left_in_block, raw_left;
    uint32_t a, b;
} zw_t;

/*
 * Appends n raw bytes: a stored block's header (<= 65535 bytes, the last one
 * flagged final) wherever one starts, and the bytes added to the Adler-32,
 * its modulo taken every 5552 bytes (zlib's NMAX: the most that cannot
 * overflow 32 bits), 16 bytes a step (the same sums as one byte a step).
 */
static void zw_put(zw_t *z, const unsigned char *p, size_t n)
{
    uint32_t a = z->a, b = z->b;
    for (size_t k = 0; k < n;) {
        size_t end = n - k > 5552 ? k + 5552 : n;
        size_t i = k;
        for (; i + 16 <= end; i += 16) {
            uint32_t s = 0, ws = 0;
            for (int j = 0; j < 16; j++) {
                s += p[i + j];
                ws += (uint32_t)(16 - j) * p[i + j];
            }
            b += 16 * a + ws;
            a += s;
        }
        for (; i < end; i++) {
            a += p[i];
            b += a;
        }
        a %= 65521;
        b %= 65521;
        k = end;
    }
    z->a = a;
    z->b = b;
    while (n > 0) {
        if (z->left_in_block == 0) {
            size_t bn = z->raw_left < 65535 ? z->raw_left : 65535;
            z->out[z->o++] = bn == z->raw_left ? 1 : 0;
            z->out[z->o++] = (unsigned char)bn;
            z->out[z->o++] = (unsigned char)(bn >> 8);
            z->out[z->o++] = (unsigned char)~bn;
            z->out[z->o++] = (unsigned char)(~bn >> 8);
            z->left_in_block = bn;
        }
        size_t m = n < z->left_in_block ? n : z->left_in_block;
        memcpy(z->out + z->o, p, m);
        z->o += m;
        p += m;
        n -= m;
        z->left_in_block -= m;
        z->raw_left -= m;
    }
}

uint64_t fake_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The PNG is written in place: each row (the same red and blue across every
 * row, one green per row) is made in `line` and copied into the IDAT's
 * stored blocks once; the CRC covers the whole chunk at the end. */
unsigned char *fake_png(int w, int h, uint64_t seed, size_t *len)
{
    size_t row = (size_t)w * 3 + 1;
    size_t raw_len = row * (size_t)h;
    size_t nblocks = (raw_len + 65534) / 65535;
    size_t z_len = 2 + raw_len + nblocks * 5 + 4;
    unsigned char c0[3] = {(unsigned char)seed, (unsigned char)(seed >> 8),
                           (unsigned char)(seed >> 16)};
    unsigned char *png = malloc(8 + 25 + 8 + z_len + 4 + 12);
    unsigned char ihdr[13];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0;
    ihdr[12] = 0;
    size_t p = 8 + chunk(png + 8, "IHDR", ihdr, 13);
    unsigned char *idat = png + p;
    put32(idat, (uint32_t)z_len);
    memcpy(idat + 4, "IDAT", 4);
    zw_t z = {.out = idat + 8, .o = 0, .raw_left = raw_len, .a = 1, .b = 0};
    z.out[z.o++] = 0x78; /* zlib header, then the blocks, then the Adler-32 */
    z.out[z.o++] = 0x01;
    unsigned char *line = malloc(row);
    line[0] = 0; /* filter: none */
    for (int x = 0; x < w; x++) {
        line[1 + x * 3] = (unsigned char)(c0[0] + x * 255 / w);
        line[3 + x * 3] = c0[2];
    }
    for (int y = 0; y < h; y++) {
        unsigned char g = (unsigned char)(c0[1] + y * 255 / h);
        for (int x = 0; x < w; x++)
            line[2 + x * 3] = g;
        zw_put(&z, line, row);
    }
    free(line);
    put32(z.out + z.o, (z.b << 16) | z.a);
    z.o += 4;
    put32(idat + 8 + z_len, crc32_of(idat + 4, z_len + 4));
    p += 12 + z_len;
    p += chunk(png + p, "IEND", NULL, 0);
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
