/*
 * storage/local.c - the `local` backend: objects are files under
 * FARM_STORAGE_DIR, at the path their key names. File I/O runs on the libuv
 * thread pool; the after-work callback delivers.
 *
 * Invariants:
 * - A reader never sees a partial file: a put writes a temp file in the
 *   target directory (a unique name per writer), fsyncs it, renames it over
 *   the final name and fsyncs the directory (once for all the objects of a
 *   storage_put_many() in that directory, after their renames), and the
 *   parents up to the root of a directory not known durable yet
 *   (sync_entries()).
 * - Keys are checked by storage__key_ok() (no "..", no hidden names), and a
 *   read resolves only to a regular file whose real path lies under the
 *   real root, so no symlink leads out of it.
 */
#include "storage_int.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MODE  0750
#define FILE_MODE 0640

/* How many directories a process remembers as durable (sync_entries()): the
 * least recently found one is replaced. */
#define DURABLE_MAX 64

typedef struct {
    storage_t *s;
    char *root; /* without a trailing slash (but "/" itself) */
    size_t max_bytes;
    uv_mutex_t lock;            /* the pool's threads share `durable` and `used` */
    char *durable[DURABLE_MAX]; /* directories whose entries are durable */
    uint64_t used[DURABLE_MAX]; /* when each was last found or added: the least is replaced */
    uint64_t clock;
} local_t;

static void *local_open(storage_t *s, const gf_config_t *cfg, gf_err_t *err)
{
    if (cfg->storage_dir == NULL || cfg->storage_dir[0] == '\0') {
        gf_err_set(err, GF_EINVAL, "config", "FARM_STORAGE_DIR: required with FARM_STORAGE=local");
        return NULL;
    }
    local_t *l = gf_xcalloc(1, sizeof(*l));
    l->s = s;
    l->root = gf_xstrdup(cfg->storage_dir);
    for (size_t n = strlen(l->root); n > 1 && l->root[n - 1] == '/'; n--)
        l->root[n - 1] = '\0';
    l->max_bytes = (size_t)cfg->storage_max_object_bytes;
    if (uv_mutex_init(&l->lock) != 0)
        abort();
    return l;
}

/* mkdir -p of `path` (modified in place, restored). The whole path is tried
 * first: every output of a generation goes to one directory, which after
 * its first put exists, so one call answers instead of one per component.
 * `top` gets the shallowest directory this call created ("" when none): the
 * entries of the new directories live in their parents, which are synced
 * for them (sync_entries()). */
static int make_dirs(char *path, char top[PATH_MAX], gf_err_t *err)
{
    top[0] = '\0';
    if (mkdir(path, DIR_MODE) == 0) {
        memcpy(top, path, strlen(path) + 1);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return gf_err_setd(err, GF_EIO, STORAGE_DOMAIN, errno, "mkdir %s: %s", path,
                           strerror(errno));
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, DIR_MODE);
        int e = errno;
        if (rc == 0 && top[0] == '\0')
            memcpy(top, path, (size_t)(p - path) + 1);
        *p = c;
        if (rc != 0 && e != EEXIST)
            return gf_err_setd(err, GF_EIO, STORAGE_DOMAIN, e, "mkdir %s: %s", path, strerror(e));
        if (c == '\0')
            return 0;
    }
}

/* 0, or -1 with errno set (EIO for a write that wrote nothing). */
static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0, or -1 with errno set by the open or the fsync that failed. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd), e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* `p` becomes its parent directory: "a/b" -> "a", "b" -> ".", "/b" -> "/".
 * -1 (p unchanged) when it has none ("/", "."). */
static int parent_of(char *p)
{
    char *slash = strrchr(p, '/');
    if (slash == NULL) {
        if (strcmp(p, ".") == 0)
            return -1;
        strcpy(p, ".");
        return 0;
    }
    if (slash == p) {
        if (p[1] == '\0')
            return -1;
        p[1] = '\0';
        return 0;
    }
    *slash = '\0';
    return 0;
}

static int is_durable(local_t *l, const char *dir)
{
    int found = 0;
    uv_mutex_lock(&l->lock);
    for (size_t i = 0; i < DURABLE_MAX && !found; i++)
        if (l->durable[i] != NULL && strcmp(l->durable[i], dir) == 0) {
            l->used[i] = ++l->clock; /* the root and a user's directory stay */
            found = 1;
        }
    uv_mutex_unlock(&l->lock);
    return found;
}

static void remember_durable(local_t *l, const char *dir, size_t len)
{
    char *copy = gf_xmalloc(len + 1), *old = NULL;
    memcpy(copy, dir, len);
    copy[len] = '\0';
    uv_mutex_lock(&l->lock);
    size_t k = 0;
    for (size_t i = 0; i < DURABLE_MAX; i++) {
        if (l->durable[i] != NULL && strcmp(l->durable[i], copy) == 0) {
            k = i; /* already there (two jobs walked it at once): refreshed */
            old = copy;
            copy = NULL;
            break;
        }
        if (l->used[i] < l->used[k])
            k = i;
    }
    if (copy != NULL) {
        old = l->durable[k];
        l->durable[k] = copy;
    }
    l->used[k] = ++l->clock;
    uv_mutex_unlock(&l->lock);
    free(old);
}

/*
 * Makes the entry of `dir` (the root or a directory under it) durable, and the
 * entries of its parents up to the root's own: a directory's entry lives in
 * its parent, and fsync of the directory does not sync it on every
 * filesystem (ext2, ext4 without a journal). Walks up from `dir` syncing
 * each parent, until a directory this process made sure of before, unless
 * this put created it (`top`: the shallowest directory make_dirs() created,
 * "" for none; it and those below it are new). A directory found existing
 * is not trusted: another job, or process, may have made it and not synced
 * its parent yet. What the walk made sure of is remembered (the
 * DURABLE_MAX used most recently), so an image's directory costs its
 * parent's fsync about once, and a busy user's directory the root's never
 * again. Above the root the walk goes on while the directories are new: a
 * worker's first put may make the root itself.
 */
static int sync_entries(local_t *l, const char *dir, const char *top)
{
    char p[PATH_MAX];
    size_t made[16], n_made = 0, new_from = top[0] ? strlen(top) : (size_t)-1;
    snprintf(p, sizeof(p), "%s", dir);
    for (;;) {
        size_t len = strlen(p);
        if (len < new_from && is_durable(l, p))
            break;
        int is_root = strcmp(p, l->root) == 0;
        if (parent_of(p) != 0)
            break;
        if (sync_dir(p) != 0)
            return -1;
        if (n_made < sizeof(made) / sizeof(made[0]))
            made[n_made++] = len; /* the directory of `len` bytes: a prefix of `dir` */
        /* Past the root only while its parents are new: a put can make the root. */
        if ((is_root || strlen(p) < strlen(l->root)) && strlen(p) < new_from)
            break;
    }
    for (size_t i = 0; i < n_made; i++)
        remember_durable(l, dir, made[i]);
    return 0;
}

/* An object of a put as this job writes it. */
typedef struct {
    char path[PATH_MAX], tmp[PATH_MAX];
    size_t dir;  /* its directory, in the job's wdir_t array */
    int fd;      /* its temp file, open until the rename; -1 when none is */
    int same_as; /* -1, or the object whose temp file this one's is a link to */
    int failed;
} wfile_t;

/* A directory a put writes into, and the shallowest one it had to create. */
typedef struct {
    char path[PATH_MAX], top[PATH_MAX];
    int renamed; /* objects renamed into it: it is synced */
} wdir_t;

/* Records the first failure of the job in `err`: errno-based, naming what failed. */
static void fail(gf_err_t *err, int e, const char *what, const char *path)
{
    if (err->code == 0)
        gf_err_setd(err, GF_EIO, STORAGE_DOMAIN, e, "%s %s: %s", what, path, strerror(e));
}

/*
 * The object `i` whose bytes are those of an earlier one in its directory,
 * written already (an image's `256` that is its `full`): a hard link to that
 * one's temp file, under a temp name with the same random suffix, so both
 * names share one inode, written and synced once. 0 when linked; -1 when
 * not (none is the same, or link() failed: a filesystem without hard links,
 * or the name taken), and the object is written as usual.
 */
static int link_same(wfile_t *f, size_t i, const storage_item_t *items)
{
    for (size_t j = 0; j < i; j++) {
        if (f[j].failed || f[j].same_as >= 0 || f[j].dir != f[i].dir ||
            items[j].len != items[i].len ||
            (items[i].len > 0 && memcmp(items[j].body, items[i].body, items[i].len) != 0))
            continue;
        const char *name = strrchr(f[i].path, '/') + 1, *suffix = strrchr(f[j].tmp, '.');
        size_t dl = (size_t)(strrchr(f[i].path, '/') - f[i].path);
        if ((size_t)snprintf(f[i].tmp, PATH_MAX, "%.*s/.%s.tmp%s", (int)dl, f[i].path, name,
                             suffix) >= PATH_MAX ||
            link(f[j].tmp, f[i].tmp) != 0) {
            f[i].tmp[0] = '\0';
            return -1;
        }
        f[i].same_as = (int)j;
        return 0;
    }
    return -1;
}

/*
 * Writes the `n` objects of a put as files, in passes, so that their disk
 * waits come together instead of one after another:
 *   1. each into a temp file in its key's directory (a unique name per
 *      writer; the directory made when missing), or as a link to an earlier
 *      one with the same bytes (link_same);
 *   2. each temp file fsynced (a linked one with the file it names);
 *   3. each renamed over its key's name;
 *   4. each directory synced once after its renames, and its entry made
 *      durable up to the root's (sync_entries).
 * So when the callback runs every object stored is as durable as after a
 * put of its own, and a reader never sees a partial file. The first failure
 * is the op's; the other objects are still written, as separate puts would
 * be, and no temp file of a failed one is left.
 */
static void write_objects(local_t *l, const storage_item_t *items, size_t n, gf_err_t *err)
{
    wfile_t *f = gf_xcalloc(n, sizeof(*f));
    wdir_t *d = gf_xcalloc(n, sizeof(*d));
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        f[i].fd = -1;
        f[i].same_as = -1;
        if ((size_t)snprintf(f[i].path, PATH_MAX, "%s/%s", l->root, items[i].key) >= PATH_MAX) {
            f[i].failed = 1;
            if (err->code == 0)
                gf_err_set(err, GF_EINVAL, STORAGE_DOMAIN, "storage path too long");
            continue;
        }
        const char *slash = strrchr(f[i].path, '/');
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - f[i].path), f[i].path);
        size_t k = 0;
        while (k < nd && strcmp(d[k].path, dir) != 0)
            k++;
        if (k == nd) {
            gf_err_t e = {0};
            memcpy(d[k].path, dir, sizeof(dir));
            if (make_dirs(dir, d[k].top, &e) < 0) {
                f[i].failed = 1;
                if (err->code == 0)
                    *err = e;
                continue; /* the next object of this directory tries again */
            }
            nd++;
        }
        f[i].dir = k;
        if (link_same(f, i, items) == 0)
            continue;
        if ((size_t)snprintf(f[i].tmp, PATH_MAX, "%s/.%s.tmp.XXXXXX", dir, slash + 1) >= PATH_MAX) {
            f[i].tmp[0] = '\0';
            f[i].failed = 1;
            if (err->code == 0)
                gf_err_set(err, GF_EINVAL, STORAGE_DOMAIN, "storage path too long");
            continue;
        }
        f[i].fd = mkostemp(f[i].tmp, O_CLOEXEC);
        if (f[i].fd < 0) {
            f[i].failed = 1;
            fail(err, errno, "mkstemp in", dir);
            f[i].tmp[0] = '\0'; /* nothing was made under that name */
            continue;
        }
        if (fchmod(f[i].fd, FILE_MODE) != 0 ||
            write_all(f[i].fd, items[i].body, items[i].len) != 0) {
            f[i].failed = 1;
            fail(err, errno, "writing", f[i].tmp);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (f[i].fd >= 0 && !f[i].failed && fsync(f[i].fd) != 0) {
            f[i].failed = 1;
            fail(err, errno, "fsync", f[i].tmp);
        }
    for (size_t i = 0; i < n; i++) {
        if (f[i].same_as >= 0 && f[f[i].same_as].failed)
            f[i].failed = 1; /* its bytes were never made durable */
        if (f[i].fd >= 0 && close(f[i].fd) != 0 && !f[i].failed) {
            f[i].failed = 1;
            fail(err, errno, "closing", f[i].tmp);
        }
        f[i].fd = -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (f[i].tmp[0] == '\0')
            continue; /* no temp file was made */
        if (!f[i].failed && rename(f[i].tmp, f[i].path) == 0) {
            d[f[i].dir].renamed++;
            continue;
        }
        if (!f[i].failed) {
            f[i].failed = 1;
            fail(err, errno, "renaming to", f[i].path);
        }
        unlink(f[i].tmp);
    }
    for (size_t k = 0; k < nd; k++) {
        if (d[k].renamed == 0)
            continue;
        if (sync_dir(d[k].path) != 0)
            fail(err, errno, "fsync", d[k].path);
        else if (sync_entries(l, d[k].path, d[k].top) != 0)
            fail(err, errno, "fsync of a parent of", d[k].path);
    }
    free(f);
    free(d);
}

static void do_put(local_t *l, storage_op_t *op)
{
    storage_item_t it = {.key = op->key, .body = op->body, .len = op->len};
    write_objects(l, &it, 1, &op->err);
}

static void do_put_many(local_t *l, storage_op_t *op)
{
    write_objects(l, op->items, op->n_items, &op->err);
}

/* The real path of `key`'s file, when it is a regular file under the real root. */
static int resolve(local_t *l, const char *key, char real[PATH_MAX], gf_err_t *err)
{
    char joined[PATH_MAX], real_root[PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", l->root, key) >= sizeof(joined))
        return gf_err_set(err, GF_EINVAL, STORAGE_DOMAIN, "storage path too long");
    if (realpath(l->root, real_root) == NULL || realpath(joined, real) == NULL) {
        /* Only "no such file" says the object is missing: a delete takes that for done.
         * Anything else (EACCES, EIO, ESTALE on NFS, ELOOP) is the disk's failure. */
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return gf_err_setd(err, GF_ENOTFOUND, STORAGE_DOMAIN, e, "no object %s", key);
        return gf_err_setd(err, GF_EIO, STORAGE_DOMAIN, e, "cannot resolve %s: %s", key,
                           strerror(e));
    }
    size_t rn = strlen(real_root);
    if (strncmp(real, real_root, rn) != 0 || real[rn] != '/' || stat(real, &st) != 0 ||
        !S_ISREG(st.st_mode))
        return gf_err_set(err, GF_ENOTFOUND, STORAGE_DOMAIN, "%s is not a file under the root",
                          key);
    return 0;
}

static void do_get(local_t *l, storage_op_t *op)
{
    char real[PATH_MAX];
    struct stat st;
    if (resolve(l, op->key, real, &op->err) < 0)
        return;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        gf_err_setd(&op->err, GF_ENOTFOUND, STORAGE_DOMAIN, errno, "cannot open %s", op->key);
        if (fd >= 0)
            close(fd);
        return;
    }
    if ((size_t)st.st_size > l->max_bytes) {
        close(fd);
        gf_err_set(&op->err, GF_ETOOBIG, STORAGE_DOMAIN, "%s is larger than %zu bytes", op->key,
                   l->max_bytes);
        return;
    }
    op->obj.data = gf_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, op->obj.data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        gf_err_set(&op->err, GF_EIO, STORAGE_DOMAIN, "short read of %s", op->key);
        return;
    }
    op->obj.len = got;
    /* Size and modification time: a file replaced by a put gets a new tag. */
    snprintf(op->obj.etag, sizeof(op->obj.etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st.st_mtim.tv_nsec);
}

static void do_delete(local_t *l, storage_op_t *op)
{
    char real[PATH_MAX];
    gf_err_t e = {0};
    if (resolve(l, op->key, real, &e) < 0) {
        if (e.code != GF_ENOTFOUND)
            gf_err_set(&op->err, e.code, STORAGE_DOMAIN, "%s", e.msg);
        return;
    }
    if (unlink(real) != 0) {
        if (errno != ENOENT)
            gf_err_setd(&op->err, GF_EIO, STORAGE_DOMAIN, errno, "cannot remove %s: %s", op->key,
                        strerror(errno));
        return;
    }
    /* The removal made durable before the caller drops its record of the deletion: a
     * crash would otherwise bring the file back with nothing left to delete it. */
    char *slash = strrchr(real, '/');
    *slash = '\0';
    if (sync_dir(real) != 0)
        gf_err_setd(&op->err, GF_EIO, STORAGE_DOMAIN, errno, "fsync of the directory of %s: %s",
                    op->key, strerror(errno));
}

static void do_check(local_t *l, storage_op_t *op)
{
    char dir[PATH_MAX], top[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof(dir), "%s", l->root);
    if (make_dirs(dir, top, &op->err) < 0)
        return;
    /* A root made here is made durable, with its entry, before objects go in. */
    if (top[0] != '\0') {
        if (sync_dir(l->root) != 0 || sync_entries(l, l->root, top) != 0) {
            fail(&op->err, errno, "fsync", l->root);
            return;
        }
    }
    if (stat(l->root, &st) != 0 || !S_ISDIR(st.st_mode) || access(l->root, W_OK) != 0)
        gf_err_setd(&op->err, GF_EIO, STORAGE_DOMAIN, errno, "%s is not a writable directory",
                    l->root);
}

/* Names in byte order (alphasort would follow the locale). */
static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* strcmp of `name` against the first `len` bytes of `part`. */
static int cmp_part(const char *name, const char *part, size_t len)
{
    int r = strncmp(name, part, len);
    return r != 0 ? r : name[len] != '\0';
}

/*
 * Adds the regular files under the directory `rel` (relative to the root,
 * `rl` bytes, "" for the root) to op's page, depth-first, names sorted;
 * `after` (or NULL) is the rest of the cursor below this directory: what
 * comes before it, and it, are skipped. Returns 1 once the page is full.
 */
static int walk(local_t *l, storage_op_t *op, char *rel, size_t rl, const char *after)
{
    char path[PATH_MAX];
    struct dirent **names = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", l->root, rel) >= sizeof(path))
        return 0;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        if (rl == 0 && errno != ENOENT) /* no root yet: nothing stored yet */
            gf_err_setd(&op->err, GF_EIO, STORAGE_DOMAIN, errno, "cannot list %s: %s", l->root,
                        strerror(errno));
        return 0;
    }
    size_t part = after ? strcspn(after, "/") : 0;
    const char *rest = after && after[part] == '/' ? after + part + 1 : NULL;
    int full = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        int c = after ? cmp_part(name, after, part) : 1;
        if (full || c < 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            (c == 0 && rest == NULL))
            continue;
        size_t nl = strlen(name);
        struct stat st;
        if (rl + nl + 2 >= STORAGE_KEY_MAX ||
            (size_t)snprintf(path, sizeof(path), "%s/%s%s", l->root, rel, name) >= sizeof(path) ||
            lstat(path, &st) != 0)
            continue;
        rel[rl] = '\0';
        if (S_ISDIR(st.st_mode)) {
            memcpy(rel + rl, name, nl);
            rel[rl + nl] = '/';
            rel[rl + nl + 1] = '\0';
            full = walk(l, op, rel, rl + nl + 1, c == 0 ? rest : NULL);
            rel[rl] = '\0';
        } else if (S_ISREG(st.st_mode) && c > 0) {
            memcpy(rel + rl, name, nl + 1);
            storage__list_add(op, rel, (long long)st.st_mtim.tv_sec, (long long)st.st_size);
            rel[rl] = '\0';
            full = op->n_entries >= op->max;
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return full;
}

static void do_list(local_t *l, storage_op_t *op)
{
    char rel[STORAGE_KEY_MAX + 2] = "";
    if (walk(l, op, rel, 0, op->cursor) && op->n_entries > 0)
        op->next_cursor = gf_xstrdup(op->entries[op->n_entries - 1].key);
}

static void on_work(uv_work_t *w)
{
    storage_op_t *op = w->data;
    local_t *l = op->b;
    switch (op->kind) {
    case OP_PUT:
        if (op->n_items)
            do_put_many(l, op);
        else
            do_put(l, op);
        break;
    case OP_GET:
        do_get(l, op);
        break;
    case OP_DELETE:
        do_delete(l, op);
        break;
    case OP_CHECK:
        do_check(l, op);
        break;
    case OP_LIST:
        do_list(l, op);
        break;
    }
}

static void on_work_done(uv_work_t *w, int status)
{
    storage_op_t *op = w->data;
    if (status < 0)
        gf_err_set(&op->err, GF_ECANCELED, STORAGE_DOMAIN, "canceled");
    storage__finish(op);
}

static void local_start(void *b, storage_op_t *op)
{
    op->b = b;
    op->work.data = op;
    /* uv_queue_work() refuses only a NULL work callback. */
    (void)uv_queue_work(storage__loop(((local_t *)b)->s), &op->work, on_work, on_work_done);
}

static void local_cancel(void *b, storage_op_t *op)
{
    (void)b;
    (void)op;
}

static void local_close(void *b, void (*cb)(void *data), void *data)
{
    local_t *l = b;
    for (size_t i = 0; i < DURABLE_MAX; i++)
        free(l->durable[i]);
    uv_mutex_destroy(&l->lock);
    free(l->root);
    free(l);
    cb(data);
}

const storage_backend_t storage__local = {
    .name = "local",
    .open = local_open,
    .start = local_start,
    .cancel = local_cancel,
    .read_url = NULL,
    .close = local_close,
    .threaded = 1,
};
