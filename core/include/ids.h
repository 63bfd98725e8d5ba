/*
 * core/include/ids.h - the ids genfarm makes and checks: random lowercase UUID v4
 * strings (generations, uploads, request ids, worker ids).
 */
#ifndef GF_IDS_H
#define GF_IDS_H

/* A random lowercase UUID v4 into `out` (37 bytes, NUL-terminated). */
void gf_uuid4(char out[37]);

/*
 * Whether `s` is a lowercase UUID string: 36 characters, hex digits in
 * 8-4-4-4-12 groups (API.md: ids are lowercase UUIDs). NULL is not one.
 */
int gf_uuid_is_valid(const char *s);

#endif
