/*
 * tests/unit/imaging/test_pose.c - imaging/pose.c: the OpenPose control
 * image has each limb where its keypoints say, in the standard color, each
 * joint in its own color, black elsewhere, and leaves absent keypoints out.
 */
#include "imaging_test.h"

#include <math.h>
#include <string.h>

/*
 * A spread-out figure whose limbs do not cross, so the midpoint of every
 * limb shows that limb's own color (normalized x, y).
 */
static const img_keypoint spread[IMG_POSE_KEYPOINTS] = {
    {0.50f, 0.20f, 1}, /* nose */
    {0.50f, 0.35f, 1}, /* neck */
    {0.35f, 0.36f, 1}, /* right shoulder */
    {0.20f, 0.30f, 1}, /* right elbow */
    {0.08f, 0.18f, 1}, /* right wrist */
    {0.65f, 0.36f, 1}, /* left shoulder */
    {0.80f, 0.30f, 1}, /* left elbow */
    {0.92f, 0.18f, 1}, /* left wrist */
    {0.40f, 0.62f, 1}, /* right hip */
    {0.30f, 0.78f, 1}, /* right knee */
    {0.22f, 0.95f, 1}, /* right ankle */
    {0.60f, 0.62f, 1}, /* left hip */
    {0.70f, 0.78f, 1}, /* left knee */
    {0.78f, 0.95f, 1}, /* left ankle */
    {0.44f, 0.14f, 1}, /* right eye */
    {0.56f, 0.14f, 1}, /* left eye */
    {0.36f, 0.12f, 1}, /* right ear */
    {0.64f, 0.12f, 1}, /* left ear */
};

static VipsImage *render(const img_keypoint *kp, int w, int h)
{
    img_buf png;
    gf_err_t err = {0};
    assert_int_equal(img_pose_render(kp, w, h, &png, &err), 0);
    assert_int_equal(img_sniff(png.data, png.len), IMG_FORMAT_PNG);
    VipsImage *im = imgt_decode(png.data, png.len);
    img_buf_dispose(&png);
    assert_int_equal(im->Xsize, w);
    assert_int_equal(im->Ysize, h);
    return im;
}

/* The pixel of normalized (x, y): the keypoints' square, centered on a longer side. */
static void expect_color(VipsImage *im, double x, double y, const unsigned char want[3])
{
    unsigned char got[3];
    int side = im->Xsize < im->Ysize ? im->Xsize : im->Ysize;
    imgt_pixel(im, (im->Xsize - side) / 2 + (int)(x * side),
               (im->Ysize - side) / 2 + (int)(y * side), got);
    if (memcmp(got, want, 3) != 0)
        fail_msg("at (%.3f, %.3f): got %d,%d,%d want %d,%d,%d", x, y, got[0], got[1], got[2],
                 want[0], want[1], want[2]);
}

static void test_limbs_and_joints_where_keypoints_say(void **state)
{
    (void)state;
    int sizes[][2] = {{512, 512}, {768, 1024}, {1344, 768}};
    for (size_t s = 0; s < 3; s++) {
        VipsImage *im = render(spread, sizes[s][0], sizes[s][1]);
        unsigned char rgb[3];
        for (int i = 0; i < IMG_POSE_LIMBS; i++) {
            int a, b;
            img_pose_limb_joints(i, &a, &b);
            img_pose_limb_color(i, rgb);
            /* the midpoint, away from both joints' discs */
            expect_color(im, (spread[a].x + spread[b].x) / 2, (spread[a].y + spread[b].y) / 2, rgb);
        }
        for (int i = 0; i < IMG_POSE_KEYPOINTS; i++) {
            img_pose_joint_color(i, rgb);
            expect_color(im, spread[i].x, spread[i].y, rgb);
        }
        static const unsigned char black[3] = {0, 0, 0};
        expect_color(im, 0.02f, 0.98f, black);
        expect_color(im, 0.5f, 0.5f, black); /* the belly: inside, but no limb there */
        expect_color(im, 0.98f, 0.5f, black);
        g_object_unref(im);
    }
}

/* The palette is OpenPose's: limb 0 (neck to right shoulder) red at 60 %,
 * limb 12 (neck to nose) blue, joint 0 (nose) pure red. */
static void test_standard_palette(void **state)
{
    (void)state;
    unsigned char rgb[3];
    img_pose_limb_color(0, rgb);
    assert_memory_equal(rgb, ((unsigned char[]){153, 0, 0}), 3);
    img_pose_limb_color(12, rgb);
    assert_memory_equal(rgb, ((unsigned char[]){0, 0, 153}), 3);
    img_pose_joint_color(0, rgb);
    assert_memory_equal(rgb, ((unsigned char[]){255, 0, 0}), 3);
    img_pose_joint_color(17, rgb);
    assert_memory_equal(rgb, ((unsigned char[]){255, 0, 85}), 3);
    int a, b;
    img_pose_limb_joints(12, &a, &b);
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
}

static void test_absent_keypoints_left_out(void **state)
{
    (void)state;
    img_keypoint kp[IMG_POSE_KEYPOINTS];
    memcpy(kp, spread, sizeof(kp));
    kp[4].confidence = 0; /* right wrist: limb 3 (elbow to wrist) and its disc go */
    VipsImage *im = render(kp, 512, 512);
    static const unsigned char black[3] = {0, 0, 0};
    expect_color(im, (spread[3].x + spread[4].x) / 2, (spread[3].y + spread[4].y) / 2, black);
    expect_color(im, spread[4].x, spread[4].y, black);
    unsigned char rgb[3];
    img_pose_limb_color(2, rgb); /* shoulder to elbow stays */
    expect_color(im, (spread[2].x + spread[3].x) / 2, (spread[2].y + spread[3].y) / 2, rgb);
    g_object_unref(im);
}

/*
 * On a map that is not square the figure keeps its proportions: the bands
 * beyond the keypoints' square stay black, and a wrist at the square's edge
 * is drawn inside the map. Stretched, the right wrist (0.08, 0.18) would land
 * on row 0.18 x 1024 of a 512 x 1024 map, inside the top band.
 */
static void test_a_map_of_another_shape_keeps_the_figure(void **state)
{
    (void)state;
    static const unsigned char black[3] = {0, 0, 0};
    unsigned char got[3], want[3];
    VipsImage *tall = render(spread, 512, 1024);
    img_pose_joint_color(4, want);
    imgt_pixel(tall, (int)(0.08 * 512), 256 + (int)(0.18 * 512), got);
    assert_memory_equal(got, want, 3);
    imgt_pixel(tall, (int)(0.08 * 512), (int)(0.18 * 1024), got);
    assert_memory_equal(got, black, 3);
    for (int y = 0; y < 1024; y += 8) {
        if (y >= 256 && y < 768)
            continue; /* the keypoints' square */
        for (int x = 0; x < 512; x += 8) {
            imgt_pixel(tall, x, y, got);
            if (memcmp(got, black, 3) != 0)
                fail_msg("tall map: (%d, %d) is %d,%d,%d, outside the figure's square", x, y,
                         got[0], got[1], got[2]);
        }
    }
    g_object_unref(tall);
    VipsImage *wide = render(spread, 1024, 512);
    img_pose_joint_color(7, want); /* the left wrist, (0.92, 0.18) */
    imgt_pixel(wide, 256 + (int)(0.92 * 512), (int)(0.18 * 512), got);
    assert_memory_equal(got, want, 3);
    imgt_pixel(wide, 40, 256, got);
    assert_memory_equal(got, black, 3);
    g_object_unref(wide);
}

static void test_bad_input_refused(void **state)
{
    (void)state;
    img_buf png;
    gf_err_t err = {0};
    assert_int_equal(img_pose_render(spread, 8, 512, &png, &err), GF_EINVAL);
    assert_null(png.data);
    gf_err_clear(&err);
    assert_int_equal(img_pose_render(spread, 512, 5000, &png, &err), GF_EINVAL);
    img_keypoint kp[IMG_POSE_KEYPOINTS];
    memcpy(kp, spread, sizeof(kp));
    kp[7].x = 1.5f;
    gf_err_clear(&err);
    assert_int_equal(img_pose_render(kp, 512, 512, &png, &err), GF_EINVAL);
    kp[7].x = NAN;
    gf_err_clear(&err);
    assert_int_equal(img_pose_render(kp, 512, 512, &png, &err), GF_EINVAL);
    kp[7].confidence = 0; /* an absent keypoint's coordinates do not matter */
    gf_err_clear(&err);
    assert_int_equal(img_pose_render(kp, 64, 64, &png, &err), 0);
    img_buf_dispose(&png);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limbs_and_joints_where_keypoints_say),
        cmocka_unit_test(test_standard_palette),
        cmocka_unit_test(test_absent_keypoints_left_out),
        cmocka_unit_test(test_a_map_of_another_shape_keeps_the_figure),
        cmocka_unit_test(test_bad_input_refused),
    };
    return cmocka_run_group_tests(tests, imgt_setup, imgt_teardown);
}
