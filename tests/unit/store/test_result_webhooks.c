/*
 * tests/unit/store/test_result_webhooks.c - store/result_webhooks.c: the
 * webhook outbox's results (farm_webhook_claim's JSON, farm_webhook_result's
 * row, farm_webhooks_list's array) read into store.h's typed results, and
 * malformed shapes refused naming the field, leaving nothing allocated (LSan
 * checks). Rows are built by hand, no Postgres needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "store_int.h"
#include "result_util.h"

/* farm_webhook_claim's JSON, farm_webhook_result's row and farm_webhooks_list's array. */
static void test_webhook_results(void **state)
{
    (void)state;
    store_call_t c;
    store_call_webhook_claim(&c, 8, 60);
    assert_int_equal(
        parse(&c, "{\"items\": [{\"id\": \"" GEN
                  "\", \"url\": \"https://h/x\", \"host\": \"h\", \"data\": "
                  "{\"id\": \"g\", \"outputs\": []}, \"event\": \"succeeded\", \"attempts\": 9, "
                  "\"window_attempts\": 2, "
                  "\"created_ms\": 1700000000000, \"lease_token\": 41, \"generation_id\": \"" USR
                  "\", \"first_attempt_ms\": null}], \"now_ms\": 1700000000500}"),
        0);
    assert_int_equal(c.res.webhook_claim.n, 1);
    assert_int_equal(c.res.webhook_claim.now_ms, 1700000000500LL);
    store_webhook_claimed_t *w = &c.res.webhook_claim.items[0];
    assert_string_equal(w->id, GEN);
    assert_string_equal(w->generation_id, USR);
    assert_string_equal(w->url, "https://h/x");
    assert_string_equal(w->host, "h");
    assert_string_equal(w->event, "succeeded");
    assert_string_equal(w->data, "{\"id\":\"g\",\"outputs\":[]}");
    assert_int_equal(w->attempts, 9);
    assert_int_equal(w->window_attempts, 2); /* since `farm webhooks retry` */
    assert_int_equal(w->lease_token, 41);
    assert_int_equal(w->created_ms, 1700000000000LL);
    assert_int_equal(w->first_attempt_ms, 0);
    store_call_dispose(&c);

    /* Without a per-host bound, a host may have every row the claim asks for; with one, the
     * hosts the deliverer holds deliveries of go as {"host": held}; a host that is not UTF-8
     * is refused. */
    store_call_webhook_claim(&c, 8, 60);
    assert_string_equal(c._params[3], "8");
    assert_null(c._params[4]);
    store_call_dispose(&c);
    store_webhook_host_t busy[2] = {{.host = "a.example", .held = 2}, {.host = "[::1]", .held = 1}};
    store_webhook_claim_req_t q = {
        .limit = 16, .lease_s = 60, .per_host = 2, .busy = busy, .nbusy = 2};
    assert_int_equal(store_call_webhook_claim_after(&c, &q), 0);
    assert_string_equal(c._params[0], "16");
    assert_string_equal(c._params[3], "2");
    assert_string_equal(c._params[4], "{\"a.example\":2,\"[::1]\":1}");
    assert_null(c._params[2]); /* nothing to record */
    store_call_dispose(&c);
    busy[1].host = "caf\xc3";
    assert_int_equal(store_call_webhook_claim_after(&c, &q), GF_EINVAL);
    store_call_dispose(&c);

    /* A shape that does not match leaves nothing (LSan checks). */
    store_call_webhook_claim(&c, 8, 60);
    assert_malformed(&c, "{\"items\": [{\"id\": 3}], \"now_ms\": 1}", "farm_webhook_claim");
    store_call_dispose(&c);

    /* A claim that records attempts first: they go as $3, one result each comes back. */
    store_webhook_outcome_t o[2] = {
        {.id = GEN, .lease_token = 41, .outcome = "delivered", .status_code = 200},
        {.id = USR, .lease_token = 7, .outcome = "retry", .error = "timeout", .next_ms = 5000}};
    assert_int_equal(
        store_call_webhook_claim_after(
            &c, &(store_webhook_claim_req_t){.lease_s = 60, .results = o, .nresults = 2}),
        0);
    assert_non_null(strstr(c._params[2], "\"token\":41"));
    assert_non_null(strstr(c._params[2], "\"status_code\":null"));
    assert_int_equal(parse(&c, "{\"items\": [], \"now_ms\": 1, \"results\": [{\"lag_s\": "
                               "0.5, \"outcome\": \"recorded\"}, {\"lag_s\": null, "
                               "\"outcome\": \"stale\"}]}"),
                     0);
    assert_int_equal(c.res.webhook_claim.n, 0);
    assert_int_equal(c.res.webhook_claim.n_results, 2);
    assert_int_equal(c.res.webhook_claim.results[0].recorded, 1);
    assert_true(c.res.webhook_claim.results[0].lag_s > 0.49);
    assert_int_equal(c.res.webhook_claim.results[1].recorded, 0);
    assert_true(c.res.webhook_claim.results[1].lag_s < 0);
    store_call_dispose(&c);
    /* Not one result per attempt: malformed, nothing left. */
    assert_int_equal(
        store_call_webhook_claim_after(
            &c, &(store_webhook_claim_req_t){.lease_s = 60, .results = o, .nresults = 2}),
        0);
    assert_int_equal(parse(&c, "{\"items\": [], \"now_ms\": 1, \"results\": [{\"lag_s\": "
                               "null, \"outcome\": \"stale\"}]}"),
                     GF_EUNAVAIL);
    store_call_dispose(&c);
    assert_int_equal(
        store_call_webhook_claim_after(
            &c, &(store_webhook_claim_req_t){.lease_s = 60,
                                             .results = o,
                                             .nresults = STORE_WEBHOOK_RESULTS_MAX + 1}),
        GF_EINVAL);
    store_call_dispose(&c);
    /* An attempt's error text cut inside a multi-byte character (curl's message in its
     * buffer) loses that character; text that is not UTF-8 at all goes as null. Neither keeps
     * the batch from being recorded. */
    store_webhook_outcome_t bad[2] = {
        {.id = GEN, .lease_token = 1, .outcome = "retry", .error = "host caf\xc3", .next_ms = 1},
        {.id = USR, .lease_token = 2, .outcome = "retry", .error = "\xff\xfe", .next_ms = 1}};
    assert_int_equal(
        store_call_webhook_claim_after(
            &c, &(store_webhook_claim_req_t){.lease_s = 60, .results = bad, .nresults = 2}),
        0);
    assert_non_null(strstr(c._params[2], "\"error\":\"host caf\""));
    assert_non_null(strstr(c._params[2], "\"error\":null"));
    store_call_dispose(&c);

    /* The last image's finish with the terminal delivery it leased (4th column). */
    store_call_image_done_finish(&c, GEN, 4, 0, "[]", 60, 0);
    assert_string_equal(c._params[4], "60");
    store_row_t row = {{"settled", "finished", "succeeded",
                        "{\"items\": [{\"id\": \"" GEN "\", \"url\": \"https://h/x\", "
                        "\"host\": null, \"data\": {}, \"event\": \"succeeded\", \"attempts\": 0, "
                        "\"window_attempts\": 0, "
                        "\"created_ms\": 1, \"lease_token\": 9, \"generation_id\": \"" USR
                        "\", \"first_attempt_ms\": null}], \"now_ms\": 2}"}};
    store__parse_row(&c, &row);
    assert_int_equal(c.err.code, 0);
    assert_int_equal(c.res.image.finished, 1);
    assert_int_equal(c.res.image.webhook.n, 1);
    assert_int_equal(c.res.image.webhook.items[0].lease_token, 9);
    assert_null(c.res.image.webhook.items[0].host); /* a URL without one */
    assert_int_equal(c.res.image.webhook.now_ms, 2);
    store_call_dispose(&c);

    store_call_webhook_result(&c, GEN, 41, "delivered", 200, NULL, 0);
    assert_string_equal(c._params[3], "200");
    assert_null(c._params[4]);
    assert_int_equal(parse3(&c, "recorded", "0.125", NULL), 0);
    assert_int_equal(c.res.webhook_result.recorded, 1);
    assert_true(c.res.webhook_result.lag_s > 0.12 && c.res.webhook_result.lag_s < 0.13);
    store_call_dispose(&c);
    store_call_webhook_result(&c, GEN, 40, "retry", 0, "timeout", 5000);
    assert_null(c._params[3]); /* no answer: NULL status */
    assert_int_equal(parse3(&c, "stale", NULL, NULL), 0);
    assert_int_equal(c.res.webhook_result.recorded, 0);
    assert_true(c.res.webhook_result.lag_s < 0);
    store_call_dispose(&c);

    store_call_webhook_list(&c, 1, NULL, 50);
    assert_int_equal(parse(&c, "[{\"id\": \"" GEN "\", \"url\": \"https://h/x\", \"event\": "
                               "\"failed\", \"status\": \"failed\", \"attempts\": 8, "
                               "\"last_error\": \"410\", \"created_at\": \"t\", \"delivered_at\": "
                               "null, \"generation_id\": \"" USR "\", \"next_attempt_at\": null, "
                               "\"last_status_code\": 410}]"),
                     0);
    assert_int_equal(c.res.webhook_list.n, 1);
    assert_string_equal(c.res.webhook_list.items[0].status, "failed");
    assert_int_equal(c.res.webhook_list.items[0].last_status_code, 410);
    assert_null(c.res.webhook_list.items[0].delivered_at);
    store_call_dispose(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_webhook_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
