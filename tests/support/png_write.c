/*
 * tests/support/png_write.c - PNG's integers and chunks written by hand
 * (png_write.h).
 */
#include "png_write.h"

#include <string.h>
#include <zlib.h>

void png_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

size_t png_put_chunk(unsigned char *out, const char *type, const unsigned char *data, size_t n)
{
    png_put32(out, (uint32_t)n);
    memcpy(out + 4, type, 4);
    if (n)
        memmove(out + 8, data, n);
    png_put32(out + 8 + n, (uint32_t)crc32(0, out + 4, (uInt)(n + 4)));
    return n + 12;
}
