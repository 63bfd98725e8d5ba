/*
 * tests/support/png_write.h - writing PNG's framing by hand: the big-endian
 * integers and the chunks (length, type, data, CRC). For the fake provider's
 * encoder and for tests that build a PNG no encoder would write.
 */
#ifndef GF_TESTS_PNG_WRITE_H
#define GF_TESTS_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* Writes `v` at `p` as four big-endian bytes (PNG's integers). */
void png_put32(unsigned char *p, uint32_t v);

/* Writes a chunk of `n` data bytes at `out`: length, type, data and the CRC over type and data.
 * `data` may be `out + 8` itself (data compressed in place). Returns the chunk's size, n + 12. */
size_t png_put_chunk(unsigned char *out, const char *type, const unsigned char *data, size_t n);

#endif
