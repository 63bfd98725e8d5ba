/*
 * imaging/storage.c - where images live under FARM_STORAGE_DIR, and how
 * they get there.
 *
 * Invariants:
 * - A path is only ever built from validated parts (UUIDs, an index, a
 *   variant name from our own presets, a fixed extension), so no user
 *   string can name a file; the same parts always give the same path, which
 *   makes a retried job's write idempotent.
 * - A reader never sees a partial file: writes go to a unique temp file in
 *   the target directory, are fsync'd, then renamed over the final name, and
 *   the directory is fsync'd so the rename survives a crash.
 * - Serving resolves only keys that match the layout's grammar exactly, and
 *   only to regular files whose real path lies under the real root.
 */
#include "imaging_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_MAX   999
#define DIR_MODE    0750
#define FILE_MODE   0640
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

/* The format of an extension we write, IMG_FORMAT_NONE otherwise. */
static img_format format_of_ext(const char *ext)
{
    static const img_format all[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(ext, img_format_ext(all[i])) == 0)
            return all[i];
    return IMG_FORMAT_NONE;
}

/*
 * Checks that `key` is exactly one the key builders could have made, by
 * rebuilding it from its parsed parts and comparing. Sets `*fmt`.
 */
static int key_is_valid(const char *key, img_format *fmt)
{
    char user[37], mid[37], file[64], ext[8], rebuilt[IMG_KEY_MAX], variant[IMG_VARIANT_NAME_MAX];
    const char *dot;
    int index, n = -1;

    if (key == NULL || strlen(key) >= IMG_KEY_MAX ||
        sscanf(key, "%36[0-9a-f-]/%36[0-9a-z-]/%63[0-9a-z_.-]%n", user, mid, file, &n) != 3 ||
        key[n] != '\0')
        return 0;
    dot = strrchr(file, '.');
    if (dot == NULL || strlen(dot + 1) >= sizeof(ext))
        return 0;
    snprintf(ext, sizeof(ext), "%s", dot + 1);
    *fmt = format_of_ext(ext);
    if (strcmp(mid, UPLOADS_DIR) == 0) {
        char id[37];
        snprintf(id, sizeof(id), "%.*s", (int)(dot - file), file);
        if (img_storage_upload_key(user, id, *fmt, rebuilt, NULL) != 0)
            return 0;
    } else {
        unsigned long long attempt = 0;
        int m = -1;
        if (sscanf(file, "%3d-%31[a-z0-9_]%n", &index, variant, &m) != 2)
            return 0;
        if (file[m] == '.' && file[m + 1] == 'a' && sscanf(file + m, ".a%20llu", &attempt) == 1) {
            if (img_storage_attempt_key(user, mid, index, variant, *fmt, attempt, rebuilt, NULL) !=
                0)
                return 0;
        } else if (img_storage_key(user, mid, index, variant, *fmt, rebuilt, NULL) != 0) {
            return 0;
        }
    }
    return strcmp(rebuilt, key) == 0;
}

/* mkdir -p of `path` (modified in place, restored). */
static int make_dirs(char *path, gf_err_t *err)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, DIR_MODE);
        int e = errno;
        *p = c;
        if (rc != 0 && e != EEXIST)
            return gf_err_setd(err, GF_EIO, IMG_DOMAIN, e, "mkdir %s: %s", path, strerror(e));
        if (c == '\0')
            return 0;
    }
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync of a directory, so a rename or create in it is durable. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int img_storage_write(const char *root, const char *key, const void *data, size_t len,
                      gf_err_t *err)
{
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    img_format fmt;
    const char *slash;
    int fd, e;

    if (root == NULL || *root == '\0' || !key_is_valid(key, &fmt))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "refusing to write an invalid storage key");
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, key) >= sizeof(path))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "storage path too long");
    slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (make_dirs(dir, err) < 0)
        return GF_EIO;
    /* A temp name per writer: two workers racing on one job never share it. */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.XXXXXX", dir, slash + 1) >= sizeof(tmp))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "storage path too long");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        return gf_err_setd(err, GF_EIO, IMG_DOMAIN, e, "mkstemp in %s: %s", dir, strerror(e));
    }
    if (fchmod(fd, FILE_MODE) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        e = errno;
        close(fd);
        unlink(tmp);
        return gf_err_setd(err, GF_EIO, IMG_DOMAIN, e, "writing %s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return gf_err_setd(err, GF_EIO, IMG_DOMAIN, e, "renaming to %s: %s", path, strerror(e));
    }
    if (sync_dir(dir) != 0) {
        e = errno;
        return gf_err_setd(err, GF_EIO, IMG_DOMAIN, e, "fsync %s: %s", dir, strerror(e));
    }
    return 0;
}

int img_storage_resolve(const char *root, const char *key, char *path, size_t size, img_format *fmt,
                        gf_err_t *err)
{
    char joined[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
    img_format f;
    struct stat st;
    size_t rn;

    if (root == NULL || !key_is_valid(key, &f))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "not a storage key");
    if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", root, key) >= sizeof(joined))
        return gf_err_set(err, GF_EINVAL, IMG_DOMAIN, "storage path too long");
    if (realpath(root, real_root) == NULL || realpath(joined, real) == NULL)
        return gf_err_setd(err, GF_ENOTFOUND, IMG_DOMAIN, errno, "no file for key %s", key);
    rn = strlen(real_root);
    /* Every part of a valid key is a plain name, so only a symlink could lead
     * out of the root; refuse the file if one did. */
    if (strncmp(real, real_root, rn) != 0 || real[rn] != '/' || stat(real, &st) != 0 ||
        !S_ISREG(st.st_mode))
        return gf_err_set(err, GF_ENOTFOUND, IMG_DOMAIN, "key %s is not a file under the root",
                          key);
    if (strlen(real) >= size)
        return gf_err_set(err, GF_ETOOBIG, IMG_DOMAIN, "path buffer too small");
    memcpy(path, real, strlen(real) + 1);
    if (fmt != NULL)
        *fmt = f;
    return 0;
}

int img_storage_remove(const char *root, const char *key, gf_err_t *err)
{
    char path[PATH_MAX];
    img_format f;
    gf_err_t e = {0};

    if (img_storage_resolve(root, key, path, sizeof(path), &f, &e) < 0)
        return e.code == GF_ENOTFOUND ? 0 : gf_err_set(err, e.code, IMG_DOMAIN, "%s", e.msg);
    if (unlink(path) != 0 && errno != ENOENT)
        return gf_err_setd(err, GF_EIO, IMG_DOMAIN, errno, "cannot remove %s", key);
    return 0;
}
