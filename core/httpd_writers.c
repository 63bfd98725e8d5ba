/*
 * core/httpd_writers.c - the threads that share a large stream fan-out's
 * sends with the loop thread (gf_http_stream_write_frame_all).
 *
 * On loopback and on a busy host, one send to a socket costs several
 * microseconds of the sender's CPU (the TCP stack, and on loopback the
 * receiver's side too), so one event to 10,000 listeners holds one thread
 * for tens of milliseconds. Here the loop thread hands the sends of one
 * fan-out to opts.write_threads threads and does its own share: each thread
 * takes the next HTTPD_SEND_CHUNK sends until none are left, so a thread the
 * scheduler does not run soon takes none, and the loop thread does them.
 *
 * Invariants:
 * - A writer thread touches only the sends of the round it joined (a socket
 *   descriptor, the frame's bytes, its answer): never a connection, a request
 *   or libuv. The loop thread waits in httpd__writers_run until every
 *   thread that joined the round is done with it, and runs nothing else
 *   meanwhile, so no connection closes and no descriptor is reused while a
 *   thread sends to it.
 * - A thread joins a round (`active`) under the lock only while sends are
 *   left, so once the loop thread has taken the last chunk, it waits for the
 *   threads at work, never for one that has not woken yet.
 * - The threads start at the first fan-out that needs them (after any fork
 *   of the api's processes) and are joined by httpd__writers_free.
 */
#include "httpd_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Sends a thread takes at a time: small enough that threads finish together, large enough
 * that taking them costs nothing beside the sends. */
#define HTTPD_SEND_CHUNK 16

struct httpd_writers {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *threads;
    int nthreads;
    int quit;
    uint64_t round; /* one per fan-out */
    int active;     /* threads working on this round */
    httpd_send_t *sends;
    size_t nsends;
    atomic_size_t next; /* the first send not taken */
};

ssize_t httpd__send(int fd, const uv_buf_t *bufs, unsigned n)
{
    /* libuv's uv_buf_t is struct iovec's layout on Unix (uv/unix.h), as its own writev uses it. */
    _Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec) &&
                       offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base) &&
                       offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
                   "uv_buf_t is not a struct iovec");
    struct msghdr msg = {.msg_iov = (struct iovec *)bufs, .msg_iovlen = n};
    ssize_t rc;
    do
        rc = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (rc < 0 && errno == EINTR);
    if (rc >= 0)
        return rc;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
        return 0;
    return -1;
}

/* Takes chunks of the round's sends until none are left. */
static void sends_take(httpd_writers_t *w)
{
    for (;;) {
        size_t i = atomic_fetch_add(&w->next, HTTPD_SEND_CHUNK);
        if (i >= w->nsends)
            return;
        size_t end = i + HTTPD_SEND_CHUNK < w->nsends ? i + HTTPD_SEND_CHUNK : w->nsends;
        for (; i < end; i++) {
            httpd_send_t *s = &w->sends[i];
            if (s->fd < 0)
                continue; /* queued behind earlier bytes: the loop thread's */
            uv_buf_t b = uv_buf_init((char *)s->p, (unsigned int)s->len);
            s->sent = httpd__send(s->fd, &b, 1);
        }
    }
}

static void *writer_main(void *arg)
{
    httpd_writers_t *w = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && w->round == seen)
            pthread_cond_wait(&w->work, &w->mu);
        if (w->quit)
            break;
        seen = w->round;
        if (atomic_load(&w->next) >= w->nsends)
            continue; /* woke after the others took every send */
        w->active++;
        pthread_mutex_unlock(&w->mu);
        sends_take(w);
        pthread_mutex_lock(&w->mu);
        if (--w->active == 0)
            pthread_cond_signal(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Starts the threads; NULL when not one could start (the loop thread then sends alone). */
static httpd_writers_t *writers_start(int nthreads)
{
    httpd_writers_t *w = gf_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->done, NULL);
    atomic_init(&w->next, 0);
    w->threads = gf_xcalloc((size_t)nthreads, sizeof(*w->threads));
    /* Signals stay the loop thread's: the threads start with every one blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&w->threads[w->nthreads], NULL, writer_main, w) != 0)
            break;
        w->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (w->nthreads == 0) {
        httpd__writers_free(w);
        return NULL;
    }
    return w;
}

int httpd__writers_run(gf_httpd_t *h, httpd_send_t *sends, size_t n)
{
    if (h->writers == NULL && !h->writers_failed) {
        h->writers = writers_start(h->opts.write_threads);
        h->writers_failed = h->writers == NULL;
    }
    httpd_writers_t *w = h->writers;
    if (w == NULL)
        return -1;
    pthread_mutex_lock(&w->mu);
    w->sends = sends;
    w->nsends = n;
    atomic_store(&w->next, 0);
    w->round++;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    sends_take(w);
    pthread_mutex_lock(&w->mu);
    while (w->active > 0)
        pthread_cond_wait(&w->done, &w->mu);
    w->sends = NULL;
    w->nsends = 0;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void httpd__writers_free(httpd_writers_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    free(w->threads);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
