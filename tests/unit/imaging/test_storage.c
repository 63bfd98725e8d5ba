/*
 * tests/unit/imaging/test_storage.c - imaging/storage.c: keys come only from
 * validated parts, writes are atomic (a reader never sees a partial file and
 * no temp file is left), and the resolver never leaves the root.
 */
#include "imaging_test.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER "0b8f2a64-1c1e-4d8e-9d7a-3f3a6c1b2e10"
#define GEN  "7d0e4b1a-52f6-4c11-8a3e-9c2b5d6e7f80"
#define UPL  "c3d4e5f6-a7b8-4c9d-8e0f-112233445566"

static char root[1024];

static int make_root(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/imgstore.XXXXXX");
    if (mkdtemp(root) == NULL)
        return -1;
    /* A root that does not exist yet is made on first write. */
    strncat(root, "/storage", sizeof(root) - strlen(root) - 1);
    return 0;
}

static int remove_root(void **state)
{
    char cmd[PATH_MAX + 16];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strrchr(root, '/') - root), root);
    return system(cmd) == 0 ? 0 : -1;
}

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
    char a1[IMG_KEY_MAX], a1b[IMG_KEY_MAX], a2[IMG_KEY_MAX], path[PATH_MAX];
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
    /* Written and served like any key of the layout; a made-up attempt part is not one. */
    assert_int_equal(img_storage_write(root, a1, "one", 3, &err), 0);
    assert_int_equal(img_storage_resolve(root, a1, path, sizeof(path), NULL, &err), 0);
    assert_int_equal(img_storage_write(root, USER "/" GEN "/0-full.a.webp", "x", 1, &err),
                     GF_EINVAL);
    assert_int_equal(img_storage_write(root, USER "/" GEN "/0-full.a01.webp", "x", 1, &err),
                     GF_EINVAL);
    assert_int_equal(unlink(path), 0); /* the directory is the next test's */
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_write_then_resolve(void **state)
{
    (void)state;
    char key[IMG_KEY_MAX], path[PATH_MAX], dir[PATH_MAX];
    gf_err_t err = {0};
    img_format fmt = IMG_FORMAT_NONE;
    assert_int_equal(img_storage_key(USER, GEN, 0, "full", IMG_FORMAT_WEBP, key, &err), 0);
    assert_int_equal(img_storage_write(root, key, "first", 5, &err), 0);
    /* A retried job rewrites the same name. */
    assert_int_equal(img_storage_write(root, key, "second!", 7, &err), 0);
    assert_int_equal(img_storage_resolve(root, key, path, sizeof(path), &fmt, &err), 0);
    assert_int_equal(fmt, IMG_FORMAT_WEBP);
    assert_non_null(strstr(path, "/storage/" USER "/" GEN "/0-full.webp"));
    FILE *f = fopen(path, "r");
    char buf[16] = {0};
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof(buf), f), 7);
    fclose(f);
    assert_string_equal(buf, "second!");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    snprintf(dir, sizeof(dir), "%s/%s/%s", root, USER, GEN);
    assert_int_equal(count_entries(dir), 1); /* no temp file left behind */

    assert_int_equal(img_storage_upload_key(USER, UPL, IMG_FORMAT_JPEG, key, &err), 0);
    assert_int_equal(img_storage_write(root, key, "jpg", 3, &err), 0);
    assert_int_equal(img_storage_resolve(root, key, path, sizeof(path), &fmt, &err), 0);
    assert_int_equal(fmt, IMG_FORMAT_JPEG);
    assert_int_equal(img_storage_resolve(root, key, path, 8, NULL, &err), GF_ETOOBIG);
}

static void expect_bad_key(const char *key)
{
    char path[PATH_MAX];
    gf_err_t err = {0};
    if (img_storage_resolve(root, key, path, sizeof(path), NULL, &err) != GF_EINVAL)
        fail_msg("resolve accepted '%s'", key);
    gf_err_clear(&err);
    if (img_storage_write(root, key, "x", 1, &err) != GF_EINVAL)
        fail_msg("write accepted '%s'", key);
}

static void test_traversal_and_odd_keys_refused(void **state)
{
    (void)state;
    expect_bad_key("../etc/passwd");
    expect_bad_key("/etc/passwd");
    expect_bad_key(USER "/../../etc/passwd");
    expect_bad_key(USER "/" GEN "/../../../etc/passwd");
    expect_bad_key(USER "/" GEN "/0-full.webp/..");
    expect_bad_key(USER "/" GEN "/0-full.webp/x");
    expect_bad_key(USER "/" GEN "/./0-full.webp");
    expect_bad_key(USER "//" GEN "/0-full.webp");
    expect_bad_key(USER "/" GEN "/0-full.exe");
    expect_bad_key(USER "/" GEN "/00-full.webp");
    expect_bad_key(USER "/" GEN "/+0-full.webp");
    expect_bad_key(USER "/" GEN "/0-full.webp ");
    expect_bad_key(USER "/" GEN "/.0-full.webp.tmp.abcdef");
    expect_bad_key(USER "/uploads/../" GEN "/0-full.webp");
    expect_bad_key(USER "/uploads/" UPL ".png.png");
    expect_bad_key("");
    expect_bad_key(NULL);
}

static void test_missing_file_and_symlink_out_are_not_found(void **state)
{
    (void)state;
    char key[IMG_KEY_MAX], path[PATH_MAX], link[PATH_MAX];
    gf_err_t err = {0};
    assert_int_equal(img_storage_key(USER, GEN, 9, "256", IMG_FORMAT_WEBP, key, &err), 0);
    assert_int_equal(img_storage_resolve(root, key, path, sizeof(path), NULL, &err), GF_ENOTFOUND);
    /* A symlink planted inside the root that points out of it. */
    assert_int_equal(img_storage_key(USER, GEN, 8, "256", IMG_FORMAT_WEBP, key, &err), 0);
    snprintf(link, sizeof(link), "%s/%s", root, key);
    assert_int_equal(symlink("/etc/hostname", link), 0);
    gf_err_clear(&err);
    assert_int_equal(img_storage_resolve(root, key, path, sizeof(path), NULL, &err), GF_ENOTFOUND);
    unlink(link);
}

/* A reader racing a writer that keeps replacing the file with 256 KiB of
 * 'a' or of 'b' only ever sees one whole version. */
#define BIG (256 * 1024)
static atomic_int stop;

static void *reader(void *arg)
{
    const char *path = arg;
    unsigned char *buf = malloc(BIG + 1);
    long bad = 0, seen = 0;
    while (!atomic_load(&stop)) {
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, BIG + 1, f);
        fclose(f);
        seen++;
        if (n != BIG || (buf[0] != 'a' && buf[0] != 'b') || memchr(buf, buf[0] ^ 3, n) != NULL)
            bad++;
    }
    free(buf);
    return (void *)(bad == 0 && seen > 0 ? 0 : 1L);
}

/* A removed file is gone; removing it again, or a key never written, is fine; a bad key is not. */
static void test_remove(void **state)
{
    (void)state;
    char key[IMG_KEY_MAX], path[PATH_MAX];
    gf_err_t err = {0};
    assert_int_equal(img_storage_upload_key(USER, UPL, IMG_FORMAT_PNG, key, &err), 0);
    assert_int_equal(img_storage_write(root, key, "png", 3, &err), 0);
    assert_int_equal(img_storage_resolve(root, key, path, sizeof(path), NULL, &err), 0);
    assert_int_equal(img_storage_remove(root, key, &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(img_storage_resolve(root, key, path, sizeof(path), NULL, &err), GF_ENOTFOUND);
    assert_int_equal(img_storage_remove(root, key, &err), 0);
    assert_int_equal(img_storage_remove(root, "../etc/passwd", &err), GF_EINVAL);
}

static void test_writes_are_atomic_for_readers(void **state)
{
    (void)state;
    char key[IMG_KEY_MAX], path[PATH_MAX];
    gf_err_t err = {0};
    unsigned char *a = malloc(BIG), *b = malloc(BIG);
    memset(a, 'a', BIG);
    memset(b, 'b', BIG);
    assert_int_equal(img_storage_key(USER, GEN, 1, "full", IMG_FORMAT_WEBP, key, &err), 0);
    assert_int_equal(img_storage_write(root, key, a, BIG, &err), 0);
    snprintf(path, sizeof(path), "%s/%s", root, key);
    pthread_t t;
    atomic_store(&stop, 0);
    assert_int_equal(pthread_create(&t, NULL, reader, path), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(img_storage_write(root, key, i % 2 ? a : b, BIG, &err), 0);
    atomic_store(&stop, 1);
    void *res;
    pthread_join(t, &res);
    assert_null(res);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_must_be_lowercase_uuids),
        cmocka_unit_test(test_keys_follow_the_layout),
        cmocka_unit_test(test_attempt_keys_are_per_attempt),
        cmocka_unit_test(test_write_then_resolve),
        cmocka_unit_test(test_traversal_and_odd_keys_refused),
        cmocka_unit_test(test_missing_file_and_symlink_out_are_not_found),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_writes_are_atomic_for_readers),
    };
    return cmocka_run_group_tests(tests, make_root, remove_root);
}
