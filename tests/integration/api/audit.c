/*
 * tests/integration/api/audit.c - the audit trail (docs/operations.md, "Audit
 * trail") against a real farm-api, Postgres and the farm CLI: an admin's
 * grant is recorded with the admin's `sub` and the request's id, the CLI's
 * own grant and webhook retry as `cli`, GET /v1/admin/audit pages newest
 * first with a cursor and is the admin's only, the table refuses UPDATE and
 * DELETE, and a row written with an action is undone with it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "played_worker.h"
#include "core.h"
#include "store.h"

static int setup(void **state)
{
    (void)state;
    return pw_setup(NULL);
}

static int teardown(void **state)
{
    (void)state;
    return pw_teardown();
}

/* GET /v1/admin/audit?`query` as `tok`: the parsed 200 body. */
static json_t *audit_page(const char *tok, const char *query)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/admin/audit%s", query);
    ts_http_t r = au_call("GET", path, tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *page = json_loadb(r.body, r.body_len, 0, NULL);
    ts_http_dispose(&r);
    assert_non_null(page);
    return page;
}

/* The newest row of the trail (a new reference). */
static json_t *newest(const char *admin)
{
    json_t *page = audit_page(admin, "?limit=1");
    json_t *row = json_incref(json_array_get(json_object_get(page, "items"), 0));
    json_decref(page);
    assert_non_null(row);
    return row;
}

/* The newest row of the trail, which must be `action` on `target` by `actor` (a new reference). */
static json_t *newest_is(const char *admin, const char *actor, const char *action,
                         const char *target)
{
    json_t *row = newest(admin);
    assert_string_equal(au_str(row, "actor"), actor);
    assert_string_equal(au_str(row, "action"), action);
    assert_string_equal(au_str(row, "target"), target);
    return row;
}

static void test_admin_grant_is_recorded_with_sub_and_request_id(void **state)
{
    (void)state;
    char user[37], admin_sub[37];
    gf_uuid4(admin_sub);
    char *t = au_token(NULL, NULL, NULL, user);
    char *admin = au_token(admin_sub, NULL, "admin", NULL);
    char body[256];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":250,\"reason\":\"ticket 42\"}",
             user);
    ts_http_t r = au_call("POST", "/v1/admin/credits", admin, body, "X-Request-Id: audit-grant-1");
    au_expect(&r, 201, NULL);
    json_t *row = newest_is(admin, admin_sub, "credits.grant", user);
    assert_string_equal(au_str(row, "request_id"), "audit-grant-1");
    json_t *detail = json_object_get(row, "detail");
    assert_int_equal(json_integer_value(json_object_get(detail, "amount")), 250);
    assert_string_equal(au_str(detail, "reason"), "ticket 42");
    assert_string_equal(au_str(json_object_get(detail, "result"), "farm_credit"), "granted");
    assert_non_null(json_string_value(json_object_get(row, "at")));
    json_decref(row);

    /* A take-back refused (402) is on the trail too, with the refusal as its result. */
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":-999999,\"reason\":\"oops\"}",
             user);
    r = au_call("POST", "/v1/admin/credits", admin, body, "X-Request-Id: audit-grant-2");
    au_expect(&r, 402, NULL);
    row = newest(admin);
    assert_string_equal(au_str(row, "request_id"), "audit-grant-2");
    assert_string_equal(
        au_str(json_object_get(json_object_get(row, "detail"), "result"), "farm_credit"),
        "insufficient");
    json_decref(row);

    /* A refused body writes nothing. */
    long long before_id;
    row = newest(admin);
    before_id = json_integer_value(json_object_get(row, "id"));
    json_decref(row);
    r = au_call("POST", "/v1/admin/credits", admin, "{\"user_id\":\"x\",\"amount\":5}", NULL);
    au_expect(&r, 400, NULL);
    row = newest(admin);
    assert_int_equal(json_integer_value(json_object_get(row, "id")), before_id);
    json_decref(row);
    free(t);
    free(admin);
}

static void test_cli_actions_are_recorded_as_cli(void **state)
{
    (void)state;
    char user[37];
    char *t = au_token(NULL, NULL, NULL, user);
    char *admin = au_token(NULL, NULL, "admin", NULL);
    assert_int_equal(au_grant(user, 77, "from-the-cli"), 0);
    json_t *row = newest_is(admin, "cli", "credits.grant", user);
    assert_true(gf_uuid_is_valid(au_str(row, "request_id")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "detail"), "amount")),
                     77);
    json_decref(row);

    /* farm webhooks retry --failed: one row, target "*", the count put back as its result. */
    assert_int_equal(ts_sh("\"$FARM_TEST_CLI\" webhooks retry --failed >/dev/null"), 0);
    row = newest_is(admin, "cli", "webhooks.retry", "*");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(row, "detail"), "result"), "farm_webhook_retry")),
        0);
    json_decref(row);
    free(t);
    free(admin);
}

static void test_pages_newest_first_with_a_cursor(void **state)
{
    (void)state;
    char user[37];
    char *t = au_token(NULL, NULL, NULL, user);
    char *admin = au_token(NULL, NULL, "admin", NULL);
    for (int i = 1; i <= 5; i++) {
        char reason[32];
        snprintf(reason, sizeof(reason), "page-%d", i);
        assert_int_equal(au_grant(user, i, reason), 0);
    }
    /* Pages of 2 through the five newest: page 5, 4 | 3, 2 | 1, ... */
    char query[64] = "?limit=2";
    int want = 5;
    long long last_id = 0;
    for (int p = 0; p < 3; p++) {
        json_t *page = audit_page(admin, query);
        json_t *items = json_object_get(page, "items");
        assert_int_equal(json_array_size(items), 2);
        for (size_t i = 0; i < 2 && want >= 1; i++, want--) {
            json_t *row = json_array_get(items, i);
            long long id = json_integer_value(json_object_get(row, "id"));
            assert_true(last_id == 0 || id < last_id);
            last_id = id;
            char reason[32];
            snprintf(reason, sizeof(reason), "page-%d", want);
            assert_string_equal(au_str(json_object_get(row, "detail"), "reason"), reason);
        }
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        assert_non_null(next);
        snprintf(query, sizeof(query), "?limit=2&cursor=%s", next);
        json_decref(page);
    }
    /* The last page: a cursor before the first row gives nothing, and no next cursor. */
    json_t *page = audit_page(admin, "?limit=100&cursor=1");
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    assert_true(json_is_null(json_object_get(page, "next_cursor")));
    json_decref(page);
    ts_http_t r = au_call("GET", "/v1/admin/audit?cursor=abc", admin, NULL, NULL);
    au_expect(&r, 400, NULL);
    r = au_call("GET", "/v1/admin/audit?limit=0", admin, NULL, NULL);
    au_expect(&r, 400, NULL);
    free(t);
    free(admin);
}

static void test_only_admins_read_the_trail(void **state)
{
    (void)state;
    char *t = au_token(NULL, NULL, NULL, NULL);
    ts_http_t r = au_call("GET", "/v1/admin/audit", t, NULL, NULL);
    au_expect(&r, 403, "\"forbidden\"");
    r = au_call("GET", "/v1/admin/audit", NULL, NULL, NULL);
    au_expect(&r, 401, NULL);
    free(t);
}

static void test_the_trail_is_append_only(void **state)
{
    (void)state;
    char user[37];
    char *t = au_token(NULL, NULL, NULL, user);
    assert_int_equal(au_grant(user, 3, "kept"), 0);
    static const char *const edits[] = {"UPDATE audit_log SET actor = 'someone else'",
                                        "DELETE FROM audit_log", "TRUNCATE audit_log"};
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++)
        assert_int_not_equal(ts_sh("psql -X -q -v ON_ERROR_STOP=1 \"$FARM_DATABASE_URL\" "
                                   "-c \"%s\" 2>/dev/null",
                                   edits[i]),
                             0);
    assert_int_equal(ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT count(*) "
                           "FROM audit_log WHERE target = '%s' AND actor = 'cli'\")\" = 1",
                           user),
                     0);
    free(t);
}

/* store_call_set_audit: the row is the action's transaction. A row the table
 * refuses (detail not an object) undoes the grant; a grant that goes through
 * writes exactly one row. */
static void test_the_row_commits_with_its_action(void **state)
{
    (void)state;
    char user[37];
    gf_uuid4(user);
    store_call_t c;
    store_call_credit(&c, user, 40, "atomic", 0);
    store_call_set_audit(&c, &(store_audit_t){.actor = "tester",
                                              .action = "credits.grant",
                                              .target = user,
                                              .detail_json = "[1]"});
    assert_int_equal(store_conn_exec(pw_sc, &c), GF_EINVAL);
    store_call_dispose(&c);
    store_call_balance(&c, user, 0);
    assert_int_equal(store_conn_exec(pw_sc, &c), 0);
    assert_int_equal(c.res.balance.balance, 0);
    store_call_dispose(&c);

    store_call_credit(&c, user, 40, "atomic", 0);
    store_call_set_audit(&c, &(store_audit_t){.actor = "tester",
                                              .action = "credits.grant",
                                              .target = user,
                                              .request_id = "r-1",
                                              .detail_json = "{\"why\":\"test\"}"});
    assert_int_equal(store_conn_exec(pw_sc, &c), 0);
    store_call_dispose(&c);
    store_call_balance(&c, user, 0);
    assert_int_equal(store_conn_exec(pw_sc, &c), 0);
    assert_int_equal(c.res.balance.balance, 40);
    store_call_dispose(&c);
    assert_int_equal(ts_sh("test \"$(psql -X -At \"$FARM_DATABASE_URL\" -c \"SELECT "
                           "actor || ' ' || request_id || ' ' || (detail->>'why') FROM audit_log "
                           "WHERE target = '%s'\")\" = 'tester r-1 test'",
                           user),
                     0);

    /* A row of its own (an action outside Postgres): its id comes back. */
    store_call_audit(&c, &(store_audit_t){.actor = "tester", .action = "dead_letter.purge"});
    assert_int_equal(store_conn_exec(pw_sc, &c), 0);
    assert_true(c.res.audit.id > 0);
    store_call_dispose(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_grant_is_recorded_with_sub_and_request_id),
        cmocka_unit_test(test_cli_actions_are_recorded_as_cli),
        cmocka_unit_test(test_pages_newest_first_with_a_cursor),
        cmocka_unit_test(test_only_admins_read_the_trail),
        cmocka_unit_test(test_the_trail_is_append_only),
        cmocka_unit_test(test_the_row_commits_with_its_action),
    };
    return ts_run_tests_with_curl(tests, setup, teardown);
}
