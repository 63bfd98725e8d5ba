/*
 * tests/unit/imaging/test_params.c - imaging/params.c: every limit of
 * API.md's POST /v1/generations at its edge, each error naming its field,
 * the defaults, the payload (what is echoed, what is left out) and the
 * round trip request -> payload -> worker; a payload of the previous
 * version (the api's body copy) still parses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging.h"
#include "presets_util.h"

static int provider_ok(const char *name, void *data)
{
    (void)data;
    return strcmp(name, "hf") == 0 || strcmp(name, "local") == 0;
}

static int parse_as(img_params_mode mode, const char *json, img_params *p, img_params_err *e)
{
    img_params_opts o = {.mode = mode, .presets = pu_presets, .provider_ok = provider_ok};
    return img_params_parse(json, strlen(json), &o, p, e);
}

/* Parses a request built from `fmt`; asserts it is accepted. */
static void ok_request(img_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok_request(img_params *p, const char *fmt, ...)
{
    static char json[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    img_params_err e;
    int rc = parse_as(IMG_PARAMS_REQUEST, json, p, &e);
    if (rc != 0)
        fail_msg("refused (%s: %s): %s", e.field, e.message, json);
}

/* Parses a request built from `fmt`; asserts it is refused, naming `field`. */
static void bad_request(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bad_request(const char *field, const char *fmt, ...)
{
    static char json[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    img_params p;
    img_params_err e;
    int rc = parse_as(IMG_PARAMS_REQUEST, json, &p, &e);
    img_params_dispose(&p);
    if (rc != GF_EINVAL)
        fail_msg("accepted: %s", json);
    if (strcmp(e.field, field) != 0)
        fail_msg("field %s, not %s (%s): %s", e.field, field, e.message, json);
    assert_true(e.message[0] != '\0');
}

#define AVATAR "\"kind\":\"avatar\",\"prompt\":\"a fox\""

/* `n` copies of `s` (at most 8 KiB in all). */
static const char *rep(const char *s, int n)
{
    static char buf[2][8200];
    static int which;
    char *b = buf[which ^= 1];
    b[0] = '\0';
    for (int i = 0; i < n; i++)
        strcat(b, s);
    return b;
}

/* `n` poses of the first preset, as a JSON array. */
static const char *poses(int n)
{
    static char buf[2048];
    strcpy(buf, "[");
    for (int i = 0; i < n; i++)
        strcat(buf, i ? ",{\"preset\":\"standing-neutral\"}" : "{\"preset\":\"standing-neutral\"}");
    return strcat(buf, "]");
}

static void test_defaults(void **state)
{
    (void)state;
    img_params p;
    ok_request(&p, "{" AVATAR "}");
    assert_int_equal(p.kind, IMG_KIND_AVATAR);
    assert_string_equal(p.prompt, "a fox");
    assert_null(p.negative_prompt);
    assert_int_equal(p.width, IMG_PARAMS_SIZE_DEFAULT);
    assert_int_equal(p.height, IMG_PARAMS_SIZE_DEFAULT);
    assert_int_equal(p.count, 1);
    assert_int_equal(p.steps, IMG_PARAMS_STEPS_DEFAULT);
    assert_true(p.seed < 0);
    assert_true(p.guidance < 0);
    assert_string_equal(p.provider, "auto");
    assert_int_equal(p.images, 1);
    assert_int_equal(p.nposes, 0);
    assert_null(p.exports);
    assert_int_equal(p.deadline_s, 0);
    img_params_dispose(&p);
}

static void test_body_and_fields(void **state)
{
    (void)state;
    bad_request("", "not json");
    bad_request("", "[1]");
    bad_request("", "{" AVATAR ",\"prompt\":\"twice\"}"); /* a duplicate key is malformed */
    bad_request("colour", "{" AVATAR ",\"colour\":\"red\"}");
    bad_request("kind", "{\"prompt\":\"a fox\"}");
    bad_request("kind", "{\"kind\":\"portrait\",\"prompt\":\"a fox\"}");
    bad_request("kind", "{\"kind\":null,\"prompt\":\"a fox\"}");
    bad_request("prompt", "{\"kind\":\"avatar\"}");
    bad_request("prompt", "{\"kind\":\"avatar\",\"prompt\":null}");
    bad_request("prompt", "{\"kind\":\"avatar\",\"prompt\":7}");
}

static void test_text_limits(void **state)
{
    (void)state;
    img_params p;
    ok_request(&p, "{\"kind\":\"avatar\",\"prompt\":\"%s\"}", rep("ab", 1000));
    img_params_dispose(&p);
    /* Characters, not bytes: 2000 two-byte characters are a valid prompt. */
    ok_request(&p, "{\"kind\":\"avatar\",\"prompt\":\"%s\"}", rep("\xc3\xa9", 2000));
    img_params_dispose(&p);
    bad_request("prompt", "{\"kind\":\"avatar\",\"prompt\":\"%sx\"}", rep("ab", 1000));
    bad_request("prompt", "{\"kind\":\"avatar\",\"prompt\":\"\"}");
    ok_request(&p, "{" AVATAR ",\"negative_prompt\":\"%s\"}", rep("a", 1000));
    assert_int_equal(strlen(p.negative_prompt), 1000);
    img_params_dispose(&p);
    ok_request(&p, "{" AVATAR ",\"negative_prompt\":\"\"}");
    img_params_dispose(&p);
    bad_request("negative_prompt", "{" AVATAR ",\"negative_prompt\":\"%s\"}", rep("a", 1001));
    bad_request("negative_prompt", "{" AVATAR ",\"negative_prompt\":[]}");
}

static void test_number_limits(void **state)
{
    (void)state;
    static const struct {
        const char *field;
        long long lo, hi;
    } ranges[] = {{"width", 256, 1536},      {"height", 256, 1536}, {"count", 1, 4},
                  {"seed", 0, 4294967295LL}, {"steps", 1, 50},      {"deadline_s", 1, 604800},
                  {"guidance", 0, 20}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        const char *f = ranges[i].field;
        img_params p;
        ok_request(&p, "{" AVATAR ",\"%s\":%lld}", f, ranges[i].lo);
        img_params_dispose(&p);
        ok_request(&p, "{" AVATAR ",\"%s\":%lld}", f, ranges[i].hi);
        img_params_dispose(&p);
        long long step = strcmp(f, "width") == 0 || strcmp(f, "height") == 0 ? 16 : 1;
        bad_request(f, "{" AVATAR ",\"%s\":%lld}", f, ranges[i].lo - step);
        bad_request(f, "{" AVATAR ",\"%s\":%lld}", f, ranges[i].hi + step);
        bad_request(f, "{" AVATAR ",\"%s\":\"%lld\"}", f, ranges[i].lo);
        /* Beyond 64 bits (jansson refuses the whole body): still the field, out of range. */
        bad_request(f, "{" AVATAR ",\"%s\":18446744073709551616}", f);
        bad_request(f, "{" AVATAR ",\"%s\":-99999999999999999999}", f);
    }
    /* Nested: the top-level field that holds it. */
    bad_request("identity", "{" AVATAR ",\"identity\":{\"generation_id\":\"x\","
                            "\"index\":99999999999999999999}}");
    bad_request("metadata", "{" AVATAR ",\"metadata\":{\"n\":[1,99999999999999999999]}}");
    /* A large real in metadata is refused too, but the field with the integer is named first. */
    bad_request("seed", "{" AVATAR ",\"metadata\":{\"v\":1e300},\"seed\":18446744073709551616}");
    bad_request("", "{" AVATAR ",\"seed\":1e999}");      /* a real beyond a double: malformed */
    bad_request("width", "{" AVATAR ",\"width\":1000}"); /* not a multiple of 16 */
    bad_request("height", "{" AVATAR ",\"height\":1024.0}");
    bad_request("guidance", "{" AVATAR ",\"guidance\":20.5}");
    bad_request("guidance", "{" AVATAR ",\"guidance\":-0.1}");
    img_params p;
    ok_request(&p, "{" AVATAR ",\"guidance\":3.5,\"seed\":4294967295,\"width\":512}");
    assert_true(p.guidance == 3.5 && !p.guidance_is_int);
    assert_int_equal(p.seed, 4294967295LL);
    assert_int_equal(p.width, 512);
    img_params_dispose(&p);
}

static void test_poses_and_images(void **state)
{
    (void)state;
    img_params p;
    ok_request(&p, "{\"kind\":\"pose\",\"prompt\":\"a\",\"count\":2,\"poses\":%s}", poses(20));
    assert_int_equal(p.nposes, 20);
    assert_int_equal(p.images, IMG_PARAMS_IMAGES_MAX);
    assert_non_null(p.poses[0].def);
    img_params_dispose(&p);
    bad_request("poses", "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":%s}", poses(21));
    bad_request("poses", "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[]}");
    bad_request("poses", "{\"kind\":\"pose\",\"prompt\":\"a\"}");
    bad_request("poses", "{\"kind\":\"pose\",\"prompt\":\"a\",\"count\":3,\"poses\":%s}",
                poses(14));
    bad_request("poses", "{" AVATAR ",\"poses\":%s}", poses(1));
    bad_request("poses", "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[{\"preset\":\"nope\"}]}");
    bad_request("poses", "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[{\"preset\":\"%s\"}]}",
                rep("a", IMG_PARAMS_PRESET_NAME_MAX + 1));
    bad_request("poses",
                "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[{\"preset\":\"standing-neutral\","
                "\"upload_id\":\"0b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e\"}]}");
    bad_request("poses",
                "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[{\"upload_id\":\"not-a-uuid\"}]}");
    ok_request(&p, "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[{\"upload_id\":"
                   "\"0b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e\"},{\"preset\":\"standing-neutral\"}]}");
    assert_string_equal(p.poses[0].upload_id, "0b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e");
    assert_null(p.poses[0].def);
    assert_string_equal(p.poses[1].preset, "standing-neutral");
    img_params_dispose(&p);
}

static void test_identity(void **state)
{
    (void)state;
    const char *id = "0b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e";
    img_params p;
    ok_request(&p, "{" AVATAR ",\"identity\":{\"upload_id\":\"%s\"}}", id);
    assert_string_equal(p.identity_upload, id);
    img_params_dispose(&p);
    ok_request(&p, "{" AVATAR ",\"identity\":{\"generation_id\":\"%s\",\"index\":39}}", id);
    assert_string_equal(p.identity_generation, id);
    assert_int_equal(p.identity_index, 39);
    img_params_dispose(&p);
    bad_request("identity", "{" AVATAR ",\"identity\":{\"generation_id\":\"%s\",\"index\":40}}",
                id);
    bad_request("identity", "{" AVATAR ",\"identity\":{\"generation_id\":\"%s\",\"index\":-1}}",
                id);
    bad_request("identity", "{" AVATAR ",\"identity\":{\"generation_id\":\"%s\"}}", id);
    bad_request("identity", "{" AVATAR ",\"identity\":{\"upload_id\":\"%s\",\"index\":0}}", id);
    bad_request("identity", "{" AVATAR ",\"identity\":\"%s\"}", id);
    bad_request("identity", "{" AVATAR ",\"identity\":{\"upload_id\":\"ABC\"}}");
}

static void test_exports_style_provider(void **state)
{
    (void)state;
    img_params p;
    ok_request(&p, "{" AVATAR ",\"exports\":[\"linkedin_post\",\"instagram_story\"]}");
    assert_int_equal(p.nexports, 2);
    assert_int_equal(p.n_export_defs, 2);
    assert_string_equal(p.export_defs[1]->name, "instagram_story");
    img_params_dispose(&p);
    /* a repeated name is refused, naming the field */
    bad_request("exports", "{" AVATAR ",\"exports\":[\"linkedin_post\",\"linkedin_post\"]}");
    bad_request("exports", "{" AVATAR ",\"exports\":[%s\"instagram_story\"]}",
                rep("\"linkedin_post\",", IMG_PARAMS_EXPORTS_MAX));
    bad_request("exports", "{" AVATAR ",\"exports\":[\"poster\"]}");
    bad_request("exports", "{" AVATAR ",\"exports\":[3]}");
    bad_request("exports", "{" AVATAR ",\"exports\":\"instagram_story\"}");
    ok_request(&p, "{" AVATAR ",\"style\":\"watercolor\"}");
    assert_non_null(p.style_def);
    assert_non_null(p.style_def->prompt_suffix);
    img_params_dispose(&p);
    bad_request("style", "{" AVATAR ",\"style\":\"cubist\"}");
    bad_request("style", "{" AVATAR ",\"style\":1}");
    ok_request(&p, "{" AVATAR ",\"provider\":\"hf\"}");
    assert_string_equal(p.provider, "hf");
    img_params_dispose(&p);
    ok_request(&p, "{" AVATAR ",\"provider\":\"auto\"}");
    img_params_dispose(&p);
    bad_request("provider", "{" AVATAR ",\"provider\":\"bfl\"}"); /* not configured */
    bad_request("provider", "{" AVATAR ",\"provider\":\"%s\"}",
                rep("h", IMG_PARAMS_PROVIDER_MAX + 1));
    bad_request("provider", "{" AVATAR ",\"provider\":true}");
}

static void test_webhook_and_metadata(void **state)
{
    (void)state;
    img_params p;
    /* "https://" + 2040 characters: 2048 bytes in all. */
    ok_request(&p, "{" AVATAR ",\"webhook_url\":\"https://%s\"}", rep("w", 2040));
    assert_int_equal(strlen(p.webhook_url), IMG_PARAMS_WEBHOOK_URL_MAX);
    img_params_dispose(&p);
    bad_request("webhook_url", "{" AVATAR ",\"webhook_url\":\"https://%s\"}", rep("w", 2041));
    bad_request("webhook_url", "{" AVATAR ",\"webhook_url\":\"http://example.com\"}");
    ok_request(&p, "{" AVATAR ",\"webhook_url\":\"HTTPS://h/\"}"); /* a scheme ignores case */
    img_params_dispose(&p);
    bad_request("webhook_url", "{" AVATAR ",\"webhook_url\":\"HTTP://example.com\"}");
    /* webhook_events: started and image, each once, with a webhook_url. */
    ok_request(&p, "{" AVATAR ",\"webhook_url\":\"https://h/\",\"webhook_events\":[\"image\","
                   "\"started\"]}");
    assert_int_equal(p.webhook_events, IMG_WEBHOOK_STARTED | IMG_WEBHOOK_IMAGE);
    img_params_dispose(&p);
    ok_request(&p, "{" AVATAR ",\"webhook_url\":\"https://h/\",\"webhook_events\":[]}");
    assert_int_equal(p.webhook_events, 0);
    img_params_dispose(&p);
    bad_request("webhook_events",
                "{" AVATAR ",\"webhook_url\":\"https://h/\",\"webhook_events\":[\"progress\"]}");
    bad_request("webhook_events", "{" AVATAR ",\"webhook_url\":\"https://h/\",\"webhook_events\":"
                                  "[\"image\",\"image\"]}");
    bad_request("webhook_events",
                "{" AVATAR ",\"webhook_url\":\"https://h/\",\"webhook_events\":\"image\"}");
    bad_request("webhook_events", "{" AVATAR ",\"webhook_events\":[\"started\"]}");
    /* {"k":"…"} compact: 8 bytes around the value. */
    ok_request(&p, "{" AVATAR ",\"metadata\":{\"k\":\"%s\"}}", rep("m", 2040));
    assert_int_equal(strlen(p.metadata), IMG_PARAMS_METADATA_MAX);
    img_params_dispose(&p);
    bad_request("metadata", "{" AVATAR ",\"metadata\":{\"k\":\"%s\"}}", rep("m", 2041));
    bad_request("metadata", "{" AVATAR ",\"metadata\":[1]}");
    /* A real Postgres would give back as an integer beyond 64 bits; one just inside is kept. */
    bad_request("metadata", "{" AVATAR ",\"metadata\":{\"n\":1e19}}");
    bad_request("metadata", "{" AVATAR ",\"metadata\":{\"a\":[{\"n\":-1.5e300}]}}");
    ok_request(&p, "{" AVATAR ",\"metadata\":{\"n\":9.2e18,\"m\":-1e-300}}");
    img_params_dispose(&p);
}

static void test_payload_round_trip(void **state)
{
    (void)state;
    img_params p, q;
    ok_request(&p,
               "{\"metadata\":{\"ref\":\"x\"},\"kind\":\"pose\",\"prompt\":\"a \\\"dancer\\\"\","
               "\"negative_prompt\":\"blurry\",\"count\":2,\"seed\":42,\"guidance\":3,"
               "\"style\":\"watercolor\",\"identity\":{\"upload_id\":"
               "\"0b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e\"},\"poses\":[{\"preset\":"
               "\"standing-neutral\"},{\"upload_id\":\"1b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e\"}],"
               "\"exports\":[\"instagram_story\"],\"deadline_s\":600,"
               "\"webhook_url\":\"https://example.com/hook\"}");
    char *text = img_params_payload(&p);
    assert_string_equal(
        text, "{\"kind\":\"pose\",\"prompt\":\"a \\\"dancer\\\"\",\"negative_prompt\":\"blurry\","
              "\"width\":1024,\"height\":1024,\"count\":2,\"seed\":42,\"steps\":28,\"guidance\":3,"
              "\"style\":\"watercolor\",\"identity\":{\"upload_id\":"
              "\"0b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e\"},\"poses\":[{\"preset\":"
              "\"standing-neutral\"},{\"upload_id\":\"1b6e4c9e-8a6f-4e0e-9d8c-1f2a3b4c5d6e\"}],"
              "\"exports\":[\"instagram_story\"],\"provider\":\"auto\",\"deadline_s\":600}");
    assert_int_equal(parse_as(IMG_PARAMS_PAYLOAD, text, &q, NULL), 0);
    char *again = img_params_payload(&q);
    assert_string_equal(again, text);
    assert_int_equal(q.images, 4);
    assert_int_equal(q.seed, 42);
    assert_true(q.guidance == 3 && q.guidance_is_int);
    assert_non_null(q.style_def);
    assert_non_null(q.poses[0].def);
    assert_null(q.metadata);
    assert_null(q.webhook_url);
    free(again);
    free(text);
    img_params_dispose(&q);
    img_params_dispose(&p);
}

/* A field given as null is echoed as null, as the body copy of earlier versions did. */
static void test_nulls_are_echoed(void **state)
{
    (void)state;
    img_params p;
    bad_request("", "{" AVATAR ",\"guidance\":null,\"guidance\":null}");
    ok_request(&p, "{" AVATAR ",\"style\":null,\"guidance\":null,\"poses\":null,\"exports\":null,"
                   "\"provider\":null,\"deadline_s\":null,\"identity\":null,\"width\":null,"
                   "\"negative_prompt\":null,\"metadata\":null,\"seed\":7}");
    assert_null(p.provider);
    char *text = img_params_payload(&p);
    assert_string_equal(text, "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"negative_prompt\":null,"
                              "\"width\":1024,\"height\":1024,\"count\":1,\"seed\":7,\"steps\":28,"
                              "\"guidance\":null,\"style\":null,\"identity\":null,\"poses\":null,"
                              "\"exports\":null,\"provider\":null,\"deadline_s\":null}");
    free(text);
    img_params_dispose(&p);
}

/*
 * What a worker reads: unknown fields are tolerated, limits are not, and
 * neither is a preset this worker does not have (a job run without its pose,
 * style or export would be charged for what it was not made with); read
 * without presets (the CLI), the names are kept as they are.
 */
static void test_payload_mode(void **state)
{
    (void)state;
    img_params p;
    /* The previous api's payload: the body's own order, provider last. */
    const char *old = "{\"prompt\":\"a fox\",\"kind\":\"avatar\",\"exports\":["
                      "\"instagram_story\"],\"style\":\"watercolor\",\"width\":512,\"height\":512,"
                      "\"count\":2,\"seed\":4294967295,\"steps\":28,\"provider\":\"auto\","
                      "\"webhook_events\":[\"image\"]}";
    assert_int_equal(parse_as(IMG_PARAMS_PAYLOAD, old, &p, NULL), 0);
    assert_int_equal(p.images, 2);
    assert_int_equal(p.width, 512);
    assert_int_equal(p.seed, 4294967295LL);
    assert_int_equal(p.nexports, 1);
    assert_int_equal(p.n_export_defs, 1);
    assert_string_equal(p.export_defs[0]->name, "instagram_story");
    assert_non_null(p.style_def);
    img_params_dispose(&p);
    img_params_err e;
    const char *gone[][2] = {
        {"{\"prompt\":\"a\",\"kind\":\"avatar\",\"exports\":[\"gone_preset\"]}", "exports"},
        {"{\"prompt\":\"a\",\"kind\":\"avatar\",\"style\":\"gone_style\"}", "style"},
        {"{\"prompt\":\"a\",\"kind\":\"pose\",\"poses\":[{\"preset\":\"gone_pose\"}]}", "poses"},
    };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        assert_int_equal(parse_as(IMG_PARAMS_PAYLOAD, gone[i][0], &p, &e), GF_EINVAL);
        assert_string_equal(e.field, gone[i][1]);
        img_params_dispose(&p);
        img_params_opts bare = {.mode = IMG_PARAMS_PAYLOAD};
        assert_int_equal(img_params_parse(gone[i][0], strlen(gone[i][0]), &bare, &p, NULL), 0);
        img_params_dispose(&p);
    }
    assert_int_equal(
        parse_as(IMG_PARAMS_PAYLOAD, "{\"kind\":\"avatar\",\"prompt\":\"a\",\"count\":5}", &p, &e),
        GF_EINVAL);
    assert_string_equal(e.field, "count");
    img_params_dispose(&p);
    assert_int_equal(parse_as(IMG_PARAMS_PAYLOAD, "{}", &p, NULL), GF_EINVAL);
    img_params_dispose(&p);
    /* No presets loaded at all: a pose preset stays unresolved, not an error. */
    img_params_opts o = {.mode = IMG_PARAMS_PAYLOAD};
    const char *pose =
        "{\"kind\":\"pose\",\"prompt\":\"a\",\"poses\":[{\"preset\":\"standing-neutral\"}]}";
    assert_int_equal(img_params_parse(pose, strlen(pose), &o, &p, NULL), 0);
    assert_null(p.poses[0].def);
    img_params_dispose(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_body_and_fields),
        cmocka_unit_test(test_text_limits),
        cmocka_unit_test(test_number_limits),
        cmocka_unit_test(test_poses_and_images),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_exports_style_provider),
        cmocka_unit_test(test_webhook_and_metadata),
        cmocka_unit_test(test_payload_round_trip),
        cmocka_unit_test(test_nulls_are_echoed),
        cmocka_unit_test(test_payload_mode),
    };
    return cmocka_run_group_tests(tests, pu_presets_setup, pu_presets_teardown);
}
