/*
 * tests/support/queue_util.c - see queue_util.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue_util.h"
#include "support.h"

gf_config_t *qt_cfg(const char *const *overrides)
{
    /* The fixture's FARM_TEST_* variables are not config: keep them out. */
    static const char *const drop[] = {"FARM_TEST_", NULL};
    char **env = ts_environ_with(overrides, drop);
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(env, &err);
    free(env);
    if (cfg == NULL)
        fail_msg("config: %s", err.msg);
    return cfg;
}
static redisContext *raw(void)
{
    int port = atoi(ts_env("FARM_TEST_REDIS_PORT"));
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* One command on a fresh connection to the fixture's Redis; NULL when it cannot be sent. */
static redisReply *raw_command(const char *fmt, const char *arg)
{
    redisContext *c = raw();
    if (c == NULL)
        return NULL;
    redisReply *r = redisCommand(c, fmt, arg);
    redisFree(c);
    return r;
}

long long qt_redis_int(const char *cmd)
{
    redisReply *r = raw_command(cmd, NULL); /* cmd is its own format: split on spaces */
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

int qt_redis_ok(const char *cmd)
{
    redisReply *r = raw_command(cmd, NULL); /* cmd is its own format: split on spaces */
    int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    freeReplyObject(r);
    return ok;
}

int qt_redis_argv(const char *const *argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    redisContext *c = raw();
    if (c == NULL)
        return 0;
    redisReply *r = redisCommandArgv(c, argc, (const char **)argv, NULL);
    int ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

long long qt_redis_stat(const char *command)
{
    redisReply *r = raw_command("INFO commandstats", NULL);
    long long v = -1;
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", command);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, key);
        v = p ? strtoll(p + strlen(key), NULL, 10) : 0;
    }
    freeReplyObject(r);
    return v;
}

long long qt_redis_numsub(const char *channel)
{
    redisReply *r = raw_command("PUBSUB NUMSUB %s", channel);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        v = r->element[1]->integer;
    freeReplyObject(r);
    return v;
}

void qt_flush(void)
{
    redisContext *c = raw();
    assert_non_null(c);
    redisReply *r = redisCommand(c, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

const char *qt_id(char *buf, size_t n, const char *prefix)
{
    static unsigned counter;
    snprintf(buf, n, "%s-%u-%08x", prefix, ++counter, (unsigned)rand());
    return buf;
}

void qt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void qt_redis_stop(void)
{
    const char *port = ts_env("FARM_TEST_REDIS_PORT");
    (void)ts_sh("redis-cli -p %s shutdown >/dev/null 2>&1", port);
    for (int i = 0; i < 100; i++) {
        if (ts_sh("redis-cli -p %s ping >/dev/null 2>&1", port) != 0)
            return;
        qt_sleep_ms(100);
    }
    fail_msg("redis did not stop");
}

void qt_redis_start(void)
{
    const char *port = ts_env("FARM_TEST_REDIS_PORT");
    assert_int_equal(ts_sh("redis-server '%s' >/dev/null", ts_env("FARM_TEST_REDIS_CONF")), 0);
    for (int i = 0; i < 200; i++) {
        if (ts_sh("redis-cli -p %s ping 2>/dev/null | grep -q PONG", port) == 0)
            return;
        qt_sleep_ms(50);
    }
    fail_msg("redis did not come back");
}

void qt_redis_restart(void)
{
    qt_redis_stop();
    qt_redis_start();
}

static const char *const short_times[] = {
    "FARM_QUEUE_LEASE_S=1",         "FARM_QUEUE_MAX_RECLAIMS=1",
    "FARM_QUEUE_RETRY_BASE_MS=200", "FARM_QUEUE_TIERS=pro:4:10,free:1:3",
    "FARM_EVENTS_RETENTION_S=60",   "FARM_QUEUE_HANDBACK_CAP_MS=400",
    "FARM_QUEUE_HANDBACK_MAX=4",    NULL};

int qt_sync_setup(void **state)
{
    const char *const *settings = *state ? *state : short_times;
    qt_sync_fx_t *fx = calloc(1, sizeof(*fx));
    qt_flush();
    fx->cfg = qt_cfg(settings);
    gf_err_t err = {0};
    fx->qs = queue_sync_new(fx->cfg, &err);
    if (fx->qs == NULL)
        fail_msg("queue_sync_new: %s", err.msg);
    *state = fx;
    return 0;
}

int qt_sync_teardown(void **state)
{
    qt_sync_fx_t *fx = *state;
    queue_sync_free(fx->qs);
    gf_cfg_free(fx->cfg);
    free(fx);
    return 0;
}

int64_t qt_enqueue(queue_sync_t *qs, const char *gen, const char *user, const char *tier)
{
    queue_enqueue_req_t req = {.gen_id = gen, .user_id = user, .tier = tier, .payload = "{}"};
    queue_result_t res;
    gf_err_t err = {0};
    int rc = queue_sync_enqueue(qs, &req, &res, &err);
    if (rc < 0)
        fail_msg("enqueue %s: %s", gen, err.msg);
    return res.position;
}

int qt_farm_cli(char *out, size_t n, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", ts_env("FARM_TEST_CLI"), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --- the async client's fixture --------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    (void)t; /* keeps the loop turning so qt_run_until can look at the clock */
}

int qt_run_until(qt_async_fx_t *fx, const int *flag, double timeout_s)
{
    double end = ts_now() + timeout_s;
    while (!*flag && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return *flag;
}

int qt_async_connected(qt_async_fx_t *fx)
{
    double end = ts_now() + 10;
    while (!queue_is_connected(fx->q) && ts_now() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return queue_is_connected(fx->q);
}

int qt_async_setup(void **state)
{
    static const char *const env[] = {"FARM_QUEUE_LEASE_S=5", "FARM_QUEUE_OP_TIMEOUT_MS=2000",
                                      "FARM_REDIS_CONNECT_TIMEOUT_MS=300", NULL};
    qt_async_fx_t *fx = calloc(1, sizeof(*fx));
    qt_flush();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 10, 10);
    fx->cfg = qt_cfg(env);
    gf_err_t err = {0};
    fx->q = queue_new(&fx->loop, fx->cfg, &err);
    assert_non_null(fx->q);
    fx->qs = queue_sync_new(fx->cfg, &err);
    assert_non_null(fx->qs);
    assert_true(qt_async_connected(fx));
    *state = fx;
    return 0;
}

static void on_closed(queue_t *q, void *data)
{
    (void)q;
    ((qt_async_fx_t *)data)->closed = 1;
}

void qt_on_closed2(queue_t *q, void *data)
{
    (void)q;
    ((qt_async_fx_t *)data)->closed2 = 1;
}

int qt_async_teardown(void **state)
{
    qt_async_fx_t *fx = *state;
    queue_close(fx->q, on_closed, fx);
    assert_true(qt_run_until(fx, &fx->closed, 10));
    if (fx->q2) {
        queue_close(fx->q2, qt_on_closed2, fx);
        assert_true(qt_run_until(fx, &fx->closed2, 10));
    }
    if (fx->px)
        qt_proxy_stop(fx->px);
    gf_cfg_free(fx->cfg2);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    queue_sync_free(fx->qs);
    gf_cfg_free(fx->cfg);
    free(fx);
    return 0;
}

void qt_on_result(queue_t *q, const gf_err_t *err, const queue_result_t *res, void *data)
{
    qt_async_fx_t *fx = data;
    (void)q;
    fx->status = err->code;
    fx->err = *err;
    fx->res = *res;
    fx->done = 1;
}

void qt_on_claim(queue_t *q, const gf_err_t *err, queue_claim_t *c, void *data)
{
    qt_async_fx_t *fx = data;
    (void)q;
    fx->status = err->code;
    fx->err = *err;
    fx->claim = c;
    fx->done = 1;
}

int qt_wait_op(qt_async_fx_t *fx, int rc)
{
    assert_int_equal(rc, 0);
    assert_true(qt_run_until(fx, &fx->done, 10));
    fx->done = 0;
    return fx->status;
}
