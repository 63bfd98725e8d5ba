/*
 * tests/fake/fake_received.c - what a submit carried, recorded in its log
 * entry under "received": the prompt as the provider reads it, and every
 * image part (base64 or a data: URL) decoded: its key in the body, byte
 * count, width and height read from the header (PNG, JPEG, WEBP), and the
 * sha256 of the bytes; and the negative prompt, where the body carries one. Tests compare these
 * with what the farm sent, so a lost person or a wrong pose map shows at the wire.
 *
 * An image part that does not decode is recorded with "bytes": 0 (the
 * provider would refuse it; the test sees it did not get an image).
 */
#include "fake.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' || c == '-' ? 62 : c == '/' || c == '_' ? 63 : -1;
}

/* Decodes base64 (the data: prefix skipped); NULL when it is not base64. New buffer. */
static unsigned char *b64_decode(const char *s, size_t *out_len)
{
    if (strncmp(s, "data:", 5) == 0) {
        const char *comma = strstr(s, ";base64,");
        if (comma == NULL)
            return NULL;
        s = comma + 8;
    }
    size_t n = strlen(s);
    unsigned char *out = gf_xmalloc(n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = o;
    return out;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Width and height from the header; 0 when the format is not known. */
static void image_size(const unsigned char *b, size_t n, int *w, int *h)
{
    *w = *h = 0;
    if (n >= 24 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
        *w = (int)be32(b + 16);
        *h = (int)be32(b + 20);
    } else if (n >= 30 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) {
        if (memcmp(b + 12, "VP8X", 4) == 0) {
            *w = 1 + (b[24] | b[25] << 8 | b[26] << 16);
            *h = 1 + (b[27] | b[28] << 8 | b[29] << 16);
        } else if (memcmp(b + 12, "VP8L", 4) == 0) {
            uint32_t v =
                b[21] | (uint32_t)b[22] << 8 | (uint32_t)b[23] << 16 | (uint32_t)b[24] << 24;
            *w = (int)(v & 0x3fff) + 1;
            *h = (int)(v >> 14 & 0x3fff) + 1;
        } else if (memcmp(b + 12, "VP8 ", 4) == 0) {
            *w = (b[26] | b[27] << 8) & 0x3fff;
            *h = (b[28] | b[29] << 8) & 0x3fff;
        }
    } else if (n >= 4 && b[0] == 0xff && b[1] == 0xd8) {
        for (size_t i = 2; i + 9 < n;) {
            if (b[i] != 0xff) {
                i++;
                continue;
            }
            unsigned m = b[i + 1];
            size_t seglen = (size_t)(b[i + 2] << 8 | b[i + 3]);
            if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
                *h = b[i + 5] << 8 | b[i + 6];
                *w = b[i + 7] << 8 | b[i + 8];
                return;
            }
            i += 2 + seglen;
        }
    }
}

static json_t *image_part(const char *key, const char *value)
{
    size_t n = 0;
    unsigned char *b = b64_decode(value, &n);
    int w = 0, h = 0;
    char hex[65] = "";
    if (b && n) {
        image_size(b, n, &w, &h);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdn = 0;
        if (EVP_Digest(b, n, md, &mdn, EVP_sha256(), NULL) == 1)
            for (unsigned i = 0; i < mdn && i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    free(b);
    return json_pack("{s:s,s:I,s:i,s:i,s:s}", "key", key, "bytes", (json_int_t)n, "width", w,
                     "height", h, "sha256", hex);
}

/* Appends the image parts of `v` found under `key` (a string or an array of strings). */
static void collect(json_t *images, const char *key, json_t *v)
{
    if (json_is_string(v)) {
        json_array_append_new(images, image_part(key, json_string_value(v)));
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        char k[64];
        snprintf(k, sizeof(k), "%s[%zu]", key, i);
        if (json_is_string(x))
            json_array_append_new(images, image_part(k, json_string_value(x)));
    }
}

void fake_received(json_t *entry, const char *prompt, json_t *body, const char *const *keys)
{
    json_t *images = json_array();
    for (size_t k = 0; keys[k]; k++) {
        /* "parameters.x" reaches into the HF parameters object. */
        const char *dot = strchr(keys[k], '.');
        json_t *v = body;
        const char *name = keys[k];
        if (dot) {
            char obj[32];
            snprintf(obj, sizeof(obj), "%.*s", (int)(dot - keys[k]), keys[k]);
            v = json_object_get(body, obj);
            name = dot + 1;
        }
        json_t *x = json_object_get(v, name);
        if (x)
            collect(images, keys[k], x);
    }
    /* A negative prompt where a provider's API takes one (HF's parameters), or anywhere
     * else a client might put it: at the top, or in Replicate's input. */
    json_t *neg = json_object_get(json_object_get(body, "parameters"), "negative_prompt");
    if (neg == NULL)
        neg = json_object_get(body, "negative_prompt");
    if (neg == NULL)
        neg = json_object_get(json_object_get(body, "input"), "negative_prompt");
    json_object_set_new(entry, "received",
                        json_pack("{s:s?,s:s?,s:I,s:o}", "prompt", prompt, "negative_prompt",
                                  json_string_value(neg), "count",
                                  (json_int_t)json_array_size(images), "images", images));
}
