/*
 * tests/integration/worker/fake_images.c - the worker's post-processing of
 * the compressed image a real provider sends: a real farm-api and farm-worker
 * on the fake provider's HF route, which answers a 1024 x 1024 JPEG as HF
 * does. The generation succeeds and every variant the api lists is served,
 * decodes, and has the size and format it claims.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging.h"
#include "worker_farm.h"

static void test_a_jpeg_answer_becomes_every_variant(void **state)
{
    (void)state;
    char id[37];
    json_t *g =
        wf_create_ended("{\"kind\":\"avatar\",\"prompt\":\"a fox in a jpeg\",\"width\":1024,"
                        "\"height\":1024,\"exports\":[\"instagram_story\"]}",
                        id, 60);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    /* The provider's answer was HF's JPEG. */
    json_t *calls = wf_fake_requests("hf.submit");
    assert_int_equal(json_array_size(calls), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(calls, 0), "image_format")), "jpeg");
    json_decref(calls);
    json_t *outputs = json_object_get(g, "outputs"), *o;
    assert_true(json_array_size(outputs) >= 3);
    int thumb = 0, square = 0, story = 0;
    size_t i;
    json_array_foreach(outputs, i, o)
    {
        ts_http_t r = au_get_output(o);
        img_info info;
        au_assert_output_image(r.body, r.body_len, o, &info);
        ts_http_dispose(&r);
        const char *variant = json_string_value(json_object_get(o, "variant"));
        if (strcmp(variant, "thumb") == 0)
            thumb = 1, assert_int_equal(info.width, 128);
        else if (strcmp(variant, "512") == 0)
            square = 1, assert_int_equal(info.width * 10000 + info.height, 512 * 10000 + 512);
        else if (strcmp(variant, "instagram_story") == 0)
            story = 1, assert_int_equal(info.width * 10000 + info.height, 1080 * 10000 + 1920);
    }
    assert_true(thumb && square && story);
    json_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_jpeg_answer_becomes_every_variant),
    };
    return cmocka_run_group_tests(tests, wf_setup, wf_teardown);
}
