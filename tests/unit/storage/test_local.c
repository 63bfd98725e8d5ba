/*
 * unit_storage_local: the `local` backend through storage.h on a temp
 * directory: put, get, delete, check; a retried put replaces the object and
 * its ETag; no temp file is left; a symlink out of the root is not followed;
 * keys that could leave the root are refused; a reader never sees a partial
 * object; storage_put_many stores each of its objects, the same bytes in one directory as one
 * file under two names, and the others when one fails; a new directory's parents synced up to
 * the root; a put over FARM_STORAGE_MAX_OBJECT_BYTES refused; the async
 * contract (never inside the call, GF_ECANCELED after close).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local_fixture.h"
#include "storage.h"
#include "storage_util.h"

#define KEY "0b7c0f4e-8a52-4a49-9d4e-3b1a5c6d7e8f/5f0e4a2b-1c3d-4e5f-8a9b-0c1d2e3f4a5b/0-full.webp"

static int setup(void **state)
{
    (void)state;
    return local_fixture_setup("local");
}

static int teardown(void **state)
{
    (void)state;
    return local_fixture_teardown();
}

static su_result_t put(const char *key, const char *s)
{
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put(st, key, s, strlen(s), "image/webp", su_on_done, &r), 0);
    su_wait(&loop, &r);
    return r;
}

static su_result_t get(const char *key)
{
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_get(st, key, su_on_got, &r), 0);
    su_wait(&loop, &r);
    return r;
}

static void test_round_trip(void **state)
{
    (void)state;
    assert_string_equal(storage_backend(st), "local");
    su_result_t c = {.in_call = 1};
    assert_int_equal(storage_check(st, 1000, su_on_done, &c), 0);
    su_wait(&loop, &c);
    assert_int_equal(c.err.code, 0);
    assert_int_equal(put(KEY, "first").err.code, 0);
    su_result_t a = get(KEY);
    assert_int_equal(a.err.code, 0);
    assert_int_equal(a.len, 5);
    assert_memory_equal(a.data, "first", 5);
    usleep(10 * 1000);
    assert_int_equal(put(KEY, "second!").err.code, 0); /* a retried put replaces it */
    su_result_t b = get(KEY);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "second!", 7);
    assert_string_not_equal(a.etag, b.etag);
    free(a.data);
    free(b.data);
    /* Only the object in its directory: no temp file left behind. */
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/objects/%.*s", root, (int)(strrchr(KEY, '/') - KEY), KEY);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 1);
    su_result_t del = {.in_call = 1};
    assert_int_equal(storage_delete(st, KEY, su_on_done, &del), 0);
    su_wait(&loop, &del);
    assert_int_equal(del.err.code, 0);
    assert_int_equal(get(KEY).err.code, GF_ENOTFOUND);
    su_result_t again = {.in_call = 1};
    assert_int_equal(storage_delete(st, KEY, su_on_done, &again), 0);
    su_wait(&loop, &again);
    assert_int_equal(again.err.code, 0);
}

static void test_symlink_out_of_the_root_is_not_followed(void **state)
{
    (void)state;
    char dir[600], link[700];
    snprintf(dir, sizeof(dir), "%s/objects/u", root);
    mkdir(dir, 0750);
    snprintf(link, sizeof(link), "%s/x.png", dir);
    assert_int_equal(symlink("/etc/hostname", link), 0);
    assert_int_equal(get("u/x.png").err.code, GF_ENOTFOUND);
}

/* A key whose path the disk cannot resolve for another reason than "no such file" (here a
 * symlink loop; EACCES, EIO or NFS's ESTALE alike) is no missing object: its delete
 * fails, so the caller keeps its record and tries again, and a read is an error. */
static void test_an_unresolvable_path_is_no_missing_object(void **state)
{
    (void)state;
    char dir[600], link[700];
    snprintf(dir, sizeof(dir), "%s/objects/loop", root);
    mkdir(dir, 0750);
    snprintf(link, sizeof(link), "%s/a", dir);
    assert_int_equal(symlink(link, link), 0); /* a/ -> a/: ELOOP */
    su_result_t del = {.in_call = 1};
    assert_int_equal(storage_delete(st, "loop/a/0-full.webp", su_on_done, &del), 0);
    su_wait(&loop, &del);
    assert_int_equal(del.err.code, GF_EIO);
    assert_int_equal(get("loop/a/0-full.webp").err.code, GF_EIO);
    assert_int_equal(get("loop/b/0-full.webp").err.code, GF_ENOTFOUND);
}

static void test_bad_keys_and_no_urls(void **state)
{
    (void)state;
    su_result_t r = {0};
    assert_int_equal(storage_get(st, "../etc/passwd", su_on_got, &r), GF_EINVAL);
    assert_int_equal(storage_put(st, "a/../b", "x", 1, NULL, su_on_done, &r), GF_EINVAL);
    assert_int_equal(storage_delete(st, "/etc/passwd", su_on_done, &r), GF_EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.done, 0);
    gf_err_t err = {0};
    assert_null(storage_read_url(st, KEY, 4000000000LL, &err));
    assert_int_equal(err.code, GF_EINVAL);
}

/* Keys that could name a file outside the root, or a hidden or temp file,
 * are refused by every operation before anything runs (a temp name by get
 * and put only). */
static void test_traversal_and_odd_keys_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "../etc/passwd",
        "/etc/passwd",
        "u/../../etc/passwd",
        "u/g/0-full.webp/..",
        "u/./0-full.webp",
        "u//0-full.webp",
        "u/g/0-full.webp ",
        "u/g/.0-full.webp.tmp.abcdef",
        "U/g/0-full.webp",
        "u/g/0-full.webp\n",
        "",
        NULL,
    };
    su_result_t r = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (storage_get(st, bad[i], su_on_got, &r) != GF_EINVAL)
            fail_msg("get accepted '%s'", bad[i] ? bad[i] : "(null)");
        if (storage_put(st, bad[i], "x", 1, NULL, su_on_done, &r) != GF_EINVAL)
            fail_msg("put accepted '%s'", bad[i] ? bad[i] : "(null)");
        /* A put's temp name is deletable: the sweeper removes leftovers storage_list() named. */
        int temp = bad[i] && strcmp(bad[i], "u/g/.0-full.webp.tmp.abcdef") == 0;
        if (!temp && storage_delete(st, bad[i], su_on_done, &r) != GF_EINVAL)
            fail_msg("delete accepted '%s'", bad[i] ? bad[i] : "(null)");
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.done, 0);
}

/* A reader racing puts that keep replacing an object with 256 KiB of 'a' or
 * of 'b' only ever reads one whole version from the file. */
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

static void test_puts_are_atomic_for_readers(void **state)
{
    (void)state;
    char *a = malloc(BIG + 1), *b = malloc(BIG + 1), path[600];
    memset(a, 'a', BIG);
    memset(b, 'b', BIG);
    a[BIG] = b[BIG] = '\0';
    assert_int_equal(put(KEY, a).err.code, 0);
    snprintf(path, sizeof(path), "%s/objects/%s", root, KEY);
    pthread_t t;
    atomic_store(&stop, 0);
    assert_int_equal(pthread_create(&t, NULL, reader, path), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(put(KEY, i % 2 ? a : b).err.code, 0);
    atomic_store(&stop, 1);
    void *res;
    pthread_join(t, &res);
    assert_null(res);
    free(a);
    free(b);
}

/* storage_put_many: every object stored (two directories here), one callback after the
 * call, no temp file left; a bad key among them refuses the whole call at once. */
static void test_put_many_stores_each(void **state)
{
    (void)state;
    const char *k2 = "0b7c0f4e-8a52-4a49-9d4e-3b1a5c6d7e8f/5f0e4a2b-1c3d-4e5f-8a9b-0c1d2e3f4a5b/"
                     "0-512.webp";
    const char *k3 = "0b7c0f4e-8a52-4a49-9d4e-3b1a5c6d7e8f/uploads/other.png";
    storage_put_t puts[] = {
        {KEY, "full", 4, "image/webp"}, {k2, "five1", 5, "image/webp"}, {k3, "", 0, NULL}};
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put_many(st, puts, 3, su_on_done, &r), 0);
    su_wait(&loop, &r);
    assert_int_equal(r.err.code, 0);
    static const char *const want[] = {"full", "five1", ""};
    for (int i = 0; i < 3; i++) {
        su_result_t g = get(puts[i].key);
        assert_int_equal(g.err.code, 0);
        assert_int_equal(g.len, strlen(want[i]));
        assert_memory_equal(g.data, want[i], g.len);
        free(g.data);
    }
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/objects/%.*s", root, (int)(strrchr(KEY, '/') - KEY), KEY);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0, temp = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += e->d_name[0] != '.';
        temp += strstr(e->d_name, ".tmp.") != NULL;
    }
    closedir(d);
    assert_int_equal(n, 2);
    assert_int_equal(temp, 0);
    storage_put_t bad[] = {{k2, "x", 1, NULL}, {"a/../b", "x", 1, NULL}};
    su_result_t b = {.in_call = 1};
    assert_int_equal(storage_put_many(st, bad, 2, su_on_done, &b), GF_EINVAL);
    assert_int_equal(b.done, 0);
    assert_int_equal(storage_put_many(st, bad, 0, su_on_done, &b), GF_EINVAL);
    su_result_t g = get(k2); /* nothing of the refused call was written */
    assert_memory_equal(g.data, "five1", 5);
    free(g.data);
}

/* The inode number and link count of `key`'s file. */
static void file_id(const char *key, ino_t *ino, nlink_t *links)
{
    char path[700];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/objects/%s", root, key);
    assert_int_equal(stat(path, &sb), 0);
    *ino = sb.st_ino;
    *links = sb.st_nlink;
}

/* mkdir -p of `path` (modified and restored); 0 or -1. */
static int gf_test_mkdirs(char *path)
{
    for (char *p = strchr(path + 1, '/');; p = strchr(p + 1, '/')) {
        if (p)
            *p = '\0';
        int rc = mkdir(path, 0750);
        if (p)
            *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
        if (!p)
            return 0;
    }
}

/* The names in `dir` (under objects/) that are not the objects' own: temp files. */
static int temp_files(const char *dir)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/objects/%s", root, dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int temp = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        temp += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return temp;
}

/* Two objects of one put_many with the same bytes in one directory (an
 * image's `256` that is its `full`) are one file under two names, written
 * once; each is still an object of its own: replacing or deleting one leaves
 * the other as it was. The same bytes in another directory, or other bytes,
 * are a file of their own. */
static void test_put_many_same_bytes_written_once(void **state)
{
    (void)state;
    static const char full[] = "u1/g1/0-full.webp", same[] = "u1/g1/0-256.webp",
                      other[] = "u1/g1/0-512.webp", elsewhere[] = "u1/g2/0-full.webp";
    storage_put_t puts[] = {{full, "webp bytes", 10, "image/webp"},
                            {other, "webp bytez", 10, "image/webp"},
                            {same, "webp bytes", 10, "image/webp"},
                            {elsewhere, "webp bytes", 10, "image/webp"}};
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put_many(st, puts, 4, su_on_done, &r), 0);
    su_wait(&loop, &r);
    assert_int_equal(r.err.code, 0);
    for (int i = 0; i < 4; i++) {
        su_result_t g = get(puts[i].key);
        assert_int_equal(g.err.code, 0);
        assert_int_equal(g.len, 10);
        assert_memory_equal(g.data, puts[i].data, 10);
        free(g.data);
    }
    ino_t a, b, c, e;
    nlink_t na, nb, nc, ne;
    file_id(full, &a, &na);
    file_id(same, &b, &nb);
    file_id(other, &c, &nc);
    file_id(elsewhere, &e, &ne);
    assert_true(a == b);
    assert_int_equal(na, 2);
    assert_true(c != a && e != a);
    assert_int_equal(nc, 1);
    assert_int_equal(ne, 1);
    assert_int_equal(temp_files("u1/g1"), 0);
    /* Replacing the one leaves the other's bytes. */
    assert_int_equal(put(full, "new bytes").err.code, 0);
    su_result_t g = get(same);
    assert_int_equal(g.len, 10);
    assert_memory_equal(g.data, "webp bytes", 10);
    free(g.data);
    /* Deleting the other leaves the one. */
    su_result_t del = {.in_call = 1};
    assert_int_equal(storage_delete(st, same, su_on_done, &del), 0);
    su_wait(&loop, &del);
    assert_int_equal(del.err.code, 0);
    assert_int_equal(get(same).err.code, GF_ENOTFOUND);
    g = get(full);
    assert_int_equal(g.len, 9);
    assert_memory_equal(g.data, "new bytes", 9);
    free(g.data);
}

/* An object whose directory is a file (no temp file can be made in it)
 * fails the put_many with GF_EIO naming it, and so does one whose name a
 * directory holds (its rename fails); the other objects are stored, and no
 * temp file is left. */
static void test_put_many_one_fails_the_others_stored(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/objects/u2", root);
    assert_int_equal(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/objects/u2/blocked", root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/objects/u2/g/0-512.webp/x", root);
    assert_int_equal(gf_test_mkdirs(path), 0);
    storage_put_t puts[] = {{"u2/g/0-full.webp", "same", 4, NULL},
                            {"u2/blocked/0-full.webp", "same", 4, NULL},
                            {"u2/g/0-256.webp", "same", 4, NULL},
                            {"u2/g/0-512.webp", "other", 5, NULL}};
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put_many(st, puts, 4, su_on_done, &r), 0);
    su_wait(&loop, &r);
    assert_int_equal(r.err.code, GF_EIO);
    assert_non_null(strstr(r.err.msg, "u2/blocked"));
    for (int i = 0; i < 3; i += 2) {
        su_result_t g = get(puts[i].key);
        assert_int_equal(g.err.code, 0);
        assert_memory_equal(g.data, "same", 4);
        free(g.data);
    }
    assert_int_equal(get(puts[1].key).err.code, GF_ENOTFOUND);
    assert_int_equal(get(puts[3].key).err.code, GF_ENOTFOUND);
    assert_int_equal(temp_files("u2/g"), 0);
    /* Alone, the rename's failure is the put's. */
    su_result_t one = {.in_call = 1};
    assert_int_equal(storage_put_many(st, puts + 3, 1, su_on_done, &one), 0);
    su_wait(&loop, &one);
    assert_int_equal(one.err.code, GF_EIO);
    assert_non_null(strstr(one.err.msg, "0-512.webp"));
    assert_int_equal(temp_files("u2/g"), 0);
    assert_int_equal(temp_files("u2"), 0);
}

/*
 * fsync as libc's, recording the directories it syncs (their paths, read
 * back from /proc/self/fd): the storage under test calls this one, the
 * disk is real.
 */
#define SYNCED_MAX 32
static char synced[SYNCED_MAX][600];
static int n_synced;
static pthread_mutex_t synced_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_int dir_sync_fails; /* set: a directory's fsync fails with EIO, unsynced */

static int (*real_fsync)(int);

__attribute__((constructor)) static void find_real_fsync(void)
{
    *(void **)&real_fsync = dlsym(RTLD_NEXT, "fsync");
}

int fsync(int fd)
{
    struct stat sb;
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    int is_dir = fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode);
    pthread_mutex_lock(&synced_lock);
    if (is_dir && n_synced < SYNCED_MAX) {
        ssize_t n = readlink(link, synced[n_synced], sizeof(synced[0]) - 1);
        synced[n_synced][n > 0 ? n : 0] = '\0';
        n_synced++;
    }
    pthread_mutex_unlock(&synced_lock);
    if (is_dir && atomic_load(&dir_sync_fails)) {
        errno = EIO;
        return -1;
    }
    return real_fsync(fd);
}

/* Whether the directory at `path` was synced since the last reset. */
static int synced_path(const char *path)
{
    for (int i = 0; i < n_synced; i++)
        if (strcmp(synced[i], path) == 0)
            return 1;
    return 0;
}

/* Whether the directory objects/`rel` ("" for objects itself) was synced since the last reset. */
static int was_synced(const char *rel)
{
    char want[600];
    snprintf(want, sizeof(want), "%s/objects%s%s", root, rel[0] ? "/" : "", rel);
    return synced_path(want);
}

/* One object put into `s` under `key`, the synced directories recorded from nothing. */
static void put_into(storage_t *s, const char *key)
{
    n_synced = 0;
    storage_put_t one = {key, "x", 1, NULL};
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put_many(s, &one, 1, su_on_done, &r), 0);
    su_wait(&loop, &r);
    assert_int_equal(r.err.code, 0);
}

static void put_one(const char *key)
{
    put_into(st, key);
}

/* A directory's entry lives in its parent: a put into new directories syncs
 * each parent up to the root; a directory the storage made sure of costs no
 * parent's sync again; one it finds made by someone else (another job or
 * process, which may not have synced its parent yet) is not trusted. */
static void test_put_syncs_the_parents_of_new_directories(void **state)
{
    (void)state;
    put_one("u4/g1/0-full.webp");
    assert_true(was_synced("u4/g1"));
    assert_true(was_synced("u4"));
    assert_true(was_synced("")); /* the root holds u4's entry */
    put_one("u4/g1/0-512.webp");
    assert_true(was_synced("u4/g1"));
    assert_int_equal(n_synced, 1);
    char path[600];
    snprintf(path, sizeof(path), "%s/objects/u4/g2", root);
    assert_int_equal(mkdir(path, 0750), 0);
    put_one("u4/g2/0-full.webp");
    assert_true(was_synced("u4/g2"));
    assert_true(was_synced("u4"));
    assert_false(was_synced("")); /* u4 was made sure of above */
}

static int closed;
static void on_closed(void *data)
{
    (void)data;
    closed = 1;
}

/* A storage of its own on FARM_STORAGE_DIR=`dir`, and its config. */
static storage_t *open_at(const char *dir, gf_config_t **c)
{
    char env_dir[600];
    snprintf(env_dir, sizeof(env_dir), "FARM_STORAGE_DIR=%s", dir);
    char *env[] = {env_dir, NULL};
    gf_err_t err = {0};
    *c = gf_cfg_load(env, &err);
    assert_non_null(*c);
    storage_t *s = storage_new(&loop, *c, NULL, &err);
    assert_non_null(s);
    return s;
}

static void close_at(storage_t *s, gf_config_t *c)
{
    closed = 0;
    storage_close(s, on_closed, NULL);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    gf_cfg_free(c);
}

/* A worker runs no storage check on local storage, so its first put may
 * make the root and the root's parents: their entries are synced too, up
 * to the first directory that was there. */
static void test_a_put_that_makes_the_root_syncs_its_parents(void **state)
{
    (void)state;
    char dir[420], parent[300];
    snprintf(parent, sizeof(parent), "%s/missing", root); /* holds objects' entry */
    snprintf(dir, sizeof(dir), "%s/objects", parent);
    gf_config_t *c;
    storage_t *s = open_at(dir, &c);
    put_into(s, "u7/g/0-full.webp");
    if (!synced_path(parent) || !synced_path(root)) /* root holds missing's entry */
        fail_msg("%s or %s was not synced", parent, root);
    close_at(s, c);
}

/* A directory whose fsync fails fails the put with GF_EIO and the
 * filesystem's own reason: the object is not reported stored. */
static void test_a_failed_directory_sync_fails_the_put(void **state)
{
    (void)state;
    atomic_store(&dir_sync_fails, 1);
    storage_put_t one = {"u6/g/0-full.webp", "x", 1, NULL};
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put_many(st, &one, 1, su_on_done, &r), 0);
    su_wait(&loop, &r);
    atomic_store(&dir_sync_fails, 0);
    assert_int_equal(r.err.code, GF_EIO);
    assert_non_null(strstr(r.err.msg, "fsync"));
    assert_non_null(strstr(r.err.msg, strerror(EIO)));
}

/* The directories found durable stay remembered while they are used: each
 * of a user's 100 generations syncs its own directory and the user's, and
 * after the first never the root again. */
static void test_a_busy_users_directory_stays_remembered(void **state)
{
    (void)state;
    char key[96], dir[32];
    for (int i = 0; i < 100; i++) {
        snprintf(dir, sizeof(dir), "u8/g%d", i);
        snprintf(key, sizeof(key), "%s/0-full.webp", dir);
        put_one(key);
        assert_true(was_synced(dir));
        assert_true(was_synced("u8"));
        if (i > 0 && n_synced != 2)
            fail_msg("generation %d synced %d directories", i, n_synced);
    }
}

/* A root given relative and with a trailing slash: the check that makes it
 * syncs it and its parent, "."; a put under it then syncs the root's parent
 * no more (the root was made sure of). */
static void test_a_relative_root_is_made_durable(void **state)
{
    (void)state;
    char cwd[600], rel[700];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(root), 0);
    gf_config_t *c;
    storage_t *s = open_at("rel/", &c);
    n_synced = 0;
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_check(s, 1000, su_on_done, &r), 0);
    su_wait(&loop, &r);
    assert_int_equal(r.err.code, 0);
    snprintf(rel, sizeof(rel), "%s/rel", root);
    if (!synced_path(rel) || !synced_path(root)) /* root is "." here */
        fail_msg("%s or %s was not synced", rel, root);
    put_into(s, "u5/g/0-full.webp");
    if (synced_path(root))
        fail_msg("the root's parent was synced again");
    close_at(s, c);
    assert_int_equal(chdir(cwd), 0);
}

/* Closing while a put runs on the thread pool: it is delivered canceled once
 * it returns, and the backend is freed only after that. */
static void test_close_while_a_put_runs(void **state)
{
    (void)state;
    gf_err_t err = {0};
    storage_t *s = storage_new(&loop, cfg, NULL, &err);
    assert_non_null(s);
    su_result_t r = {.in_call = 1};
    assert_int_equal(storage_put(s, KEY, "data", 4, NULL, su_on_done, &r), 0);
    r.in_call = 0;
    int was_closed = 0;
    closed = 0;
    storage_close(s, on_closed, NULL);
    assert_int_equal(closed, 0);
    while (!closed) {
        uv_run(&loop, UV_RUN_ONCE);
        if (closed)
            was_closed = r.done; /* the put's callback came before the close's */
    }
    assert_int_equal(r.done, 1);
    assert_int_equal(r.err.code, GF_ECANCELED);
    assert_int_equal(was_closed, 1);
    closed = 0;
}

/* FARM_STORAGE_MAX_OBJECT_BYTES bounds reads: an object over it would never be read back,
 * so its put is refused before anything is written (a put_many's others included). */
static void test_a_put_over_the_object_bound_is_refused(void **state)
{
    (void)state;
    const char *big_key = "0b7c0f4e-8a52-4a49-9d4e-3b1a5c6d7e8f/uploads/big.png";
    const char *small_key = "0b7c0f4e-8a52-4a49-9d4e-3b1a5c6d7e8f/uploads/small.png";
    static char big[1025];
    memset(big, 'x', sizeof(big));
    long long saved = cfg->storage_max_object_bytes;
    cfg->storage_max_object_bytes = 1024;
    su_result_t r = {0};
    assert_int_equal(storage_put(st, big_key, big, sizeof(big), NULL, su_on_done, &r), GF_ETOOBIG);
    storage_put_t puts[] = {{small_key, "ok", 2, NULL}, {big_key, big, sizeof(big), NULL}};
    assert_int_equal(storage_put_many(st, puts, 2, su_on_done, &r), GF_ETOOBIG);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.done, 0);
    assert_int_equal(get(big_key).err.code, GF_ENOTFOUND);
    assert_int_equal(get(small_key).err.code, GF_ENOTFOUND);
    /* At the bound it is stored and read back. */
    su_result_t at = {.in_call = 1};
    assert_int_equal(storage_put(st, big_key, big, 1024, NULL, su_on_done, &at), 0);
    su_wait(&loop, &at);
    cfg->storage_max_object_bytes = saved;
    assert_int_equal(at.err.code, 0);
    su_result_t g = get(big_key);
    assert_int_equal(g.err.code, 0);
    assert_int_equal(g.len, 1024);
    free(g.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_symlink_out_of_the_root_is_not_followed),
        cmocka_unit_test(test_an_unresolvable_path_is_no_missing_object),
        cmocka_unit_test(test_bad_keys_and_no_urls),
        cmocka_unit_test(test_traversal_and_odd_keys_refused),
        cmocka_unit_test(test_puts_are_atomic_for_readers),
        cmocka_unit_test(test_close_while_a_put_runs),
        cmocka_unit_test(test_put_many_stores_each),
        cmocka_unit_test(test_put_many_same_bytes_written_once),
        cmocka_unit_test(test_put_many_one_fails_the_others_stored),
        cmocka_unit_test(test_put_syncs_the_parents_of_new_directories),
        cmocka_unit_test(test_a_busy_users_directory_stays_remembered),
        cmocka_unit_test(test_a_relative_root_is_made_durable),
        cmocka_unit_test(test_a_failed_directory_sync_fails_the_put),
        cmocka_unit_test(test_a_put_that_makes_the_root_syncs_its_parents),
        cmocka_unit_test(test_a_put_over_the_object_bound_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
