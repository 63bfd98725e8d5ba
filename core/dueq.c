/*
 * core/dueq.c - the queue of things due at a time (dueq.h): a doubly linked
 * list kept in order of `at`, ties in order of push.
 */
#include "dueq.h"

#include <stddef.h>

void gf_dueq_push(gf_dueq_t *q, gf_due_t *d, uint64_t at)
{
    d->at = at;
    d->queued = 1;
    gf_due_t *after = q->tail;
    while (after != NULL && after->at > at)
        after = after->prev;
    d->prev = after;
    d->next = after ? after->next : q->head;
    if (d->next)
        d->next->prev = d;
    else
        q->tail = d;
    if (after)
        after->next = d;
    else
        q->head = d;
}

void gf_dueq_remove(gf_dueq_t *q, gf_due_t *d)
{
    if (!d->queued)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else
        q->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        q->tail = d->prev;
    d->prev = d->next = NULL;
    d->queued = 0;
}

gf_due_t *gf_dueq_pop_due(gf_dueq_t *q, uint64_t now)
{
    gf_due_t *d = q->head;
    if (d == NULL || d->at > now)
        return NULL;
    gf_dueq_remove(q, d);
    return d;
}

uint64_t gf_dueq_next(const gf_dueq_t *q)
{
    return q->head ? q->head->at : UINT64_MAX;
}
