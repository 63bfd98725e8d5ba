/*
 * tests/integration/store/races.c - the credit ledger's accepts racing
 * against the fixture's real Postgres: many connections spending one
 * user's credits at once never overdraw, a new user's first requests at
 * once all pass whichever of them provisions the account, and the same
 * race through the async pool on a libuv loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "store.h"
#include "store_util.h"
#include "support.h"

typedef struct {
    const char *user;
    int accepted, refused, other;
} race_t;

/* Counts one accept's outcome. */
static void tally(int rc, int *accepted, int *refused, int *other)
{
    if (rc == 0)
        (*accepted)++;
    else if (rc == GF_ECREDITS)
        (*refused)++;
    else
        (*other)++;
}

static void *race_worker(void *arg)
{
    race_t *r = arg;
    store_conn_t *c = ts_store_connect();
    for (int i = 0; i < 25; i++) {
        char gen[37];
        gf_uuid4(gen);
        tally(ts_store_accept(c, gen, r->user, 1, 10, NULL, NULL, 100), &r->accepted, &r->refused,
              &r->other);
    }
    store_conn_free(c);
    return NULL;
}

static void test_concurrent_accepts_never_overdraw(void **state)
{
    (void)state;
    char user[37];
    gf_uuid4(user);
    pthread_t th[8];
    race_t r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (race_t){.user = user};
        pthread_create(&th[i], NULL, race_worker, &r[i]);
    }
    int accepted = 0, refused = 0, other = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        accepted += r[i].accepted;
        refused += r[i].refused;
        other += r[i].other;
    }
    assert_int_equal(other, 0);
    assert_int_equal(accepted, 10);
    assert_int_equal(refused, 190);
    ts_assert_balance(user, 100, 100);
}

/*
 * A new user's first requests at once: whichever provisions the account
 * (welcome grant), none of the others may see "no account yet" and then the
 * provisioned account and call it short of credits.
 */
enum { FIRST_THREADS = 8, FIRST_USERS = 40 };

typedef struct {
    pthread_barrier_t *start;
    char (*users)[37];
    int accepted, refused, other;
} first_race_t;

static void *first_worker(void *arg)
{
    first_race_t *r = arg;
    store_conn_t *c = ts_store_connect();
    for (int u = 0; u < FIRST_USERS; u++) {
        char gen[37];
        gf_uuid4(gen);
        pthread_barrier_wait(r->start);
        tally(ts_store_accept(c, gen, r->users[u], 1, 10, NULL, NULL, 1000), &r->accepted,
              &r->refused, &r->other);
    }
    store_conn_free(c);
    return NULL;
}

static void test_new_users_first_accepts_at_once_all_pass(void **state)
{
    (void)state;
    static char users[FIRST_USERS][37];
    for (int u = 0; u < FIRST_USERS; u++)
        gf_uuid4(users[u]);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, FIRST_THREADS);
    pthread_t th[FIRST_THREADS];
    first_race_t r[FIRST_THREADS];
    for (int i = 0; i < FIRST_THREADS; i++) {
        r[i] = (first_race_t){.start = &start, .users = users};
        pthread_create(&th[i], NULL, first_worker, &r[i]);
    }
    int accepted = 0, refused = 0, other = 0;
    for (int i = 0; i < FIRST_THREADS; i++) {
        pthread_join(th[i], NULL);
        accepted += r[i].accepted;
        refused += r[i].refused;
        other += r[i].other;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(other, 0);
    assert_int_equal(refused, 0);
    assert_int_equal(accepted, FIRST_THREADS * FIRST_USERS);
    for (int u = 0; u < FIRST_USERS; u++) {
        long long bal, held;
        ts_store_balance(users[u], 100, &bal, &held);
        assert_int_equal(bal, 1000);
        assert_int_equal(held, 10 * FIRST_THREADS);
    }
}

/* The same race through the async pool on a libuv loop. */
typedef struct {
    int done, accepted, refused, other;
    store_call_t calls[200];
} async_race_t;

static void on_async_accept(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    async_race_t *ar = data;
    ar->done++;
    if (err->code == 0)
        ar->accepted++;
    else if (err->code == GF_ECREDITS)
        ar->refused++;
    else
        ar->other++;
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

static void test_async_pool_accepts_never_overdraw(void **state)
{
    (void)state;
    char user[37];
    gf_uuid4(user);
    extern char **environ;
    gf_err_t err = {0};
    setenv("FARM_DB_POOL_SIZE", "8", 1);
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    assert_non_null(cfg);
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *st = store_new(&loop, cfg, &err);
    async_race_t *ar = calloc(1, sizeof(*ar));
    for (int i = 0; i < 200; i++) {
        char gen[37];
        gf_uuid4(gen);
        store_accept_t a = ts_store_avatar(gen, user, 1, 10);
        a.params_json = "{}";
        store_call_accept(&ar->calls[i], &a);
        assert_int_equal(store_exec(st, &ar->calls[i], on_async_accept, ar), 0);
    }
    while (ar->done < 200)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(ar->other, 0);
    assert_int_equal(ar->accepted, 10);
    assert_int_equal(ar->refused, 190);
    int closed = 0;
    store_close(st, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < 200; i++)
        store_call_dispose(&ar->calls[i]);
    free(ar);
    gf_cfg_free(cfg);
    long long bal, held;
    ts_store_balance(user, 100, &bal, &held);
    assert_int_equal(held, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_accepts_never_overdraw),
        cmocka_unit_test(test_new_users_first_accepts_at_once_all_pass),
        cmocka_unit_test(test_async_pool_accepts_never_overdraw),
    };
    return cmocka_run_group_tests(tests, ts_store_setup, ts_store_teardown);
}
