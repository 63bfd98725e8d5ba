/*
 * tests/support/qt_proxy.c - a TCP proxy to one of the fixture's servers
 * (Redis, Postgres), run by a thread, that can make one of its connections
 * deaf: it stays open, and what either side sends is read and dropped. That
 * is a connection which died without a word, the case a reader can only
 * find out by probing. Or only the server's side: the requests arrive and
 * are carried out, and their answers are lost.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qt_proxy.h"

#define PAIRS 32

struct qt_proxy {
    int lfd, port;
    int fds[PAIRS][2]; /* client, redis; -1 when closed */
    int n;             /* connections accepted so far (their index) */
    int deaf[PAIRS];   /* 1: drops both ways; 2: drops what comes back only */
    int stop;
    pthread_mutex_t mu;
    pthread_t th;
    int target;
};

static void pair_close(qt_proxy_t *p, int i)
{
    for (int k = 0; k < 2; k++)
        if (p->fds[i][k] >= 0) {
            close(p->fds[i][k]);
            p->fds[i][k] = -1;
        }
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void *run(void *arg)
{
    qt_proxy_t *p = arg;
    for (;;) {
        struct pollfd pf[1 + PAIRS * 2];
        int who[1 + PAIRS * 2][2];
        int n = 0;
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        pf[n] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        who[n][0] = -1;
        n++;
        for (int i = 0; i < p->n && i < PAIRS; i++)
            for (int k = 0; k < 2; k++)
                if (p->fds[i][k] >= 0) {
                    pf[n] = (struct pollfd){.fd = p->fds[i][k], .events = POLLIN};
                    who[n][0] = i;
                    who[n][1] = k;
                    n++;
                }
        pthread_mutex_unlock(&p->mu);
        if (poll(pf, (nfds_t)n, 50) <= 0)
            continue;
        pthread_mutex_lock(&p->mu);
        if (pf[0].revents & POLLIN) {
            int c = accept(p->lfd, NULL, NULL);
            int r = c >= 0 ? dial(p->target) : -1;
            if (c >= 0 && r >= 0 && p->n < PAIRS) {
                p->fds[p->n][0] = c;
                p->fds[p->n][1] = r;
                p->n++;
            } else {
                if (c >= 0)
                    close(c);
                if (r >= 0)
                    close(r);
            }
        }
        for (int j = 1; j < n; j++) {
            if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int i = who[j][0], k = who[j][1];
            if (p->fds[i][k] < 0)
                continue;
            char buf[16384];
            ssize_t got = read(p->fds[i][k], buf, sizeof(buf));
            if (got <= 0) {
                pair_close(p, i);
                continue;
            }
            if (p->deaf[i] == 1 || (p->deaf[i] == 2 && k == 1))
                continue; /* read and dropped */
            int to = p->fds[i][1 - k];
            for (ssize_t off = 0; to >= 0 && off < got;) {
                ssize_t w = write(to, buf + off, (size_t)(got - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    pair_close(p, i);
                    break;
                }
                off += w;
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

qt_proxy_t *qt_proxy_start(int target_port)
{
    qt_proxy_t *p = calloc(1, sizeof(*p));
    memset(p->fds, -1, sizeof(p->fds));
    p->target = target_port;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->lfd, 16) != 0 || getsockname(p->lfd, (struct sockaddr *)&a, &len) != 0) {
        if (p->lfd >= 0)
            close(p->lfd);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    pthread_mutex_init(&p->mu, NULL);
    pthread_create(&p->th, NULL, run, p);
    return p;
}

int qt_proxy_port(const qt_proxy_t *p)
{
    return p->port;
}

int qt_proxy_accepted(qt_proxy_t *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void set_deaf(qt_proxy_t *p, int index, int how)
{
    pthread_mutex_lock(&p->mu);
    if (index >= 0 && index < PAIRS)
        p->deaf[index] = how;
    pthread_mutex_unlock(&p->mu);
}

void qt_proxy_deafen(qt_proxy_t *p, int index)
{
    set_deaf(p, index, 1);
}

void qt_proxy_lose_answers(qt_proxy_t *p, int index)
{
    set_deaf(p, index, 2);
}

void qt_proxy_stop(qt_proxy_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    for (int i = 0; i < p->n && i < PAIRS; i++)
        pair_close(p, i);
    close(p->lfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
