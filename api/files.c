/*
 * api/files.c - POST /v1/uploads, GET /v1/files/..., GET /v1/presets and
 * the pose maps of the presets.
 *
 * Decoding, re-encoding and rendering run on the libuv thread pool, never on
 * the loop; files are read and written through storage/ (docs/storage.md).
 * Signed file URLs are checked in constant time; with FARM_STORAGE=s3 and
 * FARM_S3_SERVE=redirect a valid one answers 302 to a presigned GET that
 * expires when it does, else the api serves the object with its ETag.
 */
#include "api_int.h"

#include <math.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Work handed to the thread pool, and what it hands back. */
typedef struct file_job {
    uv_work_t work;
    api_t *api;
    gf_http_req_t *req;
    api_principal_t who;
    /* upload */
    unsigned char *in;
    size_t in_len;
    char id[37];
    char key[IMG_KEY_MAX];
    img_info info;
    size_t decode_reserved;     /* of api->upload_decode_bytes, while it decodes */
    int decoding;               /* counted in api->decodes_running */
    struct file_job *wait_next; /* in api->decode_wait_head's list */
    /* file or pose map */
    img_buf out;
    img_format fmt;
    long max_age;
    const img_pose_preset *pose;
    gf_err_t err;
    store_call_t call;
} file_job_t;

static file_job_t *job_new(api_t *api, gf_http_req_t *req)
{
    file_job_t *f = gf_xcalloc(1, sizeof(*f));
    f->api = api;
    f->req = req;
    return f;
}

static void job_free(file_job_t *f)
{
    free(f->in);
    img_buf_dispose(&f->out);
    store_call_dispose(&f->call);
    free(f);
}

static int queue_work(file_job_t *f, uv_work_cb work, uv_after_work_cb after)
{
    f->work.data = f;
    return uv_queue_work(f->api->loop, &f->work, work, after);
}

/* Where pose maps are served; their signed URLs sign the file name (e.g. "standing-wave.png"). */
#define POSE_MAP_PREFIX "/v1/presets/poses/"

/* --- uploads ------------------------------------------------------------------------ */

/* A stored upload whose record failed goes: its id was never given out. */
static void on_upload_removed(storage_t *st, const gf_err_t *err, void *data)
{
    (void)st;
    file_job_t *f = data;
    if (err->code < 0)
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "api", .user_id = f->who.sub}, err);
    job_free(f);
}

/* Removes the upload's object, then frees `f`. */
static void upload_remove(file_job_t *f)
{
    if (f->api->storage == NULL ||
        storage_delete(f->api->storage, f->key, on_upload_removed, f) < 0)
        job_free(f);
}

static void answer_created(file_job_t *f)
{
    api__json(f->req, 201,
              json_pack("{s:s, s:s, s:i, s:i, s:I}", "id", f->id, "format",
                        img_format_name(f->info.format), "width", f->info.width, "height",
                        f->info.height, "bytes", (json_int_t)f->info.bytes));
    f->req = NULL;
    job_free(f);
}

/* An upload whose record's answer was lost: 201 when it was recorded, else 503 as for any
 * record that failed (its file goes). The api stopping first: 500, and the file stays (a
 * row must not name a file that is gone; an orphan file is the lesser harm). */
static void on_upload_resolved(api_t *api, const gf_err_t *err,
                               const store_accept_resolve_result_t *res, void *data)
{
    (void)api;
    file_job_t *f = data;
    if (err->code < 0) {
        api__fail(f->req, GF_EIO, err);
        job_free(f);
    } else if (res->accepted[0]) {
        answer_created(f);
    } else {
        api__fail(f->req, f->err.code, &f->err);
        f->req = NULL;
        upload_remove(f);
    }
}

static void on_upload_recorded(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    file_job_t *f = data;
    if (err->code == GF_ETOOBIG) { /* over the quota: nothing was recorded */
        api__quota_refuse(f->api, f->req, f->who.plan, f->call.res.upload.over, 0);
        f->req = NULL;
        upload_remove(f);
        return;
    }
    if (err->code < 0 && call->outcome_unknown) { /* it may have been recorded: find out */
        const char *ids[] = {f->id};
        f->err = *err;
        store_backend_t backend = call->backend;
        store_call_dispose(call);
        if (api__resolve(f->api, &backend, ids, 1, on_upload_resolved, f) == 0)
            return;
        api__fail(f->req, GF_EIO, err); /* the api stops: unknown, and the file stays */
        job_free(f);
        return;
    }
    if (err->code < 0) { /* nothing was recorded */
        api__fail(f->req, err->code, err);
        f->req = NULL;
        upload_remove(f);
        return;
    }
    answer_created(f);
}

static void upload_work(uv_work_t *w)
{
    file_job_t *f = w->data;
    img_limits lim = img_limits_from_config(f->api->cfg);
    if (img_upload_normalize(f->in, f->in_len, &lim, &f->out, &f->info, &f->err) < 0)
        return;
    img_storage_upload_key(f->who.sub, f->id, f->info.format, f->key, &f->err);
}

/* An upload refused by imaging/ (f->err): its documented answer. */
static void answer_refused_image(file_job_t *f)
{
    switch (img_err_reason(&f->err)) {
    case IMG_REASON_UNSUPPORTED:
        api__error(f->req, 415, "unsupported_media_type",
                   "the upload is not a PNG, JPEG or WebP image", NULL);
        break;
    case IMG_REASON_TOO_MANY_BYTES:
        api__error(f->req, 413, "payload_too_large", "the upload is too large", NULL);
        break;
    case IMG_REASON_TOO_MANY_PIXELS:
        api__error(f->req, 422, "invalid_image", "the image has too many pixels", NULL);
        break;
    case IMG_REASON_UNDECODABLE:
        api__error(f->req, 422, "invalid_image", "the image does not decode", NULL);
        break;
    default:
        api__fail(f->req, f->err.code, &f->err);
    }
}

/*
 * Decodes that hold a whole image (img_info.decode_bytes: WebP, or a turned
 * image) share FARM_UPLOAD_MAX_INFLIGHT_BYTES, apart from the bodies the gate
 * counts: a 2 KB lossless WebP of 6000 x 6000 pixels holds 300 MB while it
 * decodes, so the bodies alone bound nothing. One such decode always runs,
 * whatever its size (each is within FARM_UPLOAD_MAX_PIXELS); the others wait
 * in arrival order, their bodies already admitted, and start as room frees.
 * And every decode takes a thread of the libuv pool for as long as it runs,
 * the pool that also reads local files for GET /v1/files and answers
 * /readyz: decodes take at most all of it but one thread (at least one
 * decode runs), so a burst of uploads never stalls those.
 */
static int decode_fits(const api_t *api, size_t need)
{
    if (api->decodes_running >= api->decode_slots)
        return 0;
    return need == 0 || api->upload_decode_bytes == 0 ||
           api->upload_decode_bytes + need <= (size_t)api->cfg->upload_max_inflight_bytes;
}

static void upload_done(uv_work_t *w, int status);

static void decode_gauges(api_t *api)
{
    gf_metric_set(api->m_decode_bytes, (double)api->upload_decode_bytes);
    gf_metric_set(api->m_decodes_waiting, (double)api->decodes_waiting);
}

static void decode_start(file_job_t *f)
{
    f->decode_reserved = f->info.decode_bytes;
    f->decoding = 1;
    f->api->upload_decode_bytes += f->decode_reserved;
    f->api->decodes_running++;
    decode_gauges(f->api);
    if (queue_work(f, upload_work, upload_done) == 0)
        return;
    f->api->upload_decode_bytes -= f->decode_reserved;
    f->api->decodes_running--;
    f->decoding = 0;
    decode_gauges(f->api);
    api__fail(f->req, GF_EUNAVAIL, NULL);
    job_free(f);
}

/* Starts the waiting decodes that fit, in arrival order; one that does not fit (its memory)
 * lets those behind it that do go first, until the pool's slots are taken. */
static void decode_pump(api_t *api)
{
    file_job_t **at = &api->decode_wait_head, *prev = NULL;
    while (*at && api->decodes_running < api->decode_slots) {
        file_job_t *f = *at;
        if (!decode_fits(api, f->info.decode_bytes)) {
            prev = f;
            at = &f->wait_next;
            continue;
        }
        *at = f->wait_next;
        if (api->decode_wait_tail == f)
            api->decode_wait_tail = prev;
        f->wait_next = NULL;
        api->decodes_waiting--;
        decode_start(f);
    }
    decode_gauges(api);
}

/* A decode ended: its room goes to those waiting. */
static void decode_release(file_job_t *f)
{
    api_t *api = f->api;
    api->upload_decode_bytes -= f->decode_reserved;
    f->decode_reserved = 0;
    api->decodes_running -= f->decoding;
    f->decoding = 0;
    decode_pump(api);
}

/* The header passed: decode now, or wait for room. */
static void probe_done(uv_work_t *w, int status)
{
    file_job_t *f = w->data;
    api_t *api = f->api;
    if (status < 0) {
        api__fail(f->req, GF_ECANCELED, NULL);
        job_free(f);
    } else if (f->err.code != 0) {
        answer_refused_image(f);
        job_free(f);
    } else {
        if (api->decode_wait_tail)
            api->decode_wait_tail->wait_next = f;
        else
            api->decode_wait_head = f;
        api->decode_wait_tail = f;
        api->decodes_waiting++;
        decode_pump(api);
    }
}

static void probe_work(uv_work_t *w)
{
    file_job_t *f = w->data;
    img_limits lim = img_limits_from_config(f->api->cfg);
    img_upload_probe(f->in, f->in_len, &lim, &f->info, &f->err);
}

/* The normalized upload is in storage: record it (the id is given out only then). */
static void on_upload_stored(storage_t *st, const gf_err_t *err, void *data)
{
    (void)st;
    file_job_t *f = data;
    if (err->code < 0) {
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "api", .user_id = f->who.sub}, err);
        api__fail(f->req, err->code == GF_ETIMEDOUT ? GF_ETIMEDOUT : GF_EUNAVAIL, NULL);
        job_free(f);
        return;
    }
    long long max_count, max_bytes;
    gf_cfg_upload_quota(f->api->cfg, f->who.plan, &max_count, &max_bytes);
    store_call_upload_add(&f->call, f->id, f->who.sub, f->api->cfg->welcome_credits,
                          img_format_name(f->info.format), f->info.width, f->info.height,
                          (long long)f->info.bytes, f->info.sha256, f->key, max_count, max_bytes);
    if (api__store_exec(f->api, &f->call, on_upload_recorded, f) < 0) {
        api__fail(f->req, GF_EUNAVAIL, NULL);
        f->req = NULL;
        upload_remove(f);
    }
}

static void upload_done(uv_work_t *w, int status)
{
    file_job_t *f = w->data;
    decode_release(f);
    if (status < 0) {
        api__fail(f->req, GF_ECANCELED, NULL);
        job_free(f);
        return;
    }
    if (f->err.code != 0) {
        answer_refused_image(f);
        job_free(f);
        return;
    }
    int rc = f->api->storage == NULL
                 ? GF_ECANCELED
                 : storage_put(f->api->storage, f->key, f->out.data, f->out.len,
                               img_format_mime(f->info.format), on_upload_stored, f);
    if (rc == GF_ETOOBIG) /* normalised, it is over what storage serves back */
        api__error(f->req, 413, "payload_too_large", "the upload is too large", NULL);
    else if (rc < 0)
        api__fail(f->req, rc, NULL);
    if (rc < 0)
        job_free(f);
}

static void on_upload(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    file_job_t *f = job_new(api, req);
    if (api__auth(api, req, &f->who, 0) < 0)
        goto done;
    /* The media type without its parameters ("image/png; charset=x" is image/png). */
    const char *ctype = gf_http_req_header(req, "content-type");
    size_t tlen = ctype ? strcspn(ctype, "; \t") : 0;
    if (ctype == NULL || !((tlen == 9 && strncasecmp(ctype, "image/png", 9) == 0) ||
                           (tlen == 10 && (strncasecmp(ctype, "image/jpeg", 10) == 0 ||
                                           strncasecmp(ctype, "image/webp", 10) == 0)))) {
        api__error(req, 415, "unsupported_media_type",
                   "send the image as image/png, image/jpeg or image/webp", NULL);
        goto done;
    }
    const char *body = gf_http_req_body(req, &f->in_len);
    if (f->in_len == 0) {
        api__error(req, 422, "invalid_image", "the upload is empty", NULL);
        goto done;
    }
    f->in = gf_xmalloc(f->in_len);
    memcpy(f->in, body, f->in_len);
    gf_uuid4(f->id);
    if (queue_work(f, probe_work, probe_done) == 0)
        return;
    api__fail(req, GF_EUNAVAIL, NULL);
done:
    job_free(f);
}

/* --- files ------------------------------------------------------------------------------ */

/*
 * If-None-Match against our ETag (RFC 9110 13.1.2): "*", or a comma-separated
 * list of tags, weak (W/"...") or strong, compared weakly.
 */
static int etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = inm; p && *p;) {
        p += strspn(p, " \t,");
        if (*p == '*') /* only as the whole value */
            return p == inm + strspn(inm, " \t") && p[1 + strspn(p + 1, " \t")] == '\0';
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t len = strcspn(p, ",");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && strncmp(p, etag, n) == 0)
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

/* The object read back from storage (proxy mode, local storage, or a token's request). */
static void on_file_read(storage_t *st, const gf_err_t *err, storage_object_t *obj, void *data)
{
    (void)st;
    file_job_t *f = data;
    if (err->code == GF_ENOTFOUND || (err->code == 0 && obj->len == 0)) {
        api__error(f->req, 404, "not_found", "no such file", NULL);
        job_free(f);
        return;
    }
    if (err->code < 0) {
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "api"}, err);
        api__fail(f->req, err->code == GF_ETIMEDOUT ? GF_ETIMEDOUT : GF_EUNAVAIL, NULL);
        job_free(f);
        return;
    }
    char cache[64];
    snprintf(cache, sizeof(cache), "private, max-age=%ld", f->max_age > 0 ? f->max_age : 0);
    gf_http_set_header(f->req, "Cache-Control", cache);
    if (obj->etag[0])
        gf_http_set_header(f->req, "ETag", obj->etag);
    gf_http_set_header(f->req, "X-Content-Type-Options", "nosniff");
    if (obj->etag[0] && etag_matches(gf_http_req_header(f->req, "if-none-match"), obj->etag))
        gf_http_respond(f->req, 304, NULL, "", 0);
    else
        gf_http_respond(f->req, 200, img_format_mime(f->fmt), (const char *)obj->data, obj->len);
    job_free(f);
}

/* The format of a key's extension (the layout writes only these). */
static img_format key_format(const char *key)
{
    const char *dot = strrchr(key, '.');
    static const img_format all[] = {IMG_FORMAT_PNG, IMG_FORMAT_JPEG, IMG_FORMAT_WEBP};
    for (size_t i = 0; dot && i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(dot + 1, img_format_ext(all[i])) == 0)
            return all[i];
    return IMG_FORMAT_NONE;
}

/* A file is served to a valid signature, or to its owner's token; anything else is 404. */
static void on_file(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    file_job_t *f = job_new(api, req);
    const char *a = gf_http_req_param(req, "a"), *b = gf_http_req_param(req, "b");
    const char *c = gf_http_req_param(req, "c");
    snprintf(f->key, sizeof(f->key), "%s/%s/%s", a, b, c);
    int signed_ok = api__signature_ok(api, req, f->key, &f->max_age);
    int allowed = signed_ok;
    if (!allowed && gf_http_req_header(req, "authorization")) {
        api_principal_t who;
        gf_err_t err = {0};
        const char *h = gf_http_req_header(req, "authorization");
        if (strncasecmp(h, "Bearer ", 7) == 0 && api__token_check(api, h + 7, &who, &err) == 0)
            allowed = strcmp(who.sub, a) == 0; /* keys start with their owner's id */
    }
    if (!allowed) {
        api__error(req, 404, "not_found", "no such file", NULL);
        job_free(f);
        return;
    }
    f->fmt = key_format(f->key);
    if (f->fmt == IMG_FORMAT_NONE) {
        api__error(req, 404, "not_found", "no such file", NULL);
        job_free(f);
        return;
    }
    /* A signed URL with FARM_S3_SERVE=redirect: to the object itself, for no
     * longer than the signed URL is valid. A request that carries a token is
     * served here even when its signature is valid: a client that follows a
     * redirect may carry its Authorization along, which a presigned URL
     * refuses ("only one auth mechanism"). */
    if (signed_ok && !gf_http_req_header(req, "authorization") && api->cfg->storage == 1 &&
        api->cfg->s3_serve == 0) {
        gf_err_t err = {0};
        char *url = storage_read_url(api->storage, f->key, time(NULL) + f->max_age, &err);
        if (url == NULL) {
            api__fail(req, GF_EUNAVAIL, &err);
        } else {
            gf_http_set_header(req, "Location", url);
            gf_http_set_header(req, "Cache-Control", "no-store");
            gf_http_respond(req, 302, NULL, "", 0);
            free(url);
        }
        job_free(f);
        return;
    }
    int rc = storage_get(api->storage, f->key, on_file_read, f);
    if (rc < 0) {
        if (rc == GF_EINVAL)
            api__error(req, 404, "not_found", "no such file", NULL);
        else
            api__fail(req, rc, NULL);
        job_free(f);
    }
}

/* --- presets ------------------------------------------------------------------------------- */

/* A keypoint coordinate as the preset file wrote it: stored as a float, 0.135
 * came back as 0.13500000536441803; four decimals are what the files hold. */
static double kp_round(float v)
{
    return round((double)v * 10000.0) / 10000.0;
}

static void on_presets(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    api_principal_t who;
    if (api__auth(api, req, &who, 0) < 0)
        return;
    json_t *styles = json_array(), *poses = json_array(), *exports = json_array();
    for (size_t i = 0; api->presets && i < img_presets_style_count(api->presets); i++) {
        const img_style_preset *s = img_presets_style(api->presets, i);
        json_array_append_new(styles, json_pack("{s:s, s:s, s:s}", "name", s->name, "description",
                                                s->description ? s->description : "",
                                                "prompt_suffix", s->prompt_suffix));
    }
    for (size_t i = 0; api->presets && i < img_presets_pose_count(api->presets); i++) {
        const img_pose_preset *p = img_presets_pose(api->presets, i);
        json_t *kp = json_array();
        for (int k = 0; k < IMG_POSE_KEYPOINTS; k++)
            json_array_append_new(kp, json_pack("[f, f, f]", kp_round(p->keypoints[k].x),
                                                kp_round(p->keypoints[k].y),
                                                kp_round(p->keypoints[k].confidence)));
        /* Signed as output URLs are, so an <img> (no header) can show it. */
        char key[160];
        snprintf(key, sizeof(key), "%s.png", p->name);
        json_array_append_new(
            poses, json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", p->name, "category", p->category,
                             "description", p->description ? p->description : "", "keypoints", kp,
                             "map_url", api__signed_url(api, POSE_MAP_PREFIX, key)));
    }
    for (size_t i = 0; api->presets && i < img_presets_export_count(api->presets); i++) {
        const img_export_preset *e = img_presets_export(api->presets, i);
        json_array_append_new(exports,
                              json_pack("{s:s, s:i, s:i, s:s}", "name", e->name, "width", e->width,
                                        "height", e->height, "format", img_format_name(e->format)));
    }
    /* 15 significant digits: a keypoint reads as the file writes it (0.135, not
     * 0.13500000000000001). Only here: elsewhere, data the user sent goes back
     * with every digit it had. */
    api__json_flags(
        req, 200,
        json_pack("{s:o, s:o, s:o}", "styles", styles, "poses", poses, "exports", exports),
        JSON_COMPACT | JSON_REAL_PRECISION(15));
}

/*
 * Pose maps are served from memory: each preset's map is rendered once, on
 * the thread pool, at its first request (a render takes about 10 ms; the
 * presets are fixed while the api runs, a few KiB each).
 */
static img_buf *pose_map_slot(api_t *api, const img_pose_preset *p)
{
    size_t n = img_presets_pose_count(api->presets);
    if (api->pose_maps == NULL)
        api->pose_maps = gf_xcalloc(n ? n : 1, sizeof(*api->pose_maps));
    for (size_t i = 0; i < n; i++)
        if (img_presets_pose(api->presets, i) == p)
            return &api->pose_maps[i];
    return NULL;
}

static void pose_map_respond(gf_http_req_t *req, const img_buf *map)
{
    gf_http_set_header(req, "Cache-Control", "public, max-age=86400");
    gf_http_respond(req, 200, "image/png", (const char *)map->data, map->len);
}

static void pose_map_work(uv_work_t *w)
{
    file_job_t *f = w->data;
    img_pose_render(f->pose->keypoints, 512, 512, &f->out, &f->err);
}

static void pose_map_done(uv_work_t *w, int status)
{
    file_job_t *f = w->data;
    if (status < 0 || f->err.code != 0) {
        api__fail(f->req, GF_EIO, &f->err);
        job_free(f);
        return;
    }
    img_buf *slot = pose_map_slot(f->api, f->pose);
    if (slot != NULL && slot->data == NULL) { /* the first render kept; a concurrent one dropped */
        *slot = f->out;
        f->out = (img_buf){0};
    }
    pose_map_respond(f->req, slot != NULL && slot->data ? slot : &f->out);
    job_free(f);
}

/* A pose map is served to a valid signature (its map_url) or to any valid token. */
static void on_pose_map(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    const char *file = gf_http_req_param(req, "file");
    char key[160];
    snprintf(key, sizeof(key), "%s", file);
    if (!api__signature_ok(api, req, key, NULL)) {
        api_principal_t who;
        if (api__auth(api, req, &who, 0) < 0)
            return;
    }
    size_t n = strlen(file);
    char name[80];
    const img_pose_preset *p = NULL;
    if (n > 4 && n < sizeof(name) && strcmp(file + n - 4, ".png") == 0 && api->presets) {
        snprintf(name, sizeof(name), "%.*s", (int)(n - 4), file);
        p = img_presets_pose_find(api->presets, name);
    }
    if (p == NULL) {
        api__error(req, 404, "not_found", "no such pose preset", NULL);
        return;
    }
    const img_buf *map = pose_map_slot(api, p);
    if (map != NULL && map->data != NULL) {
        pose_map_respond(req, map);
        return;
    }
    file_job_t *f = job_new(api, req);
    f->pose = p;
    if (queue_work(f, pose_map_work, pose_map_done) < 0) {
        api__fail(req, GF_EUNAVAIL, NULL);
        job_free(f);
    }
}

void api__files_free(api_t *api)
{
    size_t n = api->presets ? img_presets_pose_count(api->presets) : 0;
    for (size_t i = 0; api->pose_maps && i < n; i++)
        img_buf_dispose(&api->pose_maps[i]);
    free(api->pose_maps);
    api->pose_maps = NULL;
}

void api__files_routes(api_t *api)
{
    gf_httpd_route(api->httpd, "POST", "/v1/uploads", (size_t)api->cfg->upload_max_bytes, on_upload,
                   api);
    gf_httpd_route(api->httpd, "GET", "/v1/files/:a/:b/:c", 0, on_file, api);
    gf_httpd_route(api->httpd, "GET", "/v1/presets", 0, on_presets, api);
    gf_httpd_route(api->httpd, "GET", "/v1/presets/poses/:file", 0, on_pose_map, api);
}
