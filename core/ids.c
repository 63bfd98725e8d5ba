/*
 * core/ids.c - UUID v4 ids from the kernel's random source.
 */
#include "ids.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

void gf_uuid4(char out[37])
{
    unsigned char b[16];
    if (uv_random(NULL, NULL, b, sizeof(b), 0, NULL) != 0) {
        /* uv_random reads getrandom(2); it does not fail on Linux >= 3.17. */
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)(uv_hrtime() >> (i % 8));
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int gf_uuid_is_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}
