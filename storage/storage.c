/*
 * storage/storage.c - the one interface over the backends (storage.h): the
 * configuration checked as a whole, the operations in flight (so that
 * storage_close() can cancel them), their metrics, and the delivery of a
 * result, always from the loop.
 */
#include "storage_int.h"

#include <stdlib.h>
#include <string.h>

struct storage {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    const storage_backend_t *be;
    void *b;
    storage_op_t *ops; /* in flight, callbacks not yet run */
    int nops;          /* allocated (a finished s3 op still closes its timer) */
    int closing;
    int be_open;        /* the backend is closed once no op is left (thread-pool work uses it) */
    int pending_closes; /* the tick and the backend */
    void (*closed_cb)(void *data);
    void *closed_data;
    uv_timer_t tick; /* never started: its close makes storage_close() asynchronous */
    gf_mfamily_t *m_requests, *m_seconds;
};

static const char *const op_names[] = {"put", "get", "delete", "check", "list"};

uv_loop_t *storage__loop(storage_t *s)
{
    return s->loop;
}

const gf_config_t *storage__cfg(storage_t *s)
{
    return s->cfg;
}

/* Whether seg[0..len) is a name of [0-9a-z_.-], not empty, not starting with '.'. */
static int name_ok(const char *seg, size_t len)
{
    if (len == 0 || seg[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = seg[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

int storage__key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n >= STORAGE_KEY_MAX)
        return 0;
    for (const char *seg = key;;) {
        size_t len = strcspn(seg, "/");
        if (!name_ok(seg, len))
            return 0;
        if (seg[len] == '\0')
            return 1;
        seg += len + 1;
    }
}

int storage__temp_key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n >= STORAGE_KEY_MAX)
        return 0;
    const char *last = strrchr(key, '/');
    last = last ? last + 1 : key;
    for (const char *seg = key; seg < last;) {
        size_t len = strcspn(seg, "/");
        if (!name_ok(seg, len))
            return 0;
        seg += len + 1;
    }
    /* ".{name}.tmp.{suffix}", at the last ".tmp." (a name may hold one too) */
    const char *tmp = NULL;
    for (const char *t = last; (t = strstr(t, ".tmp.")) != NULL; t++)
        tmp = t;
    if (last[0] != '.' || tmp == NULL || tmp == last ||
        !name_ok(last + 1, (size_t)(tmp - last - 1)))
        return 0;
    const char *suffix = tmp + 5;
    if (*suffix == '\0')
        return 0;
    for (const char *c = suffix; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

void storage__list_add(storage_op_t *op, const char *key, long long mtime_unix_s, long long size)
{
    if (op->entries == NULL)
        op->entries = gf_xcalloc(op->max, sizeof(*op->entries));
    int temp = !storage__key_ok(key);
    if (op->n_entries >= op->max || (temp && !storage__temp_key_ok(key)))
        return;
    op->entries[op->n_entries++] = (storage_entry_t){
        .key = gf_xstrdup(key), .mtime_unix_s = mtime_unix_s, .size = size, .temp = temp};
}

/* The settings of the other backend, when set, would be ignored: refused. */
int storage_config_check(const gf_config_t *cfg, gf_err_t *err)
{
    if (cfg->storage == 0) {
        static const struct {
            const char *name;
            size_t off;
        } s3_only[] = {
            {"FARM_S3_ENDPOINT", offsetof(gf_config_t, s3_endpoint)},
            {"FARM_S3_BUCKET", offsetof(gf_config_t, s3_bucket)},
            {"FARM_S3_PREFIX", offsetof(gf_config_t, s3_prefix)},
            {"FARM_S3_ACCESS_KEY_ID", offsetof(gf_config_t, s3_access_key_id)},
            {"FARM_S3_SECRET_ACCESS_KEY", offsetof(gf_config_t, s3_secret_access_key)},
        };
        for (size_t i = 0; i < sizeof(s3_only) / sizeof(s3_only[0]); i++) {
            const char *v = *(char *const *)((const char *)cfg + s3_only[i].off);
            if (v && *v)
                return gf_err_set(err, GF_EINVAL, "config",
                                  "%s is set but FARM_STORAGE=local does not use it; set "
                                  "FARM_STORAGE=s3 or unset it",
                                  s3_only[i].name);
        }
        if (cfg->s3_serve != 0)
            return gf_err_set(err, GF_EINVAL, "config",
                              "FARM_S3_SERVE=proxy needs FARM_STORAGE=s3 (local files are "
                              "always served by the api)");
        /* Those with a default: refused when set to anything else. */
        int style_set = cfg->s3_path_style != atoll(gf_cfg_default("FARM_S3_PATH_STYLE"));
        if (style_set || strcmp(cfg->s3_region, gf_cfg_default("FARM_S3_REGION")) != 0)
            return gf_err_set(err, GF_EINVAL, "config",
                              "%s is set but FARM_STORAGE=local does not use it; set "
                              "FARM_STORAGE=s3 or unset it",
                              style_set ? "FARM_S3_PATH_STYLE" : "FARM_S3_REGION");
        return 0;
    }
    static const struct {
        const char *name;
        size_t off;
    } required[] = {
        {"FARM_S3_ENDPOINT", offsetof(gf_config_t, s3_endpoint)},
        {"FARM_S3_BUCKET", offsetof(gf_config_t, s3_bucket)},
        {"FARM_S3_ACCESS_KEY_ID", offsetof(gf_config_t, s3_access_key_id)},
        {"FARM_S3_SECRET_ACCESS_KEY", offsetof(gf_config_t, s3_secret_access_key)},
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const char *v = *(char *const *)((const char *)cfg + required[i].off);
        if (v == NULL || *v == '\0')
            return gf_err_set(err, GF_EINVAL, "config", "%s: required with FARM_STORAGE=s3",
                              required[i].name);
    }
    if (cfg->s3_prefix[0] && cfg->s3_prefix[strlen(cfg->s3_prefix) - 1] != '/')
        return gf_err_set(err, GF_EINVAL, "config",
                          "FARM_S3_PREFIX=%s: must end with '/' (it names a folder)",
                          cfg->s3_prefix);
    return 0;
}

storage_t *storage_new(uv_loop_t *loop, const gf_config_t *cfg, gf_metrics_t *metrics,
                       gf_err_t *err)
{
    if (storage_config_check(cfg, err) < 0)
        return NULL;
    storage_t *s = gf_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->be = cfg->storage == 1 ? &storage__s3 : &storage__local;
    s->b = s->be->open(s, cfg, err);
    if (s->b == NULL) {
        free(s);
        return NULL;
    }
    s->be_open = 1;
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    if (metrics) {
        s->m_requests = gf_metrics_counter(metrics, "farm_storage_requests_total",
                                           "storage operations by outcome", "op,outcome");
        s->m_seconds =
            gf_metrics_histogram(metrics, "farm_storage_request_seconds",
                                 "time of a storage operation, retries included", "op",
                                 gf_metrics_latency_buckets, gf_metrics_latency_nbuckets);
    }
    return s;
}

const char *storage_backend(const storage_t *s)
{
    return s->be->name;
}

static void on_backend_closed(void *data);

static void maybe_closed(storage_t *s)
{
    if (!s->closing || s->nops > 0)
        return;
    if (s->be_open) {
        s->be_open = 0;
        s->be->close(s->b, on_backend_closed, s);
        return;
    }
    if (s->pending_closes > 0)
        return;
    void (*cb)(void *) = s->closed_cb;
    void *data = s->closed_data;
    free(s);
    if (cb)
        cb(data);
}

static void op_free(storage_op_t *op)
{
    storage_t *s = op->s;
    free(op->key);
    free(op->body);
    free(op->ctype);
    free(op->obj.data);
    free(op->cursor);
    for (size_t i = 0; i < op->n_entries; i++)
        free((char *)op->entries[i].key);
    free(op->entries);
    free(op->next_cursor);
    for (size_t i = 0; i < op->n_items; i++) {
        free(op->items[i].key);
        free(op->items[i].body);
    }
    free(op->items);
    free(op);
    s->nops--;
    maybe_closed(s);
}

static void on_op_timer_closed(uv_handle_t *h)
{
    op_free(h->data);
}

static const char *outcome_of(int code)
{
    switch (code) {
    case GF_OK:
        return "ok";
    case GF_ENOTFOUND:
        return "not_found";
    case GF_ETIMEDOUT:
        return "timeout";
    case GF_EUNAVAIL:
        return "unavailable";
    case GF_ECANCELED:
        return "canceled";
    case GF_EINVAL:
        return "refused";
    default:
        return "error";
    }
}

void storage__finish(storage_op_t *op)
{
    storage_t *s = op->s;
    if (op->prev)
        op->prev->next = op->next;
    else
        s->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    if (s->closing && op->err.code == 0)
        gf_err_set(&op->err, GF_ECANCELED, STORAGE_DOMAIN, "storage closed");
    /* A storage_put_many() op counts as the puts it made. */
    for (size_t i = 0; s->m_requests && i < (op->n_items ? op->n_items : 1); i++) {
        gf_metric_inc(
            gf_metric_with(s->m_requests, op_names[op->kind], outcome_of(op->err.code), NULL));
        gf_metric_observe(gf_metric_with(s->m_seconds, op_names[op->kind], NULL, NULL),
                          (double)(uv_hrtime() - op->t0) / 1e9);
    }
    if (op->kind == OP_GET)
        op->got(s, &op->err, op->err.code == 0 ? &op->obj : NULL, op->data);
    else if (op->kind == OP_LIST)
        op->listed(s, &op->err, op->err.code == 0 ? op->entries : NULL,
                   op->err.code == 0 ? op->n_entries : 0,
                   op->err.code == 0 ? op->next_cursor : NULL, op->data);
    else
        op->done(s, &op->err, op->data);
    if (op->timer_init) {
        op->timer.data = op;
        uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
    } else {
        op_free(op);
    }
}

static int op_start(storage_t *s, storage_op_kind kind, const char *key, storage_done_cb done,
                    storage_get_cb got, void *data, storage_op_t **out)
{
    if (s->closing)
        return GF_ECANCELED;
    if (kind != OP_CHECK && kind != OP_LIST && !storage__key_ok(key) &&
        !(kind == OP_DELETE && storage__temp_key_ok(key)))
        return GF_EINVAL;
    storage_op_t *op = gf_xcalloc(1, sizeof(*op));
    op->s = s;
    op->kind = kind;
    op->key = key ? gf_xstrdup(key) : NULL;
    op->done = done;
    op->got = got;
    op->data = data;
    op->t0 = uv_hrtime();
    op->next = s->ops;
    if (s->ops)
        s->ops->prev = op;
    s->ops = op;
    s->nops++;
    *out = op;
    return 0;
}

/* Whether an object of `len` bytes could be read back: a read refuses more than
 * FARM_STORAGE_MAX_OBJECT_BYTES, so storing it would keep (and charge for) a file that
 * is never served. */
static int len_ok(const storage_t *s, size_t len)
{
    return len <= (unsigned long long)s->cfg->storage_max_object_bytes;
}

int storage_put(storage_t *s, const char *key, const void *data, size_t len,
                const char *content_type, storage_done_cb cb, void *cb_data)
{
    storage_op_t *op;
    if (cb == NULL)
        return GF_EINVAL;
    if (!len_ok(s, len))
        return GF_ETOOBIG;
    int rc = op_start(s, OP_PUT, key, cb, NULL, cb_data, &op);
    if (rc < 0)
        return rc;
    op->body = gf_xmalloc(len ? len : 1);
    if (len)
        memcpy(op->body, data, len);
    op->len = len;
    op->ctype = gf_xstrdup(content_type ? content_type : "application/octet-stream");
    s->be->start(s->b, op);
    return 0;
}

/* storage_put_many() as n storage_put() calls (a backend whose ops are not
 * thread-pool jobs): one callback once the last of them has answered. */
typedef struct {
    storage_done_cb cb;
    void *data;
    size_t left;
    gf_err_t err; /* the first failure */
} put_fanout_t;

static void on_fanout_put(storage_t *s, const gf_err_t *err, void *data)
{
    put_fanout_t *f = data;
    if (err->code != 0 && f->err.code == 0)
        f->err = *err;
    if (--f->left > 0)
        return;
    f->cb(s, &f->err, f->data);
    free(f);
}

static int put_fanout(storage_t *s, const storage_put_t *puts, size_t n, storage_done_cb cb,
                      void *cb_data)
{
    put_fanout_t *f = gf_xcalloc(1, sizeof(*f));
    f->cb = cb;
    f->data = cb_data;
    f->left = n + 1; /* held until every put is started */
    size_t started = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = storage_put(s, puts[i].key, puts[i].data, puts[i].len, puts[i].content_type,
                             on_fanout_put, f);
        if (rc == 0) {
            started++;
            continue;
        }
        f->left--;
        if (f->err.code == 0)
            gf_err_set(&f->err, rc, STORAGE_DOMAIN, "storage refused the put of %s", puts[i].key);
    }
    if (started == 0) { /* nothing will call back: the failure is the call's */
        int rc = f->err.code;
        free(f);
        return rc;
    }
    f->left--; /* the hold: a put's callback never runs inside storage_put() */
    return 0;
}

int storage_put_many(storage_t *s, const storage_put_t *puts, size_t n, storage_done_cb cb,
                     void *cb_data)
{
    if (cb == NULL || n == 0 || puts == NULL)
        return GF_EINVAL;
    if (s->closing)
        return GF_ECANCELED;
    for (size_t i = 0; i < n; i++) {
        if (!storage__key_ok(puts[i].key))
            return GF_EINVAL;
        if (!len_ok(s, puts[i].len)) /* checked first: none of them is stored */
            return GF_ETOOBIG;
    }
    if (!s->be->threaded)
        return put_fanout(s, puts, n, cb, cb_data);
    storage_op_t *op;
    int rc = op_start(s, OP_PUT, puts[0].key, cb, NULL, cb_data, &op);
    if (rc < 0)
        return rc;
    op->items = gf_xcalloc(n, sizeof(*op->items));
    op->n_items = n;
    for (size_t i = 0; i < n; i++) {
        op->items[i].key = gf_xstrdup(puts[i].key);
        op->items[i].body = gf_xmalloc(puts[i].len ? puts[i].len : 1);
        if (puts[i].len)
            memcpy(op->items[i].body, puts[i].data, puts[i].len);
        op->items[i].len = puts[i].len;
    }
    s->be->start(s->b, op);
    return 0;
}

int storage_get(storage_t *s, const char *key, storage_get_cb cb, void *cb_data)
{
    storage_op_t *op;
    if (cb == NULL)
        return GF_EINVAL;
    int rc = op_start(s, OP_GET, key, NULL, cb, cb_data, &op);
    if (rc < 0)
        return rc;
    s->be->start(s->b, op);
    return 0;
}

int storage_delete(storage_t *s, const char *key, storage_done_cb cb, void *cb_data)
{
    storage_op_t *op;
    if (cb == NULL)
        return GF_EINVAL;
    int rc = op_start(s, OP_DELETE, key, cb, NULL, cb_data, &op);
    if (rc < 0)
        return rc;
    s->be->start(s->b, op);
    return 0;
}

int storage_check(storage_t *s, uint64_t timeout_ms, storage_done_cb cb, void *cb_data)
{
    storage_op_t *op;
    if (cb == NULL)
        return GF_EINVAL;
    int rc = op_start(s, OP_CHECK, NULL, cb, NULL, cb_data, &op);
    if (rc < 0)
        return rc;
    op->timeout_ms = timeout_ms;
    s->be->start(s->b, op);
    return 0;
}

int storage_list(storage_t *s, const char *cursor, size_t max, storage_list_cb cb, void *cb_data)
{
    storage_op_t *op;
    if (cb == NULL || max == 0 || max > STORAGE_LIST_MAX ||
        (cursor && (cursor[0] == '\0' || strlen(cursor) >= 4 * STORAGE_KEY_MAX)))
        return GF_EINVAL;
    int rc = op_start(s, OP_LIST, NULL, NULL, NULL, cb_data, &op);
    if (rc < 0)
        return rc;
    op->listed = cb;
    op->cursor = cursor ? gf_xstrdup(cursor) : NULL;
    op->max = max;
    s->be->start(s->b, op);
    return 0;
}

unsigned char *storage_object_take(storage_object_t *obj, size_t *len)
{
    unsigned char *d = obj->data;
    if (len)
        *len = obj->len;
    obj->data = NULL;
    obj->len = 0;
    return d;
}

char *storage_read_url(storage_t *s, const char *key, long long expires_unix_s, gf_err_t *err)
{
    if (!storage__key_ok(key))
        return gf_err_set(err, GF_EINVAL, STORAGE_DOMAIN, "not a storage key"), NULL;
    if (s->be->read_url == NULL)
        return gf_err_set(err, GF_EINVAL, STORAGE_DOMAIN, "the %s backend has no read URLs",
                          s->be->name),
               NULL;
    return s->be->read_url(s->b, key, expires_unix_s, err);
}

static void on_backend_closed(void *data)
{
    storage_t *s = data;
    s->pending_closes--;
    maybe_closed(s);
}

static void on_tick_closed(uv_handle_t *h)
{
    on_backend_closed(h->data);
}

void storage_close(storage_t *s, void (*cb)(void *data), void *data)
{
    s->closing = 1;
    s->closed_cb = cb;
    s->closed_data = data;
    s->pending_closes = 2; /* the tick and the backend */
    /* What can be stopped is delivered canceled now; thread-pool work when it
     * returns, and only then is the backend it uses closed (maybe_closed). */
    if (!s->be->threaded) {
        while (s->ops) {
            storage_op_t *op = s->ops;
            s->be->cancel(s->b, op);
            gf_err_set(&op->err, GF_ECANCELED, STORAGE_DOMAIN, "storage closed");
            storage__finish(op);
        }
    }
    uv_close((uv_handle_t *)&s->tick, on_tick_closed);
    maybe_closed(s);
}

typedef struct {
    int done;
    gf_err_t err;
} start_check_t;

static void on_start_checked(storage_t *s, const gf_err_t *err, void *data)
{
    (void)s;
    start_check_t *c = data;
    c->err = *err;
    c->done = 1;
}

static void on_start_closed(void *data)
{
    *(int *)data = 1;
}

int storage_start_check(const gf_config_t *cfg, gf_err_t *err)
{
    if (cfg->storage != 1)
        return 0;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return gf_err_set(err, GF_EIO, STORAGE_DOMAIN, "uv_loop_init failed");
    start_check_t c = {0};
    int closed = 0, rc = 0;
    storage_t *s = storage_new(&loop, cfg, NULL, err);
    if (s == NULL) {
        uv_loop_close(&loop);
        return GF_EINVAL;
    }
    if (storage_check(s, (uint64_t)cfg->storage_timeout_ms, on_start_checked, &c) == 0)
        while (!c.done)
            uv_run(&loop, UV_RUN_ONCE);
    storage_close(s, on_start_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    if (c.err.code == GF_ENOTFOUND)
        rc = gf_err_set(err, GF_EINVAL, "config", "FARM_S3_BUCKET=%s: no such bucket at %s",
                        cfg->s3_bucket, cfg->s3_endpoint);
    else if (c.err.code != 0)
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = STORAGE_DOMAIN}, &c.err);
    return rc;
}
