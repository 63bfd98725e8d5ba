/*
 * tests/integration/queue/race.c - two processes, each with 32 claims in
 * flight on its async client, drain 5,000 jobs; every job is claimed once and
 * completed exactly once (no two holders with valid tokens, no lost job).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue_util.h"
#include "support.h"

enum { JOBS = 5000, SLOTS = 32 };

typedef struct child child_t;
typedef struct {
    child_t *ch;
    int stopped;
    char gen[64];
} slot_t;

struct child {
    uv_loop_t loop;
    queue_t *q;
    FILE *out;
    slot_t slots[SLOTS];
    int running;
    int failed;
};

static void slot_claim(slot_t *s);

static void on_finished(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    slot_t *s = data;
    (void)q;
    (void)res;
    if (err->code < 0) {
        fprintf(s->ch->out, "ERROR finish %s %d\n", s->gen, err->code);
        s->ch->failed = 1;
    } else {
        fprintf(s->ch->out, "done %s\n", s->gen);
    }
    slot_claim(s);
}

static void on_claimed(queue_t *q, const gf_err_t *err, queue_claim_t *c, void *data)
{
    slot_t *s = data;
    if (err->code < 0 || c->n_jobs == 0) {
        if (err->code < 0)
            s->ch->failed = 1;
        if (c) {
            queue_claim_dispose(c);
            free(c);
        }
        s->stopped = 1;
        if (--s->ch->running == 0)
            queue_close(q, NULL, NULL);
        return;
    }
    queue_job_t *j = &c->jobs[0];
    snprintf(s->gen, sizeof(s->gen), "%s", j->gen_id);
    fprintf(s->ch->out, "claim %s %llu\n", j->gen_id, (unsigned long long)j->token);
    int rc = queue_finish(q, j->gen_id, j->token, QUEUE_DONE, NULL, on_finished, s);
    queue_claim_dispose(c);
    free(c);
    if (rc < 0) {
        s->ch->failed = 1;
        s->stopped = 1;
        if (--s->ch->running == 0)
            queue_close(q, NULL, NULL);
    }
}

static void slot_claim(slot_t *s)
{
    char wid[32];
    snprintf(wid, sizeof(wid), "race-%d", (int)getpid());
    if (queue_claim(s->ch->q, wid, 1, on_claimed, s) < 0) {
        s->ch->failed = 1;
        s->stopped = 1;
        if (--s->ch->running == 0)
            queue_close(s->ch->q, NULL, NULL);
    }
}

static void on_wait_ready(uv_timer_t *t)
{
    child_t *ch = t->data;
    if (!queue_is_connected(ch->q))
        return;
    uv_close((uv_handle_t *)t, NULL);
    ch->running = SLOTS;
    for (int i = 0; i < SLOTS; i++) {
        ch->slots[i].ch = ch;
        slot_claim(&ch->slots[i]);
    }
}

static int child_main(const gf_config_t *cfg, const char *path)
{
    child_t ch = {0};
    static uv_timer_t ready;
    ch.out = fopen(path, "w");
    if (ch.out == NULL || uv_loop_init(&ch.loop) != 0)
        return 1;
    ch.q = queue_new(&ch.loop, cfg, NULL);
    if (ch.q == NULL)
        return 1;
    uv_timer_init(&ch.loop, &ready);
    ready.data = &ch;
    uv_timer_start(&ready, on_wait_ready, 5, 5);
    uv_run(&ch.loop, UV_RUN_DEFAULT);
    fclose(ch.out);
    return ch.failed || uv_loop_close(&ch.loop) != 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads "<kind> <gen> ..." lines of both children; returns the sorted gens of one kind. */
static size_t collect(const char *paths[2], const char *kind, char **out, size_t max)
{
    size_t n = 0;
    char line[256], k[16], gen[128];
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
            assert_int_equal(sscanf(line, "%15s %127s", k, gen), 2);
            assert_string_not_equal(k, "ERROR");
            if (strcmp(k, kind) == 0 && n < max)
                out[n++] = strdup(gen);
        }
        fclose(f);
    }
    qsort(out, n, sizeof(char *), cmp_str);
    return n;
}

static const char *const env[] = {"FARM_QUEUE_TIERS=pro:4:100000,free:1:100000", NULL};

static void test_two_processes_complete_each_job_exactly_once(void **state)
{
    qt_sync_fx_t *fx = *state;
    queue_sync_t *qs = fx->qs;
    const gf_config_t *cfg = fx->cfg;
    char gen[64], user[32];
    for (int i = 0; i < JOBS; i++) {
        snprintf(user, sizeof(user), "race-user-%d", i % 37);
        qt_enqueue(qs, qt_id(gen, sizeof(gen), "race"), user, i % 3 ? "free" : "pro");
    }
    char p0[512], p1[512];
    snprintf(p0, sizeof(p0), "%s/race0.log", ts_env("FARM_TEST_TMPDIR"));
    snprintf(p1, sizeof(p1), "%s/race1.log", ts_env("FARM_TEST_TMPDIR"));
    const char *paths[2] = {p0, p1};
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(child_main(cfg, paths[i]));
    }
    for (int i = 0; i < 2; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    char **claims = calloc(2 * JOBS, sizeof(char *)), **dones = calloc(2 * JOBS, sizeof(char *));
    size_t nc = collect(paths, "claim", claims, 2 * JOBS);
    size_t nd = collect(paths, "done", dones, 2 * JOBS);
    assert_int_equal(nc, JOBS);
    assert_int_equal(nd, JOBS);
    for (size_t i = 1; i < nd; i++) {
        assert_string_not_equal(claims[i - 1], claims[i]);
        assert_string_not_equal(dones[i - 1], dones[i]);
    }
    for (size_t i = 0; i < nc; i++)
        free(claims[i]);
    for (size_t i = 0; i < nd; i++)
        free(dones[i]);
    free(claims);
    free(dones);
    queue_stats_t st;
    assert_int_equal(queue_sync_stats(qs, &st, NULL), 0);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.done_this_min + st.done_last_min, JOBS);
    queue_stats_dispose(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_two_processes_complete_each_job_exactly_once,
                                                 qt_sync_setup, qt_sync_teardown, (void *)env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
