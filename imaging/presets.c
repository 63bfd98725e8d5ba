/*
 * imaging/presets.c - the pose, style and export presets (API.md
 * GET /v1/presets), loaded from the JSON files in FARM_PRESETS_DIR.
 *
 * The files are data that people edit, so the loader is strict and names
 * the file and entry at fault: a typo should stop the process at start, not
 * surface as a malformed pose map weeks later. Once loaded the object is
 * immutable, so any thread may read it without a lock.
 */
#include "imaging_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

struct img_presets {
    img_pose_preset *poses;
    size_t n_poses;
    img_style_preset *styles;
    size_t n_styles;
    img_export_preset *exports;
    size_t n_exports;
    char *ref_prompts[3]; /* identity_and_pose, identity, pose */
};

#define NAME_MAX_LEN   (IMG_VARIANT_NAME_MAX - 1)
#define TEXT_MAX_LEN   500
#define EXPORT_SIDE_LO 16
#define EXPORT_SIDE_HI 8192

/* Names become URL parts and file names: lower-case, digits and one
 * separator ('-' for poses and styles, '_' for exports, as API.md spells
 * them). */
static int name_ok(const char *s, char sep)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == sep))
            return 0;
    return 1;
}

/* A string member, copied; NULL (err set) when missing, empty or too long. */
static char *dup_text(json_t *obj, const char *key, const char *file, size_t i, gf_err_t *err)
{
    const char *s = json_string_value(json_object_get(obj, key));

    if (s == NULL || *s == '\0' || strlen(s) > TEXT_MAX_LEN) {
        gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "%s: entry %zu: \"%s\" must be a string of 1..%d",
                   file, i, key, TEXT_MAX_LEN);
        return NULL;
    }
    return gf_xstrdup(s);
}

/*
 * Refuses a member of `o` that is not one of `keys` (NULL-terminated): a
 * misspelt key ("qualty") would otherwise read as absent, and its default
 * be used in silence. `where` names the object ("entry 3", "the file").
 */
static int known_keys_only(json_t *o, const char *const *keys, const char *file, const char *where,
                           gf_err_t *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k) != 0)
            i++;
        if (keys[i] == NULL)
            return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "%s: %s: unknown key \"%s\"", file, where,
                              k);
    }
    return 0;
}

static int entry_keys_only(json_t *o, const char *const *keys, const char *file, size_t i,
                           gf_err_t *err)
{
    char where[32];
    snprintf(where, sizeof(where), "entry %zu", i);
    return known_keys_only(o, keys, file, where, err);
}

/* The keypoints' order as poses.json's "keypoint_order" names it: COCO's, the one drawn. */
static const char *const keypoint_names[IMG_POSE_KEYPOINTS] = {
    "nose",       "neck",       "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip",      "right_knee",  "right_ankle", "left_hip",
    "left_knee",  "left_ankle", "right_eye",      "left_eye",    "right_ear",   "left_ear"};

static int parse_keypoints(json_t *arr, img_keypoint kp[IMG_POSE_KEYPOINTS], const char *name,
                           gf_err_t *err)
{
    if (!json_is_array(arr) || json_array_size(arr) != IMG_POSE_KEYPOINTS)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "poses.json: %s: need %d keypoints", name,
                          IMG_POSE_KEYPOINTS);
    for (size_t k = 0; k < IMG_POSE_KEYPOINTS; k++) {
        json_t *p = json_array_get(arr, k);
        double v[3];
        if (!json_is_array(p) || json_array_size(p) != 3)
            return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                              "poses.json: %s: keypoint %zu is not [x, y, confidence]", name, k);
        for (size_t c = 0; c < 3; c++) {
            json_t *n = json_array_get(p, c);
            v[c] = json_number_value(n);
            if (!json_is_number(n) || !(v[c] >= 0 && v[c] <= 1))
                return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                                  "poses.json: %s: keypoint %zu has a value outside 0..1", name, k);
        }
        kp[k] = (img_keypoint){(float)v[0], (float)v[1], (float)v[2]};
    }
    return 0;
}

static int parse_pose(json_t *o, size_t i, void *entry, gf_err_t *err)
{
    img_pose_preset *p = entry;
    static const char *const keys[] = {"name", "category", "description", "keypoints", NULL};

    if (entry_keys_only(o, keys, "poses.json", i, err) < 0)
        return GF_EINVAL;
    if ((p->name = dup_text(o, "name", "poses.json", i, err)) == NULL ||
        (p->category = dup_text(o, "category", "poses.json", i, err)) == NULL ||
        (p->description = dup_text(o, "description", "poses.json", i, err)) == NULL)
        return GF_EINVAL;
    if (!name_ok(p->name, '-') || !name_ok(p->category, '-'))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                          "poses.json: entry %zu: name and category must be [a-z0-9-]{1,%d}", i,
                          NAME_MAX_LEN);
    return parse_keypoints(json_object_get(o, "keypoints"), p->keypoints, p->name, err);
}

static int parse_style(json_t *o, size_t i, void *entry, gf_err_t *err)
{
    img_style_preset *s = entry;
    static const char *const keys[] = {"name", "description", "prompt_suffix", NULL};

    if (entry_keys_only(o, keys, "styles.json", i, err) < 0)
        return GF_EINVAL;
    if ((s->name = dup_text(o, "name", "styles.json", i, err)) == NULL ||
        (s->description = dup_text(o, "description", "styles.json", i, err)) == NULL ||
        (s->prompt_suffix = dup_text(o, "prompt_suffix", "styles.json", i, err)) == NULL)
        return GF_EINVAL;
    if (!name_ok(s->name, '-'))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                          "styles.json: entry %zu: name must be [a-z0-9-]{1,%d}", i, NAME_MAX_LEN);
    return 0;
}

/* Variant names the pipeline itself produces; an export may not shadow them. */
static int is_builtin_variant(const char *name)
{
    return strcmp(name, "full") == 0 || strcmp(name, "512") == 0 || strcmp(name, "256") == 0 ||
           strcmp(name, "thumb") == 0;
}

static int parse_export(json_t *o, size_t i, void *entry, gf_err_t *err)
{
    img_export_preset *e = entry;
    json_t *q = json_object_get(o, "quality");
    static const char *const keys[] = {"name", "width", "height", "format", "quality", NULL};

    if (entry_keys_only(o, keys, "exports.json", i, err) < 0)
        return GF_EINVAL;
    if ((e->name = dup_text(o, "name", "exports.json", i, err)) == NULL)
        return GF_EINVAL;
    if (!name_ok(e->name, '_') || is_builtin_variant(e->name))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                          "exports.json: entry %zu: name must be [a-z0-9_]{1,%d} and not a "
                          "built-in variant",
                          i, NAME_MAX_LEN);
    e->width = (int)json_integer_value(json_object_get(o, "width"));
    e->height = (int)json_integer_value(json_object_get(o, "height"));
    e->format = img_format_from_name(json_string_value(json_object_get(o, "format")));
    e->quality = q ? (int)json_integer_value(q) : 85;
    if (e->width < EXPORT_SIDE_LO || e->width > EXPORT_SIDE_HI || e->height < EXPORT_SIDE_LO ||
        e->height > EXPORT_SIDE_HI)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                          "exports.json: %s: width and height must be integers in %d..%d", e->name,
                          EXPORT_SIDE_LO, EXPORT_SIDE_HI);
    if (e->format == IMG_FORMAT_NONE)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                          "exports.json: %s: format must be png, jpeg or webp", e->name);
    if (e->format != IMG_FORMAT_PNG && (e->quality < 1 || e->quality > 100))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "exports.json: %s: quality must be in 1..100",
                          e->name);
    return 0;
}

/*
 * What a file may hold beside its list: "version", 1 (the format read
 * here), and in poses.json "keypoint_order", which must be the order the
 * keypoints are drawn in; each is optional.
 */
static int check_file(json_t *root, const char *file, const char *key, gf_err_t *err)
{
    const char *keys[] = {key, "version", NULL, NULL};
    if (strcmp(file, "poses.json") == 0)
        keys[2] = "keypoint_order";
    else if (strcmp(file, "styles.json") == 0)
        keys[2] = "reference_prompts";
    if (known_keys_only(root, keys, file, "the file", err) < 0)
        return GF_EINVAL;
    json_t *v = json_object_get(root, "version");
    if (v != NULL && !(json_is_integer(v) && json_integer_value(v) == 1))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "%s: \"version\" must be 1", file);
    json_t *order = json_object_get(root, "keypoint_order");
    int same = json_is_array(order) && json_array_size(order) == IMG_POSE_KEYPOINTS;
    for (size_t i = 0; order && same && i < IMG_POSE_KEYPOINTS; i++) {
        const char *name = json_string_value(json_array_get(order, i));
        same = name && strcmp(name, keypoint_names[i]) == 0;
    }
    if (order != NULL && !same)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                          "%s: \"keypoint_order\" must be COCO's, as drawn: nose, neck, "
                          "right_shoulder, ..., left_ear (docs/imaging.md)",
                          file);
    return 0;
}

/* Loads {dir}/{file} and returns its `key` array (borrowed from *root). */
static json_t *load_list(const char *dir, const char *file, const char *key, json_t **root,
                         gf_err_t *err)
{
    char path[4096];
    json_error_t jerr;
    json_t *arr;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (*root == NULL) {
        /* Missing or unreadable: FARM_PRESETS_DIR names the wrong place, a configuration
         * error like a bad file (exit 2, so systemd does not restart it for ever). */
        if (jerr.line < 0)
            gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "FARM_PRESETS_DIR=%s: cannot read %s: %s", dir,
                       file, jerr.text);
        else
            gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return NULL;
    }
    arr = json_object_get(*root, key);
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "%s: \"%s\" must be a non-empty array", path, key);
        return NULL;
    }
    if (check_file(*root, file, key, err) < 0)
        return NULL;
    return arr;
}

/* Fails when two entries of one list share a name. `stride` walks structs
 * whose first member is the name. */
static int check_unique(const void *base, size_t n, size_t stride, const char *file, gf_err_t *err)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            const char *a = *(const char *const *)((const char *)base + i * stride);
            const char *b = *(const char *const *)((const char *)base + j * stride);
            if (strcmp(a, b) == 0)
                return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "%s: name \"%s\" is used twice", file,
                                  a);
        }
    return 0;
}

typedef int (*parse_fn)(json_t *o, size_t i, void *entry, gf_err_t *err);

/*
 * Parses every entry of {dir}/{file}'s `key` array into a new array of
 * `size`-byte structs. `*count` covers a half-parsed entry too, so the
 * caller's free releases whatever was copied before the failure.
 */
static int load_entries(const char *dir, const char *file, const char *key, size_t size,
                        parse_fn parse, void **items, size_t *count, gf_err_t *err)
{
    json_t *root, *arr = load_list(dir, file, key, &root, err);
    int rc = arr ? 0 : GF_EINVAL;

    for (size_t i = 0; arr != NULL && rc == 0 && i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        if (i == 0)
            *items = gf_xcalloc(json_array_size(arr), size);
        *count = i + 1;
        rc = json_is_object(o) ? parse(o, i, (char *)*items + i * size, err)
                               : gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                                            "%s: entry %zu is not an object", file, i);
    }
    if (rc == 0)
        rc = check_unique(*items, *count, size, file, err);
    json_decref(root);
    return rc;
}

/* styles.json's "reference_prompts": three templates, each with "{prompt}" once. */
static int load_reference_prompts(const char *dir, img_presets_t *p, gf_err_t *err)
{
    static const char *const keys[3] = {"identity_and_pose", "identity", "pose"};
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/styles.json", dir);
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *o = json_object_get(root, "reference_prompts");
    static const char *const known[] = {"identity_and_pose", "identity", "pose", NULL};
    int rc =
        json_is_object(o) ? known_keys_only(o, known, "styles.json", "reference_prompts", err) : 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        const char *t = json_string_value(json_object_get(o, keys[i]));
        const char *at = t ? strstr(t, "{prompt}") : NULL;
        if (at == NULL || strstr(at + 1, "{prompt}") != NULL || strlen(t) > TEXT_MAX_LEN)
            rc = gf_err_set(err, GF_EINVAL, IMG_DOMAIN,
                            "%s: reference_prompts.%s must be a text with {prompt} once", path,
                            keys[i]);
        else
            p->ref_prompts[i] = gf_xstrdup(t);
    }
    json_decref(root);
    return rc;
}

char *img_presets_reference_prompt(const img_presets_t *p, int identity, int pose,
                                   const char *prompt)
{
    const char *t = identity && pose ? p->ref_prompts[0]
                    : identity       ? p->ref_prompts[1]
                    : pose           ? p->ref_prompts[2]
                                     : NULL;
    if (t == NULL)
        return gf_xstrdup(prompt);
    const char *at = strstr(t, "{prompt}");
    gf_buf_t b = {0};
    gf_buf_printf(&b, "%.*s%s%s", (int)(at - t), t, prompt, at + strlen("{prompt}"));
    return b.p;
}

img_presets_t *img_presets_load(const char *dir, gf_err_t *err)
{
    img_presets_t *p = gf_xcalloc(1, sizeof(*p));
    void *poses = NULL, *styles = NULL, *exports = NULL;
    int rc = load_entries(dir, "poses.json", "poses", sizeof(*p->poses), parse_pose, &poses,
                          &p->n_poses, err);

    p->poses = poses;
    if (rc == 0)
        rc = load_entries(dir, "styles.json", "styles", sizeof(*p->styles), parse_style, &styles,
                          &p->n_styles, err);
    p->styles = styles;
    if (rc == 0)
        rc = load_reference_prompts(dir, p, err);
    if (rc == 0)
        rc = load_entries(dir, "exports.json", "exports", sizeof(*p->exports), parse_export,
                          &exports, &p->n_exports, err);
    p->exports = exports;
    if (rc < 0)
        goto fail;
    return p;
fail:
    img_presets_free(p);
    return NULL;
}

void img_presets_free(img_presets_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_poses; i++) {
        free((char *)p->poses[i].name);
        free((char *)p->poses[i].category);
        free((char *)p->poses[i].description);
    }
    for (size_t i = 0; i < p->n_styles; i++) {
        free((char *)p->styles[i].name);
        free((char *)p->styles[i].description);
        free((char *)p->styles[i].prompt_suffix);
    }
    for (size_t i = 0; i < p->n_exports; i++)
        free((char *)p->exports[i].name);
    free(p->poses);
    free(p->styles);
    for (int i = 0; i < 3; i++)
        free(p->ref_prompts[i]);
    free(p->exports);
    free(p);
}

size_t img_presets_pose_count(const img_presets_t *p)
{
    return p->n_poses;
}

const img_pose_preset *img_presets_pose(const img_presets_t *p, size_t i)
{
    return i < p->n_poses ? &p->poses[i] : NULL;
}

size_t img_presets_style_count(const img_presets_t *p)
{
    return p->n_styles;
}

const img_style_preset *img_presets_style(const img_presets_t *p, size_t i)
{
    return i < p->n_styles ? &p->styles[i] : NULL;
}

size_t img_presets_export_count(const img_presets_t *p)
{
    return p->n_exports;
}

const img_export_preset *img_presets_export(const img_presets_t *p, size_t i)
{
    return i < p->n_exports ? &p->exports[i] : NULL;
}

const img_pose_preset *img_presets_pose_find(const img_presets_t *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_poses; i++)
        if (strcmp(p->poses[i].name, name) == 0)
            return &p->poses[i];
    return NULL;
}

const img_style_preset *img_presets_style_find(const img_presets_t *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_styles; i++)
        if (strcmp(p->styles[i].name, name) == 0)
            return &p->styles[i];
    return NULL;
}

const img_export_preset *img_presets_export_find(const img_presets_t *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_exports; i++)
        if (strcmp(p->exports[i].name, name) == 0)
            return &p->exports[i];
    return NULL;
}
