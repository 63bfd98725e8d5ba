/*
 * core/clock.c - Unix milliseconds and their RFC 3339 form.
 */
#include "clock.h"

#include <stdio.h>
#include <time.h>

int64_t gf_clock_unix_ms(void)
{
    struct timespec tv;
    clock_gettime(CLOCK_REALTIME, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_nsec / 1000000;
}

void gf_clock_rfc3339(int64_t unix_ms, char out[32])
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(unix_ms % 1000));
}
