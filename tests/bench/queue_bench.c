/*
 * tests/bench/queue_bench.c - the load generator of `scripts/bench
 * queue` (not a test): N jobs through enqueue -> claim -> complete.
 *
 *   queue_bench N DIR
 *
 * The parent enqueues N jobs on its async client (256 in flight) while two
 * forked claimer processes each keep up to 64 jobs in flight: a claim asks
 * for as many as there is room for once half the room is free (one command
 * fetches many jobs), and every job is completed at once. The parent prints
 * "<jobs> <seconds>" when both claimers have drained the queue. DIR holds the
 * "enqueued" marker that tells the claimers an empty queue means the end.
 * Configuration comes from the FARM_* environment, as for the farm itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

#define IN_FLIGHT     64
#define ENQUEUE_DEPTH 256

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    uv_loop_t loop;
    uv_timer_t timer;
    queue_t *q;
    const char *marker;
    char wid[32];
    int held;     /* jobs claimed and not yet completed */
    int claiming; /* a claim is in flight */
    long done;
    int failed;
    int stopping;
} claimer_t;

static void claimer_next(claimer_t *c);

static void on_completed(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    claimer_t *c = data;
    (void)q;
    (void)res;
    if (err->code < 0)
        c->failed = 1;
    c->held--;
    c->done++;
    claimer_next(c);
}

static void on_retry_timer(uv_timer_t *t)
{
    claimer_next(t->data);
}

static void on_claimed(queue_t *q, const gf_err_t *err, queue_claim_t *cl, void *data)
{
    claimer_t *c = data;
    c->claiming = 0;
    if (err->code < 0) {
        c->failed = 1;
        return;
    }
    for (size_t i = 0; i < cl->n_jobs; i++) {
        if (queue_finish(q, cl->jobs[i].gen_id, cl->jobs[i].token, QUEUE_DONE, NULL, on_completed,
                         c) < 0)
            c->failed = 1;
        else
            c->held++;
    }
    size_t got = cl->n_jobs;
    queue_claim_dispose(cl);
    free(cl);
    if (got == 0) {
        struct stat st;
        if (c->held == 0 && stat(c->marker, &st) == 0) {
            c->stopping = 1;
            uv_close((uv_handle_t *)&c->timer, NULL);
            queue_close(q, NULL, NULL);
            return;
        }
        uv_timer_start(&c->timer, on_retry_timer, 1, 0); /* the enqueuer is behind */
        return;
    }
    claimer_next(c);
}

static void claimer_next(claimer_t *c)
{
    if (c->stopping || c->failed || c->claiming || c->held > IN_FLIGHT / 2)
        return;
    if (!queue_is_connected(c->q)) {
        uv_timer_start(&c->timer, on_retry_timer, 5, 0);
        return;
    }
    if (queue_claim(c->q, c->wid, IN_FLIGHT - c->held, on_claimed, c) == 0)
        c->claiming = 1;
    else
        c->failed = 1;
}

static int claimer_main(const gf_config_t *cfg, const char *marker, int idx)
{
    claimer_t c = {0};
    c.marker = marker;
    snprintf(c.wid, sizeof(c.wid), "bench-%d", idx);
    if (uv_loop_init(&c.loop) != 0)
        return 1;
    c.q = queue_new(&c.loop, cfg, NULL);
    if (c.q == NULL)
        return 1;
    uv_timer_init(&c.loop, &c.timer);
    c.timer.data = &c;
    uv_timer_start(&c.timer, on_retry_timer, 5, 0);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "queue_bench: claimer %d completed %ld jobs\n", idx, c.done);
    return c.failed;
}

typedef struct {
    uv_loop_t loop;
    uv_timer_t timer;
    queue_t *q;
    const char *payload;
    long n, sent, acked;
    int in_flight, failed;
} enqueuer_t;

static void enqueue_more(enqueuer_t *e);

static void on_enqueued(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    enqueuer_t *e = data;
    (void)q;
    (void)res;
    if (err->code < 0) {
        fprintf(stderr, "queue_bench: enqueue failed: %s\n", gf_status_name(err->code));
        e->failed = 1;
    }
    e->in_flight--;
    e->acked++;
    enqueue_more(e);
}

static void enqueue_more(enqueuer_t *e)
{
    while (!e->failed && e->sent < e->n && e->in_flight < ENQUEUE_DEPTH) {
        char gen[64], user[32];
        snprintf(gen, sizeof(gen), "bench-%08ld", e->sent);
        snprintf(user, sizeof(user), "bench-user-%ld", e->sent % 100);
        queue_enqueue_req_t req = {.gen_id = gen,
                                   .user_id = user,
                                   .tier = e->sent % 5 ? "free" : "pro",
                                   .payload = e->payload};
        if (queue_enqueue(e->q, &req, on_enqueued, e) < 0) {
            e->failed = 1;
            break;
        }
        e->sent++;
        e->in_flight++;
    }
    if (e->acked == e->n || (e->failed && e->in_flight == 0)) {
        uv_close((uv_handle_t *)&e->timer, NULL);
        queue_close(e->q, NULL, NULL);
    }
}

static void on_enqueue_start(uv_timer_t *t)
{
    enqueuer_t *e = t->data;
    if (queue_is_connected(e->q)) {
        uv_timer_stop(t);
        enqueue_more(e);
    }
}

/* The jobs' payload: a short prompt, or a prompt padded to about `bytes`. */
static char *payload_make(const char *bytes)
{
    long n = bytes ? atol(bytes) : 0;
    if (n < 32)
        return strdup("{\"prompt\":\"a benchmark\"}");
    if (n > 1 << 20)
        n = 1 << 20;
    char *p = malloc((size_t)n + 1);
    if (p == NULL)
        abort();
    int k = snprintf(p, (size_t)n + 1, "{\"prompt\":\"");
    memset(p + k, 'a', (size_t)(n - k - 2));
    strcpy(p + n - 2, "\"}");
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: queue_bench N DIR\n");
        return 2;
    }
    gf_log_min_level = GF_LOG_WARN;
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    if (cfg == NULL) {
        fprintf(stderr, "queue_bench: %s\n", err.msg);
        return 2;
    }
    char marker[512];
    snprintf(marker, sizeof(marker), "%s/enqueued", argv[2]);
    unlink(marker);
    double t0 = now_s();
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(claimer_main(cfg, marker, i));
    }
    /* BENCH_QUEUE_PAYLOAD_BYTES: a payload of about that size (a real prompt
     * with its parameters is a few hundred bytes to a few kilobytes). */
    char *payload = payload_make(getenv("BENCH_QUEUE_PAYLOAD_BYTES"));
    enqueuer_t e = {.n = atol(argv[1]), .payload = payload};
    uv_loop_init(&e.loop);
    e.q = queue_new(&e.loop, cfg, &err);
    if (e.q == NULL) {
        fprintf(stderr, "queue_bench: %s\n", err.msg);
        return 1;
    }
    uv_timer_init(&e.loop, &e.timer);
    e.timer.data = &e;
    uv_timer_start(&e.timer, on_enqueue_start, 1, 1);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    uv_loop_close(&e.loop);
    FILE *m = fopen(marker, "w");
    if (m)
        fclose(m);
    int rc = e.failed;
    for (int i = 0; i < 2; i++) {
        int st = 0;
        waitpid(pids[i], &st, 0);
        rc |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double dt = now_s() - t0;
    printf("%ld %.3f\n", e.n, dt);
    gf_cfg_free(cfg);
    free(payload);
    return rc;
}
