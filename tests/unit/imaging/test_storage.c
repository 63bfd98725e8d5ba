/*
 * tests/unit/imaging/test_storage.c - imaging/storage.c: storage keys come
 * only from validated parts and follow the layout.
 */
#include "imaging_test.h"

#define USER "0b8f2a64-1c1e-4d8e-9d7a-3f3a6c1b2e10"
#define GEN  "7d0e4b1a-52f6-4c11-8a3e-9c2b5d6e7f80"
#define UPL  "c3d4e5f6-a7b8-4c9d-8e0f-112233445566"

static void test_ids_must_be_lowercase_uuids(void **state)
{
    (void)state;
    assert_true(img_id_is_valid(USER));
    assert_false(img_id_is_valid("0B8F2A64-1C1E-4D8E-9D7A-3F3A6C1B2E10"));
    assert_false(img_id_is_valid("0b8f2a64-1c1e-4d8e-9d7a-3f3a6c1b2e1"));
    assert_false(img_id_is_valid("0b8f2a64-1c1e-4d8e-9d7a-3f3a6c1b2e100"));
    assert_false(img_id_is_valid("0b8f2a641c1e-4d8e-9d7a-3f3a6c1b2e10-"));
    assert_false(img_id_is_valid("../../../../../../../../../etc/passwd"));
    assert_false(img_id_is_valid("0b8f2a64-1c1e-4d8e-9d7a-3f3a6c1b2e1g"));
    assert_false(img_id_is_valid(""));
    assert_false(img_id_is_valid(NULL));
}

static void test_keys_follow_the_layout(void **state)
{
    (void)state;
    char key[IMG_KEY_MAX];
    gf_err_t err = {0};
    assert_int_equal(img_storage_key(USER, GEN, 3, "512", IMG_FORMAT_WEBP, key, &err), 0);
    assert_string_equal(key, USER "/" GEN "/3-512.webp");
    assert_int_equal(img_storage_key(USER, GEN, 0, "thumb", IMG_FORMAT_JPEG, key, &err), 0);
    assert_string_equal(key, USER "/" GEN "/0-thumb.jpg");
    assert_int_equal(img_storage_upload_key(USER, UPL, IMG_FORMAT_PNG, key, &err), 0);
    assert_string_equal(key, USER "/uploads/" UPL ".png");

    assert_int_equal(img_storage_key("..", GEN, 0, "full", IMG_FORMAT_WEBP, key, &err), GF_EINVAL);
    assert_int_equal(img_storage_key(USER, "uploads", 0, "full", IMG_FORMAT_WEBP, key, NULL),
                     GF_EINVAL);
    assert_int_equal(img_storage_key(USER, GEN, -1, "full", IMG_FORMAT_WEBP, key, NULL), GF_EINVAL);
    assert_int_equal(img_storage_key(USER, GEN, 1000, "full", IMG_FORMAT_WEBP, key, NULL),
                     GF_EINVAL);
    assert_int_equal(img_storage_key(USER, GEN, 0, "../x", IMG_FORMAT_WEBP, key, NULL), GF_EINVAL);
    assert_int_equal(img_storage_key(USER, GEN, 0, "a/b", IMG_FORMAT_WEBP, key, NULL), GF_EINVAL);
    assert_int_equal(img_storage_key(USER, GEN, 0, "", IMG_FORMAT_WEBP, key, NULL), GF_EINVAL);
    assert_int_equal(img_storage_key(USER, GEN, 0, "full", IMG_FORMAT_NONE, key, NULL), GF_EINVAL);
}

/* Each attempt writes names of its own (issue #17); the same attempt, the same name. */
static void test_attempt_keys_are_per_attempt(void **state)
{
    (void)state;
    char a1[IMG_KEY_MAX], a1b[IMG_KEY_MAX], a2[IMG_KEY_MAX];
    gf_err_t err = {0};
    assert_int_equal(img_storage_attempt_key(USER, GEN, 0, "full", IMG_FORMAT_WEBP, 1, a1, &err),
                     0);
    assert_string_equal(a1, USER "/" GEN "/0-full.a1.webp");
    assert_int_equal(img_storage_attempt_key(USER, GEN, 0, "full", IMG_FORMAT_WEBP, 1, a1b, &err),
                     0);
    assert_string_equal(a1, a1b);
    assert_int_equal(
        img_storage_attempt_key(USER, GEN, 0, "full", IMG_FORMAT_WEBP, 12345678901ULL, a2, &err),
        0);
    assert_string_equal(a2, USER "/" GEN "/0-full.a12345678901.webp");
    assert_int_equal(img_storage_attempt_key(USER, GEN, 0, "full", IMG_FORMAT_WEBP, 0, a2, NULL),
                     GF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_must_be_lowercase_uuids),
        cmocka_unit_test(test_keys_follow_the_layout),
        cmocka_unit_test(test_attempt_keys_are_per_attempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
