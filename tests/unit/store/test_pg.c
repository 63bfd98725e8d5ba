/*
 * tests/unit/store/test_pg.c - store/pg.c's async contract, with a
 * Postgres that cannot be reached (a loopback port nothing listens on):
 * a call whose failure is known at once still returns 0 and its callback
 * runs exactly once, on a later loop turn, never inside store_exec(); a
 * call refused at once (the store is closing) returns its error and never
 * runs its callback. No Postgres needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef struct {
    int in_call; /* set around store_exec: a callback seeing it ran inside the call */
    int inside, runs, last_code;
    int pings, ping_code;
    int closed;
} probe_t;

static void on_call(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    probe_t *p = data;
    p->inside += p->in_call;
    p->runs++;
    p->last_code = err->code;
    assert_ptr_equal(err, &call->err);
}

static void on_ping(store_t *st, const gf_err_t *err, void *data)
{
    (void)st;
    probe_t *p = data;
    p->inside += p->in_call;
    p->pings++;
    p->ping_code = err->code;
}

static void on_closed(void *data)
{
    ((probe_t *)data)->closed = 1;
}

static gf_config_t *unreachable_config(void)
{
    char *env[] = {"FARM_DATABASE_URL=postgresql://farm@127.0.0.1:1/farm", NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(env, &err);
    assert_non_null(cfg);
    return cfg;
}

/* A loop and a store on it whose database cannot be reached; *cfg its configuration. */
static store_t *unreachable_store(uv_loop_t *loop, gf_config_t **cfg)
{
    *cfg = unreachable_config();
    uv_loop_init(loop);
    gf_err_t err = {0};
    store_t *st = store_new(loop, *cfg, &err);
    assert_non_null(st);
    return st;
}

static void test_failure_known_at_once_comes_on_a_later_turn(void **state)
{
    (void)state;
    gf_config_t *cfg;
    uv_loop_t loop;
    store_t *st = unreachable_store(&loop, &cfg);
    probe_t p = {0};
    store_call_t calls[3];
    for (int i = 0; i < 3; i++) {
        store_call_balance(&calls[i], "22222222-2222-2222-2222-222222222222", 0);
        p.in_call = 1;
        assert_int_equal(store_exec(st, &calls[i], on_call, &p), 0);
        p.in_call = 0;
    }
    p.in_call = 1;
    assert_int_equal(store_ping(st, 1000, on_ping, &p), 0);
    p.in_call = 0;
    assert_int_equal(p.runs, 0); /* nothing ran inside the calls */
    assert_int_equal(p.pings, 0);
    while (p.runs < 3 || p.pings < 1)
        assert_true(uv_run(&loop, UV_RUN_ONCE) != 0 || (p.runs == 3 && p.pings == 1));
    assert_int_equal(p.inside, 0);
    assert_int_equal(p.runs, 3);
    assert_int_equal(p.last_code, GF_EUNAVAIL);
    assert_int_equal(calls[2].err.code, GF_EUNAVAIL);
    assert_string_equal(calls[2].err.domain, "store");
    assert_int_equal(p.ping_code, GF_EUNAVAIL);

    store_close(st, on_closed, &p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(p.closed);
    assert_int_equal(p.runs, 3); /* each callback ran exactly once */
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < 3; i++)
        store_call_dispose(&calls[i]);
    gf_cfg_free(cfg);
}

static void test_close_delivers_what_waits_and_refuses_new_calls(void **state)
{
    (void)state;
    gf_config_t *cfg;
    uv_loop_t loop;
    store_t *st = unreachable_store(&loop, &cfg);
    probe_t p = {0};
    store_call_t c, late;
    store_call_totals(&c);
    assert_int_equal(store_exec(st, &c, on_call, &p), 0);
    /* Closed before the loop turned: the waiting failure is delivered by the close. */
    store_close(st, on_closed, &p);
    assert_int_equal(p.runs, 1);
    assert_true(p.last_code == GF_EUNAVAIL || p.last_code == GF_ECANCELED);
    /* A call after the close is refused at once: its error, never its callback. */
    store_call_totals(&late);
    assert_int_equal(store_exec(st, &late, on_call, &p), GF_ECANCELED);
    assert_int_equal(late.err.code, GF_ECANCELED);
    assert_int_equal(store_ping(st, 1000, on_ping, &p), GF_ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(p.closed);
    assert_int_equal(p.runs, 1);
    assert_int_equal(p.pings, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_call_dispose(&c);
    store_call_dispose(&late);
    gf_cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_known_at_once_comes_on_a_later_turn),
        cmocka_unit_test(test_close_delivers_what_waits_and_refuses_new_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
