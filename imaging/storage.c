/*
 * imaging/storage.c - the storage keys of images: where an output or an
 * upload lives in storage/ (which does the reading and writing).
 *
 * A key is only ever built from validated parts (UUIDs, an index, a variant
 * name from our own presets, a fixed extension), so no user string can name
 * an object; the same parts always give the same key, which makes a retried
 * job's write idempotent.
 */
#include "imaging_int.h"

#include <stdio.h>
#include <string.h>

#define INDEX_MAX   999
#define UPLOADS_DIR "uploads"

int img_id_is_valid(const char *s)
{
    return gf_uuid_is_valid(s);
}

static int variant_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n >= IMG_VARIANT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

int img_storage_key(const char *user_id, const char *gen_id, int index, const char *variant,
                    img_format fmt, char key[IMG_KEY_MAX], gf_err_t *err)
{
    if (!img_id_is_valid(user_id) || !img_id_is_valid(gen_id))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "storage ids must be lower-case UUIDs");
    if (index < 0 || index > INDEX_MAX || !variant_ok(variant) || fmt == IMG_FORMAT_NONE)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "bad output index, variant or format");
    snprintf(key, IMG_KEY_MAX, "%s/%s/%d-%s.%s", user_id, gen_id, index, variant,
             img_format_ext(fmt));
    return 0;
}

int img_storage_attempt_key(const char *user_id, const char *gen_id, int index, const char *variant,
                            img_format fmt, uint64_t attempt, char key[IMG_KEY_MAX], gf_err_t *err)
{
    if (!img_id_is_valid(user_id) || !img_id_is_valid(gen_id))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "storage ids must be lower-case UUIDs");
    if (index < 0 || index > INDEX_MAX || !variant_ok(variant) || fmt == IMG_FORMAT_NONE ||
        attempt == 0)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "bad output index, variant or format");
    snprintf(key, IMG_KEY_MAX, "%s/%s/%d-%s.a%llu.%s", user_id, gen_id, index, variant,
             (unsigned long long)attempt, img_format_ext(fmt));
    return 0;
}

int img_storage_upload_key(const char *user_id, const char *upload_id, img_format fmt,
                           char key[IMG_KEY_MAX], gf_err_t *err)
{
    if (!img_id_is_valid(user_id) || !img_id_is_valid(upload_id) || fmt == IMG_FORMAT_NONE)
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "bad upload key parts");
    snprintf(key, IMG_KEY_MAX, "%s/" UPLOADS_DIR "/%s.%s", user_id, upload_id, img_format_ext(fmt));
    return 0;
}
