/*
 * tests/unit/imaging/imaging_test.h - what the imaging tests share: libvips
 * start/stop around a group, synthetic images, and decoding outputs back.
 * The tests use libvips directly only to make inputs and inspect outputs.
 */
#ifndef IMAGING_TEST_H
#define IMAGING_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <vips/vips.h>

#include "imaging.h"

/* cmocka group setup/teardown: img_init() with the default config, and
 * img_shutdown() (so LeakSanitizer sees libvips' state released). */
int imgt_setup(void **state);
int imgt_teardown(void **state);

/*
 * A w x h RGB test picture (a gradient with a bright disc off centre, so the
 * attention crop has a subject), encoded as `fmt`. Returns the bytes (free
 * with g_free()); *len gets their count.
 */
unsigned char *imgt_picture(int w, int h, img_format fmt, size_t *len);

/*
 * A w x h sRGB image of `bands` (3 or 4) in memory: gradients, a disc and
 * noise, so an encoder has detail to spend bits on. With 4 bands, `alpha`
 * says how the alpha band goes (0: opaque everywhere, 1: a ramp down to
 * transparent).
 */
VipsImage *imgt_textured(int w, int h, int bands, int alpha);

/* Encodes `im` as `fmt` (no stripping: tests want metadata kept). */
unsigned char *imgt_encode(VipsImage *im, img_format fmt, size_t *len);

/* Decodes `data` fully into memory; fails the test if it does not decode. */
VipsImage *imgt_decode(const void *data, size_t len);

/* The pixel (x, y) of an 8-bit image, first 3 bands. */
void imgt_pixel(VipsImage *im, int x, int y, unsigned char rgb[3]);

#endif
