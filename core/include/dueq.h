/*
 * core/include/dueq.h - a queue of things due at a time, earliest first:
 * many periodic chores (an SSE stream's heartbeat each) served by one timer
 * instead of one timer each. Nodes are intrusive (embedded in their owner,
 * never allocated here). With one period for all, each push goes at the
 * tail, so push, remove and pop are O(1); a push earlier than the tail walks
 * back to its place, so the order holds whatever the times.
 *
 * Threading: none; a queue belongs to one loop.
 */
#ifndef GF_DUEQ_H
#define GF_DUEQ_H

#include <stdint.h>

typedef struct gf_due {
    struct gf_due *prev, *next;
    uint64_t at; /* when it is due (the caller's clock: uv_now's ms) */
    int queued;
} gf_due_t;

typedef struct {
    gf_due_t *head, *tail;
} gf_dueq_t;

/* Adds `d` (not queued) due at `at`, after every node due at or before `at`. */
void gf_dueq_push(gf_dueq_t *q, gf_due_t *d, uint64_t at);

/* Takes `d` out; a node not queued is left alone. */
void gf_dueq_remove(gf_dueq_t *q, gf_due_t *d);

/* Takes out and returns the earliest node when it is due at `now`; NULL otherwise. */
gf_due_t *gf_dueq_pop_due(gf_dueq_t *q, uint64_t now);

/* When the earliest node is due; UINT64_MAX when the queue is empty. */
uint64_t gf_dueq_next(const gf_dueq_t *q);

#endif
