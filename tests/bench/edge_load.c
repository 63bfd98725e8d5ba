/*
 * tests/bench/edge_load.c - the hostile load of `scripts/bench edge` (not a
 * test): while the hostile clients run, a normal client measures /healthz
 * and a signed file GET, and the api's RSS is sampled.
 *
 *   edge_load PORT API_PID pipeline SECONDS FILE_PATH
 *       50 connections pipeline GET /metrics and never read, for SECONDS.
 *   edge_load PORT API_PID uploads COUNT FILE_PATH
 *       COUNT connections at once each start an unauthenticated 10 MiB upload.
 *
 * Prints one line: "<mode> rss_growth_mib <N> normal_p99_ms <X> normal_requests <K> ...".
 * With EDGE_TRACE set, also a timeline on stderr: each normal request's start (s from the
 * beginning), path and latency (ms), when the uploads were all dialed, every 100th answer.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proc_status.h"

static int port;
static const char *file_path;
static atomic_int stop;
static double t_start;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nonblock) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    } else {
        struct timeval tv = {.tv_sec = 5}; /* an answer later than this counts as failed */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

/* --- the normal client: one keep-alive connection, GETs one after another --- */

static double *lat;
static size_t nlat, caplat;
static long bad;

/* One GET on `fd`; its latency in ms, or -1 when it failed (the connection is then redone). */
static double get(int *fd, const char *path)
{
    char req[2048], buf[65536];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", path);
    double t0 = now_s();
    size_t len = 0, head = 0;
    long want = -1;
    if (send(*fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto fail;
    for (;;) {
        ssize_t r = recv(*fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            goto fail;
        len += (size_t)r;
        buf[len] = '\0';
        if (want < 0) {
            char *end = strstr(buf, "\r\n\r\n");
            if (end == NULL)
                continue;
            head = (size_t)(end + 4 - buf);
            char *cl = strcasestr(buf, "content-length:");
            want = cl ? atol(cl + 15) : 0;
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && bad++ < 3)
                fprintf(stderr, "edge_load: normal client: %s answered %.12s\n", path, buf);
        }
        if (len - head >= (size_t)want) {
            if (len - head > (size_t)want)
                goto fail; /* nothing was pipelined: more is a broken answer */
            return (now_s() - t0) * 1000;
        }
        if (len == sizeof(buf) - 1) {
            /* a file larger than the buffer: keep only the count */
            head -= len > head ? head : 0;
            want -= (long)(len - head);
            len = 0, head = 0;
        }
    }
fail:
    if (bad < 3)
        fprintf(stderr, "edge_load: normal client: %s failed after %.0f ms: %.80s\n", path,
                (now_s() - t0) * 1000, len ? buf : "(no answer)");
    close(*fd);
    *fd = dial(0);
    bad++;
    return -1;
}

static void *normal_client(void *arg)
{
    (void)arg;
    int fd = dial(0);
    for (int i = 0; !atomic_load(&stop); i++) {
        double t = now_s();
        double ms = get(&fd, i % 2 ? file_path : "/healthz");
        if (getenv("EDGE_TRACE"))
            fprintf(stderr, "trace %.3f %s %.2f\n", t - t_start, i % 2 ? "file" : "healthz", ms);
        if (ms >= 0) {
            if (nlat == caplat) {
                caplat = caplat ? caplat * 2 : 4096;
                lat = realloc(lat, caplat * sizeof(double));
            }
            lat[nlat++] = ms;
        }
        usleep(2000);
    }
    close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: edge_load PORT API_PID pipeline|uploads N FILE_PATH\n");
        return 2;
    }
    port = atoi(argv[1]);
    int api = atoi(argv[2]);
    const char *mode = argv[3];
    long n = atol(argv[4]);
    file_path = argv[5];
    long before = proc_status_kib(api, "VmRSS"), peak = before;
    t_start = now_s();
    pthread_t normal;
    pthread_create(&normal, NULL, normal_client, NULL);
    long sent = 0, answered = 0;
    if (strcmp(mode, "pipeline") == 0) {
        enum { CONNS = 50 };
        static const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n";
        static char burst[64 * 1024];
        size_t one = sizeof(req) - 1, per = sizeof(burst) / one;
        for (size_t i = 0; i < per; i++)
            memcpy(burst + i * one, req, one);
        int fds[CONNS];
        for (int i = 0; i < CONNS; i++)
            fds[i] = dial(1);
        double until = now_s() + (double)n;
        while (now_s() < until) {
            for (int i = 0; i < CONNS; i++) {
                ssize_t w = send(fds[i], burst, per * one, MSG_NOSIGNAL);
                if (w > 0)
                    sent += w / (ssize_t)one;
            }
            long r = proc_status_kib(api, "VmRSS");
            peak = r > peak ? r : peak;
            usleep(20000);
        }
        for (int i = 0; i < CONNS; i++)
            close(fds[i]);
    } else {
        static const char head[] = "POST /v1/uploads HTTP/1.1\r\nHost: bench\r\n"
                                   "Content-Type: image/png\r\nContent-Length: 10485760\r\n\r\n";
        static char chunk[256 * 1024];
        memset(chunk, 'x', sizeof(chunk));
        int *fds = calloc((size_t)n, sizeof(int));
        for (long i = 0; i < n; i++) {
            fds[i] = dial(1);
            send(fds[i], head, sizeof(head) - 1, MSG_NOSIGNAL);
            send(fds[i], chunk, sizeof(chunk), MSG_NOSIGNAL);
            sent++;
        }
        if (getenv("EDGE_TRACE"))
            fprintf(stderr, "trace %.3f dialed all\n", now_s() - t_start);
        /* keep pushing body bytes where the server still takes them, and collect answers */
        double until = now_s() + 20;
        while (answered < n && now_s() < until) {
            for (long i = 0; i < n; i++) {
                if (fds[i] < 0)
                    continue;
                char buf[4096];
                ssize_t r = recv(fds[i], buf, sizeof(buf), 0);
                if (r > 0 && strncmp(buf, "HTTP/1.1 4", 10) == 0) {
                    answered++;
                    if (getenv("EDGE_TRACE") && answered % 100 == 0)
                        fprintf(stderr, "trace %.3f answered %ld\n", now_s() - t_start, answered);
                    close(fds[i]);
                    fds[i] = -1;
                    continue;
                }
                send(fds[i], chunk, sizeof(chunk), MSG_NOSIGNAL);
            }
            long r = proc_status_kib(api, "VmRSS");
            peak = r > peak ? r : peak;
            usleep(10000);
        }
        for (long i = 0; i < n; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        free(fds);
    }
    atomic_store(&stop, 1);
    pthread_join(normal, NULL);
    qsort(lat, nlat, sizeof(double), cmp);
    double p50 = nlat ? lat[nlat / 2] : -1, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : -1;
    printf("%s sent %ld answered %ld rss_before_kib %ld rss_peak_kib %ld rss_growth_mib %.1f "
           "normal_requests %zu normal_bad %ld normal_p50_ms %.2f normal_p99_ms %.2f\n",
           mode, sent, answered, before, peak, (double)(peak - before) / 1024.0, nlat, bad, p50,
           p99);
    free(lat);
    return 0;
}
