/*
 * queue/watch.c - live waits on event streams, fanned out from one pub/sub
 * subscription per process, and the cancel fast path.
 *
 * Every function that appends events PUBLISHes "e <gen> <n> <user> <stream
 * id>" lines on the queue's events channel ("{farm}:ev"), and cancel "c <gen>"
 * on its cancel channel ("{farm}:cx"). The subscriber takes only the channels
 * this process needs: a worker, which listens for cancels, does not receive
 * every event of the farm, and an api, which only watches, no cancels. A message
 * only says "something new": the watch then reads the durable list or stream
 * after its own cursor, so delivery is in order and gap-free whatever
 * happens to the messages. A watch re-reads whenever the subscriber or the
 * command connection comes back, which covers what was published while
 * either was down.
 *
 * Invariants:
 * - A watch is in the table from queue_watch_* until queue_watch_stop (or
 *   the close), and freed when it is stopped and no read is in flight.
 * - At most one read per watch is in flight; a notification that arrives
 *   meanwhile sets `again`, and the read is repeated when it returns.
 * - From queue_close on, a watch delivers no events: its last word is the
 *   GF_ECANCELED of the flusher's last run (queue__watches_cancel_all), so
 *   not inside queue_close.
 */
#include "async.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_BATCH 100

struct queue_watch {
    queue_t *q;
    queue_watch_t *next; /* bucket chain */
    int is_user;
    char *key;       /* gen id or user id */
    uint64_t after;  /* generation watches */
    char *after_sid; /* user watches: the last stream id delivered ("" from the start) */
    queue_watch_cb cb;
    void *data;
    int reading;
    int again;
    int stopped;
    int failed; /* its last read failed: the next probe tick reads again */
    int held;   /* queue_watch_hold(): no read until released (`again` remembers one) */
};

static unsigned bucket_of(const char *key)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % QUEUE_WATCH_BUCKETS;
}

static void table_remove(queue_watch_t *w)
{
    queue_watch_t **pp = &w->q->watches[bucket_of(w->key)];
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    w->next = NULL;
}

static void watch_free(queue_watch_t *w)
{
    free(w->key);
    free(w->after_sid);
    free(w);
}

static void watch_read(queue_watch_t *w);

static void on_watch_read(queue_t *q, const gf_err_t *err, const queue_events_t *e, void *data)
{
    queue_watch_t *w = data;
    if (w->stopped) {
        watch_free(w);
        return;
    }
    if (q->closing) {
        w->reading = 0; /* queue__watches_cancel_all ends it */
        return;
    }
    if (err->code < 0) {
        /*
         * A lost connection re-reads every watch when it is back
         * (queue__cmd_on_ready); an error answer on a connection that stays
         * up (a busy Redis, say) is read again at the next probe tick.
         */
        w->reading = 0;
        w->failed = 1;
        return;
    }
    w->failed = 0;
    if (e->n > 0) {
        if (w->is_user) {
            free(w->after_sid);
            w->after_sid = gf_xstrdup(e->ev[e->n - 1].stream_id);
        } else {
            w->after = e->ev[e->n - 1].id;
        }
        /* `reading` stays set during the callback, so a stop inside it only marks the watch. */
        w->cb(w, err, e, w->data);
        if (w->stopped) {
            watch_free(w);
            return;
        }
    }
    w->reading = 0;
    if (w->again || e->n == WATCH_BATCH) {
        w->again = 0;
        watch_read(w);
    }
}

static void watch_read(queue_watch_t *w)
{
    if (w->reading || w->held) {
        w->again = 1;
        return;
    }
    int rc = w->is_user
                 ? queue_user_events_read(w->q, w->key, w->after_sid, WATCH_BATCH, on_watch_read, w)
                 : queue_events_read(w->q, w->key, w->after, WATCH_BATCH, on_watch_read, w);
    if (rc == 0)
        w->reading = 1;
    /* Otherwise Redis is down: queue__cmd_on_ready re-reads once it is back. */
}

void queue_watch_hold(queue_watch_t *w, int hold)
{
    if (w == NULL || w->stopped)
        return;
    w->held = hold != 0;
    if (!w->held && w->again && !w->reading) {
        w->again = 0;
        watch_read(w); /* its answer comes on a later turn */
    }
}

static queue_watch_t *watch_new(queue_t *q, int is_user, const char *key, uint64_t after,
                                const char *after_sid, queue_watch_cb cb, void *data, gf_err_t *err)
{
    if (q->closing || !q->cmd.ready) {
        gf_err_set(err, GF_EUNAVAIL, "queue", "redis is not available");
        return NULL;
    }
    if (key == NULL || *key == '\0' || strlen(key) > 128) {
        gf_err_set(err, GF_EINVAL, "queue", "watch: a bad id");
        return NULL;
    }
    queue__sub_want(q, 0);
    queue_watch_t *w = gf_xcalloc(1, sizeof(*w));
    w->q = q;
    w->is_user = is_user;
    w->key = gf_xstrdup(key);
    w->after = after;
    w->after_sid = gf_xstrdup(after_sid ? after_sid : "");
    w->cb = cb;
    w->data = data;
    unsigned b = bucket_of(w->key);
    w->next = q->watches[b];
    q->watches[b] = w;
    /* Read what exists now; what comes later arrives through notifications. */
    watch_read(w);
    return w;
}

queue_watch_t *queue_watch_gen(queue_t *q, const char *gen_id, uint64_t after_id, queue_watch_cb cb,
                               void *data, gf_err_t *err)
{
    return watch_new(q, 0, gen_id, after_id, NULL, cb, data, err);
}

queue_watch_t *queue_watch_user(queue_t *q, const char *user_id, const char *after,
                                queue_watch_cb cb, void *data, gf_err_t *err)
{
    return watch_new(q, 1, user_id, 0, after, cb, data, err);
}

void queue_watch_stop(queue_watch_t *w)
{
    if (w == NULL || w->stopped)
        return;
    w->stopped = 1;
    table_remove(w);
    if (!w->reading)
        watch_free(w);
}

void queue_on_cancel(queue_t *q, queue_cancel_cb cb, void *data)
{
    q->cancel_cb = cb;
    q->cancel_data = data;
    if (cb)
        queue__sub_want(q, 1);
}

static void read_all(queue_t *q)
{
    for (int b = 0; b < QUEUE_WATCH_BUCKETS; b++)
        for (queue_watch_t *w = q->watches[b]; w; w = w->next)
            watch_read(w);
}

void queue__sub_on_ready(queue_t *q)
{
    read_all(q);
}

void queue__cmd_on_ready(queue_t *q)
{
    read_all(q);
}

void queue__watches_retry(queue_t *q)
{
    for (int b = 0; b < QUEUE_WATCH_BUCKETS; b++)
        for (queue_watch_t *w = q->watches[b]; w; w = w->next)
            if (w->failed && !w->stopped) {
                w->failed = 0;
                watch_read(w);
            }
}

/*
 * Wakes the watches of `key` of one kind. A generation watch reads even when
 * its cursor is at or past the event notified: usually that read answers
 * nothing, but when the job's history went back (Redis lost writes) the
 * event may be one it has not seen under an id it has, and should that be
 * the terminal event, the read answers it (events.lua) and the watch's
 * readers end.
 */
static void notify(queue_t *q, int is_user, const char *key)
{
    for (queue_watch_t *w = q->watches[bucket_of(key)]; w; w = w->next)
        if (w->is_user == is_user && strcmp(w->key, key) == 0)
            watch_read(w);
}

/* One notification: "e <gen> <n> <user> <stream id>" or "c <gen>". */
static void on_line(queue_t *q, const char *msg, size_t len)
{
    char buf[512], gen[160], user[160], sid[64];
    unsigned long long n = 0;
    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    if (sscanf(buf, "e %159s %llu %159s %63s", gen, &n, user, sid) == 4) {
        notify(q, 0, gen);
        notify(q, 1, user);
    } else if (sscanf(buf, "c %159s", gen) == 1 && q->cancel_cb) {
        q->cancel_cb(q, gen, q->cancel_data);
    }
}

/* A message holds one notification per line: a call's events go out together. */
void queue__sub_on_message(queue_t *q, const char *msg, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(msg, '\n', len);
        size_t n = nl ? (size_t)(nl - msg) : len;
        on_line(q, msg, n);
        if (nl == NULL)
            break;
        len -= n + 1;
        msg = nl + 1;
    }
}

void queue__watches_cancel_all(queue_t *q)
{
    gf_err_t err = {0};
    gf_err_set(&err, GF_ECANCELED, "queue", "queue closed");
    for (int b = 0; b < QUEUE_WATCH_BUCKETS; b++) {
        queue_watch_t *w;
        while ((w = q->watches[b]) != NULL) {
            q->watches[b] = w->next;
            w->next = NULL;
            w->stopped = 1;
            w->cb(w, &err, NULL, w->data);
            if (!w->reading)
                watch_free(w);
        }
    }
}
