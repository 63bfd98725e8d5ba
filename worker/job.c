/*
 * worker/job.c - one generation through a worker: start, every image
 * (provider -> thread pool -> storage -> capture), finish.
 *
 * Every write carries the lease's fencing token, so a worker that lost its
 * lease is refused by Postgres and by the queue; when that happens the job
 * only aborts (job_lose) and writes nothing more. An image is charged in the
 * same transaction that records its outputs (farm_image_done), and released
 * when it fails for good or the generation ends without it.
 */
#include "job.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A store call made for a job (and maybe one of its images). */
typedef struct {
    job_t *job;
    job_image_t *img;
    store_call_t call;
} job_op_t;

static void job_pump(job_t *j);
static void image_start(job_image_t *img);
static void image_fail(job_image_t *img, const char *code, const char *msg, int retryable);

static gf_log_ctx job_log(const job_t *j, const char *action)
{
    gf_log_ctx c = {.component = "worker",
                    .generation_id = j->qj.gen_id,
                    .worker_id = j->r->worker_id,
                    .user_id = j->qj.user_id,
                    .action = action};
    return c;
}

static void job_free(job_t *j)
{
    queue_job_dispose(&j->qj);
    json_decref(j->params);
    free(j->prompt);
    free(j->last_error);
    free(j->identity_key);
    img_buf_dispose(&j->identity);
    for (int i = 0; j->pose_keys && i < j->nposes; i++) {
        free(j->pose_keys[i]);
        img_buf_dispose(&j->pose_maps[i]);
    }
    free(j->pose_keys);
    free(j->pose_maps);
    free(j->exports);
    for (int i = 0; j->imgs && i < j->images; i++) {
        free(j->imgs[i].bytes);
        free(j->imgs[i].outputs_json);
        free(j->imgs[i].resume);
    }
    free(j->imgs);
    free(j);
}

/* Frees the job once it has ended and nothing of it is in flight. */
static void job_check_end(job_t *j)
{
    if (!j->ended || j->pending > 0)
        return;
    worker_runner__job_gone(j->r, j);
    job_free(j);
}

void job_unref(job_t *j)
{
    j->pending--;
    job_check_end(j);
}

/* Ends the image's current stage in the stage histogram and starts the next. */
static void stage_done(job_image_t *img, const char *stage)
{
    uint64_t now = uv_hrtime();
    worker_runner_t *r = img->job->r;
    if (r->m_stage && img->t_stage)
        gf_metric_observe(gf_metric_with(r->m_stage, stage, NULL, NULL),
                          (double)(now - img->t_stage) / 1e9);
    img->t_stage = now;
}

static int job_gone(const job_t *j)
{
    return j->lost || j->handed_back;
}

static job_op_t *op_new(job_t *j, job_image_t *img)
{
    job_op_t *op = gf_xcalloc(1, sizeof(*op));
    op->job = j;
    op->img = img;
    j->pending++;
    return op;
}

/* Runs `op`'s call; on a refused submit the callback runs anyway, with the status. */
static void op_exec(job_op_t *op, store_call_cb cb)
{
    if (store_exec(op->job->r->store, &op->call, cb, op) < 0) {
        op->call.status = GF_EUNAVAIL;
        cb(op->job->r->store, &op->call, op);
    }
}

static void op_free(job_op_t *op)
{
    store_call_dispose(&op->call);
    free(op);
}

static void on_event_appended(queue_t *q, int status, const queue_result_t *res, void *data)
{
    (void)q;
    (void)res;
    (void)data;
    (void)status; /* events are best effort: the generation's record is in Postgres */
}

static void job_event(job_t *j, const char *type, json_t *data)
{
    json_object_set_new(data, "id", json_string(j->qj.gen_id));
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    queue_event_append(j->r->queue, j->qj.gen_id, j->qj.token, type, text, on_event_appended, NULL);
    free(text);
}

/* --- ending ----------------------------------------------------------------------- */

static void on_queue_finished(queue_t *q, int status, const queue_result_t *res, void *data)
{
    (void)q;
    (void)res;
    job_t *j = data;
    j->pending--;
    if (status < 0 && status != GF_ECONFLICT) {
        gf_log_ctx ctx = job_log(j, "finishing in the queue");
        GF_LOG(GF_LOG_WARN, &ctx, "queue finish failed (%s): the lease will expire",
               gf_status_name(status));
    }
    j->ended = 1;
    job_check_end(j);
}

static void queue_end(job_t *j, queue_outcome_t outcome, const char *detail)
{
    j->pending++;
    if (queue_finish(j->r->queue, j->qj.gen_id, j->qj.token, outcome, detail, on_queue_finished,
                     j) < 0)
        on_queue_finished(j->r->queue, GF_EUNAVAIL, NULL, j);
}

static void on_finished(store_t *st, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    j->pending--;
    if (call->status == GF_ECONFLICT) {
        job_lose(j);
    } else if (call->status < 0) {
        job_hand_back(j);
    } else {
        if (j->r->m_outcomes)
            gf_metric_inc(gf_metric_with(j->r->m_outcomes, call->gen_status, NULL, NULL));
        gf_log_ctx ctx = job_log(j, NULL);
        GF_LOG(GF_LOG_INFO, &ctx, "finished: %s (%d images, %.0f ms)", call->gen_status, j->images,
               (double)(uv_hrtime() - j->started_ns) / 1e6);
        queue_end(j, strcmp(call->gen_status, "canceled") == 0 ? QUEUE_CANCELED : QUEUE_DONE, "{}");
    }
    op_free(op);
    job_check_end(j);
}

static void job_finish(job_t *j, const char *status)
{
    if (j->ending)
        return;
    j->ending = 1;
    job_op_t *op = op_new(j, NULL);
    /* A generation with no image delivered carries its last image's error. */
    const char *error = j->delivered == 0 && strcmp(status, "canceled") != 0 ? j->last_error : NULL;
    store_call_finish(&op->call, j->qj.gen_id, (long long)j->qj.token, status, error);
    op_exec(op, on_finished);
}

static void cancel_calls(job_t *j)
{
    for (int i = 0; j->imgs && i < j->images; i++)
        if (j->imgs[i].call)
            provider_cancel(j->imgs[i].call);
}

void job_lose(job_t *j)
{
    if (job_gone(j))
        return;
    gf_log_ctx ctx = job_log(j, NULL);
    GF_LOG(GF_LOG_WARN, &ctx, "lease lost: aborting without writing anything");
    j->lost = 1;
    j->ended = 1;
    cancel_calls(j);
    job_check_end(j);
}

void job_hand_back(job_t *j)
{
    if (job_gone(j))
        return;
    j->handed_back = 1;
    cancel_calls(j);
    queue_end(j, QUEUE_RETRY, "handed back by a worker that is stopping or lost postgres");
}

void job_cancel(job_t *j)
{
    if (j->canceling || job_gone(j) || j->ending)
        return;
    j->canceling = 1;
    cancel_calls(j);
    job_pump(j);
}

/* --- images ------------------------------------------------------------------------ */

static void image_settled(job_image_t *img, json_t *event)
{
    job_t *j = img->job;
    img->state = IMAGE_SETTLED;
    j->running--;
    j->settled++;
    json_object_set_new(event, "index", json_integer(img->index));
    json_object_set_new(event, "pose", json_integer(img->pose));
    json_object_set_new(event, "status", json_string("running"));
    json_object_set_new(event, "progress", json_integer(j->settled * 100 / j->images));
    job_event(j, "image", event);
    job_pump(j);
}

static void on_image_recorded(store_t *st, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    job_image_t *img = op->img;
    j->pending--;
    if (job_gone(j)) {
    } else if (call->status == GF_ECONFLICT) {
        job_lose(j);
    } else if (call->status < 0) {
        job_hand_back(j);
    } else if (call->op == STORE_OP_IMAGE_DONE) {
        stage_done(img, "storing");
        j->delivered++;
        json_t *outputs = json_loads(img->outputs_json, 0, NULL);
        image_settled(img, json_pack("{s:o}", "outputs", outputs ? outputs : json_array()));
    } else {
        free(j->last_error);
        free(j->identity_key);
        img_buf_dispose(&j->identity);
        for (int i = 0; j->pose_keys && i < j->nposes; i++) {
            free(j->pose_keys[i]);
            img_buf_dispose(&j->pose_maps[i]);
        }
        free(j->pose_keys);
        free(j->pose_maps);
        j->last_error = gf_xstrdup(call->params[4]);
        json_t *err = json_loads(call->params[4], 0, NULL);
        image_settled(img, json_pack("{s:o}", "error", err ? err : json_null()));
    }
    op_free(op);
    job_check_end(j);
}

/* Releases an image for good: its error is recorded and its share given back. */
static void image_fail(job_image_t *img, const char *code, const char *msg, int retryable)
{
    job_t *j = img->job;
    json_t *e = json_pack("{s:s, s:s, s:b}", "code", code, "message", msg, "retryable", retryable);
    char *text = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    img->state = IMAGE_STORING;
    job_op_t *op = op_new(j, img);
    store_call_image(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index, 0, text);
    free(text);
    op_exec(op, on_image_recorded);
}

/* Thread pool: variants, storage, and the outputs' JSON. Touches only `img`'s own data. */
static void on_work(uv_work_t *w)
{
    job_image_t *img = w->data;
    job_t *j = img->job;
    img_post_opts o = {.expect_width = j->width,
                       .expect_height = j->height,
                       .exports = j->exports,
                       .n_exports = j->nexports};
    img_variants v = {0};
    if (img_variants_make(img->bytes, img->len, &o, &v, &img->work_err) < 0)
        return;
    json_t *outputs = json_array();
    for (size_t i = 0; i < v.count; i++) {
        const img_variant *var = &v.items[i];
        char key[IMG_KEY_MAX];
        if (img_storage_key(j->qj.user_id, j->qj.gen_id, img->index, var->name, var->format, key,
                            &img->work_err) < 0 ||
            img_storage_write(j->r->cfg->storage_dir, key, var->data.data, var->data.len,
                              &img->work_err) < 0)
            break;
        json_array_append_new(
            outputs, json_pack("{s:i, s:i, s:s, s:s, s:i, s:i, s:I, s:s, s:s, s:I}", "index",
                               img->index, "pose", img->pose, "variant", var->name, "format",
                               img_format_name(var->format), "width", var->width, "height",
                               var->height, "bytes", (json_int_t)var->data.len, "sha256",
                               var->sha256, "storage_key", key, "seed", (json_int_t)img->seed));
    }
    if (img->work_err.code == 0)
        img->outputs_json = json_dumps(outputs, JSON_COMPACT);
    json_decref(outputs);
    img_variants_dispose(&v);
}

static void on_work_done(uv_work_t *w, int status)
{
    job_image_t *img = w->data;
    job_t *j = img->job;
    j->pending--;
    GF_FREE(img->bytes);
    stage_done(img, "postprocessing");
    if (job_gone(j)) {
        job_check_end(j);
        return;
    }
    if (status < 0 || img->work_err.code != 0 || img->outputs_json == NULL) {
        gf_log_ctx ctx = job_log(j, "post-processing");
        gf_log_err(GF_LOG_WARN, &ctx, &img->work_err);
        int bad = img_err_reason(&img->work_err) == IMG_REASON_INVALID_OUTPUT;
        image_fail(img, bad ? "invalid_output" : "internal",
                   bad ? "the provider's image is not usable" : "post-processing failed", 0);
        return;
    }
    img->state = IMAGE_STORING;
    job_op_t *op = op_new(j, img);
    store_call_image_done(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index,
                          img->outputs_json);
    op_exec(op, on_image_recorded);
}

static void on_request_recorded(store_t *st, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    j->pending--;
    if (call->status == GF_ECONFLICT)
        job_lose(j);
    op_free(op);
    job_check_end(j);
}

static void on_accepted(provider_call_t *call, const char *provider, const char *request_id,
                        const char *resume, void *data)
{
    (void)call;
    (void)request_id;
    job_image_t *img = data;
    job_t *j = img->job;
    if (job_gone(j) || resume == NULL)
        return;
    /* Persist before waiting on it, so a worker that takes over resumes, not resubmits. */
    char token[600];
    snprintf(token, sizeof(token), "%s:%s", provider, resume);
    job_op_t *op = op_new(j, img);
    store_call_provider_request(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index, token);
    op_exec(op, on_request_recorded);
}

static void on_progress(provider_call_t *call, double progress, const char *stage, void *data)
{
    (void)call;
    (void)progress;
    job_image_t *img = data;
    job_t *j = img->job;
    if (job_gone(j) || stage == NULL || strcmp(stage, "running") != 0 || img->attempts > 1)
        return;
    job_event(j, "progress",
              json_pack("{s:s, s:s, s:i}", "status", "running", "stage", "generating", "progress",
                        j->settled * 100 / j->images));
}

static void on_provider_done(provider_call_t *call, int status, void *data)
{
    job_image_t *img = data;
    job_t *j = img->job;
    img->call = NULL;
    j->pending--;
    if (j->r->m_provider) {
        const provider_image_t *ok = status == 0 ? provider_call_image(call) : NULL;
        const provider_error_t *bad = status < 0 ? provider_call_error(call) : NULL;
        const char *who = ok ? ok->provider : bad && bad->provider[0] ? bad->provider : "none";
        const char *outcome = ok ? "ok" : bad ? provider_error_code_name(bad->code) : "error";
        gf_metric_observe(gf_metric_with(j->r->m_provider, who, outcome, NULL),
                          (double)(uv_hrtime() - img->t_stage) / 1e9);
    }
    stage_done(img, "generating");
    if (job_gone(j)) {
        job_check_end(j);
        return;
    }
    if (status == 0) {
        const provider_image_t *im = provider_call_image(call);
        img->bytes = gf_xmalloc(im->len);
        memcpy(img->bytes, im->bytes, im->len);
        img->len = im->len;
        img->state = IMAGE_PROCESSING;
        img->work.data = img;
        j->pending++;
        if (uv_queue_work(j->r->loop, &img->work, on_work, on_work_done) < 0)
            on_work_done(&img->work, UV_ECANCELED);
        return;
    }
    if (j->canceling) {
        img->state = IMAGE_PENDING; /* released by the canceled finish */
        j->running--;
        job_pump(j);
        return;
    }
    const provider_error_t *e = provider_call_error(call);
    gf_log_ctx ctx = job_log(j, "calling provider");
    ctx.provider = e ? e->provider : NULL;
    ctx.attempt = img->attempts;
    if (e)
        gf_log_err(GF_LOG_WARN, &ctx, &e->err);
    if (e && e->retryable && img->attempts < j->r->cfg->worker_image_attempts) {
        if (e->new_seed)
            img->seed = (img->seed + 7919) & 0xffffffff;
        j->running--;
        image_start(img);
        return;
    }
    const char *code = e ? provider_error_code_name(e->code) : "provider_error";
    image_fail(img, code,
               e && e->code == PROVIDER_E_CONTENT_REJECTED
                   ? "the provider refused this content"
                   : "the provider could not make this image",
               e ? e->retryable : 0);
}

static void image_start(job_image_t *img)
{
    job_t *j = img->job;
    img->attempts++;
    img->state = IMAGE_CALLING;
    img->t_stage = uv_hrtime();
    j->running++;
    provider_req_t req = {.prompt = j->prompt,
                          .width = j->width,
                          .height = j->height,
                          .seed = img->seed,
                          .log_id = j->qj.gen_id};
    json_t *p = j->params;
    req.negative_prompt = json_string_value(json_object_get(p, "negative_prompt"));
    req.steps = (int)json_integer_value(json_object_get(p, "steps"));
    req.guidance = json_is_number(json_object_get(p, "guidance"))
                       ? json_number_value(json_object_get(p, "guidance"))
                       : -1;
    img_buf pose_map = {0};
    json_t *pose = json_array_get(json_object_get(p, "poses"), (size_t)img->pose);
    const img_pose_preset *preset =
        j->r->presets ? img_presets_pose_find(j->r->presets,
                                              json_string_value(json_object_get(pose, "preset")))
                      : NULL;
    gf_err_t err = {0};
    if (preset && img_pose_render(preset->keypoints, j->width, j->height, &pose_map, &err) == 0) {
        req.pose_image = pose_map.data;
        req.pose_len = pose_map.len;
    } else if (j->pose_maps && j->pose_maps[img->pose].len) {
        req.pose_image = j->pose_maps[img->pose].data; /* an uploaded pose map */
        req.pose_len = j->pose_maps[img->pose].len;
    }
    if (j->identity.len) {
        req.identity_image = j->identity.data;
        req.identity_len = j->identity.len;
    }
    /* A request an earlier attempt submitted is resumed, not paid for twice. */
    char resume_provider[16] = "";
    if (img->resume && img->attempts == 1) {
        const char *colon = strchr(img->resume, ':');
        if (colon && (size_t)(colon - img->resume) < sizeof(resume_provider)) {
            snprintf(resume_provider, sizeof(resume_provider), "%.*s", (int)(colon - img->resume),
                     img->resume);
            req.resume = colon + 1;
            req.resume_provider = resume_provider;
            gf_log_ctx ctx = job_log(j, "resuming a provider request");
            GF_LOG(GF_LOG_INFO, &ctx, "image %d: resuming the %s request of an earlier attempt",
                   img->index, resume_provider);
        }
    }
    provider_cbs_t cbs = {
        .done = on_provider_done, .accepted = on_accepted, .progress = on_progress, .data = img};
    j->pending++;
    int rc = provider_submit(j->r->provider, &req, &cbs, &img->call, &err);
    img_buf_dispose(&pose_map);
    if (rc < 0) {
        j->pending--;
        image_fail(img, "internal", "the provider call could not start", 0);
    }
}

/* Starts what may start, and finishes the generation when nothing is left. */
static void job_pump(job_t *j)
{
    if (j->ending || job_gone(j) || !j->started)
        return;
    if (j->canceling) {
        if (j->running == 0)
            job_finish(j, "canceled");
        return;
    }
    for (int i = 0; i < j->images && j->running < j->r->cfg->worker_images_parallel; i++)
        if (j->imgs[i].state == IMAGE_PENDING)
            image_start(&j->imgs[i]);
    if (j->settled == j->images)
        job_finish(j, "auto");
}

/* --- starting ------------------------------------------------------------------------ */

/* Reads the accepted parameters into the job; GF_EINVAL when they cannot be run. */
static int job_parse(job_t *j)
{
    j->params = json_loads(j->qj.payload ? j->qj.payload : "", 0, NULL);
    json_t *p = j->params;
    const char *kind = json_string_value(json_object_get(p, "kind"));
    const char *prompt = json_string_value(json_object_get(p, "prompt"));
    if (!json_is_object(p) || kind == NULL || prompt == NULL)
        return GF_EINVAL;
    j->count = (int)json_integer_value(json_object_get(p, "count"));
    j->width = (int)json_integer_value(json_object_get(p, "width"));
    j->height = (int)json_integer_value(json_object_get(p, "height"));
    j->nposes = strcmp(kind, "pose") == 0 ? (int)json_array_size(json_object_get(p, "poses")) : 1;
    j->images = j->count * j->nposes;
    if (j->count < 1 || j->nposes < 1 || j->images > 40 || j->width < 64 || j->height < 64)
        return GF_EINVAL;
    const char *style = json_string_value(json_object_get(p, "style"));
    const img_style_preset *sp =
        style && j->r->presets ? img_presets_style_find(j->r->presets, style) : NULL;
    gf_buf_t b = {0};
    gf_buf_puts(&b, prompt);
    if (sp && sp->prompt_suffix && sp->prompt_suffix[0])
        gf_buf_printf(&b, ", %s", sp->prompt_suffix);
    j->prompt = b.p;
    json_t *exports = json_object_get(p, "exports");
    j->exports = gf_xcalloc(json_array_size(exports) + 1, sizeof(*j->exports));
    size_t i;
    json_t *e;
    json_array_foreach(exports, i, e)
    {
        const img_export_preset *ep =
            j->r->presets ? img_presets_export_find(j->r->presets, json_string_value(e)) : NULL;
        if (ep)
            j->exports[j->nexports++] = ep;
    }
    int64_t seed = json_integer_value(json_object_get(p, "seed"));
    j->imgs = gf_xcalloc((size_t)j->images, sizeof(job_image_t));
    for (int k = 0; k < j->images; k++) {
        j->imgs[k].job = j;
        j->imgs[k].index = k;
        j->imgs[k].pose = k / j->count;
        j->imgs[k].seed = (seed + k) & 0xffffffff; /* API.md: image i uses seed + i */
    }
    return 0;
}

/* Reads one stored file; an empty buffer when it cannot (logged by the caller). */
static void read_stored(const char *root, const char *key, img_buf *out)
{
    char path[1024];
    gf_err_t err = {0};
    if (key == NULL || img_storage_resolve(root, key, path, sizeof(path), NULL, &err) < 0)
        return;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    gf_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        gf_buf_append(&b, chunk, n);
    fclose(f);
    out->data = (unsigned char *)b.p;
    out->len = b.len;
}

/* Thread pool: the identity image and uploaded pose maps. */
static void on_refs_work(uv_work_t *w)
{
    job_t *j = w->data;
    read_stored(j->r->cfg->storage_dir, j->identity_key, &j->identity);
    for (int i = 0; j->pose_keys && i < j->nposes; i++)
        read_stored(j->r->cfg->storage_dir, j->pose_keys[i], &j->pose_maps[i]);
}

static void job_begin(job_t *j)
{
    j->started = 1;
    job_event(j, "started",
              json_pack("{s:s, s:s, s:i}", "status", "running", "stage", "starting", "progress",
                        j->settled * 100 / j->images));
    job_pump(j);
}

static void on_refs_done(uv_work_t *w, int status)
{
    job_t *j = w->data;
    j->pending--;
    if (!job_gone(j)) {
        if (status < 0 || (j->identity_key && j->identity.len == 0)) {
            gf_log_ctx ctx = job_log(j, "reading referenced files");
            GF_LOG(GF_LOG_WARN, &ctx, "a referenced file is missing: generating without it");
        }
        job_begin(j);
    }
    job_check_end(j);
}

/* A worker that takes over skips what an earlier attempt settled. */
static void on_resume_info(store_t *st, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    j->pending--;
    json_t *gen = call->status == 0 ? json_loads(call->json, 0, NULL) : NULL;
    if (job_gone(j)) {
    } else if (gen == NULL) {
        job_hand_back(j);
    } else {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(gen, "settled"), i, item)
        {
            json_int_t k = json_integer_value(item);
            if (k >= 0 && k < j->images && j->imgs[k].state != IMAGE_SETTLED) {
                j->imgs[k].state = IMAGE_SETTLED;
                j->settled++;
            }
        }
        const char *key;
        json_object_foreach(json_object_get(gen, "provider_requests"), key, item)
        {
            int k = atoi(key);
            if (k >= 0 && k < j->images && json_is_string(item))
                j->imgs[k].resume = gf_xstrdup(json_string_value(item));
        }
        const char *ident = json_string_value(json_object_get(gen, "identity_key"));
        j->identity_key = ident ? gf_xstrdup(ident) : NULL;
        json_t *pose_keys = json_object_get(gen, "pose_keys");
        int any_pose = 0;
        json_object_foreach(pose_keys, key, item)
        {
            int k = atoi(key);
            if (k < 0 || k >= j->nposes || !json_is_string(item))
                continue;
            if (j->pose_keys == NULL) {
                j->pose_keys = gf_xcalloc((size_t)j->nposes, sizeof(char *));
                j->pose_maps = gf_xcalloc((size_t)j->nposes, sizeof(img_buf));
            }
            j->pose_keys[k] = gf_xstrdup(json_string_value(item));
            any_pose = 1;
        }
        if (j->identity_key || any_pose) {
            j->refs_work.data = j;
            j->pending++;
            if (uv_queue_work(j->r->loop, &j->refs_work, on_refs_work, on_refs_done) < 0)
                on_refs_done(&j->refs_work, UV_ECANCELED);
            json_decref(gen);
            op_free(op);
            job_check_end(j);
            return;
        }
        job_begin(j);
    }
    json_decref(gen);
    op_free(op);
    job_check_end(j);
}

static void on_started(store_t *st, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    j->pending--;
    gf_log_ctx ctx = job_log(j, "starting");
    if (job_gone(j)) {
    } else if (call->status == GF_ECONFLICT) {
        job_lose(j);
    } else if (call->status == GF_ECANCELED) {
        /* Postgres already finished it (canceled or expired while queued). */
        j->ending = 1;
        queue_end(j, QUEUE_CANCELED, "finished in postgres before it started");
    } else if (call->status == GF_ENOTFOUND) {
        GF_LOG(GF_LOG_ERROR, &ctx, "no such generation in postgres: dead-lettering");
        j->ending = 1;
        queue_end(j, QUEUE_FATAL, "no such generation in postgres");
    } else if (call->status < 0) {
        gf_log_err(GF_LOG_WARN, &ctx, &call->err);
        job_hand_back(j);
    } else if (job_parse(j) < 0) {
        GF_LOG(GF_LOG_ERROR, &ctx, "its parameters cannot be run: failing it");
        j->ending = 1;
        job_op_t *fin = op_new(j, NULL);
        store_call_finish(&fin->call, j->qj.gen_id, (long long)j->qj.token, "failed",
                          "{\"code\":\"internal\",\"message\":\"unreadable parameters\","
                          "\"retryable\":false}");
        op_exec(fin, on_finished);
    } else {
        job_op_t *info = op_new(j, NULL);
        store_call_resume(&info->call, j->qj.gen_id);
        op_exec(info, on_resume_info);
    }
    op_free(op);
    job_check_end(j);
}

void job_start(worker_runner_t *r, queue_job_t *qj)
{
    job_t *j = gf_xcalloc(1, sizeof(*j));
    j->r = r;
    j->qj = *qj;
    memset(qj, 0, sizeof(*qj)); /* the job owns the strings now */
    j->started_ns = uv_hrtime();
    j->next = r->jobs;
    if (r->jobs)
        r->jobs->prev = j;
    r->jobs = j;
    r->njobs++;
    job_op_t *op = op_new(j, NULL);
    store_call_start(&op->call, j->qj.gen_id, (long long)j->qj.token, provider_chain(r->provider));
    op_exec(op, on_started);
}
