/*
 * core/include/clock.h - the wall clock as genfarm writes it: Unix milliseconds (the
 * unit of deadlines and Redis stream ids) and RFC 3339 UTC timestamps with
 * milliseconds (log lines, API timestamps). Durations use uv_now() or
 * uv_hrtime(), never this clock.
 */
#ifndef GF_CLOCK_H
#define GF_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch, from CLOCK_REALTIME. */
int64_t gf_clock_unix_ms(void);

/* `unix_ms` as "2024-05-01T12:00:00.123Z" into `out` (32 bytes is enough for any year 0..9999). */
void gf_clock_rfc3339(int64_t unix_ms, char out[32]);

#endif
