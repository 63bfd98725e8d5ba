/*
 * tests/integration/worker/references.c - what reaches the provider, on the
 * farm of worker_farm.h: the uploaded person's pixels go out with the
 * request; a pose generation with an identity and two presets reaches hf,
 * fal, bfl and replicate with the identity as image 1 and each pose's map as image 2
 * (sha256 against what the farm draws) and the style in the prompt; a
 * request no configured provider can honour is refused before any hold; an
 * identity whose file is gone fails and charges nothing; HF's b64_json
 * answer comes back as the generation's image.
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

#include "imaging.h"
#include "worker_farm.h"

/* The person the user asked to keep is what the provider gets: the uploaded
 * identity's pixels go out with the request, not a text-only prompt (the bug
 * of the system this farm replaces). */
static void test_the_identity_image_reaches_the_provider(void **state)
{
    (void)state;
    char upload[37];
    wf_upload_png(72, 40, upload); /* a size no preset or output has */
    long before = wf_fake_count("hf.submit");
    json_t *g = wf_identity_avatar("keep me", 0, upload);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_decref(g);
    assert_true(wf_fake_count("hf.submit") > before);
    json_t *reqs = wf_fake_requests("hf.submit");
    json_t *got = json_object_get(json_array_get(reqs, json_array_size(reqs) - 1), "received");
    assert_int_equal(json_integer_value(json_object_get(got, "count")), 1);
    json_t *ref = json_array_get(json_object_get(got, "images"), 0);
    assert_int_equal(json_integer_value(json_object_get(ref, "width")), 72);
    assert_int_equal(json_integer_value(json_object_get(ref, "height")), 40);
    json_decref(reqs);
}

/* The sha256 of the stored file of upload `id` (what the worker reads and sends). */
static void stored_sha(const char *id, char hex[65])
{
    char out[600];
    snprintf(out, sizeof(out), "%s/sha.%s", ts_env("FARM_TEST_TMPDIR"), id);
    assert_int_equal(ts_sh("sha256sum $(find '%s/storage' -name '*%s*' -type f | head -1) > '%s'",
                           ts_env("FARM_TEST_TMPDIR"), id, out),
                     0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%64s", hex), 1);
    fclose(f);
}

/* The sha256 of the pose map the farm draws for preset `name` at w x h. */
static void pose_sha(const char *name, int w, int h, char hex[65])
{
    gf_err_t err = {0};
    img_presets_t *p = img_presets_load(ts_env("FARM_PRESETS_DIR"), &err);
    assert_non_null(p);
    const img_pose_preset *pose = img_presets_pose_find(p, name);
    assert_non_null(pose);
    img_buf png = {0};
    assert_int_equal(img_pose_render(pose->keypoints, w, h, &png, &err), 0);
    img_sha256_hex(png.data, png.len, hex);
    img_buf_dispose(&png);
    img_presets_free(p);
}

/*
 * A pose generation with an identity and two pose presets, asked of one
 * provider: each of its two submits carries the identity's bytes as image 1
 * and that pose's map as image 2 (sha256 against what the farm draws), and
 * a prompt naming them with the style's suffix.
 */
static void pose_reaches(const char *provider)
{
    char upload[37], body[768], id[37], ep[32], tag[64];
    wf_upload_png(72, 40, upload);
    snprintf(ep, sizeof(ep), "%s.submit", provider);
    snprintf(tag, sizeof(tag), "a dancer for %s", provider);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"%s\",\"width\":256,\"height\":256,"
             "\"style\":\"watercolor\",\"provider\":\"%s\",\"identity\":{\"upload_id\":\"%s\"},"
             "\"poses\":[{\"preset\":\"standing-arms-crossed\"},{\"preset\":\"standing-wave\"}]}",
             tag, provider, upload);
    json_t *g = wf_create_ended(body, id, 60);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_decref(g);
    char want_id[65], want_pose[2][65];
    stored_sha(upload, want_id);
    pose_sha("standing-arms-crossed", 256, 256, want_pose[0]);
    pose_sha("standing-wave", 256, 256, want_pose[1]);
    json_t *reqs = wf_fake_requests(ep);
    int seen[2] = {0, 0}, n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(reqs, i, e)
    {
        json_t *got = json_object_get(e, "received");
        const char *prompt = json_string_value(json_object_get(got, "prompt"));
        if (prompt == NULL || strstr(prompt, tag) == NULL)
            continue;
        n++;
        assert_non_null(strstr(prompt, "the person in image 1, in the pose of image 2"));
        assert_non_null(strstr(prompt, "watercolor painting, loose wet-on-wet washes"));
        assert_int_equal(json_integer_value(json_object_get(got, "count")), 2);
        json_t *im = json_object_get(got, "images");
        json_t *a = json_array_get(im, 0), *b = json_array_get(im, 1);
        assert_string_equal(json_string_value(json_object_get(a, "sha256")), want_id);
        assert_int_equal(json_integer_value(json_object_get(a, "width")), 72);
        assert_int_equal(json_integer_value(json_object_get(a, "height")), 40);
        assert_int_equal(json_integer_value(json_object_get(b, "width")), 256);
        const char *ps = json_string_value(json_object_get(b, "sha256"));
        for (int k = 0; k < 2; k++)
            seen[k] += strcmp(ps, want_pose[k]) == 0;
    }
    assert_int_equal(n, 2);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    json_decref(reqs);
}

/* One case per adapter: the test's state is the provider's name (see main). */
static void test_pose_with_identity_reaches(void **state)
{
    pose_reaches(*state);
}

/*
 * HF answering {"data":[{"b64_json"}]} (here above the 256 KiB of an ordinary
 * JSON reply): the generation succeeds with that image.
 */
static void test_hf_b64_json_answer_is_the_generations_image(void **state)
{
    (void)state;
    char id[37];
    long before = wf_fake_count("hf.submit");
    json_t *g = wf_create_ended(
        "{\"kind\":\"avatar\",\"prompt\":\"an inline fox [[b64_json]]\",\"width\":320,"
        "\"height\":256,\"provider\":\"hf\"}",
        id, 30);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(g, "provider")), "hf");
    assert_int_equal(json_integer_value(json_object_get(g, "attempts")), 1);
    int full = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(g, "outputs"), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "variant")), "full") != 0)
            continue;
        full++;
        assert_int_equal(json_integer_value(json_object_get(o, "width")), 320);
        assert_int_equal(json_integer_value(json_object_get(o, "height")), 256);
    }
    assert_int_equal(full, 1);
    json_decref(g);
    assert_int_equal(wf_fake_count("hf.submit"), before + 1); /* one answer, taken */
}

/* The credits and generation count of the test user, as GET answers them. */
static void user_state(const char *at, long long *available, size_t *gens)
{
    char url[256], auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", wf_tok);
    const char *hd[] = {auth, NULL};
    snprintf(url, sizeof(url), "%s/v1/credits", at);
    ts_http_t r = ts_http("GET", url, hd, NULL, 0);
    json_t *c = json_loads(r.body, 0, NULL);
    *available = json_integer_value(json_object_get(c, "available"));
    json_decref(c);
    ts_http_dispose(&r);
    snprintf(url, sizeof(url), "%s/v1/generations?limit=100", at);
    r = ts_http("GET", url, hd, NULL, 0);
    c = json_loads(r.body, 0, NULL);
    *gens = json_array_size(json_object_get(c, "items"));
    json_decref(c);
    ts_http_dispose(&r);
}

/* POSTs `body` to `url` and expects 400 unsupported naming `field`. */
static void expect_unsupported(const char *url, const char *const *hd, const char *body,
                               const char *field)
{
    char want[64];
    snprintf(want, sizeof(want), "\"field\":\"%s\"", field);
    ts_http_t r = ts_http("POST", url, hd, body, strlen(body));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"code\":\"unsupported\""));
    if (strstr(r.body, want) == NULL)
        fail_msg("400 unsupported, not naming %s: %s", field, r.body);
    ts_http_dispose(&r);
}

/*
 * An api whose providers cannot honour the request: hf with Kontext (one
 * reference) for calls with references. A pose with an identity is 400
 * unsupported naming identity, a pose alone asked of a text-only bfl names
 * poses, a negative prompt asked of bfl names negative_prompt; nothing is
 * held, nothing enqueued.
 */
static void test_unsupported_is_refused_before_any_hold(void **state)
{
    (void)state;
    char upload[37], body[512], port2[64], at[64];
    wf_upload_png(32, 32, upload);
    int port = ts_free_port();
    snprintf(port2, sizeof(port2), "FARM_API_PORT=%d", port);
    snprintf(at, sizeof(at), "http://127.0.0.1:%d", port);
    char *extra[] = {port2,
                     wf_storage_env,
                     "FARM_JWT_SECRET=" AU_SECRET,
                     AU_FILE_SECRET_ENV,
                     "FARM_RATE_LIMIT_BURST=1000",
                     "FARM_PROVIDER=fake",
                     "FARM_PROVIDER_FALLBACK=hf,bfl",
                     "FARM_HF_POSE_MODEL=black-forest-labs/FLUX.1-Kontext-dev",
                     "FARM_BFL_POSE_MODEL=flux-dev",
                     NULL};
    pid_t pid = ts_spawn_farm("FARM_TEST_API_BIN", extra, "api-unsupported.log");
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", at);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    long long avail0, avail1;
    size_t gens0, gens1;
    user_state(at, &avail0, &gens0);
    char auth[1024];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", wf_tok);
    const char *hd[] = {auth, "Content-Type: application/json", NULL};
    snprintf(url, sizeof(url), "%s/v1/generations", at);
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"me\",\"identity\":{\"upload_id\":\"%s\"},"
             "\"poses\":[{\"preset\":\"standing-wave\"}]}",
             upload);
    expect_unsupported(url, hd, body, "identity");
    snprintf(body, sizeof(body),
             "{\"kind\":\"pose\",\"prompt\":\"me\",\"provider\":\"bfl\","
             "\"poses\":[{\"preset\":\"standing-wave\"}]}");
    expect_unsupported(url, hd, body, "poses");
    /* A negative prompt asked of bfl, whose FLUX API has none: refused, not dropped. */
    snprintf(body, sizeof(body),
             "{\"kind\":\"avatar\",\"prompt\":\"me\",\"provider\":\"bfl\","
             "\"negative_prompt\":\"blurry\"}");
    expect_unsupported(url, hd, body, "negative_prompt");
    user_state(at, &avail1, &gens1);
    assert_int_equal(avail1, avail0);
    assert_int_equal(gens1, gens0);
    assert_int_equal(ts_stop(pid, SIGTERM, 15), 0);
}

/* An identity whose stored file is gone: the images fail with a clear error and
 * everything is released; no provider is paid for an avatar without the person. */
static void test_a_lost_identity_fails_and_charges_nothing(void **state)
{
    (void)state;
    char upload[37];
    wf_upload_png(48, 48, upload);
    assert_int_equal(
        ts_sh("find '%s/storage' -name '*%s*' -type f -delete", ts_env("FARM_TEST_TMPDIR"), upload),
        0);
    long before = wf_fake_count("hf.submit");
    json_t *g = wf_identity_avatar("lost me", 2, upload);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(g, "charged")), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "released")), 20); /* 2 x 10 */
    json_t *err = json_object_get(g, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "internal");
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "identity"));
    json_decref(g);
    assert_int_equal(wf_fake_count("hf.submit"), before); /* nothing was sent to the provider */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_identity_image_reaches_the_provider),
        cmocka_unit_test(test_a_lost_identity_fails_and_charges_nothing),
        /* cmocka_unit_test_prestate, under each case's own name */
        {"test_pose_with_identity_reaches_hf", test_pose_with_identity_reaches, NULL, NULL, "hf"},
        {"test_pose_with_identity_reaches_fal", test_pose_with_identity_reaches, NULL, NULL, "fal"},
        {"test_pose_with_identity_reaches_bfl", test_pose_with_identity_reaches, NULL, NULL, "bfl"},
        {"test_pose_with_identity_reaches_replicate", test_pose_with_identity_reaches, NULL, NULL,
         "replicate"},
        cmocka_unit_test(test_hf_b64_json_answer_is_the_generations_image),
        cmocka_unit_test(test_unsupported_is_refused_before_any_hold),
    };
    return cmocka_run_group_tests(tests, wf_setup, wf_teardown);
}
