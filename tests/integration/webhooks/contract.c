/*
 * tests/integration/webhooks/contract.c - what a webhook carries (API.md,
 * Webhooks): the terminal event signed and shaped as GET, the started and
 * image events with their events' data, and webhook_events and the types as
 * api/openapi/openapi.json names them. The farm and the receiver (which
 * checks every signature with the `standardwebhooks` package and a tampered
 * copy of every body) are tests/support/webhooks_harness.c's.
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
#include <sys/wait.h>
#include <unistd.h>

#include "api_harness.h"
#include "support.h"
#include "webhooks_harness.h"

/* The terminal event of an avatar: signed (checked by standardwebhooks), the generation as GET
 * shows it, its output's signed URL serving the image. */
static void test_terminal_event_delivered_and_verified(void **state)
{
    (void)state;
    char id[37];
    wh_create("200", "basic", NULL, id);
    json_t *g = wh_wait_webhook(id, "delivered", 1, 60);
    wh_assert_webhook(g, 1, 200);
    assert_true(json_is_null(json_object_get(json_object_get(g, "webhook"), "next_attempt_at")));
    json_t *got = wh_wait_received("basic", 1, 10);
    assert_int_equal(json_array_size(got), 1);
    json_t *req = json_array_get(got, 0);
    wh_assert_signed(req);
    assert_string_equal(wh_str(req, "method"), "POST");
    assert_string_equal(wh_str(req, "content_type"), "application/json");
    assert_non_null(strstr(wh_str(req, "user_agent"), "genfarm"));
    assert_int_equal(strlen(wh_str(req, "id")), 36);
    json_t *body = json_object_get(req, "body");
    assert_string_equal(wh_str(body, "type"), "succeeded");
    assert_non_null(wh_str(body, "timestamp"));
    json_t *data = json_object_get(body, "data");
    assert_string_equal(wh_str(data, "id"), id);
    assert_string_equal(wh_str(data, "status"), "succeeded");
    assert_string_equal(wh_str(data, "finished_at"), wh_str(g, "finished_at"));
    json_t *out = json_array_get(json_object_get(data, "outputs"), 0);
    assert_null(json_object_get(out, "storage_key"));
    const char *url = wh_str(out, "url");
    assert_non_null(url);
    assert_true(strncmp(url, "/v1/files/", 10) == 0);
    char full[1500];
    snprintf(full, sizeof(full), "%s%s", au_base, url);
    ts_http_t f = ts_http("GET", full, NULL, NULL, 0);
    assert_int_equal(f.status, 200); /* the URL in the webhook is as good as GET's */
    ts_http_dispose(&f);
    json_decref(got);
    json_decref(g);
}

/* The values api/openapi/openapi.json allows for a schema's property (its items' for an
 * array); a new reference. */
static json_t *openapi_enum(const char *schema, const char *property)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/api/openapi/openapi.json", ts_env("FARM_TEST_SOURCE_DIR"));
    json_t *doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_t *p = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), schema),
            "properties"),
        property);
    if (json_object_get(p, "items") != NULL)
        p = json_object_get(p, "items");
    json_t *values = json_incref(json_object_get(p, "enum"));
    json_decref(doc);
    assert_true(json_array_size(values) > 0);
    return values;
}

static int in_enum(const json_t *values, const char *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(values, i, e)
    {
        if (strcmp(json_string_value(e), v) == 0)
            return 1;
    }
    return 0;
}

/* What the document offers for webhook_events the api takes, and nothing else. */
static void test_the_documents_webhook_events_are_taken(void **state)
{
    (void)state;
    json_t *values = openapi_enum("GenerationRequest", "webhook_events");
    static const char *const asked[] = {"started", "image", "queued", "progress", "succeeded"};
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 AVATAR "\"webhook_url\":\"%s/hook/200?t=doc\",\"webhook_events\":[\"%s\"]}",
                 wh_hook_base, asked[i]);
        ts_http_t r = au_call("POST", "/v1/generations", wh_tok, body, NULL);
        int offered = in_enum(values, asked[i]);
        if (r.status != (offered ? 202 : 400))
            fprintf(stderr, "webhook_events [%s]: %ld %s\n", asked[i], r.status, r.body);
        assert_int_equal(r.status, offered ? 202 : 400);
        if (!offered)
            assert_non_null(strstr(r.body, "\"field\":\"webhook_events\""));
        ts_http_dispose(&r);
    }
    assert_true(in_enum(values, "started") && in_enum(values, "image"));
    json_decref(values);
}

/* webhook_events: started and image too, each its own webhook-id; the terminal one last. */
static void test_started_and_image_events(void **state)
{
    (void)state;
    char id[37];
    wh_create("200", "events", ",\"count\":2,\"webhook_events\":[\"started\",\"image\"]", id);
    json_t *g = wh_wait_webhook(id, "delivered", 1, 60);
    /* GET's params are the request's as accepted, the webhook's among them. */
    json_t *params = json_object_get(g, "params");
    char want[256];
    snprintf(want, sizeof(want), "%s/hook/200?t=events", wh_hook_base);
    assert_string_equal(wh_str(params, "webhook_url"), want);
    json_t *events = json_pack("[s, s]", "started", "image");
    assert_true(json_equal(json_object_get(params, "webhook_events"), events));
    json_decref(events);
    json_decref(g);
    json_t *got = wh_wait_received("events", 4, 20);
    assert_int_equal(json_array_size(got), 4);
    int started = 0, image = 0, terminal = 0;
    size_t i;
    json_t *e, *types = openapi_enum("WebhookPayload", "type");
    json_array_foreach(got, i, e)
    {
        wh_assert_signed(e);
        json_t *body = json_object_get(e, "body");
        const char *type = wh_str(body, "type");
        assert_true(in_enum(types, type)); /* a type the document names */
        json_t *data = json_object_get(body, "data");
        assert_string_equal(wh_str(data, "id"), id);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(wh_str(json_array_get(got, k), "id"), wh_str(e, "id"));
        /* The data of the event as the event stream has it (API.md). */
        if (strcmp(type, "started") == 0) {
            started++;
            assert_string_equal(wh_str(data, "stage"), "starting");
            assert_true(json_is_integer(json_object_get(data, "progress")));
        } else if (strcmp(type, "image") == 0) {
            image++;
            json_t *o = json_array_get(json_object_get(data, "outputs"), 0);
            assert_true(strncmp(wh_str(o, "url"), "/v1/files/", 10) == 0);
            assert_true(json_is_integer(json_object_get(data, "index")));
            assert_int_equal(json_integer_value(json_object_get(data, "pose")), 0);
            json_int_t progress = json_integer_value(json_object_get(data, "progress"));
            assert_true(progress == 50 || progress == 100);
        } else if (strcmp(type, "succeeded") == 0)
            terminal++;
    }
    assert_int_equal(started, 1);
    assert_int_equal(image, 2);
    assert_int_equal(terminal, 1);
    json_decref(types);
    json_decref(got);
}

/*
 * webhook_events ["image"]: the receiver gets every image event before the terminal one,
 * with one image (whose event is written in the finish's own transaction) and with two.
 * Three generations of each, created together.
 */
static void test_image_events_arrive_before_the_terminal_one(void **state)
{
    (void)state;
    enum { GENS = 3 };
    for (int count = 1; count <= 2; count++) {
        char ids[GENS][37], tag[GENS][16], more[96];
        snprintf(more, sizeof(more), ",\"count\":%d,\"webhook_events\":[\"image\"]", count);
        for (int k = 0; k < GENS; k++) {
            snprintf(tag[k], sizeof(tag[k]), "order%d-%d", count, k);
            wh_create("200", tag[k], more, ids[k]);
        }
        for (int k = 0; k < GENS; k++) {
            json_decref(wh_wait_webhook(ids[k], "delivered", 1, 60));
            json_t *got = wh_wait_received(tag[k], (size_t)count + 1, 20);
            assert_int_equal(json_array_size(got), count + 1);
            char order[64] = "", want[64] = "";
            size_t i;
            json_t *e;
            json_array_foreach(got, i, e)
            {
                const char *type = wh_str(json_object_get(e, "body"), "type");
                size_t n = strlen(order);
                snprintf(order + n, sizeof(order) - n, "%s%s", i ? "," : "", type ? type : "?");
            }
            json_decref(got);
            for (int n = 0; n < count; n++)
                strcat(want, "image,");
            strcat(want, "succeeded");
            if (strcmp(order, want) != 0)
                fail_msg("%s: the receiver got %s, not %s", ids[k], order, want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terminal_event_delivered_and_verified),
        cmocka_unit_test(test_started_and_image_events),
        cmocka_unit_test(test_image_events_arrive_before_the_terminal_one),
        cmocka_unit_test(test_the_documents_webhook_events_are_taken),
    };
    return cmocka_run_group_tests(tests, wh_setup, wh_teardown);
}
