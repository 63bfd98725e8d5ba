/*
 * tests/unit/core/core_test.h - a helper the core unit tests share.
 */
#ifndef CORE_TEST_H
#define CORE_TEST_H

#include <unistd.h>

#include "core.h"

/* Reads everything written to a pipe whose write end is closed; free with free(). */
static inline char *ct_drain(int fd)
{
    gf_buf_t b = {0};
    char tmp[4096];
    ssize_t n;
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        gf_buf_append(&b, tmp, (size_t)n);
    gf_buf_puts(&b, "");
    return b.p;
}

#endif
