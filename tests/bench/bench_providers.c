/*
 * tests/bench/bench_providers.c - the load generator of `scripts/bench providers`.
 *
 * Usage: bench_providers FAKE_URL CALLS INFLIGHT DELAY_MS
 * Sends CALLS calls through the hf adapter (one provider, one multi handle) to
 * a farm-fake-provider answering after DELAY_MS, keeping INFLIGHT in flight,
 * and prints one line:
 * "<calls/s> <added p50 ms> <added p99 ms> <rss MiB> <failures> <cpu ms>
 *  <later p50 ms> <later p99 ms>"
 * where added = a call's total time minus DELAY_MS, cpu is the process's
 * user + system time, and "later" are the calls after the first INFLIGHT
 * (each started when an earlier one ended: the process warm, its
 * connections open), -1 when there are none. FAKE_URL may be https (the
 * fake's TLS port); then FARM_PROVIDER_CA_FILE names its certificate. FARM_PROVIDER_HTTP2, when
 * set, is passed on (auto, prior-knowledge, off). With BENCH_PROVIDER_TRACE=PATH it also writes one
 * line per call to PATH: "<index> <start ms> <added ms>", the start counted from the first call's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "proc_status.h"
#include "provider.h"

static provider_t *prov;
static int total, inflight_max, started, finished, failures;
static double *lat;
static uint64_t *t0;

static void start_one(void);

static void on_done(provider_call_t *call, const gf_err_t *err, const provider_result_t *res,
                    void *data)
{
    (void)call;
    (void)res;
    size_t i = (size_t)(uintptr_t)data;
    lat[i] = (double)(uv_hrtime() - t0[i]) / 1e6;
    if (err->code < 0)
        failures++;
    finished++;
    if (started < total)
        start_one();
}

static void start_one(void)
{
    size_t i = (size_t)started++;
    char prompt[64];
    snprintf(prompt, sizeof(prompt), "bench %zu", i);
    provider_req_t q = {.prompt = prompt,
                        .width = 64,
                        .height = 64,
                        .seed = (int64_t)i,
                        .steps = 4,
                        .guidance = -1};
    provider_cbs_t cbs = {.done = on_done, .data = (void *)(uintptr_t)i};
    t0[i] = uv_hrtime();
    gf_err_t err = {0};
    if (provider_submit(prov, &q, &cbs, NULL, &err) < 0) {
        fprintf(stderr, "submit: %s\n", err.msg);
        exit(1);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of the n latencies at v (sorted in place), as the line reports it. */
static double quantile(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(double), cmp);
    return v[(size_t)((double)n * p)];
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_providers FAKE_URL CALLS INFLIGHT DELAY_MS\n");
        return 2;
    }
    total = atoi(argv[2]);
    inflight_max = atoi(argv[3]);
    double delay = atof(argv[4]);
    char base[256], conc[64];
    snprintf(base, sizeof(base), "FARM_HF_BASE_URL=%s/hf", argv[1]);
    snprintf(conc, sizeof(conc), "FARM_PROVIDER_CONCURRENCY=%d", inflight_max);
    char *env[8] = {base, conc, "FARM_HF_TOKEN=hf_bench", "FARM_PROVIDER=hf",
                    "FARM_LOG_LEVEL=warn"};
    char http2[64], ca[1100];
    int nenv = 5;
    if (getenv("FARM_PROVIDER_HTTP2")) {
        snprintf(http2, sizeof(http2), "FARM_PROVIDER_HTTP2=%s", getenv("FARM_PROVIDER_HTTP2"));
        env[nenv++] = http2;
    }
    if (getenv("FARM_PROVIDER_CA_FILE")) {
        snprintf(ca, sizeof(ca), "FARM_PROVIDER_CA_FILE=%s", getenv("FARM_PROVIDER_CA_FILE"));
        env[nenv++] = ca;
    }
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(env, &err);
    if (cfg == NULL) {
        fprintf(stderr, "config: %s\n", err.msg);
        return 1;
    }
    gf_log_min_level = (int)cfg->log_level;
    uv_loop_t *loop = uv_default_loop();
    prov = provider_new(loop, cfg, NULL, &err);
    if (prov == NULL) {
        fprintf(stderr, "provider: %s\n", err.msg);
        return 1;
    }
    lat = calloc((size_t)total, sizeof(double));
    t0 = calloc((size_t)total, sizeof(uint64_t));
    uint64_t begin = uv_hrtime();
    for (int i = 0; i < inflight_max && started < total; i++)
        start_one();
    while (finished < total)
        uv_run(loop, UV_RUN_ONCE);
    double secs = (double)(uv_hrtime() - begin) / 1e9;
    const char *trace = getenv("BENCH_PROVIDER_TRACE");
    FILE *tf = trace ? fopen(trace, "w") : NULL;
    for (int i = 0; tf && i < total; i++)
        fprintf(tf, "%d %.1f %.1f\n", i, (double)(t0[i] - begin) / 1e6, lat[i] - delay);
    if (tf)
        fclose(tf);
    double later50 = -1, later99 = -1;
    if (total > inflight_max) {
        size_t n = (size_t)(total - inflight_max);
        double *later = malloc(n * sizeof(double));
        memcpy(later, lat + inflight_max, n * sizeof(double));
        later50 = quantile(later, n, 0.5) - delay;
        later99 = quantile(later, n, 0.99) - delay;
        free(later);
    }
    double p50 = quantile(lat, (size_t)total, 0.5) - delay;
    double p99 = quantile(lat, (size_t)total, 0.99) - delay;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    printf("%.0f %.1f %.1f %.1f %d %.0f %.1f %.1f\n", total / secs, p50, p99,
           proc_status_kib(0, "VmHWM") / 1024.0, failures, cpu_ms, later50, later99);
    provider_close(prov, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    gf_cfg_free(cfg);
    free(lat);
    free(t0);
    return failures ? 1 : 0;
}
