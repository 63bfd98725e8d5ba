/*
 * imaging/pose.c - OpenPose control images from 18 body keypoints.
 *
 * Pose-conditioned models (ControlNet OpenPose and kin) were trained on the
 * images the OpenPose annotator draws, so we draw exactly those: black
 * background, each limb a filled ellipse along its bone (semi-axes half the
 * bone length and the stick width) in the limb's color at 60 %, then each
 * joint a disc in its full color, in the annotator's order, later shapes
 * over earlier ones. libvips has no thick-line primitive, so the shapes are
 * rasterized here into an RGB buffer and only the PNG encode uses vips.
 */
#include "imaging_int.h"

#include <math.h>
#include <string.h>

/* The annotator's palette, one color per joint; limb i uses color i. */
static const unsigned char colors[IMG_POSE_KEYPOINTS][3] = {
    {255, 0, 0}, {255, 85, 0}, {255, 170, 0}, {255, 255, 0}, {170, 255, 0}, {85, 255, 0},
    {0, 255, 0}, {0, 255, 85}, {0, 255, 170}, {0, 255, 255}, {0, 170, 255}, {0, 85, 255},
    {0, 0, 255}, {85, 0, 255}, {170, 0, 255}, {255, 0, 255}, {255, 0, 170}, {255, 0, 85},
};

/* OpenPose's limbSeq (1-based there), the first 17 pairs: the two
 * ear-to-shoulder pairs after them were never drawn by the annotator. */
static const unsigned char limbs[IMG_POSE_LIMBS][2] = {
    {1, 2},  {1, 5},   {2, 3},   {3, 4}, {5, 6},  {6, 7},   {1, 8},  {8, 9},   {9, 10},
    {1, 11}, {11, 12}, {12, 13}, {1, 0}, {0, 14}, {14, 16}, {0, 15}, {15, 17},
};

#define BASE_SIZE    512.0 /* the annotator's stick width 4 and joint radius 4 are at 512 */
#define BASE_STICK   4.0
#define MAP_SIDE_MIN 16
#define MAP_SIDE_MAX 4096

void img_pose_limb_color(int i, unsigned char rgb[3])
{
    for (int c = 0; c < 3; c++)
        rgb[c] = (unsigned char)(colors[i][c] * 0.6);
}

void img_pose_joint_color(int i, unsigned char rgb[3])
{
    memcpy(rgb, colors[i], 3);
}

void img_pose_limb_joints(int i, int *a, int *b)
{
    *a = limbs[i][0];
    *b = limbs[i][1];
}

typedef struct {
    unsigned char *px;
    int w, h;
} canvas;

static void clamp_box(const canvas *cv, double x0, double y0, double x1, double y1, int box[4])
{
    box[0] = x0 < 0 ? 0 : (int)x0;
    box[1] = y0 < 0 ? 0 : (int)y0;
    box[2] = x1 >= cv->w ? cv->w - 1 : (int)x1;
    box[3] = y1 >= cv->h ? cv->h - 1 : (int)y1;
}

/* Fills the ellipse centered between a and b, along a-b, semi-axes
 * |ab|/2 and `minor`. */
static void fill_limb(canvas *cv, double ax, double ay, double bx, double by, double minor,
                      const unsigned char rgb[3])
{
    double mx = (ax + bx) / 2, my = (ay + by) / 2;
    double dx = bx - ax, dy = by - ay, len = sqrt(dx * dx + dy * dy);
    double major = len / 2 > 0.5 ? len / 2 : 0.5;
    double ux = len > 0 ? dx / len : 1, uy = len > 0 ? dy / len : 0;
    double r = major > minor ? major : minor;
    int box[4];

    clamp_box(cv, mx - r - 1, my - r - 1, mx + r + 1, my + r + 1, box);
    for (int y = box[1]; y <= box[3]; y++)
        for (int x = box[0]; x <= box[2]; x++) {
            double px = x + 0.5 - mx, py = y + 0.5 - my;
            double u = (px * ux + py * uy) / major, v = (-px * uy + py * ux) / minor;
            if (u * u + v * v <= 1.0)
                memcpy(cv->px + ((size_t)y * cv->w + x) * 3, rgb, 3);
        }
}

static void fill_disc(canvas *cv, double cx, double cy, double r, const unsigned char rgb[3])
{
    int box[4];

    clamp_box(cv, cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1, box);
    for (int y = box[1]; y <= box[3]; y++)
        for (int x = box[0]; x <= box[2]; x++) {
            double px = x + 0.5 - cx, py = y + 0.5 - cy;
            if (px * px + py * py <= r * r)
                memcpy(cv->px + ((size_t)y * cv->w + x) * 3, rgb, 3);
        }
}

static int check_keypoints(const img_keypoint kp[IMG_POSE_KEYPOINTS], gf_err_t *err)
{
    for (int i = 0; i < IMG_POSE_KEYPOINTS; i++) {
        if (kp[i].confidence <= 0)
            continue;
        /* The negated form also refuses NaN. */
        if (!(kp[i].x >= 0 && kp[i].x <= 1 && kp[i].y >= 0 && kp[i].y <= 1))
            return gf_err_setd(err, GF_EINVAL, IMG_DOMAIN, IMG_REASON_NONE,
                               "keypoint %d is outside 0..1", i);
    }
    return 0;
}

/*
 * The keypoints are normalized in a square frame (a preset's map_url is
 * square). A map of another shape gets that square whole, centered on the
 * longer side (black bands beyond it), so the figure keeps its proportions
 * and every keypoint stays in the frame: stretched to the map, a standing
 * person on a 9:16 map would be drawn 1.8 times as tall for the width.
 */
static void draw(canvas *cv, const img_keypoint kp[IMG_POSE_KEYPOINTS])
{
    double side = cv->w < cv->h ? cv->w : cv->h;
    double ox = (cv->w - side) / 2, oy = (cv->h - side) / 2;
    double stick = BASE_STICK * side / BASE_SIZE < 1.5 ? 1.5 : BASE_STICK * side / BASE_SIZE;
    unsigned char rgb[3];

    for (int i = 0; i < IMG_POSE_LIMBS; i++) {
        const img_keypoint *a = &kp[limbs[i][0]], *b = &kp[limbs[i][1]];
        if (a->confidence <= 0 || b->confidence <= 0)
            continue;
        img_pose_limb_color(i, rgb);
        fill_limb(cv, ox + a->x * side, oy + a->y * side, ox + b->x * side, oy + b->y * side, stick,
                  rgb);
    }
    for (int i = 0; i < IMG_POSE_KEYPOINTS; i++)
        if (kp[i].confidence > 0)
            fill_disc(cv, ox + kp[i].x * side, oy + kp[i].y * side, stick, colors[i]);
}

int img_pose_render(const img_keypoint kp[IMG_POSE_KEYPOINTS], int width, int height, img_buf *out,
                    gf_err_t *err)
{
    canvas cv = {.w = width, .h = height};
    VipsImage *im;
    int rc;

    memset(out, 0, sizeof(*out));
    if (width < MAP_SIDE_MIN || width > MAP_SIDE_MAX || height < MAP_SIDE_MIN ||
        height > MAP_SIDE_MAX)
        return gf_err_setd(err, GF_EINVAL, IMG_DOMAIN, IMG_REASON_NONE,
                           "pose map size %dx%d is outside %d..%d", width, height, MAP_SIDE_MIN,
                           MAP_SIDE_MAX);
    rc = check_keypoints(kp, err);
    if (rc < 0)
        return rc;
    cv.px = gf_xcalloc((size_t)width * height, 3);
    draw(&cv, kp);
    im = vips_image_new_from_memory(cv.px, (size_t)width * height * 3, width, height, 3,
                                    VIPS_FORMAT_UCHAR);
    if (im == NULL) {
        free(cv.px);
        return img__vips_fail(err, GF_ENOMEM, IMG_REASON_NONE, "while wrapping the pose map");
    }
    im->Type = VIPS_INTERPRETATION_sRGB;
    /* The image borrows cv.px; it is freed after the image is gone. */
    rc = img__encode(im, IMG_FORMAT_PNG, 0, out);
    g_object_unref(im);
    free(cv.px);
    if (rc != 0)
        return img__vips_fail(err, GF_EIO, IMG_REASON_NONE, "while encoding the pose map");
    return 0;
}
