/*
 * tests/support/store_util.c - helpers shared by the store integration
 * tests (store_util.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>

#include "store_util.h"
#include "support.h"

store_conn_t *ts_sc;

int ts_store_setup(void **state)
{
    (void)state;
    gf_err_t err = {0};
    ts_sc = store_conn_new(ts_env("FARM_DATABASE_URL"), &err);
    if (ts_sc == NULL)
        fprintf(stderr, "%s\n", err.msg);
    return ts_sc ? 0 : -1;
}

int ts_store_teardown(void **state)
{
    (void)state;
    store_conn_free(ts_sc);
    ts_sc = NULL;
    return 0;
}

store_conn_t *ts_store_connect(void)
{
    gf_err_t err = {0};
    store_conn_t *conn = store_conn_new(ts_env("FARM_DATABASE_URL"), &err);
    if (conn == NULL)
        fail_msg("store_conn_new: %s", err.msg);
    return conn;
}

int ts_store_run(store_call_t *call)
{
    return store_conn_exec(ts_sc, call);
}

int ts_store_run_once(store_call_t *call)
{
    int rc = ts_store_run(call);
    store_call_dispose(call);
    return rc;
}

void ts_new_ids(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        gf_uuid4(va_arg(ap, char *));
    va_end(ap);
}

int ts_store_start(const char *gen, long long fence)
{
    store_call_t c;
    store_call_start(&c, gen, fence, "local", NULL);
    return ts_store_run_once(&c);
}

store_accept_t ts_store_avatar(const char *gen, const char *user, int images, long long unit)
{
    return (store_accept_t){.id = gen,
                            .user_id = user,
                            .kind = "avatar",
                            .images = images,
                            .unit_cost = unit,
                            .welcome_credits = 100};
}

int ts_store_accept(store_conn_t *conn, const char *gen, const char *user, int images,
                    long long unit, const char *key, const char *hash, long long welcome)
{
    store_call_t call;
    store_accept_t a = ts_store_avatar(gen, user, images, unit);
    a.welcome_credits = welcome;
    a.params_json = "{\"prompt\":\"x\"}";
    a.idempotency_key = key;
    a.request_hash = hash;
    store_call_accept(&call, &a);
    int rc = store_conn_exec(conn, &call);
    store_call_dispose(&call);
    return rc;
}

void ts_store_balance(const char *user, long long welcome, long long *bal, long long *held)
{
    store_call_t call;
    store_call_balance(&call, user, welcome);
    assert_int_equal(ts_store_run(&call), 0);
    *bal = call.res.balance.balance;
    *held = call.res.balance.held;
    store_call_dispose(&call);
}

void ts_assert_balance(const char *user, long long bal, long long held)
{
    long long b, h;
    ts_store_balance(user, 100, &b, &h);
    assert_int_equal(b, bal);
    assert_int_equal(h, held);
}

PGconn *ts_pg_connect(void)
{
    PGconn *pg = PQconnectdb(ts_env("FARM_DATABASE_URL"));
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    return pg;
}
