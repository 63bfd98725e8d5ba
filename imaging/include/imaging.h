/*
 * imaging/include/imaging.h - the libvips pipelines of genfarm (docs/imaging.md).
 *
 * Upload validation, post-processing a provider image into the variants of
 * API.md, pose-map rendering, the preset data files, the parameters of a
 * generation (which name them) and the storage layout.
 *
 * Threading: after img_init(), every function here except img_init() and
 * img_shutdown() is safe to call from any thread, in particular from a
 * uv_queue_work() work_cb. They are pure functions over caller-owned buffers:
 * no event loop, no globals besides libvips' own (whose error buffer is
 * process-wide: its text lands in `err->msg` as context only, and is cleared).
 *
 * Errors follow core/include/err.h with domain "imaging". Input errors carry an
 * img_reason in `err->detail` so the API can pick its status without parsing
 * messages (see img_err_reason()). No type of libvips, OpenSSL or jansson
 * appears here.
 */
#ifndef IMG_IMAGING_H
#define IMG_IMAGING_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* ---- formats and errors ---------------------------------------------------- */

typedef enum {
    IMG_FORMAT_NONE = 0,
    IMG_FORMAT_PNG,
    IMG_FORMAT_JPEG,
    IMG_FORMAT_WEBP,
} img_format;

/* "png", "jpeg", "webp" (API.md's `format`); "" for IMG_FORMAT_NONE. */
const char *img_format_name(img_format f);
/* File extension without the dot: "png", "jpg", "webp". */
const char *img_format_ext(img_format f);
/* Content-Type: "image/png", ... */
const char *img_format_mime(img_format f);
/* The format named "png" | "jpeg" | "webp", else IMG_FORMAT_NONE. */
img_format img_format_from_name(const char *name);

/*
 * Why an input was refused, stored in gf_err_t.detail. The API maps each to
 * one status: TOO_MANY_BYTES 413 payload_too_large, UNSUPPORTED 415,
 * UNDECODABLE and TOO_MANY_PIXELS 422 invalid_image; INVALID_OUTPUT is the
 * `invalid_output` failure of a provider image.
 */
typedef enum {
    IMG_REASON_NONE = 0,
    IMG_REASON_TOO_MANY_BYTES = 1,  /* code GF_ETOOBIG */
    IMG_REASON_UNSUPPORTED = 2,     /* not PNG, JPEG or WebP by its bytes; GF_EINVAL */
    IMG_REASON_TOO_MANY_PIXELS = 3, /* header declares more than allowed; GF_ETOOBIG */
    IMG_REASON_UNDECODABLE = 4,     /* truncated, corrupt; GF_EINVAL */
    IMG_REASON_INVALID_OUTPUT = 5,  /* provider image undecodable or wrong size; GF_EPROVIDER */
} img_reason;

/* The img_reason of an error recorded by this module, IMG_REASON_NONE otherwise. */
img_reason img_err_reason(const gf_err_t *err);

/* ---- process setup --------------------------------------------------------- */

/*
 * Starts libvips for a server: per-pipeline threads from FARM_VIPS_CONCURRENCY,
 * the operation cache from FARM_VIPS_CACHE_MB (0 disables it), loaders that
 * libvips marks untrusted blocked. Call once, on the main thread, before any
 * other function here (and before starting threads that use them).
 * Returns 0 or GF_EUNAVAIL when libvips cannot start.
 */
int img_init(const gf_config_t *cfg, gf_err_t *err);

/*
 * For a process whose main work is post-processing (the worker): glibc's
 * malloc keeps blocks up to 32 MiB on its heaps and up to 64 MiB free
 * before trimming, so the megabyte buffers each image needs are reused by
 * the next instead of being mapped and faulted in again. Process-wide
 * (glibc's mallopt); call once at start. The api does not call it: its
 * memory bound would count what malloc keeps.
 */
void img_keep_heap(void);

/* Stops libvips and frees its global state. Call once at exit, after every
 * pipeline has returned. */
void img_shutdown(void);

/* ---- buffers --------------------------------------------------------------- */

/* A byte buffer this module allocated; free with img_buf_dispose(). */
typedef struct {
    unsigned char *data;
    size_t len;
} img_buf;

/* Frees `b->data` and zeroes `b`; a zeroed buffer is a no-op. */
void img_buf_dispose(img_buf *b);

/* Lower-case hex SHA-256 of `len` bytes into `hex` (65 bytes with the NUL). */
void img_sha256_hex(const void *data, size_t len, char hex[65]);

/*
 * The signature of a file URL (API.md, files): lower-case hex HMAC-SHA256
 * under `secret` of "<key>\n<exp>", `exp` in unix seconds. The api signs
 * and checks with it; the webhook deliverer signs the outputs it sends.
 */
void img_file_sig(const char *secret, const char *key, long exp, char out[65]);

/* ---- uploads (API.md POST /v1/uploads) ------------------------------------- */

typedef struct {
    size_t max_bytes;    /* FARM_UPLOAD_MAX_BYTES */
    uint64_t max_pixels; /* FARM_UPLOAD_MAX_PIXELS, width x height as declared */
} img_limits;

/* The limits of `cfg`. */
img_limits img_limits_from_config(const gf_config_t *cfg);

/* PNG, JPEG or WebP by the first bytes of `data`, else IMG_FORMAT_NONE. Never
 * trusts a Content-Type or a file name. */
img_format img_sniff(const void *data, size_t len);

typedef struct {
    img_format format; /* of the normalized image (the upload's own format) */
    int width, height; /* after EXIF orientation */
    size_t bytes;      /* of the normalized image */
    char sha256[65];   /* of the normalized image */
    /* img_upload_probe(): the memory its decode holds at once, beyond the body: the
     * whole image for WebP (decoded, then imported by the encoder) or an image EXIF
     * turns (decoded whole to rotate), about 9 bytes a pixel; 0 for an upright PNG or
     * JPEG, which streams from decoder to encoder a few lines at a time. */
    size_t decode_bytes;
} img_info;

/*
 * Checks an upload cheaply: its size, its type by bytes, then the dimensions
 * its header declares against `lim` - without decoding any pixel. Fills
 * `info` (width and height as stored, before orientation; bytes as given).
 * Errors: GF_ETOOBIG (TOO_MANY_BYTES, TOO_MANY_PIXELS), GF_EINVAL
 * (UNSUPPORTED, or UNDECODABLE when the header itself is broken).
 */
int img_upload_probe(const void *data, size_t len, const img_limits *lim, img_info *info,
                     gf_err_t *err);

/*
 * Validates and normalizes an upload: img_upload_probe(), then one full decode
 * that fails on any decoder error (a truncated or corrupt file is refused,
 * not half-grey), EXIF orientation applied, converted to 8-bit sRGB (through
 * an embedded ICC profile when there is one), every piece of metadata dropped,
 * re-encoded in its own format (PNG lossless, JPEG and WebP at quality 92).
 * `out` receives the new encoded image (the caller owns it: img_buf_dispose());
 * `info` describes it. On error `out` is left empty.
 * Errors as img_upload_probe(), plus GF_EINVAL/UNDECODABLE.
 */
int img_upload_normalize(const void *data, size_t len, const img_limits *lim, img_buf *out,
                         img_info *info, gf_err_t *err);

/* ---- presets (API.md GET /v1/presets; imaging/presets/) -------------- */

#define IMG_POSE_KEYPOINTS 18 /* OpenPose body (COCO order) */

/* One OpenPose keypoint, normalized: x, y in 0..1; confidence 0 = absent. */
typedef struct {
    float x, y, confidence;
} img_keypoint;

typedef struct {
    const char *name; /* "standing-arms-crossed"; lower-case, digits, '-' */
    const char *category;
    const char *description;
    img_keypoint keypoints[IMG_POSE_KEYPOINTS];
} img_pose_preset;

typedef struct {
    const char *name;
    const char *description;
    const char *prompt_suffix; /* appended to the prompt, after ", " */
} img_style_preset;

typedef struct {
    const char *name; /* the variant name: "instagram_story" */
    int width, height;
    img_format format;
    int quality; /* JPEG/WebP quality 1..100; ignored for PNG */
} img_export_preset;

typedef struct img_presets img_presets_t;

/*
 * Loads and checks poses.json, styles.json and exports.json from `dir`
 * (FARM_PRESETS_DIR). Every file must be well-formed: unique names, 18
 * keypoints per pose with coordinates in 0..1, sizes 16..8192, a known
 * format. Returns a new, immutable object (free with img_presets_free(); it
 * may be shared by threads without locks) or NULL with `err` naming the file
 * and the entry (GF_EIO when a file cannot be read, GF_EINVAL when malformed).
 */
img_presets_t *img_presets_load(const char *dir, gf_err_t *err);
void img_presets_free(img_presets_t *p);

/* Counts and entries; pointers are borrowed from `p` and live as long as it. */
size_t img_presets_pose_count(const img_presets_t *p);
const img_pose_preset *img_presets_pose(const img_presets_t *p, size_t i);
size_t img_presets_style_count(const img_presets_t *p);
const img_style_preset *img_presets_style(const img_presets_t *p, size_t i);
size_t img_presets_export_count(const img_presets_t *p);
const img_export_preset *img_presets_export(const img_presets_t *p, size_t i);

/* Lookups by name (exact); NULL when there is none. Borrowed from `p`. */
const img_pose_preset *img_presets_pose_find(const img_presets_t *p, const char *name);
const img_style_preset *img_presets_style_find(const img_presets_t *p, const char *name);
/*
 * The prompt a provider gets for a call with an identity and/or a pose map:
 * styles.json's reference_prompts template ("the person in image 1, in the
 * pose of image 2: {prompt}"...) around `prompt` (the user's prompt with its
 * style suffix), naming the images in the order the adapters send them
 * (identity first). With neither, a copy of `prompt`. New string.
 */
char *img_presets_reference_prompt(const img_presets_t *p, int identity, int pose,
                                   const char *prompt);
const img_export_preset *img_presets_export_find(const img_presets_t *p, const char *name);

/* ---- generation parameters (API.md POST /v1/generations; params.c) ---------- */

/*
 * The limits of API.md, in one place: the api checks a request body against
 * them and the worker the queue's payload, with the same parser.
 */
#define IMG_PARAMS_PROMPT_MAX      2000 /* characters */
#define IMG_PARAMS_NEGATIVE_MAX    1000 /* characters */
#define IMG_PARAMS_SIZE_MIN        256
#define IMG_PARAMS_SIZE_MAX        1536
#define IMG_PARAMS_SIZE_STEP       16 /* width and height are multiples of it */
#define IMG_PARAMS_SIZE_DEFAULT    1024
#define IMG_PARAMS_COUNT_MAX       4 /* images per pose */
#define IMG_PARAMS_SEED_MAX        4294967295LL
#define IMG_PARAMS_STEPS_MAX       50
#define IMG_PARAMS_STEPS_DEFAULT   28
#define IMG_PARAMS_GUIDANCE_MAX    20
#define IMG_PARAMS_POSES_MAX       20
#define IMG_PARAMS_PRESET_NAME_MAX 64 /* bytes */
#define IMG_PARAMS_EXPORTS_MAX     16
#define IMG_PARAMS_IMAGES_MAX      40 /* count x poses; an identity's index is below it */
#define IMG_PARAMS_DEADLINE_MAX_S  (7 * 86400)
#define IMG_PARAMS_PROVIDER_MAX    16   /* bytes */
#define IMG_PARAMS_WEBHOOK_URL_MAX 2048 /* bytes */
#define IMG_PARAMS_METADATA_MAX    2048 /* bytes of its compact JSON */

/* webhook_events (API.md): the events POSTed besides the terminal one. */
#define IMG_WEBHOOK_STARTED 1u
#define IMG_WEBHOOK_IMAGE   2u

typedef enum {
    IMG_KIND_AVATAR,
    IMG_KIND_POSE,
} img_kind;

/* One pose of a pose generation: a preset or an uploaded pose map. */
typedef struct {
    char preset[IMG_PARAMS_PRESET_NAME_MAX + 1]; /* the preset's name; "" for an upload */
    char upload_id[37];                          /* "" for a preset */
    const img_pose_preset *def; /* the preset; NULL for an upload or a preset not loaded */
} img_params_pose;

/*
 * A generation's parameters as accepted. Strings and arrays are owned (free
 * with img_params_dispose()); presets are borrowed from the img_presets_t the
 * parse was given.
 */
typedef struct {
    img_kind kind;
    char *prompt;
    char *negative_prompt; /* NULL when not given */
    int width, height, count, steps;
    int64_t seed;                      /* -1 when not given (a request's: the api draws one) */
    double guidance;                   /* -1 when not given */
    int guidance_is_int;               /* given as an integer (echoed as one) */
    char *style;                       /* NULL when not given */
    const img_style_preset *style_def; /* NULL when not given or not loaded */
    char identity_upload[37];          /* identity {"upload_id"}, or "" */
    char identity_generation[37];      /* identity {"generation_id", "index"}, or "" */
    int identity_index;
    img_params_pose *poses; /* kind pose only */
    int nposes;             /* 0 for an avatar */
    char **exports;         /* the export names as given */
    int nexports;
    const img_export_preset **export_defs; /* the loaded ones among them, in order */
    int n_export_defs;
    char *provider;          /* "auto" when not given; NULL when given as null */
    int64_t deadline_s;      /* 0: none */
    char *webhook_url;       /* a request's only (not in the payload); NULL when not given */
    unsigned webhook_events; /* a request's only: IMG_WEBHOOK_* bits of webhook_events */
    char *metadata;          /* a request's only: its compact JSON object; NULL when not given */
    int images;              /* count x poses (count for an avatar) */
    unsigned nulls;          /* optional fields given as null, echoed in the payload (params.c) */
} img_params;

typedef enum {
    /* A POST body (API.md): an unknown field or preset, or a provider that
     * `provider_ok` refuses, is an error. */
    IMG_PARAMS_REQUEST,
    /* A queue payload, made by img_params_payload() of this or an earlier
     * version: unknown fields are ignored and presets this process has not
     * loaded are left unresolved; every limit still holds. */
    IMG_PARAMS_PAYLOAD,
} img_params_mode;

typedef struct {
    img_params_mode mode;
    const img_presets_t *presets; /* borrowed; NULL: no preset is known */
    /* Requests: whether a request may name `provider` (never "auto"); NULL: any. */
    int (*provider_ok)(const char *provider, void *data);
    void *provider_data;
    int webhook_allow_http; /* requests: webhook_url may be http:// (FARM_WEBHOOK_ALLOW_PRIVATE) */
} img_params_opts;

/* Why a parse failed: the field (API.md's error `field`; "" for the body itself) and a message
 * for the client. */
typedef struct {
    char field[64];
    char message[200];
} img_params_err;

/*
 * Parses and checks a generation's parameters from `len` bytes of JSON, field
 * by field in API.md's order; the first problem found is the one reported.
 * Fills `out` (img_params_dispose() it, also on error) with the defaults of
 * API.md for what is absent. 0, or GF_EINVAL with `e` (may be NULL) set.
 */
int img_params_parse(const char *json, size_t len, const img_params_opts *o, img_params *out,
                     img_params_err *e);

/*
 * The parameters as the queue's payload and Postgres' `params` (GET's
 * `params`): the accepted fields with their defaults filled in, without
 * `webhook_url`, `webhook_events` and `metadata`. Returns a new string (free()).
 */
char *img_params_payload(const img_params *p);

/* Frees what a parse allocated and zeroes `p`; a zeroed `p` is a no-op. */
void img_params_dispose(img_params *p);

/* ---- variants of a provider image (API.md outputs) ------------------------- */

#define IMG_VARIANT_NAME_MAX 32

/* One encoded output. `data` is owned by the img_variants that holds it. */
typedef struct {
    char name[IMG_VARIANT_NAME_MAX]; /* "full", "512", "256", "thumb" or an export's name */
    img_format format;
    int width, height;
    img_buf data;
    char sha256[65];
} img_variant;

/* The outputs of one image; caller-provided storage, img_variants_dispose(). */
typedef struct {
    img_variant *items;
    size_t count;
} img_variants;

typedef struct {
    int expect_width, expect_height;         /* the size asked of the provider; required */
    const img_export_preset *const *exports; /* borrowed; may be NULL when n_exports is 0 */
    size_t n_exports;
} img_post_opts;

/*
 * Turns a provider image into the variants of API.md, in this order: `full`
 * (WebP q85, the provider's size), `512` and `256` (square WebP q85,
 * attention crop), `thumb` (JPEG q80, longer side 128, whole image), then one
 * per export preset (cover + attention crop to exactly its size, in its
 * format). The image is decoded once (fail on any decoder error), converted
 * to sRGB, and every output is stripped of metadata. Each variant reports its
 * size, byte count and sha256. Fills `out` (dispose it even on error; it is
 * empty then).
 * Errors: GF_EPROVIDER with IMG_REASON_INVALID_OUTPUT when the image is not
 * PNG/JPEG/WebP, does not decode, or is not expect_width x expect_height;
 * GF_EINVAL for bad options; GF_ENOMEM/GF_EIO from libvips itself.
 */
int img_variants_make(const void *data, size_t len, const img_post_opts *o, img_variants *out,
                      gf_err_t *err);

/*
 * The name and format of variant `i` that img_variants_make() makes with
 * these exports, in its order, without making it (a takeover names the files
 * an earlier attempt may have left); 0, or -1 past the last one.
 */
int img_variant_spec(const img_export_preset *const *exports, size_t n_exports, size_t i,
                     const char **name, img_format *fmt);

/* Frees every variant's bytes and the array, and zeroes `v`. */
void img_variants_dispose(img_variants *v);

/* ---- pose maps -------------------------------------------------------------- */

/*
 * Renders the OpenPose control image of one person: black background, the 17
 * standard limbs as ellipses in the OpenPose colors at 60 % intensity, and the
 * 18 joints as discs in the full colors, at width x height (16..4096), with
 * stroke widths scaled from OpenPose's 4 px at 512. Keypoints with confidence
 * <= 0 and limbs touching them are left out. `out` receives a PNG (caller
 * owns it). Errors: GF_EINVAL for sizes or coordinates out of range.
 */
int img_pose_render(const img_keypoint kp[IMG_POSE_KEYPOINTS], int width, int height, img_buf *out,
                    gf_err_t *err);

/* The standard OpenPose color of limb `i` (0..16) and of joint `i` (0..17). */
void img_pose_limb_color(int i, unsigned char rgb[3]);
void img_pose_joint_color(int i, unsigned char rgb[3]);
/* The two joints (0-based keypoint indices) limb `i` (0..16) connects. */
void img_pose_limb_joints(int i, int *a, int *b);
#define IMG_POSE_LIMBS 17

/* ---- storage keys ------------------------------------------------------------ */

/*
 * Images are stored (by storage/) under the keys
 * {user}/{generation}/{index}-{variant}.{ext} and {user}/uploads/{upload}.{ext}.
 * Every key is built from validated parts - ids must be lower-case UUIDs, the
 * variant [a-z0-9_]{1,31}, the index 0..999 - never from a user's string.
 * Signed file URLs carry the key.
 */
#define IMG_KEY_MAX 160

/* True when `s` is a lower-case canonical UUID (8-4-4-4-12 hex). */
int img_id_is_valid(const char *s);

/*
 * Builds the key of an output into `key` (IMG_KEY_MAX bytes). GF_EINVAL when
 * a part is not valid.
 */
int img_storage_key(const char *user_id, const char *gen_id, int index, const char *variant,
                    img_format fmt, char key[IMG_KEY_MAX], gf_err_t *err);
/*
 * The key of an output written by one attempt (the queue's fencing token
 * `attempt` > 0): {user}/{generation}/{index}-{variant}.a{attempt}.{ext}.
 * Each attempt writes names of its own, so a stale attempt never overwrites
 * the files the generation serves; the same attempt always builds the same
 * key, so its retried put overwrites its own. Its files become outputs only
 * through the fenced Postgres write (farm_image_done). (issue #17)
 */
int img_storage_attempt_key(const char *user_id, const char *gen_id, int index, const char *variant,
                            img_format fmt, uint64_t attempt, char key[IMG_KEY_MAX], gf_err_t *err);
/* The key of an upload: {user}/uploads/{upload}.{ext}. */
int img_storage_upload_key(const char *user_id, const char *upload_id, img_format fmt,
                           char key[IMG_KEY_MAX], gf_err_t *err);

#endif
