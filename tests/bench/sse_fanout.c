/*
 * tests/bench/sse_fanout.c - many SSE clients on one generation (or on a
 * few), and the worker's part that feeds them. Used by
 * tests/integration/api/sse.c (1,000 clients) and `scripts/bench sse`
 * (15,000 in groups of 1,000, 10,000 and 4,000).
 *
 *   sse_fanout API_URL TOKEN CLIENTS API_PID [GROUPS]
 *
 * GROUPS is a comma-separated list of group sizes adding up to CLIENTS
 * ("1000,10000,4000"); each group follows a generation of its own (without
 * it: one group of CLIENTS). With FARM_REDIS_URL / FARM_DATABASE_URL of the
 * farm in the environment it: creates one generation per group (POST),
 * opens the CLIENTS event streams from one epoll loop (raw HTTP/1.1,
 * ?access_token=), measures the api's RSS before and after (after: once every
 * stream has its first event, so no stream is still being set up, neither
 * in the RSS nor during the fan-outs), claims the jobs
 * as a worker would, then for each group in turn publishes one progress
 * event whose data carries the send time and waits until the group has it
 * (so one group's fan-out is measured alone), finishes every generation
 * (Postgres, then the queue), and waits until every client has its
 * terminal event. Prints one line:
 *   clients <C> connected <K> progress <P> terminal <T> rss_per_stream <B> p50_ms <a> p99_ms <b>
 * (latencies over every client), followed, with GROUPS, by
 * " group<N>_p50_ms <x> group<N>_p99_ms <y>" for each group of N clients.
 *
 * A client's latency is from the publish to the moment its event arrived in
 * its socket: the kernel's receive time (SO_TIMESTAMPNS), not the time this
 * one process got round to reading that socket. Real listeners each read on
 * a machine of their own; here one thread stands in for all of them on the
 * api's 2 cores, and its reads (a few microseconds each) would otherwise
 * add its own queue to the figure and take a core from the api while it
 * writes. So while a group's fan-out is in flight the client only notes
 * which sockets became readable (epoll, edge-triggered) and reads them once
 * every one of the group has data waiting, or when a check (one each
 * millisecond) finds none newly readable; each latency still ends where the
 * listener had the event. It never blocks in epoll_wait (poll_once).
 *
 * Exit status 0 when every client got the progress and the terminal event.
 * Warns on stderr when a stream did not start, and when the api's threads
 * waited for a CPU during a fan-out for more than a tenth of the time they ran
 * (a busy machine: the latencies then measure the machine as much as the api).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proc_status.h"
#include "queue.h"
#include "store.h"

extern char **environ;

#define MAX_GROUPS 8

typedef struct {
    int fd;
    char tail[512]; /* the unfinished last line */
    size_t tail_len;
    int group;
    double latency; /* of its progress event, ms */
    int connected, ready, progress, terminal, closed;
    int waiting; /* readable, its read deferred (in `waiting`) */
} client_t;

typedef struct {
    int n, first; /* its clients: clients[first .. first + n) */
    char gen_id[37];
    char request[4096];
    uint64_t token;
    int progress; /* its clients that have their progress event */
} group_t;

static client_t *clients;
static int nclients, nconnected, nready, nprogress, nterminal, nclosed;
static group_t groups[MAX_GROUPS];
static int ngroups;
static struct sockaddr_in addr;
static int epfd;
/* The readable clients whose reads wait until the fan-out in flight is over (poll_once). */
static int *waiting, nwaiting;
/* Warnings for stderr, written after the result line (a caller may read the first line of both). */
static char warnings[2048];

static void warn(const char *fmt, ...)
{
    size_t used = strlen(warnings);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(warnings + used, sizeof(warnings) - used, fmt, ap);
    va_end(ap);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void client_close(client_t *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    if (c->fd >= 0)
        close(c->fd); /* which takes it out of epfd */
    nclosed++;
}

/* Looks at one complete line of the stream; `at_ms`: when its bytes arrived. */
static void on_line(client_t *c, const char *line, size_t n, double at_ms)
{
    if (n > 7 && strncmp(line, "event: ", 7) == 0 && !c->ready) {
        c->ready = 1; /* its first event (the replayed 'queued'): the stream is set up */
        nready++;
    }
    if (n > 6 && strncmp(line, "data: ", 6) == 0 && !c->progress) {
        const char *t = memmem(line, n, "\"t_ms\":", 7);
        if (t) {
            c->progress = 1;
            c->latency = at_ms - strtod(t + 7, NULL);
            nprogress++;
            groups[c->group].progress++;
        }
    }
    if (n >= 16 && strncmp(line, "event: succeeded", 16) == 0 && !c->terminal) {
        c->terminal = 1;
        nterminal++;
    }
}

/* Reads what the client's socket holds, each read stamped with the kernel's receive time. */
static void client_read(client_t *c)
{
    static char slab[65536];
    for (;;) {
        char ctl[CMSG_SPACE(sizeof(struct timespec))];
        struct iovec iov = {.iov_base = slab, .iov_len = sizeof(slab)};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
        ssize_t nread = recvmsg(c->fd, &msg, MSG_DONTWAIT);
        if (nread < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (nread <= 0) {
            client_close(c);
            return;
        }
        double at = now_ms(); /* without a stamp (none expected): now */
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SO_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(h), sizeof(ts));
                at = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
            }
        for (ssize_t i = 0; i < nread; i++) {
            char ch = slab[i];
            if (ch == '\n') {
                on_line(c, c->tail, c->tail_len, at);
                c->tail_len = 0;
            } else if (c->tail_len < sizeof(c->tail) - 1) {
                c->tail[c->tail_len++] = ch;
            }
        }
    }
}

/* The client's connect finished: it sends its request (a few hundred bytes: one send). */
static void client_connected(client_t *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
        client_close(c);
        return;
    }
    c->connected = 1;
    nconnected++;
    const char *request = groups[c->group].request;
    size_t n = strlen(request);
    if (send(c->fd, request, n, MSG_NOSIGNAL) != (ssize_t)n)
        client_close(c);
}

static void client_open(client_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u32 = (uint32_t)(c - clients)};
    if (c->fd < 0 || setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0 ||
        (connect(c->fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0 &&
         errno != EINPROGRESS) ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        client_close(c);
}

/*
 * Takes the sockets that are ready, then, unless more are, sleeps `sleep_ms`.
 * It never blocks in epoll_wait: a thread blocked there is woken by each
 * event's arrival, and on loopback the api's send pays for that wake-up, so
 * a fan-out would measure this client's wake-ups. With `defer`, a readable
 * client is only noted; the noted ones are read when `defer` of them are
 * waiting, or when none was ready (so no fan-out is in flight). Returns the
 * number of sockets found ready.
 */
static int poll_once(int sleep_ms, int defer)
{
    struct epoll_event evs[1024];
    int n = epoll_wait(epfd, evs, 1024, 0);
    for (int i = 0; i < n; i++) {
        client_t *c = &clients[evs[i].data.u32];
        if (c->closed)
            continue;
        if (!c->connected && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            client_connected(c);
        if (c->closed || !(evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            continue;
        if (defer == 0)
            client_read(c);
        else if (!c->waiting) {
            c->waiting = 1;
            waiting[nwaiting++] = (int)(c - clients);
        }
    }
    if (nwaiting > 0 && (n <= 0 || nwaiting >= defer)) {
        for (int i = 0; i < nwaiting; i++) {
            clients[waiting[i]].waiting = 0;
            client_read(&clients[waiting[i]]);
        }
        nwaiting = 0;
    }
    if (n < 1024 && sleep_ms > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    gf_buf_t *b = ud;
    gf_buf_append(b, p, size * n);
    return size * n;
}

/* Serves the sockets until `*counter` reaches `want`; `defer` as poll_once's. */
static void run_until(int *counter, int want, double timeout_s, int defer)
{
    double end = now_ms() + timeout_s * 1000;
    while ((*counter < want || nwaiting > 0) && now_ms() < end)
        poll_once(1, defer);
}

/* The time the api's threads (its loop and its write threads) have run, and waited for a CPU,
 * in ns, together. */
static void sched_ns(long pid, double *run, double *wait)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    *run = *wait = 0;
    DIR *dir = opendir(path);
    for (struct dirent *de; dir && (de = readdir(dir)) != NULL;) {
        char stat[352];
        double r, w;
        if (de->d_name[0] == '.')
            continue;
        snprintf(stat, sizeof(stat), "%s/%s/schedstat", path, de->d_name);
        FILE *f = fopen(stat, "r");
        if (f && fscanf(f, "%lf %lf", &r, &w) == 2)
            *run += r, *wait += w;
        if (f)
            fclose(f);
    }
    if (dir)
        closedir(dir);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p50 and p99 of the progress latencies of clients[first .. first + n) that have one. */
static void percentiles(int first, int n, double *p50, double *p99)
{
    double *lat = calloc((size_t)n + 1, sizeof(double));
    int k = 0;
    for (int i = first; i < first + n; i++)
        if (clients[i].progress)
            lat[k++] = clients[i].latency;
    qsort(lat, (size_t)k, sizeof(double), cmp_double);
    *p50 = k ? lat[k / 2] : -1;
    *p99 = k ? lat[(k * 99) / 100] : -1;
    free(lat);
}

/* POSTs a generation as `auth`; its id in `out`. 0, or -1 with the answer on stderr. */
static int create_generation(const char *api, const char *auth, char out[37])
{
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/generations", api);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    gf_buf_t body = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{\"kind\":\"avatar\",\"prompt\":\"fan-out\"}");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    CURLcode cc = curl_easy_perform(e);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    json_t *created = cc == CURLE_OK ? json_loads(body.p ? body.p : "", 0, NULL) : NULL;
    const char *gen = json_string_value(json_object_get(created, "id"));
    int rc = gen ? 0 : -1;
    if (gen)
        snprintf(out, 37, "%s", gen);
    else
        fprintf(stderr, "sse_fanout: POST failed: %s\n", body.p ? body.p : "");
    json_decref(created);
    gf_buf_dispose(&body);
    return rc;
}

/* Parses GROUPS ("1000,10000,4000"); 0 when they are 1..MAX_GROUPS sizes adding up to `total`. */
static int parse_groups(const char *s, int total)
{
    int sum = 0;
    for (ngroups = 0; *s && ngroups < MAX_GROUPS; ngroups++) {
        char *end;
        long n = strtol(s, &end, 10);
        if (end == s || n <= 0 || (*end != ',' && *end != '\0'))
            return -1;
        groups[ngroups].first = sum;
        groups[ngroups].n = (int)n;
        sum += (int)n;
        s = *end ? end + 1 : end;
    }
    return *s == '\0' && sum == total ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: sse_fanout API_URL TOKEN CLIENTS API_PID [GROUPS]\n");
        return 2;
    }
    const char *api = argv[1], *token = argv[2];
    nclients = atoi(argv[3]);
    long api_pid = atol(argv[4]);
    if (nclients <= 0 || parse_groups(argc == 6 ? argv[5] : argv[3], nclients) < 0) {
        fprintf(stderr, "sse_fanout: GROUPS must be sizes adding up to CLIENTS\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    queue_sync_t *qs = cfg ? queue_sync_new(cfg, &err) : NULL;
    store_conn_t *sc = cfg ? store_conn_new(cfg->database_url, &err) : NULL;
    if (qs == NULL || sc == NULL) {
        fprintf(stderr, "sse_fanout: %s\n", err.msg);
        return 2;
    }
    /* The generations, one per group. */
    char auth[2048], host[64] = "127.0.0.1";
    int port = 80;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    sscanf(api, "http://%63[^:]:%d", host, &port);
    for (int g = 0; g < ngroups; g++) {
        char gen[37];
        if (create_generation(api, auth, gen) < 0)
            return 2;
        snprintf(groups[g].gen_id, sizeof(groups[g].gen_id), "%s", gen);
        snprintf(groups[g].request, sizeof(groups[g].request),
                 "GET /v1/generations/%s/events?access_token=%s HTTP/1.1\r\nHost: %s\r\n"
                 "Accept: text/event-stream\r\n\r\n",
                 gen, token, host);
    }
    /* The clients. */
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "sse_fanout: API_URL must name an IPv4 address\n");
        return 2;
    }
    clients = calloc((size_t)nclients, sizeof(client_t));
    waiting = calloc((size_t)nclients, sizeof(int));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    long rss_before = proc_status_kib(api_pid, "VmRSS");
    for (int g = 0; g < ngroups; g++)
        for (int i = groups[g].first; i < groups[g].first + groups[g].n; i++)
            clients[i].group = g;
    for (int i = 0; i < nclients; i++) {
        client_open(&clients[i]);
        if (i % 200 == 199)
            poll_once(0, 0); /* let the api accept as we go */
    }
    run_until(&nconnected, nclients, 60, 0);
    /* Every stream set up (its 'queued' replay came), so no setup runs during the fan-outs. */
    run_until(&nready, nconnected, 60, 0);
    if (nready < nconnected)
        warn("sse_fanout: %d of %d streams did not start\n", nconnected - nready, nconnected);
    for (int i = 0; i < 50; i++)
        poll_once(20, 0); /* and the api is idle again */
    long rss_after = proc_status_kib(api_pid, "VmRSS");
    /* The worker's part: claim every generation. */
    int claimed = 0;
    for (int round = 0; round < 100 && claimed < ngroups; round++) {
        queue_claim_t claim = {0};
        if (queue_sync_claim(qs, "sse-fanout", 16, &claim, &err) == 0) {
            for (size_t i = 0; i < claim.n_jobs; i++)
                for (int g = 0; g < ngroups; g++)
                    if (strcmp(claim.jobs[i].gen_id, groups[g].gen_id) == 0 &&
                        groups[g].token == 0) {
                        groups[g].token = claim.jobs[i].token;
                        claimed++;
                    }
            queue_claim_dispose(&claim);
        }
    }
    store_call_t call;
    queue_result_t qr;
    for (int g = 0; g < ngroups; g++) {
        group_t *gr = &groups[g];
        store_call_start(&call, gr->gen_id, (long long)gr->token, "fanout", NULL);
        store_conn_exec(sc, &call);
        store_call_dispose(&call);
    }
    /* One group's fan-out at a time. */
    for (int g = 0; g < ngroups; g++) {
        group_t *gr = &groups[g];
        int want = 0;
        for (int i = gr->first; i < gr->first + gr->n; i++)
            want += clients[i].connected;
        char data[128];
        snprintf(data, sizeof(data), "{\"status\":\"running\",\"progress\":50,\"t_ms\":%.3f}",
                 now_ms());
        double r0, w0, r1, w1;
        sched_ns(api_pid, &r0, &w0);
        queue_sync_event_append(qs, gr->gen_id, gr->token, "progress", data, &qr, &err);
        run_until(&gr->progress, want, 60, want);
        sched_ns(api_pid, &r1, &w1);
        if (w1 - w0 > (r1 - r0) / 10)
            warn("sse_fanout: during the fan-out to %d the api's threads ran %.1f ms and waited "
                 "%.1f "
                 "ms for a CPU: the machine was busy\n",
                 gr->n, (r1 - r0) / 1e6, (w1 - w0) / 1e6);
    }
    for (int g = 0; g < ngroups; g++) {
        group_t *gr = &groups[g];
        store_call_image(&call, gr->gen_id, (long long)gr->token, 0, 1, NULL);
        store_conn_exec(sc, &call);
        store_call_dispose(&call);
        store_call_finish(&call, gr->gen_id, (long long)gr->token, "auto", NULL);
        store_conn_exec(sc, &call);
        store_call_dispose(&call);
        queue_sync_finish(qs, gr->gen_id, gr->token, QUEUE_DONE, "{}", &qr, &err);
    }
    run_until(&nterminal, nconnected, 60, 0);
    double p50, p99;
    percentiles(0, nclients, &p50, &p99);
    long per = nconnected ? (rss_after - rss_before) * 1024 / nconnected : 0;
    printf("clients %d connected %d progress %d terminal %d rss_per_stream %ld p50_ms %.2f p99_ms "
           "%.2f",
           nclients, nconnected, nprogress, nterminal, per, p50, p99);
    for (int g = 0; argc == 6 && g < ngroups; g++) {
        percentiles(groups[g].first, groups[g].n, &p50, &p99);
        printf(" group%d_p50_ms %.2f group%d_p99_ms %.2f", groups[g].n, p50, groups[g].n, p99);
    }
    printf("\n");
    fflush(stdout);
    fputs(warnings, stderr);
    for (int i = 0; i < nclients; i++)
        client_close(&clients[i]);
    close(epfd);
    free(waiting);
    free(clients);
    queue_sync_free(qs);
    store_conn_free(sc);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    return nprogress == nclients && nterminal == nclients ? 0 : 1;
}
