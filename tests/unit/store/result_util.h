/*
 * tests/unit/store/result_util.h - what the tests of store/'s result parsers
 * share: rows built by hand, parsed as a call's result. Include it after
 * cmocka.h and store_int.h.
 */
#ifndef RESULT_UTIL_H
#define RESULT_UTIL_H

#include <string.h>

#define GEN "11111111-1111-1111-1111-111111111111"
#define USR "22222222-2222-2222-2222-222222222222"

/* Parses one row of up to three columns (NULL: SQL NULL) into `c`; returns its status. */
static inline int parse3(store_call_t *c, const char *v0, const char *v1, const char *v2)
{
    store_row_t row = {{v0, v1, v2}};
    store__parse_row(c, &row);
    return c->err.code;
}

static inline int parse(store_call_t *c, const char *v0)
{
    return parse3(c, v0, NULL, NULL);
}

/* Parses `v0` as `c`'s result and asserts it is refused as malformed (GF_EUNAVAIL), the
 * message naming `needle`. */
static inline void assert_malformed(store_call_t *c, const char *v0, const char *needle)
{
    int rc = parse(c, v0);
    if (rc != GF_EUNAVAIL || strstr(c->err.msg, needle) == NULL)
        fail_msg("result %s: %s \"%s\"; wanted EUNAVAIL naming \"%s\"", v0, gf_status_name(rc),
                 c->err.msg, needle);
}

#endif
