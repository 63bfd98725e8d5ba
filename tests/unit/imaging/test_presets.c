/*
 * tests/unit/imaging/test_presets.c - imaging/presets.c and the data files
 * in imaging/presets/: they load, are well-formed (at least 20 poses in 4+
 * categories, 18 keypoints each in 0..1; the exports API.md names, at their
 * sizes), every pose renders, and malformed files are refused by name.
 */
#include "imaging_test.h"
#include "presets_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_repo_presets_are_well_formed(void **state)
{
    (void)state;
    gf_err_t err = {0};
    img_presets_t *p = img_presets_load(pu_presets_dir(), &err);
    if (p == NULL)
        fail_msg("load: %s", err.msg);

    size_t n = img_presets_pose_count(p);
    assert_true(n >= 20);
    const char *cats[64];
    size_t ncat = 0;
    for (size_t i = 0; i < n; i++) {
        const img_pose_preset *pose = img_presets_pose(p, i);
        assert_non_null(pose->description);
        int visible = 0;
        for (int k = 0; k < IMG_POSE_KEYPOINTS; k++) {
            const img_keypoint *kp = &pose->keypoints[k];
            assert_true(kp->x >= 0 && kp->x <= 1 && kp->y >= 0 && kp->y <= 1);
            assert_true(kp->confidence >= 0 && kp->confidence <= 1);
            visible += kp->confidence > 0;
        }
        assert_true(visible >= 8); /* a pose, not a stray dot */
        assert_ptr_equal(img_presets_pose_find(p, pose->name), pose);
        size_t c = 0;
        while (c < ncat && strcmp(cats[c], pose->category) != 0)
            c++;
        if (c == ncat && ncat < 64)
            cats[ncat++] = pose->category;
    }
    assert_true(ncat >= 4);
    assert_non_null(img_presets_pose_find(p, "standing-arms-crossed"));
    assert_null(img_presets_pose_find(p, "no-such-pose"));

    assert_true(img_presets_style_count(p) >= 5);
    const img_style_preset *wc = img_presets_style_find(p, "watercolor");
    assert_non_null(wc);
    assert_true(strlen(wc->prompt_suffix) > 0);

    static const struct {
        const char *name;
        int w, h;
        img_format f;
    } api[] = {
        {"instagram_story", 1080, 1920, IMG_FORMAT_JPEG},
        {"instagram_feed", 1080, 1080, IMG_FORMAT_JPEG},
        {"instagram_portrait", 1080, 1350, IMG_FORMAT_JPEG},
        {"linkedin_post", 1200, 627, IMG_FORMAT_JPEG},
        {"twitter_post", 1200, 675, IMG_FORMAT_JPEG},
        {"print_4x6", 1800, 1200, IMG_FORMAT_PNG},
    };
    for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
        const img_export_preset *e = img_presets_export_find(p, api[i].name);
        assert_non_null(e);
        assert_int_equal(e->width, api[i].w);
        assert_int_equal(e->height, api[i].h);
        assert_int_equal(e->format, api[i].f);
    }
    for (size_t i = 0; i < img_presets_export_count(p); i++)
        assert_true(strlen(img_presets_export(p, i)->name) < IMG_VARIANT_NAME_MAX);
    assert_null(img_presets_export(p, img_presets_export_count(p)));
    img_presets_free(p);
}

/* The shipped templates name the images in the order the adapters send them. */
static void test_reference_prompt_names_the_images(void **state)
{
    (void)state;
    const img_presets_t *p = pu_presets;
    char *both = img_presets_reference_prompt(p, 1, 1, "a dancer, watercolor");
    assert_string_equal(both,
                        "the person in image 1, in the pose of image 2: a dancer, watercolor");
    char *none = img_presets_reference_prompt(p, 0, 0, "a cat");
    assert_string_equal(none, "a cat");
    char *pose = img_presets_reference_prompt(p, 0, 1, "a cat");
    assert_non_null(strstr(pose, "a cat, in the pose of"));
    free(both);
    free(none);
    free(pose);
}

static void test_every_pose_renders(void **state)
{
    (void)state;
    const img_presets_t *p = pu_presets;
    gf_err_t err = {0};
    for (size_t i = 0; i < img_presets_pose_count(p); i++) {
        img_buf png;
        const img_pose_preset *pose = img_presets_pose(p, i);
        if (img_pose_render(pose->keypoints, 256, 384, &png, &err) != 0)
            fail_msg("%s: %s", pose->name, err.msg);
        VipsImage *im = imgt_decode(png.data, png.len);
        double max = 0;
        assert_int_equal(vips_max(im, &max, NULL), 0);
        assert_true(max == 255); /* something was drawn */
        g_object_unref(im);
        img_buf_dispose(&png);
    }
}

/* Writes the three files into a fresh temp dir, with `poses` as the pose list. */
static char *write_dir(const char *poses, const char *styles, const char *exports)
{
    char tmpl[] = "/tmp/imgpresets.XXXXXX";
    char *dir = mkdtemp(tmpl) ? strdup(tmpl) : NULL;
    const char *files[3][2] = {
        {"poses.json", poses}, {"styles.json", styles}, {"exports.json", exports}};
    assert_non_null(dir);
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    return dir;
}

static void remove_dir(char *dir)
{
    const char *names[] = {"poses.json", "styles.json", "exports.json"};
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    free(dir);
}

#define KP3 "[0.5,0.5,1]"
#define KP17                                                                                       \
    KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3 "," KP3    \
        "," KP3 "," KP3 "," KP3 "," KP3 "," KP3
#define POSE(name, kps)                                                                            \
    "{\"name\":\"" name "\",\"category\":\"c\",\"description\":\"d\",\"keypoints\":[" kps "]}"
#define REFS                                                                                       \
    "\"reference_prompts\":{\"identity_and_pose\":\"1 2 {prompt}\",\"identity\":\"1 {prompt}\","   \
    "\"pose\":\"{prompt} 2\"}"
#define STYLES                                                                                     \
    "{" REFS ",\"styles\":[{\"name\":\"s\",\"description\":\"d\",\"prompt_suffix\":\"p\"}]}"
#define EXPORTS "{\"exports\":[{\"name\":\"e\",\"width\":100,\"height\":100,\"format\":\"png\"}]}"

static void expect_refused(const char *poses, const char *styles, const char *exports,
                           const char *needle)
{
    char *dir = write_dir(poses, styles, exports);
    gf_err_t err = {0};
    img_presets_t *p = img_presets_load(dir, &err);
    if (p != NULL)
        fail_msg("accepted a malformed preset (%s)", needle);
    assert_int_equal(err.code, GF_EINVAL);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("message '%s' does not name '%s'", err.msg, needle);
    remove_dir(dir);
}

static void test_malformed_files_refused(void **state)
{
    (void)state;
    /* The minimal valid set loads. */
    char *dir = write_dir("{\"poses\":[" POSE("a", KP17 "," KP3) "]}", STYLES, EXPORTS);
    gf_err_t err = {0};
    img_presets_t *p = img_presets_load(dir, &err);
    if (p == NULL)
        fail_msg("%s", err.msg);
    img_presets_free(p);
    remove_dir(dir);

    expect_refused("{\"poses\":[" POSE("a", KP17) "]}", STYLES, EXPORTS, "need 18 keypoints");
    expect_refused("{\"poses\":[" POSE("a", KP17 "," KP3) "]}",
                   "{\"styles\":[{\"name\":\"s\",\"description\":\"d\",\"prompt_suffix\":\"p\"}]}",
                   EXPORTS, "reference_prompts.identity_and_pose");
    expect_refused("{\"poses\":[" POSE("a", KP17 ",[1.5,0,1]") "]}", STYLES, EXPORTS,
                   "outside 0..1");
    expect_refused("{\"poses\":[" POSE("a", KP17 ",[0.5,0.5]") "]}", STYLES, EXPORTS,
                   "keypoint 17");
    expect_refused("{\"poses\":[" POSE("a", KP17 "," KP3) "," POSE("a", KP17 "," KP3) "]}", STYLES,
                   EXPORTS, "used twice");
    expect_refused("{\"poses\":[" POSE("A/..", KP17 "," KP3) "]}", STYLES, EXPORTS, "poses.json");
    expect_refused("{\"poses\":[]}", STYLES, EXPORTS, "non-empty");
    expect_refused("{\"poses\":[" POSE("a", KP17 "," KP3) "]", STYLES, EXPORTS, "poses.json");
    const char *good = "{\"poses\":[" POSE("a", KP17 "," KP3) "]}";
    expect_refused(good, "{\"styles\":[{\"name\":\"s\",\"description\":\"d\"}]}", EXPORTS,
                   "prompt_suffix");
    expect_refused(good, STYLES,
                   "{\"exports\":[{\"name\":\"e\",\"width\":100,\"height\":100,"
                   "\"format\":\"gif\"}]}",
                   "format");
    expect_refused(good, STYLES,
                   "{\"exports\":[{\"name\":\"e\",\"width\":100000,\"height\":100,"
                   "\"format\":\"png\"}]}",
                   "width");
    expect_refused(good, STYLES,
                   "{\"exports\":[{\"name\":\"thumb\",\"width\":100,\"height\":100,"
                   "\"format\":\"png\"}]}",
                   "built-in");
    expect_refused(good, STYLES,
                   "{\"exports\":[{\"name\":\"e\",\"width\":100,\"height\":100,"
                   "\"format\":\"jpeg\",\"quality\":0}]}",
                   "quality");
    /* A key the loader does not read is refused, not passed over: "qualty" would
     * leave the default quality in silence. */
    expect_refused(good, STYLES,
                   "{\"exports\":[{\"name\":\"e\",\"width\":100,\"height\":100,"
                   "\"format\":\"jpeg\",\"qualty\":50}]}",
                   "unknown key \"qualty\"");
    expect_refused("{\"poses\":[" POSE("a", KP17 "," KP3) "],\"keypoints_order\":[]}", STYLES,
                   EXPORTS, "unknown key \"keypoints_order\"");
    expect_refused(good,
                   "{" REFS ",\"styles\":[{\"name\":\"s\",\"description\":\"d\","
                   "\"prompt_sufix\":\"p\",\"prompt_suffix\":\"p\"}]}",
                   EXPORTS, "prompt_sufix");
    expect_refused(good,
                   "{\"reference_prompts\":{\"identity_and_pose\":\"1 2 {prompt}\","
                   "\"identity\":\"1 {prompt}\",\"pose\":\"{prompt} 2\",\"poses\":\"x\"},"
                   "\"styles\":[{\"name\":\"s\",\"description\":\"d\",\"prompt_suffix\":\"p\"}]}",
                   EXPORTS, "unknown key \"poses\"");
    expect_refused(good, STYLES, "{\"version\":2,\"exports\":[]}", "non-empty");
    expect_refused(good, STYLES,
                   "{\"version\":2,\"exports\":[{\"name\":\"e\",\"width\":100,"
                   "\"height\":100,\"format\":\"png\"}]}",
                   "\"version\" must be 1");
    /* keypoint_order is the order drawn, or it is refused: an editor who reorders it
     * expects the keypoints read that way, and they would not be. */
    expect_refused(
        "{\"keypoint_order\":[\"neck\",\"nose\"],\"poses\":[" POSE("a", KP17 "," KP3) "]}", STYLES,
        EXPORTS, "keypoint_order");
}

/* A FARM_PRESETS_DIR that names no presets is a configuration error (the processes exit 2,
 * which systemd does not restart), named in the message. */
static void test_missing_dir_is_a_configuration_error(void **state)
{
    (void)state;
    gf_err_t err = {0};
    assert_null(img_presets_load("/nonexistent/presets", &err));
    assert_int_equal(err.code, GF_EINVAL);
    assert_non_null(strstr(err.msg, "FARM_PRESETS_DIR=/nonexistent/presets"));
    assert_non_null(strstr(err.msg, "poses.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repo_presets_are_well_formed),
        cmocka_unit_test_setup_teardown(test_every_pose_renders, pu_presets_setup,
                                        pu_presets_teardown),
        cmocka_unit_test_setup_teardown(test_reference_prompt_names_the_images, pu_presets_setup,
                                        pu_presets_teardown),
        cmocka_unit_test(test_malformed_files_refused),
        cmocka_unit_test(test_missing_dir_is_a_configuration_error),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
