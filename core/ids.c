/*
 * core/ids.c - UUID v4 ids from the kernel's random source.
 *
 * The random bytes come from getrandom(2) (uv_random) a pool at a time,
 * POOL_BYTES for POOL_BYTES / 16 ids, not one system call per id (an
 * accepted POST /v1/generations makes two: its request id and its
 * generation id). The pool is per thread, and a forked child starts with an
 * empty one (a pthread_atfork handler), so two processes never hand out the
 * same bytes; bytes once handed out are never used again.
 */
#include "ids.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define POOL_BYTES 512

static _Thread_local struct {
    unsigned char b[POOL_BYTES];
    size_t used; /* bytes handed out; POOL_BYTES (or 0 before the first fill): refill */
    int filled;
} pool;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    memset(&pool, 0, sizeof(pool)); /* the forking thread's, the child's only thread */
}

static void atfork_install(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static void random16(unsigned char out[16])
{
    pthread_once(&atfork_once, atfork_install);
    if (!pool.filled || pool.used + 16 > POOL_BYTES) {
        if (uv_random(NULL, NULL, pool.b, sizeof(pool.b), 0, NULL) != 0) {
            /* uv_random reads getrandom(2); it does not fail on Linux >= 3.17. */
            for (size_t i = 0; i < sizeof(pool.b); i++)
                pool.b[i] = (unsigned char)(uv_hrtime() >> (i % 8));
        }
        pool.filled = 1;
        pool.used = 0;
    }
    memcpy(out, pool.b + pool.used, 16);
    memset(pool.b + pool.used, 0, 16); /* handed out: not kept in memory */
    pool.used += 16;
}

void gf_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    random16(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
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
