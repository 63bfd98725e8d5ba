/*
 * core/include/slab.h - fixed-size objects packed together, away from the
 * heap: what a server keeps for each open connection (its connection, its
 * request, its SSE stream) while much more is allocated and freed around
 * them to set each one up. Mixed in the heap, the few long-lived objects
 * pin the pages the setups' freed blocks are on, and a burst of 15,000
 * stream setups would stay resident at its peak; from a slab, they fill
 * pages of their own, and the heap's free pages go back to the system.
 *
 * Chunks come from mmap (64 KiB or more) and are kept until
 * gf_slab_dispose(); freed objects are reused first, in LIFO order.
 * Objects are zeroed, 16-byte aligned. Under AddressSanitizer, objects not
 * allocated are poisoned, so a use after gf_slab_free() is still reported.
 *
 * Threading: none; a slab belongs to one thread (a server's loop).
 */
#ifndef GF_SLAB_H
#define GF_SLAB_H

#include <stddef.h>

typedef struct gf_slab {
    size_t size;        /* of an object, rounded up to 16 */
    size_t chunk_bytes; /* of a chunk, pages */
    void *free;         /* freed objects, linked through their first bytes */
    struct gf_slab_chunk *chunks;
    char *bump, *end; /* never-used room in the newest chunk */
    size_t in_use;
} gf_slab_t;

/* Prepares a slab of `size`-byte objects (nothing is mapped until the first allocation). */
void gf_slab_init(gf_slab_t *s, size_t size);

/* A zeroed object; aborts when the system has no memory left (as gf_xmalloc). */
void *gf_slab_alloc(gf_slab_t *s);

/* Gives an object back (NULL is a no-op). */
void gf_slab_free(gf_slab_t *s, void *p);

/* Objects allocated and not freed. */
size_t gf_slab_in_use(const gf_slab_t *s);

/* Unmaps every chunk; every object must have been freed. */
void gf_slab_dispose(gf_slab_t *s);

#endif
