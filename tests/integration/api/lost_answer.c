/*
 * tests/integration/api/lost_answer.c - POST /v1/generations when Postgres'
 * answer to the accept is lost (API.md, 503: "this must be true even when
 * Postgres answers late: if the outcome is unknown, the farm finds it out
 * before answering"). A real farm-api whose one Postgres connection goes
 * through a TCP proxy (tests/support/qt_proxy.c) in front of the fixture's
 * Postgres: the proxy carries the accept to Postgres and drops its answer
 * (it committed), or drops the accept itself (nothing happened). Either way
 * the api hears nothing until its backstop (statement_timeout + 5 s), and
 * must then answer what happened: 202 with the generation charged once and
 * queued, or 503 with nothing charged; for an upload, 201 with the upload
 * kept. A DELETE whose answer is lost is 204 whether or not it had
 * committed (it is run again when it had not), never 503 then 404.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_harness.h"
#include "farm_fixture.h"
#include "qt_proxy.h"
#include "support.h"

#include <vips/vips.h>

static pid_t api_pid;
static qt_proxy_t *proxy;

static const char *AVATAR = "{\"kind\":\"avatar\",\"prompt\":\"a watercolor fox\"}";

static int setup(void **state)
{
    (void)state;
    const char *url = ts_env("FARM_DATABASE_URL"); /* postgresql://farm@127.0.0.1:PORT/farm */
    const char *colon = strrchr(url, ':');
    proxy = colon ? qt_proxy_start(atoi(colon + 1)) : NULL;
    if (proxy == NULL)
        return -1;
    static char db_env[160], storage_env[700];
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/lost-storage",
             ts_env("FARM_TEST_TMPDIR"));
    snprintf(db_env, sizeof(db_env), "FARM_DATABASE_URL=postgresql://farm@127.0.0.1:%d/farm",
             qt_proxy_port(proxy));
    /* One connection, so the proxy's connection that carries the accept is known; a call
     * unanswered for 500 ms is then given Postgres' statement_timeout (500 ms) + 5 s. No
     * upload quota: an upload's first statement is then its record. */
    static const char *const extra[] = {db_env,
                                        storage_env,
                                        "FARM_UPLOAD_QUOTAS=count=0",
                                        "FARM_DB_POOL_SIZE=1",
                                        "FARM_DB_STATEMENT_TIMEOUT_MS=500",
                                        "FARM_DB_CALL_TIMEOUT_MS=500",
                                        "FARM_RATE_LIMIT_BURST=1000",
                                        "FARM_RATE_LIMIT_PER_MIN=100000",
                                        NULL};
    api_pid = au_api_start(extra);
    return api_pid > 0 && VIPS_INIT("lost_answer") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int rc = api_pid > 0 ? ts_stop(api_pid, SIGTERM, 10) : -1;
    qt_proxy_stop(proxy);
    vips_shutdown();
    if (rc != 0)
        fprintf(stderr, "farm-api exited with %d\n", rc);
    return rc == 0 ? 0 : -1; /* a crash or a sanitizer report fails the group */
}

/* The number of the user's generations. */
static int generations_of(const char *tok)
{
    ts_http_t r = au_call("GET", "/v1/generations?limit=100", tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    int n = 0;
    for (const char *p = r.body; (p = strstr(p, "\"id\":\"")) != NULL; p += 6)
        n++;
    ts_http_dispose(&r);
    return n;
}

/* The created_at of the JSON answer `r` ("" when it has none as a string), into `out`. */
static void created_at_in(const ts_http_t *r, char out[32])
{
    const char *p = strstr(r->body, "\"created_at\":\"");
    snprintf(out, 32, "%.*s", p ? (int)strcspn(p + 14, "\"") : 0, p ? p + 14 : "");
}

/* A user with 100 credits who has spent none, and the proxy's connection the api uses now. */
static int fresh_user(char **tok)
{
    char user[37];
    *tok = au_token(NULL, "free", NULL, user);
    assert_int_equal(au_credits_field(*tok, "available"), 100); /* welcome credits */
    assert_int_equal(generations_of(*tok), 0);
    int live = qt_proxy_accepted(proxy) - 1; /* one connection at a time: the newest */
    assert_true(live >= 0);
    return live;
}

/* The accept reached Postgres and committed; its answer was lost. */
static void test_a_committed_accept_whose_answer_is_lost_is_202(void **state)
{
    (void)state;
    char *tok;
    qt_proxy_lose_answers(proxy, fresh_user(&tok));
    double t0 = ts_now();
    ts_http_t r = au_call("POST", "/v1/generations", tok, AVATAR, NULL);
    double waited = ts_now() - t0;
    if (r.status != 202)
        fail_msg("%ld after %.1f s: %s", r.status, waited, r.body);
    assert_true(waited >= 5); /* the backstop: the api did wait for Postgres' verdict */
    char id[37], created[32], shown[32];
    au_id_of(&r, id);
    created_at_in(&r, created);
    assert_null(strstr(r.body, "\"queue_position\":null")); /* enqueued, with its place */
    ts_http_dispose(&r);
    /* Charged once, and in the queue for a worker (GET reads its place from the queue). */
    assert_int_equal(au_credits_field(tok, "held"), 10);
    assert_int_equal(au_credits_field(tok, "available"), 90);
    assert_int_equal(generations_of(tok), 1);
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = au_call("GET", path, tok, NULL, NULL);
    au_expect(&r, 200, "\"status\":\"queued\"");
    r = au_call("GET", path, tok, NULL, NULL);
    assert_null(strstr(r.body, "\"queue_position\":null"));
    created_at_in(&r, shown);
    ts_http_dispose(&r);
    if (strcmp(created, shown) != 0) /* the 202 says when, as GET does */
        fail_msg("created_at: the 202 says \"%s\", GET \"%s\"", created, shown);
    free(tok);
}

/* The accept never reached Postgres: nothing happened, and 503 says so (retry in 1 s). */
static void test_an_accept_lost_on_its_way_is_503_with_nothing_charged(void **state)
{
    (void)state;
    char *tok;
    qt_proxy_deafen(proxy, fresh_user(&tok));
    ts_http_t r = au_call("POST", "/v1/generations", tok, AVATAR, NULL);
    assert_non_null(strstr(r.headers, "Retry-After: 1\r\n")); /* API.md: worth retrying */
    au_expect_error(&r, 503, "unavailable", NULL);
    ts_http_dispose(&r);
    assert_int_equal(au_credits_field(tok, "held"), 0);
    assert_int_equal(au_credits_field(tok, "available"), 100);
    assert_int_equal(generations_of(tok), 0);
    free(tok);
}

/* The upload's record reached Postgres and committed; its answer was lost: 201, listed. */
static void test_an_upload_whose_answer_is_lost_is_201(void **state)
{
    (void)state;
    char *tok;
    int live = fresh_user(&tok);
    qt_proxy_lose_answers(proxy, live);
    ts_http_t r = ff_post_png(tok, 64, 48);
    if (r.status != 201)
        fail_msg("%ld: %s", r.status, r.body);
    char id[37];
    au_id_of(&r, id);
    ts_http_dispose(&r);
    r = au_call("GET", "/v1/uploads", tok, NULL, NULL);
    au_expect(&r, 200, id);
    free(tok);
}

/* Whether the upload `id`'s file is in the api's storage. */
static int upload_stored(const char *id)
{
    return ts_sh("test -n \"$(find '%s/lost-storage' -name '%s.*')\"", ts_env("FARM_TEST_TMPDIR"),
                 id) == 0;
}

/* DELETE `path` while `lose` (qt_proxy_lose_answers or qt_proxy_deafen) holds the api's
 * connection: 204, after the backstop, and a second DELETE is then 404. */
static void delete_lost(const char *tok, const char *path, void (*lose)(qt_proxy_t *, int))
{
    lose(proxy, qt_proxy_accepted(proxy) - 1);
    double t0 = ts_now();
    ts_http_t r = au_call("DELETE", path, tok, NULL, NULL);
    double waited = ts_now() - t0;
    if (r.status != 204)
        fail_msg("%ld after %.1f s: %s", r.status, waited, r.body);
    assert_true(waited >= 5); /* the backstop: the answer was lost */
    ts_http_dispose(&r);
    r = au_call("DELETE", path, tok, NULL, NULL);
    au_expect_error(&r, 404, "not_found", NULL);
}

/* The delete of a finished generation committed; its answer was lost: 204, and it is gone. */
/* The audit rows of `action` on `target` that did it (a later DELETE's not_found has its
 * own): one (docs/operations.md, "one row per action"). */
static long long audit_rows(const char *action, const char *target)
{
    long long n = -1;
    assert_int_equal(ts_sh_number(&n,
                                  "psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) FROM "
                                  "audit_log WHERE action = '%s' AND target = '%s' AND "
                                  "detail::text NOT LIKE '%%not_found%%'\"",
                                  action, target),
                     0);
    return n;
}

static void test_a_committed_delete_whose_answer_is_lost_is_204(void **state)
{
    (void)state;
    char *tok, id[37], path[128];
    (void)fresh_user(&tok);
    au_create(tok, AVATAR, id);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    ts_http_t r = au_call("POST", path, tok, NULL, NULL);
    au_expect(&r, 202, NULL);
    json_decref(au_wait_status(tok, id, "canceled", 10));
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    delete_lost(tok, path, qt_proxy_lose_answers);
    r = au_call("GET", path, tok, NULL, NULL);
    au_expect_error(&r, 404, "not_found", NULL);
    assert_int_equal(generations_of(tok), 0);
    assert_int_equal(audit_rows("generation.delete", id), 1); /* the lost call's, not two */
    free(tok);
}

/* POST /v1/admin/credits granting `user` 250 while `lose` (qt_proxy_lose_answers or
 * qt_proxy_deafen) holds the api's connection: 201 after the backstop, with the account
 * after one grant (the user had 100); granted once, with one audit row. */
static void grant_lost(const char *tok, const char *user, void (*lose)(qt_proxy_t *, int))
{
    char body[160];
    assert_int_equal(au_credits_field(tok, "available"), 100);
    char *admin = au_token(NULL, "pro", "admin", NULL);
    lose(proxy, qt_proxy_accepted(proxy) - 1);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":250,\"reason\":\"refund\"}", user);
    double t0 = ts_now();
    ts_http_t r = au_call("POST", "/v1/admin/credits", admin, body, NULL);
    double waited = ts_now() - t0;
    if (r.status != 201)
        fail_msg("%ld after %.1f s: %s", r.status, waited, r.body);
    assert_true(waited >= 5); /* the backstop: the answer was lost */
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "balance")), 350);
    assert_int_equal(json_integer_value(json_object_get(j, "available")), 350);
    json_decref(j);
    ts_http_dispose(&r);
    assert_int_equal(au_credits_field(tok, "available"), 350); /* granted, once */
    assert_int_equal(audit_rows("credits.grant", user), 1);
    free(admin);
}

/*
 * An admin grant that committed and whose answer was lost: not the 503 that
 * promises nothing was written (the admin's retry would grant twice): the
 * api finds the grant by the id it gave it and answers its outcome, 201.
 */
static void test_a_committed_grant_whose_answer_is_lost_is_201(void **state)
{
    (void)state;
    char user[37];
    char *tok = au_token(NULL, "free", NULL, user);
    grant_lost(tok, user, qt_proxy_lose_answers);
    free(tok);
}

/* A grant that never reached Postgres: found not to have committed, it is run then: 201. */
static void test_a_grant_lost_before_postgres_is_run_then(void **state)
{
    (void)state;
    char user[37];
    char *tok = au_token(NULL, "free", NULL, user);
    grant_lost(tok, user, qt_proxy_deafen);
    free(tok);
}

/* An upload's delete, committed or lost on its way: 204, unlisted, and its file deleted. */
static void test_an_upload_delete_whose_answer_is_lost_is_204(void **state)
{
    (void)state;
    void (*lose[])(qt_proxy_t *, int) = {qt_proxy_lose_answers, qt_proxy_deafen};
    char *tok;
    (void)fresh_user(&tok);
    for (size_t i = 0; i < 2; i++) {
        char id[37], path[128];
        ff_upload_png(tok, 64, 48, id);
        assert_true(upload_stored(id));
        snprintf(path, sizeof(path), "/v1/uploads/%s", id);
        delete_lost(tok, path, lose[i]);
        assert_false(upload_stored(id)); /* deleted before the answer, as on the normal path */
        ts_http_t r = au_call("GET", "/v1/uploads", tok, NULL, NULL);
        assert_int_equal(r.status, 200);
        assert_null(strstr(r.body, id));
        ts_http_dispose(&r);
        assert_int_equal(audit_rows("upload.delete", id), 1);
    }
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_committed_accept_whose_answer_is_lost_is_202),
        cmocka_unit_test(test_an_accept_lost_on_its_way_is_503_with_nothing_charged),
        cmocka_unit_test(test_an_upload_whose_answer_is_lost_is_201),
        cmocka_unit_test(test_a_committed_delete_whose_answer_is_lost_is_204),
        cmocka_unit_test(test_an_upload_delete_whose_answer_is_lost_is_204),
        cmocka_unit_test(test_a_committed_grant_whose_answer_is_lost_is_201),
        cmocka_unit_test(test_a_grant_lost_before_postgres_is_run_then),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
