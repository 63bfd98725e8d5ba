/*
 * tests/bench/bench_ledger.c - load for `scripts/bench ledger`: THREADS
 * blocking store connections each run accept + capture pairs (one image,
 * spread over many users) for SECONDS; prints the pairs per second.
 *
 *   bench_ledger URL THREADS SECONDS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store.h"

static const char *url;
static double seconds;
static long pairs_done[64];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    long idx = (long)arg;
    gf_err_t err = {0};
    store_conn_t *sc = store_conn_new(url, &err);
    if (sc == NULL) {
        fprintf(stderr, "bench_ledger: %s\n", err.msg);
        exit(1);
    }
    char users[100][37];
    for (int i = 0; i < 100; i++)
        gf_uuid4(users[i]);
    double end = now() + seconds;
    long n = 0;
    while (now() < end) {
        char gen[37];
        gf_uuid4(gen);
        store_call_t c;
        store_accept_t a = {.id = gen,
                            .user_id = users[n % 100],
                            .kind = "avatar",
                            .images = 1,
                            .unit_cost = 1,
                            .welcome_credits = 1000000000,
                            .params_json = "{\"prompt\":\"bench\"}"};
        store_call_accept(&c, &a);
        int rc = store_conn_exec(sc, &c);
        store_call_dispose(&c);
        if (rc == 0) {
            store_call_image(&c, gen, 1, 0, 1, NULL);
            rc = store_conn_exec(sc, &c);
            store_call_dispose(&c);
        }
        if (rc != 0) {
            fprintf(stderr, "bench_ledger: call failed: %d\n", rc);
            exit(1);
        }
        n++;
    }
    pairs_done[idx] = n;
    store_conn_free(sc);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_ledger URL THREADS SECONDS\n");
        return 2;
    }
    url = argv[1];
    long threads = atol(argv[2]);
    seconds = atof(argv[3]);
    if (threads < 1 || threads > 64 || seconds <= 0)
        return 2;
    pthread_t th[64];
    double start = now();
    for (long i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, run, (void *)i);
    long total = 0;
    for (long i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += pairs_done[i];
    }
    printf("%.0f\n", (double)total / (now() - start));
    return 0;
}
