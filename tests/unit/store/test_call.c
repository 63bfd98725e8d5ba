/*
 * tests/unit/store/test_call.c - store/call.c: the builders copy their
 * inputs into the parameters of the operation's prepared statement (SQL
 * NULL where an input is absent), and the PREPARE batch names every
 * operation. No Postgres needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define GEN "11111111-1111-1111-1111-111111111111"
#define USR "22222222-2222-2222-2222-222222222222"

static void test_accept_copies_and_defaults(void **state)
{
    (void)state;
    store_call_t c;
    char *id = strdup(GEN); /* copied: the builder's caller may free its inputs at once */
    store_accept_t a = {.id = id,
                        .user_id = USR,
                        .kind = "pose",
                        .images = 4,
                        .unit_cost = 25,
                        .welcome_credits = 100,
                        .request_hash = "h"};
    store_call_accept(&c, &a);
    free(id);
    assert_int_equal(c._op, STORE_OP_ACCEPT);
    assert_int_equal(c._nparams, 14);
    assert_string_equal(c._params[0], GEN);
    assert_string_equal(c._params[1], USR);
    assert_null(c._params[2]); /* plan: NULL is free */
    assert_string_equal(c._params[3], "100");
    assert_string_equal(c._params[4], "pose");
    assert_string_equal(c._params[5], "4");
    assert_string_equal(c._params[6], "25");
    assert_string_equal(c._params[7], "{}"); /* no params given */
    assert_null(c._params[8]);               /* no metadata */
    assert_null(c._params[9]);               /* no deadline */
    assert_null(c._params[10]);              /* no idempotency key... */
    assert_null(c._params[11]);              /* ...so no request hash either */
    assert_null(c._params[12]);              /* no webhook_url */
    assert_null(c._params[13]);              /* no webhook_events */
    assert_int_equal(c.err.code, 0);
    store_call_dispose(&c);

    a.id = GEN;
    a.idempotency_key = "key-1";
    a.deadline_unix_ms = 1700000000123LL;
    a.params_json = "{\"prompt\":\"x\"}";
    store_call_accept(&c, &a);
    assert_string_equal(c._params[7], "{\"prompt\":\"x\"}");
    assert_string_equal(c._params[9], "1700000000123");
    assert_string_equal(c._params[10], "key-1");
    assert_string_equal(c._params[11], "h");
    store_call_dispose(&c);

    a.webhook_url = "https://example.com/hook";
    a.webhook_events = "{started,image}";
    store_call_accept(&c, &a);
    assert_string_equal(c._params[12], "https://example.com/hook");
    assert_string_equal(c._params[13], "{started,image}");
    store_call_dispose(&c);
}

static void test_worker_builders(void **state)
{
    (void)state;
    store_call_t c;
    store_call_finish(&c, GEN, -1, "failed", "{\"code\":\"internal\"}");
    assert_int_equal(c._op, STORE_OP_FINISH);
    assert_null(c._params[1]); /* fence < 0: none (the sweeper) */
    assert_string_equal(c._params[2], "failed");
    assert_string_equal(c._params[3], "{\"code\":\"internal\"}");
    store_call_dispose(&c);

    store_call_image(&c, GEN, 9, 3, 0, NULL);
    assert_string_equal(c._params[1], "9");
    assert_string_equal(c._params[2], "3");
    assert_string_equal(c._params[3], "false");
    assert_null(c._params[4]);
    store_call_dispose(&c);

    store_call_provider_request(&c, GEN, 9, 3, "bfl:req");
    assert_int_equal(c._nparams, 4);
    assert_string_equal(c._params[3], "bfl:req");
    store_call_dispose(&c);

    store_call_totals(&c);
    assert_int_equal(c._nparams, 0);
    store_call_dispose(&c);
}

static void test_list_cursor_splits(void **state)
{
    (void)state;
    store_call_t c;
    store_call_list(&c, USR, "queued", NULL, 20, "1700000000000000." GEN);
    assert_int_equal(c._nparams, 6);
    assert_string_equal(c._params[1], "queued");
    assert_null(c._params[2]);
    assert_string_equal(c._params[3], "20");
    assert_string_equal(c._params[4], "1700000000000000");
    assert_string_equal(c._params[5], GEN);
    store_call_dispose(&c);

    store_call_list(&c, USR, NULL, "pose", 5, "no-dot");
    assert_null(c._params[4]); /* not a cursor: the first page */
    assert_null(c._params[5]);
    store_call_dispose(&c);

    store_call_ledger(&c, USR, 10, "41");
    assert_string_equal(c._params[2], "41");
    store_call_dispose(&c);
}

static void test_refs_index_only_with_a_generation(void **state)
{
    (void)state;
    store_call_t c;
    store_call_refs(&c, USR, GEN, NULL, 2, NULL);
    assert_string_equal(c._params[1], GEN);
    assert_null(c._params[2]);
    assert_null(c._params[3]);
    assert_null(c._params[4]);
    store_call_dispose(&c);
    store_call_refs(&c, USR, NULL, GEN, 2, "{" GEN "}");
    assert_string_equal(c._params[3], "2");
    assert_string_equal(c._params[4], "{" GEN "}");
    store_call_dispose(&c);
}

static void test_dispose_frees_results_and_allows_a_rebuild(void **state)
{
    (void)state;
    store_call_t c;
    store_call_resume(&c, GEN);
    store_row_t row = {{"{\"settled\": [1], \"pose_keys\": {}, \"identity_key\": \"k\", "
                        "\"provider_requests\": {\"1\": \"hf:1\"}}"}};
    store__parse_row(&c, &row);
    assert_int_equal(c.err.code, 0);
    store_call_dispose(&c); /* LSan: results and parameters gone */
    assert_null(c._params[0]);
    assert_null(c.res.resume.identity_key);
    store_call_dispose(&c); /* twice is harmless */
    store_call_upload_add(&c, GEN, USR, 100, "png", 64, 32, 999, "ab", "u/k.png", 20, 0);
    assert_int_equal(c._nparams, 11);
    assert_string_equal(c._params[8], "u/k.png");
    assert_string_equal(c._params[9], "20");
    assert_string_equal(c._params[10], "0");
    /* over a quota: GF_ETOOBIG naming it; else added */
    store_row_t over = {{"over_bytes"}};
    store__parse_row(&c, &over);
    assert_int_equal(c.err.code, GF_ETOOBIG);
    assert_string_equal(c.res.upload.over, "bytes");
    store_call_dispose(&c);
    store_call_upload_add(&c, GEN, USR, 100, "png", 64, 32, 999, "ab", "u/k.png", 20, 0);
    store_row_t added = {{"added"}};
    store__parse_row(&c, &added);
    assert_int_equal(c.err.code, 0);
    store_call_dispose(&c);
    store_call_upload_usage(&c, USR);
    store_row_t usage = {{"3", "4096"}};
    store__parse_row(&c, &usage);
    assert_int_equal(c.err.code, 0);
    assert_int_equal(c.res.upload.uploads, 3);
    assert_int_equal(c.res.upload.bytes, 4096);
    store_call_dispose(&c);
}

/* A string member of the batch's request `i` (NULL: JSON null; "(absent)" when missing). */
static const char *member(json_t *batch, size_t i, const char *k)
{
    json_t *v = json_object_get(json_array_get(batch, i), k);
    if (v == NULL)
        return "(absent)";
    return json_is_null(v) ? NULL : json_string_value(v);
}

static void test_accept_batch_is_one_json_array(void **state)
{
    (void)state;
    char *up = strdup(GEN); /* copied: the caller may free its inputs at once */
    const char *poses[] = {up, USR};
    store_accept_item_t items[2] = {
        {.accept = {.id = GEN,
                    .user_id = USR,
                    .plan = "pro",
                    .kind = "pose",
                    .images = 2,
                    .unit_cost = 30,
                    .welcome_credits = 100,
                    .params_json = "{\"prompt\":\"a \\\"quoted\\\" fox\"}",
                    .metadata_json = "{\"ref\":1}",
                    .deadline_unix_ms = 1700000000123LL,
                    .idempotency_key = "key-1",
                    .request_hash = "h",
                    .webhook_url = "https://example.com/hook",
                    .webhook_events = "{started}"},
         .identity_generation = USR,
         .identity_index = 3,
         .pose_uploads = poses,
         .n_pose_uploads = 2},
        {.accept = {.id = USR,
                    .user_id = GEN,
                    .kind = "avatar",
                    .images = 1,
                    .unit_cost = 10,
                    .request_hash = "h2"},
         .identity_upload = up},
    };
    store_call_t c;
    assert_int_equal(store_call_accept_batch(&c, items, 2), 0);
    free(up);
    assert_int_equal(c._op, STORE_OP_ACCEPT_BATCH);
    assert_int_equal(c._nparams, 1);
    assert_int_equal(c._batch, 2);
    json_error_t jerr;
    json_t *b = json_loads(c._params[0], 0, &jerr);
    assert_non_null(b);
    assert_int_equal(json_array_size(b), 2);
    assert_string_equal(member(b, 0, "id"), GEN);
    assert_string_equal(member(b, 0, "user"), USR);
    assert_string_equal(member(b, 0, "plan"), "pro");
    assert_string_equal(member(b, 0, "kind"), "pose");
    /* the user's JSON goes as text, byte for byte, for Postgres to parse */
    assert_string_equal(member(b, 0, "params"), "{\"prompt\":\"a \\\"quoted\\\" fox\"}");
    assert_string_equal(member(b, 0, "metadata"), "{\"ref\":1}");
    assert_string_equal(member(b, 0, "idem_key"), "key-1");
    assert_string_equal(member(b, 0, "idem_hash"), "h");
    assert_string_equal(member(b, 0, "webhook_url"), "https://example.com/hook");
    assert_string_equal(member(b, 0, "webhook_events"), "{started}");
    assert_string_equal(member(b, 0, "identity_gen"), USR);
    assert_null(member(b, 0, "identity_upload"));
    json_t *o0 = json_array_get(b, 0);
    assert_int_equal(json_integer_value(json_object_get(o0, "images")), 2);
    assert_int_equal(json_integer_value(json_object_get(o0, "unit_cost")), 30);
    assert_int_equal(json_integer_value(json_object_get(o0, "welcome")), 100);
    assert_int_equal(json_integer_value(json_object_get(o0, "deadline_ms")), 1700000000123LL);
    assert_int_equal(json_integer_value(json_object_get(o0, "identity_index")), 3);
    json_t *ps = json_object_get(o0, "poses");
    assert_int_equal(json_array_size(ps), 2);
    assert_string_equal(json_string_value(json_array_get(ps, 0)), GEN);
    assert_string_equal(json_string_value(json_array_get(ps, 1)), USR);
    /* the second: absent inputs are null, no params is {}, no key means no hash */
    assert_null(member(b, 1, "plan"));
    assert_string_equal(member(b, 1, "params"), "{}");
    assert_null(member(b, 1, "metadata"));
    assert_null(member(b, 1, "idem_key"));
    assert_null(member(b, 1, "idem_hash"));
    assert_string_equal(member(b, 1, "identity_upload"), GEN);
    assert_null(member(b, 1, "identity_gen"));
    json_t *o1 = json_array_get(b, 1);
    assert_true(json_is_null(json_object_get(o1, "deadline_ms")));
    assert_true(json_is_null(json_object_get(o1, "identity_index"))); /* only with a generation */
    assert_int_equal(json_array_size(json_object_get(o1, "poses")), 0);
    json_decref(b);
    store_call_dispose(&c);
}

static void test_accept_batch_refuses_bad_sizes_and_text(void **state)
{
    (void)state;
    store_accept_item_t items[STORE_ACCEPT_BATCH_MAX + 1];
    memset(items, 0, sizeof(items));
    for (size_t i = 0; i < STORE_ACCEPT_BATCH_MAX + 1; i++)
        items[i].accept = (store_accept_t){.id = GEN, .user_id = USR, .kind = "avatar"};
    store_call_t c;
    assert_int_equal(store_call_accept_batch(&c, items, 0), GF_EINVAL);
    store_call_dispose(&c);
    assert_int_equal(store_call_accept_batch(&c, items, STORE_ACCEPT_BATCH_MAX + 1), GF_EINVAL);
    store_call_dispose(&c);
    assert_int_equal(store_call_accept_batch(&c, items, STORE_ACCEPT_BATCH_MAX), 0);
    assert_int_equal(c._batch, STORE_ACCEPT_BATCH_MAX);
    store_call_dispose(&c);
    items[1].accept.idempotency_key = "\xff\xfe"; /* not UTF-8 */
    assert_int_equal(store_call_accept_batch(&c, items, 2), GF_EINVAL);
    store_call_dispose(&c);
}

static void test_prepare_batch_names_every_operation(void **state)
{
    (void)state;
    const char *sql = store__prepare_sql();
    for (int op = 0; op < STORE_OP_COUNT_; op++) {
        char needle[40];
        snprintf(needle, sizeof(needle), "PREPARE %s AS ", store__stmt_name((store_op_t)op));
        assert_non_null(strstr(sql, needle));
    }
    assert_string_equal(store__stmt_name(STORE_OP_ACCEPT), "farm_s0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_copies_and_defaults),
        cmocka_unit_test(test_worker_builders),
        cmocka_unit_test(test_list_cursor_splits),
        cmocka_unit_test(test_refs_index_only_with_a_generation),
        cmocka_unit_test(test_dispose_frees_results_and_allows_a_rebuild),
        cmocka_unit_test(test_prepare_batch_names_every_operation),
        cmocka_unit_test(test_accept_batch_is_one_json_array),
        cmocka_unit_test(test_accept_batch_refuses_bad_sizes_and_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
