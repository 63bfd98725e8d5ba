/*
 * tests/unit/store/test_result.c - store/result.c: each operation's row
 * (and the JSON some SQL functions return) read into store.h's typed
 * results, outcome words and SQLSTATEs into gf_status, and malformed shapes
 * refused with a message naming the field, leaving nothing allocated (LSan
 * checks). Rows are built by hand, no Postgres needed. The webhook outbox's
 * results are test_result_webhooks.c's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "store_int.h"

#include "result_util.h"

/* A generation as farm_generation_json prints it (jsonb: keys by length). */
static const char *const gen_json =
    "{\"id\": \"" GEN "\", \"cost\": 30, \"kind\": \"pose\", \"error\": null, "
    "\"stage\": \"storing\", \"images\": 3, \"params\": {\"seed\": 7, \"prompt\": \"a\"}, "
    "\"status\": \"running\", \"charged\": 10, \"outputs\": [{\"pose\": 1, \"seed\": 8, "
    "\"bytes\": 1234, \"index\": 1, \"width\": 512, \"format\": \"png\", \"height\": 768, "
    "\"sha256\": \"ab\", \"variant\": \"full\", \"storage_key\": \"u/g/1/full.png\"}, "
    "{\"pose\": 0, \"seed\": null, \"bytes\": 5, \"index\": 2, \"width\": 64, \"format\": "
    "\"webp\", \"height\": 64, \"sha256\": \"cd\", \"variant\": \"thumb\", \"storage_key\": "
    "\"k\"}], \"attempts\": 2, \"failures\": [], \"metadata\": {\"b\": [1, 2.5], \"a\": \"x\"}, "
    "\"progress\": 33, \"provider\": null, \"released\": 0, \"created_at\": "
    "\"2024-01-02T03:04:05.678Z\", \"started_at\": \"2024-01-02T03:04:06.000Z\", "
    "\"finished_at\": null, \"images_done\": 1, \"images_failed\": 0, \"queue_position\": null}";

static void test_sqlstates_translate_to_statuses(void **state)
{
    (void)state;
    assert_int_equal(store__sqlstate_code("GF409"), GF_ECONFLICT);
    assert_int_equal(store__sqlstate_code("22P02"), GF_EINVAL);   /* bad uuid text */
    assert_int_equal(store__sqlstate_code("23505"), GF_EINVAL);   /* unique violation */
    assert_int_equal(store__sqlstate_code("57014"), GF_EUNAVAIL); /* statement timeout */
    assert_int_equal(store__sqlstate_code(NULL), GF_EUNAVAIL);
}

static void test_accept_outcomes(void **state)
{
    (void)state;
    store_call_t c;
    store_accept_t a = {.id = GEN,
                        .user_id = USR,
                        .kind = "avatar",
                        .images = 1,
                        .idempotency_key = "k",
                        .request_hash = "h"};
    store_call_accept(&c, &a);
    assert_int_equal(parse3(&c, "accepted", GEN, "70"), 0);
    assert_string_equal(c.res.accept.generation_id, GEN);
    assert_int_equal(c.res.accept.available, 70);
    assert_int_equal(c.res.accept.existing, 0);
    store_call_dispose(&c);

    store_call_accept(&c, &a);
    assert_int_equal(parse3(&c, "existing", GEN, "70"), 0);
    assert_int_equal(c.res.accept.existing, 1);
    store_call_dispose(&c);

    store_call_accept(&c, &a);
    assert_int_equal(parse3(&c, "insufficient", NULL, "3"), GF_ECREDITS);
    assert_int_equal(c.res.accept.available, 3);
    assert_string_equal(c.err.domain, "store");
    store_call_dispose(&c);

    store_call_accept(&c, &a);
    assert_int_equal(parse3(&c, "conflict", GEN, "0"), GF_ECONFLICT);
    assert_string_equal(c.res.accept.generation_id, GEN); /* the first one */
    assert_non_null(strstr(c.err.msg, "(k)"));            /* names the key */
    store_call_dispose(&c);
}

/* A batch of `n` minimal requests, to read a farm_accept_generations answer into. */
static void batch_of(store_call_t *c, size_t n)
{
    store_accept_item_t items[4] = {0};
    for (size_t i = 0; i < n; i++)
        items[i].accept = (store_accept_t){.id = GEN, .user_id = USR, .kind = "avatar"};
    assert_int_equal(store_call_accept_batch(c, items, n), 0);
}

/* farm_accept_resolve_at: one {accepted, created_at} per id, in order; anything else is
 * malformed. */
static void test_accept_resolve(void **state)
{
    (void)state;
    store_call_t c;
    const char *ids[] = {GEN, USR};
    store_backend_t be = {.pid = 4242, .app = "genfarm x"};
    assert_int_equal(store_call_accept_resolve(&c, &be, ids, 2), 0);
    assert_string_equal(c._params[0], "4242");
    assert_string_equal(c._params[1], "genfarm x");
    assert_string_equal(c._params[2], "{" GEN "," USR "}");
    store_row_t row = {{"[{\"accepted\": false, \"created_at\": null}, "
                        "{\"accepted\": true, \"created_at\": \"2024-01-02T03:04:05.678Z\"}]"}};
    store__parse_row(&c, &row);
    assert_int_equal(c.err.code, 0);
    assert_int_equal(c.res.accept_resolve.n, 2);
    assert_int_equal(c.res.accept_resolve.accepted[0], 0);
    assert_string_equal(c.res.accept_resolve.created_at[0], "");
    assert_int_equal(c.res.accept_resolve.accepted[1], 1);
    assert_string_equal(c.res.accept_resolve.created_at[1], "2024-01-02T03:04:05.678Z");
    store_call_dispose(&c);
    assert_int_equal(store_call_accept_resolve(&c, &(store_backend_t){0}, ids, 2), 0);
    assert_null(c._params[0]); /* no backend known: none ended */
    assert_null(c._params[1]);
    static const char *const bad[] = {
        "ft",                                           /* the old function's answer */
        "[{\"accepted\": true, \"created_at\": null}]", /* one answer short */
        "[{\"accepted\": true, \"created_at\": null}, {\"created_at\": null}]",
        "[{\"accepted\": true, \"created_at\": null}, 1]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store_row_t row_bad = {{bad[i]}};
        store__parse_row(&c, &row_bad);
        assert_int_equal(c.err.code, GF_EUNAVAIL);
        assert_null(c.res.accept_resolve.created_at); /* nothing half read (LSan) */
        c.err.code = 0;
    }
    store_call_dispose(&c);
}

static void test_accept_batch_outcomes_are_each_their_own(void **state)
{
    (void)state;
    store_call_t c;
    batch_of(&c, 4);
    assert_int_equal(
        parse(&c,
              "[{\"outcome\": \"accepted\", \"available\": 90, \"generation\": null, "
              "\"created_at\": \"2024-01-02T03:04:06.000Z\", \"generation_id\": \"" GEN "\"}, "
              "{\"outcome\": \"insufficient\", \"available\": 5, \"generation\": null, "
              "\"generation_id\": null}, "
              "{\"missing\": \"poses\", \"outcome\": \"missing\"}, "
              "{\"outcome\": \"existing\", \"available\": null, \"generation\": "
              "{\"cost\": 30, \"kind\": \"pose\", \"images\": 3, \"status\": \"succeeded\", "
              "\"created_at\": \"2024-01-02T03:04:05.678Z\"}, \"generation_id\": \"" USR "\"}]"),
        0); /* the call itself succeeded */
    const store_accept_batch_result_t *r = &c.res.accept_batch;
    assert_int_equal(r->n, 4);
    assert_int_equal(r->items[0].err.code, 0);
    assert_string_equal(r->items[0].accept.generation_id, GEN);
    assert_int_equal(r->items[0].accept.available, 90);
    assert_int_equal(r->items[0].accept.existing, 0);
    assert_string_equal(r->items[0].created_at, "2024-01-02T03:04:06.000Z");
    assert_int_equal(r->items[1].err.code, GF_ECREDITS);
    assert_int_equal(r->items[1].accept.available, 5);
    assert_int_equal(r->items[2].err.code, GF_ENOTFOUND);
    assert_string_equal(r->items[2].missing, "poses");
    assert_int_equal(r->items[3].err.code, 0);
    assert_int_equal(r->items[3].accept.existing, 1);
    assert_int_equal(r->items[3].found, 1);
    assert_string_equal(r->items[3].accept.generation_id, USR);
    assert_string_equal(r->items[3].kind, "pose");
    assert_string_equal(r->items[3].status, "succeeded");
    assert_string_equal(r->items[3].created_at, "2024-01-02T03:04:05.678Z");
    assert_int_equal(r->items[3].cost, 30);
    assert_int_equal(r->items[3].images, 3);
    store_call_dispose(&c);

    batch_of(&c, 3);
    assert_int_equal(parse(&c, "[{\"outcome\": \"conflict\", \"available\": null, \"generation\": "
                               "null, \"generation_id\": \"" GEN "\"}, "
                               "{\"outcome\": \"existing\", \"available\": null, "
                               "\"generation\": null, \"generation_id\": \"" GEN "\"}, "
                               "{\"outcome\": \"error\", \"message\": \"new row violates\", "
                               "\"sqlstate\": \"23514\"}]"),
                     0);
    r = &c.res.accept_batch;
    assert_int_equal(r->items[0].err.code, GF_ECONFLICT);
    assert_string_equal(r->items[0].accept.generation_id, GEN);
    assert_int_equal(r->items[1].err.code, 0);
    assert_int_equal(r->items[1].accept.existing, 1);
    assert_int_equal(r->items[1].found, 0); /* deleted since */
    assert_int_equal(r->items[2].err.code, GF_EINVAL);
    assert_non_null(strstr(r->items[2].err.msg, "new row violates"));
    store_call_dispose(&c);
}

static void test_accept_batch_malformed(void **state)
{
    (void)state;
    store_call_t c;
#define ACCEPTED "{\"outcome\": \"accepted\", \"available\": 1, \"generation_id\": \"" GEN "\", "
    static const char *const bad[] = {
        /* one outcome short of the batch */
        "[" ACCEPTED "\"created_at\": \"t\"}]",
        /* a word no outcome has */
        "[{\"outcome\": \"maybe\", \"available\": 1, \"generation_id\": \"" GEN "\"}, " ACCEPTED
        "\"created_at\": \"t\"}]",
        /* an existing one without its generation member */
        "[" ACCEPTED "\"created_at\": \"t\"}, "
        "{\"outcome\": \"existing\", \"available\": null, \"generation_id\": \"" GEN "\"}]",
        /* an accepted one without its created_at */
        "[" ACCEPTED "\"created_at\": \"t\"}, " ACCEPTED "\"created_at\": null}]",
        "{\"outcome\": \"accepted\"}",
        "[1, 2]",
    };
#undef ACCEPTED
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        batch_of(&c, 2);
        assert_malformed(&c, bad[i], "malformed farm_accept_generations result");
        assert_null(c.res.accept_batch.items); /* nothing half read (LSan: nothing leaked) */
        store_call_dispose(&c);
    }
}

static void test_worker_outcomes(void **state)
{
    (void)state;
    store_call_t c;
    store_call_start(&c, GEN, 4, "local", NULL);
    assert_int_equal(parse3(&c, "started", "2", NULL), 0);
    assert_int_equal(c.res.start.attempts, 2);
    store_call_dispose(&c);

    static const struct {
        const char *word;
        int code;
    } words[] = {{"stale", GF_ECONFLICT},
                 {"terminal", GF_ECANCELED},
                 {"not_found", GF_ENOTFOUND},
                 {"invalid", GF_EINVAL}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        store_call_provider_request(&c, GEN, 4, 0, "hf:1");
        assert_int_equal(parse(&c, words[i].word), words[i].code);
        assert_non_null(strstr(c.err.msg, GEN)); /* the message names the generation */
        store_call_dispose(&c);
    }

    store_call_image(&c, GEN, 4, 0, 1, NULL);
    assert_int_equal(parse(&c, "settled"), 0);
    assert_int_equal(c.res.image.applied, 1);
    store_call_dispose(&c);
    store_call_image_done(&c, GEN, 4, 0, "[]");
    assert_int_equal(parse(&c, "duplicate"), 0); /* idempotent: not an error */
    assert_int_equal(c.res.image.applied, 0);
    store_call_dispose(&c);

    store_call_finish(&c, GEN, 4, "auto", NULL);
    assert_int_equal(parse3(&c, "finished", "partial", NULL), 0);
    assert_string_equal(c.res.finish.status, "partial");
    assert_int_equal(c.res.finish.applied, 1);
    store_call_dispose(&c);
    store_call_finish(&c, GEN, 4, "auto", NULL);
    assert_int_equal(parse3(&c, "already", "succeeded", NULL), 0);
    assert_int_equal(c.res.finish.applied, 0);
    store_call_dispose(&c);
    store_call_finish(&c, GEN, 4, "auto", NULL);
    assert_int_equal(parse3(&c, "stale", "running", NULL), GF_ECONFLICT);
    store_call_dispose(&c);

    /* The last image and the finish in one call: the image's word, then the finish's. */
    store_call_image_done_finish(&c, GEN, 4, 0, "[]", 0, 0);
    assert_int_equal(parse3(&c, "settled", "finished", "succeeded"), 0);
    assert_int_equal(c.res.image.applied, 1);
    assert_int_equal(c.res.image.finished, 1);
    assert_string_equal(c.res.image.status, "succeeded");
    store_call_dispose(&c);
    store_call_image_done_finish(&c, GEN, 4, 0, "[]", 0, 0);
    assert_int_equal(parse3(&c, "duplicate", "already", "succeeded"), 0); /* a repeat */
    assert_int_equal(c.res.image.applied, 0);
    assert_int_equal(c.res.image.finished, 0);
    assert_string_equal(c.res.image.status, "succeeded");
    store_call_dispose(&c);
    store_call_image_done_finish(&c, GEN, 4, 0, "[]", 0, 0);
    assert_int_equal(parse3(&c, "stale", NULL, NULL), GF_ECONFLICT); /* nothing finished */
    assert_non_null(strstr(c.err.msg, GEN));
    store_call_dispose(&c);
    store_call_image_done_finish(&c, GEN, 4, 0, "[]", 0, 0);
    assert_int_equal(parse3(&c, "released", NULL, NULL), GF_ECONFLICT);
    store_call_dispose(&c);
    store_call_image_done_finish(&c, GEN, 4, 0, "[]", 0, 0);
    assert_int_equal(parse3(&c, "settled", NULL, NULL), GF_EUNAVAIL); /* no finish: malformed */
    store_call_dispose(&c);

    store_call_expire(&c, GEN);
    assert_int_equal(parse(&c, "expired"), 0);
    assert_int_equal(c.res.expire.applied, 1);
    store_call_dispose(&c);
}

static void test_api_outcomes(void **state)
{
    (void)state;
    store_call_t c;
    /* A cancel taken answers the generation as it left it (farm_cancel_json). */
    store_call_cancel(&c, GEN, USR);
    assert_int_equal(parse3(&c, "canceled", gen_json, NULL), 0);
    assert_int_equal(c.res.cancel.applied, 1);
    assert_string_equal(c.res.cancel.generation.id, GEN);
    assert_string_equal(c.res.cancel.generation.kind, "pose");
    store_call_dispose(&c);
    store_call_cancel(&c, GEN, USR);
    assert_int_equal(parse3(&c, "cancel_requested", gen_json, NULL), 0);
    assert_int_equal(c.res.cancel.applied, 0);
    store_call_dispose(&c);
    store_call_cancel(&c, GEN, USR);
    assert_int_equal(parse(&c, "canceled"), GF_EUNAVAIL); /* taken, and no generation: malformed */
    store_call_dispose(&c);
    store_call_cancel(&c, GEN, USR);
    assert_int_equal(parse(&c, "not_cancelable"), GF_ECONFLICT);
    store_call_dispose(&c);
    store_call_cancel(&c, GEN, USR);
    assert_int_equal(parse(&c, "not_found"), GF_ENOTFOUND);
    store_call_dispose(&c);

    store_call_refs(&c, USR, NULL, NULL, 0, "{" GEN "}");
    assert_int_equal(parse(&c, "ok"), 0);
    store_call_dispose(&c);
    store_call_refs(&c, USR, NULL, NULL, 0, "{" GEN "}");
    assert_int_equal(parse(&c, "poses"), GF_ENOTFOUND);
    assert_string_equal(c.res.refs.missing, "poses");
    store_call_dispose(&c);

    store_call_refuse(&c, GEN, USR, NULL);
    assert_int_equal(parse(&c, "canceled"), 0);
    assert_string_equal(c.res.refuse.status, "canceled");
    store_call_dispose(&c);

    store_call_credit(&c, USR, -50, "oops", 100);
    assert_int_equal(parse(&c, "insufficient"), GF_ECREDITS);
    store_call_dispose(&c);
    /* A grant answers the account after it (farm_credit_balance), in the same call. */
    store_call_credit(&c, USR, 50, "top-up", 100);
    assert_int_equal(parse3(&c, "granted", "150", "30"), 0);
    assert_int_equal(c.res.balance.balance, 150);
    assert_int_equal(c.res.balance.held, 30);
    store_call_dispose(&c);
    store_call_credit(&c, USR, 50, "top-up", 100);
    assert_int_equal(parse3(&c, "granted", NULL, NULL), GF_EUNAVAIL); /* no account: malformed */
    store_call_dispose(&c);

    store_call_balance(&c, USR, 100);
    assert_int_equal(parse3(&c, "120", "30", NULL), 0);
    assert_int_equal(c.res.balance.balance, 120);
    assert_int_equal(c.res.balance.held, 30);
    store_call_dispose(&c);
    store_call_totals(&c);
    assert_int_equal(parse3(&c, "9000000000", "1", NULL), 0);
    assert_int_equal(c.res.balance.balance, 9000000000LL);
    store_call_dispose(&c);
}

static void test_no_row(void **state)
{
    (void)state;
    store_call_t c;
    store_call_generation(&c, GEN, USR);
    store__parse_row(&c, NULL);
    assert_int_equal(c.err.code, GF_ENOTFOUND);
    store_call_dispose(&c);
    store_call_balance(&c, USR, 0);
    store__parse_row(&c, NULL);
    assert_int_equal(c.err.code, GF_EUNAVAIL);
    store_call_dispose(&c);
    store_call_resume(&c, GEN);
    assert_int_equal(parse(&c, NULL), GF_ENOTFOUND); /* farm_worker_resume: NULL when absent */
    store_call_dispose(&c);
}

static void test_generation_read_whole(void **state)
{
    (void)state;
    store_call_t c;
    store_call_generation(&c, GEN, USR);
    assert_int_equal(parse(&c, gen_json), 0);
    const store_generation_t *g = &c.res.generation;
    assert_string_equal(g->id, GEN);
    assert_string_equal(g->kind, "pose");
    assert_string_equal(g->status, "running");
    assert_string_equal(g->stage, "storing");
    assert_int_equal(g->progress, 33);
    assert_int_equal(g->images, 3);
    assert_int_equal(g->images_done, 1);
    assert_int_equal(g->images_failed, 0);
    assert_int_equal(g->cost, 30);
    assert_int_equal(g->charged, 10);
    assert_int_equal(g->released, 0);
    assert_int_equal(g->attempts, 2);
    assert_null(g->provider);
    assert_null(g->error);
    assert_null(g->finished_at);
    assert_string_equal(g->created_at, "2024-01-02T03:04:05.678Z");
    assert_string_equal(g->started_at, "2024-01-02T03:04:06.000Z");
    /* The user's own JSON stays JSON, compact, in its order. */
    assert_string_equal(g->params, "{\"seed\":7,\"prompt\":\"a\"}");
    assert_string_equal(g->metadata, "{\"b\":[1,2.5],\"a\":\"x\"}");
    assert_string_equal(g->failures, "[]");
    assert_int_equal(g->n_outputs, 2);
    assert_int_equal(g->outputs[0].index, 1);
    assert_int_equal(g->outputs[0].pose, 1);
    assert_string_equal(g->outputs[0].variant, "full");
    assert_string_equal(g->outputs[0].format, "png");
    assert_int_equal(g->outputs[0].width, 512);
    assert_int_equal(g->outputs[0].height, 768);
    assert_int_equal(g->outputs[0].bytes, 1234);
    assert_string_equal(g->outputs[0].sha256, "ab");
    assert_string_equal(g->outputs[0].storage_key, "u/g/1/full.png");
    assert_int_equal(g->outputs[0].has_seed, 1);
    assert_int_equal(g->outputs[0].seed, 8);
    assert_int_equal(g->outputs[1].has_seed, 0);
    assert_null(g->webhook); /* absent: no webhook_url */
    store_call_dispose(&c);
}

/* Each of these fails the whole result, names what is wrong, and leaks nothing. */
static void test_generation_malformed_refused(void **state)
{
    (void)state;
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"not json", "farm_generation_json"},
        {"[1, 2]", "(not an object)"},
        {"{\"id\": \"" GEN "\"}", "kind"},
        {"{\"id\": \"" GEN "-too-long-for-an-id\", \"kind\": \"pose\"}", "id"},
    };
    store_call_t c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store_call_generation(&c, GEN, USR);
        assert_malformed(&c, bad[i].json, bad[i].field);
        assert_null(c.res.generation.kind);
        store_call_dispose(&c);
    }
    /* A field of the wrong type, deep inside: everything read before it is freed. */
    static const char *const swaps[][2] = {
        {"\"progress\": 33", "\"progress\": \"33\""},
        {"\"status\": \"running\"", "\"status\": 1"},
        {"\"width\": 64", "\"width\": null"},
        {"\"created_at\": \"2024-01-02T03:04:05.678Z\"", "\"created_at\": null"},
        {"\"outputs\": [", "\"outputs\": [7, "},
    };
    for (size_t i = 0; i < sizeof(swaps) / sizeof(swaps[0]); i++) {
        char text[2048];
        const char *at = strstr(gen_json, swaps[i][0]);
        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - gen_json), gen_json, swaps[i][1],
                 at + strlen(swaps[i][0]));
        store_call_generation(&c, GEN, USR);
        assert_malformed(&c, text, "malformed farm_generation_json result");
        assert_int_equal(c.res.generation.n_outputs, 0);
        assert_null(c.res.generation.outputs);
        store_call_dispose(&c);
    }
}

static void test_list_page(void **state)
{
    (void)state;
    store_call_t c;
    char text[4096];
    snprintf(text, sizeof(text), "{\"items\": [%s, %s], \"next_cursor\": \"1700.%s\"}", gen_json,
             gen_json, GEN);
    store_call_list(&c, USR, NULL, NULL, 2, NULL);
    assert_int_equal(parse(&c, text), 0);
    assert_int_equal(c.res.list.n, 2);
    assert_string_equal(c.res.list.items[1].status, "running");
    assert_string_equal(c.res.list.next_cursor, "1700." GEN);
    store_call_dispose(&c);

    store_call_list(&c, USR, NULL, NULL, 2, NULL);
    assert_int_equal(parse(&c, "{\"items\": [], \"next_cursor\": null}"), 0);
    assert_int_equal(c.res.list.n, 0);
    assert_null(c.res.list.next_cursor);
    store_call_dispose(&c);

    /* The second item is broken: the first one read is freed too. */
    snprintf(text, sizeof(text), "{\"items\": [%s, {\"id\": 3}], \"next_cursor\": null}", gen_json);
    store_call_list(&c, USR, NULL, NULL, 2, NULL);
    assert_malformed(&c, text, "farm_generations_page");
    assert_null(c.res.list.items);
    store_call_dispose(&c);

    store_call_list(&c, USR, NULL, NULL, 2, NULL);
    assert_malformed(&c, "{\"items\": {}, \"next_cursor\": null}", "items");
    store_call_dispose(&c);
}

static void test_ledger_page(void **state)
{
    (void)state;
    store_call_t c;
    store_call_ledger(&c, USR, 20, NULL);
    assert_int_equal(
        parse(&c, "{\"items\": [{\"kind\": \"capture\", \"amount\": 10, \"reason\": null, "
                  "\"created_at\": \"t1\", \"image_index\": 0, \"generation_id\": \"" GEN "\"}, "
                  "{\"kind\": \"adjust\", \"amount\": -5, \"reason\": \"refund\", "
                  "\"created_at\": \"t0\", \"image_index\": null, \"generation_id\": null}], "
                  "\"next_cursor\": \"41\"}"),
        0);
    const store_ledger_result_t *l = &c.res.ledger;
    assert_int_equal(l->n, 2);
    assert_string_equal(l->items[0].kind, "capture");
    assert_int_equal(l->items[0].amount, 10);
    assert_null(l->items[0].reason);
    assert_int_equal(l->items[0].image_index, 0);
    assert_string_equal(l->items[0].generation_id, GEN);
    assert_string_equal(l->items[1].kind, "adjust"); /* the api names it a grant */
    assert_int_equal(l->items[1].amount, -5);
    assert_string_equal(l->items[1].reason, "refund");
    assert_int_equal(l->items[1].image_index, -1);
    assert_null(l->items[1].generation_id);
    assert_string_equal(l->next_cursor, "41");
    store_call_dispose(&c);

    store_call_ledger(&c, USR, 20, NULL);
    assert_malformed(&c,
                     "{\"items\": [{\"kind\": \"grant\", \"amount\": 1.5, "
                     "\"reason\": null, \"created_at\": \"t\", \"image_index\": "
                     "null, \"generation_id\": null}], \"next_cursor\": null}",
                     "amount");
    assert_null(c.res.ledger.items);
    store_call_dispose(&c);
}

static void test_sweep(void **state)
{
    (void)state;
    store_call_t c;
    store_call_sweep(&c, 60, 100);
    assert_int_equal(parse(&c, "{\"locked\": false}"), 0);
    assert_int_equal(c.res.sweep.locked, 0);
    assert_int_equal(c.res.sweep.n_candidates, 0);
    store_call_dispose(&c);

    store_call_sweep(&c, 60, 100);
    assert_int_equal(
        parse(&c, "{\"locked\": true, \"expired\": [{\"id\": \"" GEN "\", \"user_id\": \"" USR
                  "\"}], \"candidates\": [{\"id\": \"" GEN "\", \"plan\": \"pro\", \"params\": "
                  "{\"prompt\": \"a b\", \"count\": 1}, \"status\": \"queued\", \"user_id\": \"" USR
                  "\", \"deadline_ms\": 1700000000000, \"fence\": 0}, {\"id\": \"" GEN
                  "\", \"plan\": \"free\", \"params\": {}, \"status\": \"running\", "
                  "\"user_id\": \"" USR "\", \"deadline_ms\": null, \"fence\": 3}], "
                  "\"canceling\": [{\"id\": \"" GEN "\", \"user_id\": \"" USR "\"}]}"),
        0);
    const store_sweep_result_t *s = &c.res.sweep;
    assert_int_equal(s->locked, 1);
    assert_int_equal(s->n_expired, 1);
    assert_string_equal(s->expired[0].id, GEN);
    assert_string_equal(s->expired[0].user_id, USR);
    assert_int_equal(s->n_candidates, 2);
    assert_string_equal(s->candidates[0].plan, "pro");
    assert_string_equal(s->candidates[0].status, "queued");
    assert_string_equal(s->candidates[0].params, "{\"prompt\":\"a b\",\"count\":1}");
    assert_int_equal(s->candidates[0].deadline_ms, 1700000000000LL);
    assert_int_equal(s->candidates[1].deadline_ms, 0); /* none */
    assert_int_equal(s->candidates[0].fence, 0);
    assert_int_equal(s->candidates[1].fence, 3); /* the sweeper enqueues it above this */
    assert_int_equal(s->n_canceling, 1);
    assert_string_equal(s->canceling[0].id, GEN);
    store_call_dispose(&c);

    store_call_sweep(&c, 60, 100);
    assert_malformed(&c,
                     "{\"locked\": true, \"expired\": [], \"candidates\": [{\"id\": "
                     "\"" GEN "\", \"plan\": \"pro\"}]}",
                     "farm_sweep");
    assert_null(c.res.sweep.candidates);
    store_call_dispose(&c);

    store_call_sweep(&c, 60, 100);
    assert_malformed(&c, "{\"locked\": \"yes\"}", "locked");
    store_call_dispose(&c);
}

static void test_resume(void **state)
{
    (void)state;
    store_call_t c;
    store_call_resume(&c, GEN);
    assert_int_equal(parse(&c, "{\"settled\": [0, 2], \"pose_keys\": {\"1\": \"u/p1.png\"}, "
                               "\"identity_key\": \"u/id.png\", \"provider_requests\": "
                               "{\"3\": \"bfl:abc\", \"10\": \"hf:x:y\"}}"),
                     0);
    const store_resume_result_t *r = &c.res.resume;
    assert_int_equal(r->n_settled, 2);
    assert_int_equal(r->settled[1], 2);
    assert_int_equal(r->n_requests, 2);
    int seen = 0;
    for (size_t i = 0; i < r->n_requests; i++) {
        if (r->requests[i].index == 3)
            seen += strcmp(r->requests[i].token, "bfl:abc") == 0;
        if (r->requests[i].index == 10)
            seen += strcmp(r->requests[i].token, "hf:x:y") == 0;
    }
    assert_int_equal(seen, 2);
    assert_string_equal(r->identity_key, "u/id.png");
    assert_int_equal(r->n_pose_keys, 1);
    assert_int_equal(r->pose_keys[0].pose, 1);
    assert_string_equal(r->pose_keys[0].storage_key, "u/p1.png");
    store_call_dispose(&c);

    store_call_resume(&c, GEN);
    assert_int_equal(parse(&c, "{\"settled\": [], \"pose_keys\": {}, \"identity_key\": null, "
                               "\"provider_requests\": {}}"),
                     0);
    assert_int_equal(c.res.resume.n_requests, 0);
    assert_null(c.res.resume.identity_key);
    store_call_dispose(&c);

    static const char *const bad[] = {
        "{\"settled\": [\"0\"], \"pose_keys\": {}, \"identity_key\": null, "
        "\"provider_requests\": {}}",
        "{\"settled\": [], \"pose_keys\": {}, \"identity_key\": null, "
        "\"provider_requests\": {\"0\": \"hf:1\", \"one\": \"hf:2\"}}",
        "{\"settled\": [1], \"pose_keys\": {\"0\": 5}, \"identity_key\": \"k\", "
        "\"provider_requests\": {\"0\": \"hf:1\"}}",
        "{\"settled\": [1], \"provider_requests\": {}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store_call_resume(&c, GEN);
        assert_malformed(&c, bad[i], "malformed farm_worker_resume result");
        assert_null(c.res.resume.settled);
        assert_null(c.res.resume.requests);
        assert_null(c.res.resume.identity_key);
        store_call_dispose(&c);
    }
}

/* The lifecycle's results (migrations/0019): keys, outcomes, a deleted output, uploads. */
static void test_lifecycle_results(void **state)
{
    (void)state;
    store_call_t c;
    store_call_generation_delete(&c, GEN, USR);
    assert_int_equal(parse(&c, "{\"outcome\": \"deleted\", \"keys\": [\"u/g/0-full.webp\", "
                               "\"u/g/0-thumb.jpg\"]}"),
                     GF_OK);
    assert_int_equal(c.res.keys.n, 2);
    assert_string_equal(c.res.keys.keys[1], "u/g/0-thumb.jpg");
    store_call_dispose(&c);
    store_call_generation_delete(&c, GEN, USR);
    assert_int_equal(parse(&c, "{\"outcome\": \"not_deletable\", \"keys\": []}"), GF_ECONFLICT);
    store_call_dispose(&c);
    store_call_upload_delete(&c, GEN, USR);
    assert_int_equal(parse(&c, "{\"outcome\": \"not_found\", \"keys\": []}"), GF_ENOTFOUND);
    store_call_dispose(&c);
    store_call_upload_delete(&c, GEN, USR);
    assert_int_equal(parse(&c, "{\"outcome\": \"deleted\", \"keys\": [7]}"), GF_EUNAVAIL);
    assert_int_equal(c.res.keys.n, 0); /* a bad shape leaves nothing */
    store_call_dispose(&c);

    store_call_lifecycle(&c, 3, 30, 7);
    assert_int_equal(parse(&c, "{\"keys\": [\"k\"], \"outputs_expired\": 3, "
                               "\"uploads_expired\": 1, \"idempotency_purged\": 2}"),
                     GF_OK);
    assert_int_equal(c.res.keys.n, 1);
    assert_int_equal(c.res.keys.outputs_expired, 3);
    assert_int_equal(c.res.keys.uploads_expired, 1);
    assert_int_equal(c.res.keys.idempotency_purged, 2);
    store_call_dispose(&c);

    store_call_uploads(&c, USR, 2, "1700000000000000." GEN);
    assert_string_equal(c._params[2], "1700000000000000");
    assert_string_equal(c._params[3], GEN);
    assert_int_equal(parse(&c, "{\"items\": [{\"id\": \"" GEN "\", \"bytes\": 10, "
                               "\"width\": 3, \"format\": \"png\", \"height\": 4, "
                               "\"created_at\": \"2024-01-02T03:04:05.678Z\"}], "
                               "\"next_cursor\": null}"),
                     GF_OK);
    assert_int_equal(c.res.uploads.n, 1);
    assert_string_equal(c.res.uploads.items[0].format, "png");
    assert_int_equal(c.res.uploads.items[0].height, 4);
    assert_null(c.res.uploads.next_cursor);
    store_call_dispose(&c);

    /* A deleted output: no storage key, `deleted`; a live one must have its key. */
    store_call_generation(&c, GEN, USR);
    const char *deleted = "{\"id\": \"" GEN "\", \"cost\": 10, \"kind\": \"avatar\", "
                          "\"error\": null, \"stage\": null, \"images\": 1, \"params\": {}, "
                          "\"status\": \"succeeded\", \"charged\": 10, \"outputs\": "
                          "[{\"pose\": 0, \"seed\": 1, \"bytes\": 5, \"index\": 0, \"width\": "
                          "64, \"format\": \"webp\", \"height\": 64, \"sha256\": \"cd\", "
                          "\"deleted\": true, \"variant\": \"full\", \"storage_key\": null}], "
                          "\"attempts\": 1, \"failures\": [], \"metadata\": null, "
                          "\"progress\": 100, \"provider\": null, \"released\": 0, "
                          "\"created_at\": \"x\", \"started_at\": null, \"finished_at\": null, "
                          "\"images_done\": 1, \"images_failed\": 0}";
    assert_int_equal(parse(&c, deleted), GF_OK);
    assert_int_equal(c.res.generation.n_outputs, 1);
    assert_true(c.res.generation.outputs[0].deleted);
    assert_null(c.res.generation.outputs[0].storage_key);
    store_call_dispose(&c);

    const char *keys[] = {"u/g/0-full.webp", "u/uploads/x.png"};
    store_call_storage_deleted(&c, keys, 2);
    assert_string_equal(c._params[0], "{\"u/g/0-full.webp\",\"u/uploads/x.png\"}");
    store_call_dispose(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstates_translate_to_statuses),
        cmocka_unit_test(test_accept_outcomes),
        cmocka_unit_test(test_worker_outcomes),
        cmocka_unit_test(test_api_outcomes),
        cmocka_unit_test(test_no_row),
        cmocka_unit_test(test_generation_read_whole),
        cmocka_unit_test(test_generation_malformed_refused),
        cmocka_unit_test(test_list_page),
        cmocka_unit_test(test_ledger_page),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_lifecycle_results),
        cmocka_unit_test(test_accept_batch_outcomes_are_each_their_own),
        cmocka_unit_test(test_accept_resolve),
        cmocka_unit_test(test_accept_batch_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
