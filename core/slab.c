/*
 * core/slab.c - fixed-size objects in chunks of their own (slab.h).
 */
#include "slab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLAB_POISON(p, n)   ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB_ALIGN       16
#define SLAB_CHUNK_MIN   (64 * 1024)
#define SLAB_CHUNK_ITEMS 16 /* at least this many objects per chunk */

/* A chunk's head; its objects follow, from the first aligned byte after it. */
struct gf_slab_chunk {
    struct gf_slab_chunk *next;
    size_t bytes;
};

void gf_slab_init(gf_slab_t *s, size_t size)
{
    memset(s, 0, sizeof(*s));
    if (size < sizeof(void *))
        size = sizeof(void *);
    s->size = (size + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), want = s->size * SLAB_CHUNK_ITEMS + SLAB_ALIGN;
    if (want < SLAB_CHUNK_MIN)
        want = SLAB_CHUNK_MIN;
    s->chunk_bytes = (want + page - 1) / page * page;
}

static void chunk_add(gf_slab_t *s)
{
    void *m =
        mmap(NULL, s->chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "genfarm: out of memory (a slab chunk of %zu bytes)\n", s->chunk_bytes);
        abort();
    }
    struct gf_slab_chunk *c = m;
    c->bytes = s->chunk_bytes;
    c->next = s->chunks;
    s->chunks = c;
    uintptr_t first = ((uintptr_t)(c + 1) + SLAB_ALIGN - 1) & ~(uintptr_t)(SLAB_ALIGN - 1);
    s->bump = (char *)first;
    s->end = (char *)m + s->chunk_bytes;
    SLAB_POISON(s->bump, (size_t)(s->end - s->bump));
}

void *gf_slab_alloc(gf_slab_t *s)
{
    void *p = s->free;
    if (p != NULL) {
        SLAB_UNPOISON(p, s->size);
        s->free = *(void **)p;
    } else {
        if (s->bump == NULL || (size_t)(s->end - s->bump) < s->size)
            chunk_add(s);
        p = s->bump;
        s->bump += s->size;
        SLAB_UNPOISON(p, s->size);
    }
    memset(p, 0, s->size);
    s->in_use++;
    return p;
}

void gf_slab_free(gf_slab_t *s, void *p)
{
    if (p == NULL)
        return;
    *(void **)p = s->free;
    s->free = p;
    s->in_use--;
    /* The link stays readable; the rest of a freed object is off limits. */
    SLAB_POISON((char *)p + sizeof(void *), s->size - sizeof(void *));
}

size_t gf_slab_in_use(const gf_slab_t *s)
{
    return s->in_use;
}

void gf_slab_dispose(gf_slab_t *s)
{
    if (s->in_use != 0)
        fprintf(stderr, "genfarm: a slab of %zu-byte objects disposed with %zu in use\n", s->size,
                s->in_use);
    while (s->chunks) {
        struct gf_slab_chunk *c = s->chunks;
        s->chunks = c->next;
        SLAB_UNPOISON(c, c->bytes);
        munmap(c, c->bytes);
    }
    size_t size = s->size;
    gf_slab_init(s, size);
}
