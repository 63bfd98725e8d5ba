/*
 * worker/job_image.c - one image of a generation: the provider call
 * (resumed when an earlier attempt persisted its request), post-processing
 * on the thread pool, its outputs put in storage, then recorded with its
 * capture in one transaction, or its release when it fails for good (an
 * image whose outputs could not all be stored is released).
 */
#include "worker_int.h"
#include "webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_file_dropped(storage_t *st, const gf_err_t *err, void *data)
{
    (void)st;
    (void)data;
    if (err->code != 0 && err->code != GF_ENOTFOUND && err->code != GF_ECANCELED) {
        gf_log_ctx ctx = {.component = "worker", .action = "dropping a stale attempt's file"};
        gf_log_err(GF_LOG_WARN, &ctx, err);
    }
}

/*
 * This attempt's files of the image will never be outputs (its lease was
 * lost, or Postgres refused them: stale, or the image released): removed, so
 * nothing unreferenced stays in storage. Files whose record may have landed
 * (a timeout) are kept.
 */
static void drop_files(job_image_t *img)
{
    job_t *j = img->job;
    for (size_t i = 0; img->keys && i < img->nkeys; i++)
        (void)storage_delete(j->r->storage, img->keys[i], on_file_dropped, NULL);
    if (img->nkeys) {
        gf_log_ctx ctx = job__log(j, "dropping a stale attempt's files");
        GF_LOG(GF_LOG_INFO, &ctx, "image %d: %zu files of attempt %llu removed", img->index,
               img->nkeys, (unsigned long long)j->qj.token);
    }
    GF_FREE(img->keys);
    img->nkeys = 0;
}

static void image_settled(job_image_t *img, json_t *event)
{
    job_t *j = img->job;
    img->state = IMAGE_SETTLED;
    j->running--;
    j->settled++;
    /* The progress first: the queue keeps the top level's for GET, read from the front
     * (queue/lua/event.lua), before the outputs' nested objects. */
    json_t *ordered = json_pack("{s:i}", "progress", job__progress(j));
    json_object_update(ordered, event);
    json_decref(event);
    json_object_set_new(ordered, "index", json_integer(img->index));
    json_object_set_new(ordered, "pose", json_integer(img->pose));
    json_object_set_new(ordered, "status", json_string(gf_gen_status_name(GF_GEN_RUNNING)));
    job__event(j, gf_event_name(GF_EV_IMAGE), ordered);
    job__advance(j, JOB_EV_PUMP, NULL);
}

/* The image's outputs and capture (farm_image_done, with the generation's finish when
 * op->finishes), or its release with op->error_json. */
static void on_image_recorded(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    job_image_t *img = op->img;
    int captured = op->error_json == NULL;
    if (op->finishes)
        j->finish_sent = 0;
    if (op->webhook_reserved) { /* the terminal webhook it leased goes out at once */
        op->webhook_reserved = 0;
        webhook_deliverer_adopt(j->r->webhooks, err->code == 0 ? &call->res.image.webhook : NULL);
    }
    if (err->code == 0 && call->res.image.applied && j->r->m_images)
        gf_metric_inc(
            gf_metric_with(j->r->m_images, captured ? "captured" : "released", NULL, NULL));
    if (err->code == GF_ECONFLICT && captured)
        drop_files(img); /* never recorded: a newer attempt, or the image was released */
    else if (err->code == 0)
        GF_FREE(img->keys);
    if (!job_is_live(j)) {
    } else if (err->code == GF_ECONFLICT) {
        job__advance(j, JOB_EV_LEASE_LOST, NULL);
    } else if (err->code < 0) {
        job__advance(j, JOB_EV_STORE_FAILED, NULL);
    } else if (captured) {
        job__stage_done(img, GF_STAGE_STORING);
        img->t_recorded = uv_hrtime();
        j->delivered++;
        if (op->finishes) {
            snprintf(j->finished_status, sizeof(j->finished_status), "%s", call->res.image.status);
            j->finished_applied = call->res.image.finished;
        }
        json_t *outputs = json_loads(img->outputs_json, 0, NULL);
        image_settled(img, json_pack("{s:o}", "outputs", outputs ? outputs : json_array()));
    } else {
        free(j->last_error);
        j->last_error = gf_xstrdup(op->error_json);
        json_t *e = json_loads(op->error_json, 0, NULL);
        image_settled(img, json_pack("{s:o}", "error", e ? e : json_null()));
    }
    job__op_free(op);
    job_unref(j);
}

/* Releases an image for good: its error is recorded and its share given back. */
static void image_fail(job_image_t *img, const char *code, const char *msg, int retryable)
{
    job_t *j = img->job;
    json_t *e = json_pack("{s:s, s:s, s:b}", "code", code, "message", msg, "retryable", retryable);
    img->state = IMAGE_STORING;
    job_op_t *op = job__op_new(j, img);
    op->error_json = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    store_call_image(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index, 0,
                     op->error_json);
    job__op_exec(op, on_image_recorded);
}

/* Thread pool: variants, their keys and the outputs' JSON. Touches only `img`'s own data. */
static void post_process(job_image_t *img)
{
    job_t *j = img->job;
    img_post_opts o = {.expect_width = j->params.width,
                       .expect_height = j->params.height,
                       .exports = j->params.export_defs,
                       .n_exports = (size_t)j->params.n_export_defs};
    img_variants *v = &img->vars;
    if (img_variants_make(img->bytes, img->len, &o, v, &img->work_err) < 0)
        return;
    img->keys = gf_xcalloc(v->count ? v->count : 1, sizeof(*img->keys));
    img->nkeys = v->count;
    json_t *outputs = json_array();
    for (size_t i = 0; i < v->count; i++) {
        const img_variant *var = &v->items[i];
        char *key = img->keys[i];
        /* Names of this attempt's own: a stale attempt never overwrites what is served. */
        if (img_storage_attempt_key(j->qj.user_id, j->qj.gen_id, img->index, var->name, var->format,
                                    j->qj.token, key, &img->work_err) < 0)
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
}

static void on_work(uv_work_t *w)
{
    job_image_t *img = w->data;
    img->t_pool_begun = uv_hrtime();
    post_process(img);
    img->t_pool_ended = uv_hrtime();
}

/* What the claim's controller learns from an image post-processed (worker/claim.h). */
static void post_measured(job_image_t *img)
{
    job_t *j = img->job;
    if (img->t_pool_begun == 0 || img->t_pool_ended < img->t_pool_begun ||
        img->t_pool_begun < img->t_pool_queued)
        return;
    uint64_t wait = img->t_pool_begun - img->t_pool_queued;
    j->pool_wait_ns += wait;
    j->post_images++;
    claim_ctl_post(&j->r->ctl, (double)(img->t_pool_ended - img->t_pool_begun) / 1e9,
                   img->t_pool_ended);
}

/* Every output is stored: record them with the capture; else release the image. */
static void outputs_stored(job_image_t *img)
{
    job_t *j = img->job;
    img_variants_dispose(&img->vars);
    if (!job_is_live(j)) {
        drop_files(img); /* the lease went while they were written */
        return;
    }
    if (img->put_err.code != 0) {
        drop_files(img);
        /* Never charged for what cannot be fetched: the outputs are not recorded. */
        gf_log_ctx ctx = job__log(j, "storing outputs");
        gf_log_err(GF_LOG_WARN, &ctx, &img->put_err);
        if (img->put_err.code == GF_ETOOBIG) /* the same image is as large next time */
            image_fail(img, "internal",
                       "an output is larger than storage takes (FARM_STORAGE_MAX_OBJECT_BYTES)", 0);
        else
            image_fail(img, "internal", "the outputs could not be stored", 1);
        return;
    }
    img->state = IMAGE_STORING;
    job_op_t *op = job__op_new(j, img);
    /* The last image to settle of a generation that runs on (not canceling): its record
     * and the generation's finish ("auto", as FINISHING would send it next) are one
     * call, one round trip and one transaction instead of two. In it this worker also
     * leases the terminal webhook for its own deliverer, when that has room: sent as
     * soon as the call answers, not at another worker's next poll. */
    op->finishes = j->state == JOB_RUNNING && j->settled == j->images - 1;
    j->finish_sent = op->finishes;
    int lease_s = op->finishes ? webhook_deliverer_reserve(j->r->webhooks) : 0;
    op->webhook_reserved = lease_s > 0;
    if (op->finishes)
        store_call_image_done_finish(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index,
                                     img->outputs_json, lease_s, (int)j->r->cfg->webhook_per_host);
    else
        store_call_image_done(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index,
                              img->outputs_json);
    job__op_exec(op, on_image_recorded);
}

static void on_outputs_stored(storage_t *st, const gf_err_t *err, void *data)
{
    (void)st;
    job_image_t *img = data;
    job_t *j = img->job;
    if (err->code != 0)
        img->put_err = *err;
    outputs_stored(img);
    job_unref(j);
}

/* Puts every variant in storage in one call (one directory sync for them all);
 * outputs_stored() once they are. */
static void outputs_put(job_image_t *img)
{
    job_t *j = img->job;
    size_t n = img->vars.count;
    if (n == 0) {
        outputs_stored(img);
        return;
    }
    storage_put_t *puts = gf_xcalloc(n, sizeof(*puts));
    for (size_t i = 0; i < n; i++) {
        const img_variant *var = &img->vars.items[i];
        puts[i] = (storage_put_t){.key = img->keys[i],
                                  .data = var->data.data,
                                  .len = var->data.len,
                                  .content_type = img_format_mime(var->format)};
    }
    int rc = storage_put_many(j->r->storage, puts, n, on_outputs_stored, img);
    free(puts);
    if (rc == 0) {
        j->pending++;
        return;
    }
    gf_err_set(&img->put_err, rc, "storage", "storage refused the puts of image %d", img->index);
    outputs_stored(img);
}

static void post_pump(worker_runner_t *r);

static void on_work_done(uv_work_t *w, int status)
{
    job_image_t *img = w->data;
    job_t *j = img->job;
    worker_runner_t *r = j->r;
    r->posting--;
    GF_FREE(img->bytes);
    job__stage_done(img, GF_STAGE_POSTPROCESSING);
    if (status == 0)
        post_measured(img);
    if (!job_is_live(j)) {
        img_variants_dispose(&img->vars); /* nothing written yet: nothing to drop */
        GF_FREE(img->keys);
        img->nkeys = 0;
    } else if (status < 0 || img->work_err.code != 0 || img->outputs_json == NULL) {
        img_variants_dispose(&img->vars);
        gf_log_ctx ctx = job__log(j, "post-processing");
        gf_log_err(GF_LOG_WARN, &ctx, &img->work_err);
        int bad = img_err_reason(&img->work_err) == IMG_REASON_INVALID_OUTPUT;
        image_fail(img, bad ? "invalid_output" : "internal",
                   bad ? "the provider's image is not usable" : "post-processing failed", 0);
    } else {
        job__stage(j, GF_STAGE_STORING);
        outputs_put(img);
    }
    job_unref(j); /* may free the job: `r` outlives it */
    post_pump(r);
}

/* Starts waiting images on the pool while fewer than ctl.pool post-process. */
static void post_pump(worker_runner_t *r)
{
    while (r->posting < r->ctl.pool && r->post_head) {
        job_image_t *img = r->post_head;
        r->post_head = img->post_next;
        if (r->post_head == NULL)
            r->post_tail = NULL;
        img->post_next = NULL;
        img->work.data = img;
        r->posting++;
        if (uv_queue_work(r->loop, &img->work, on_work, on_work_done) < 0)
            on_work_done(&img->work, UV_ECANCELED);
    }
}

/* Queues the image's post-processing (its job holds a count for it until on_work_done). */
static void post_enqueue(job_image_t *img)
{
    worker_runner_t *r = img->job->r;
    img->t_pool_queued = uv_hrtime();
    img->t_pool_begun = img->t_pool_ended = 0;
    img->post_next = NULL;
    if (r->post_tail)
        r->post_tail->post_next = img;
    else
        r->post_head = img;
    r->post_tail = img;
    post_pump(r);
}

static void on_request_recorded(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    (void)call;
    job_op_t *op = data;
    job_t *j = op->job;
    /* Only the record of the request in flight now makes it resumable: one an earlier
     * attempt, or a provider the call has failed over from, accepted says nothing of it. */
    if (err->code == GF_OK && op->img && op->request_seq == op->img->request_seq)
        op->img->request_recorded = 1;
    if (err->code == GF_ECONFLICT)
        job__advance(j, JOB_EV_LEASE_LOST, NULL);
    job__op_free(op);
    job_unref(j);
}

static void on_accepted(provider_call_t *call, const char *provider, const char *request_id,
                        const char *resume, void *data)
{
    (void)call;
    (void)request_id;
    job_image_t *img = data;
    job_t *j = img->job;
    if (!job_is_live(j) || resume == NULL)
        return;
    /* Persist before waiting on it, so a worker that takes over resumes, not resubmits. */
    char token[600];
    snprintf(token, sizeof(token), "%s:%s", provider, resume);
    /* A retry after a failure the job outlives (its polls failing) resumes it. */
    free(img->resume);
    img->resume = gf_xstrdup(token);
    img->request_recorded = 0; /* a new request: not in Postgres until this record is */
    job_op_t *op = job__op_new(j, img);
    op->request_seq = ++img->request_seq;
    store_call_provider_request(&op->call, j->qj.gen_id, (long long)j->qj.token, img->index, token);
    job__op_exec(op, on_request_recorded);
}

/* What the end of an image's provider call means for it (the caller holds the job). */
static void provider_done(job_image_t *img, const gf_err_t *err, const provider_result_t *res)
{
    job_t *j = img->job;
    if (j->r->m_provider) {
        const provider_image_t *ok = res->image;
        const provider_error_t *bad = res->error;
        const char *who = ok ? ok->provider : bad && bad->provider[0] ? bad->provider : "none";
        const char *outcome = ok ? "ok" : bad ? provider_error_code_name(bad->code) : "error";
        gf_metric_observe(gf_metric_with(j->r->m_provider, who, outcome, NULL),
                          (double)(uv_hrtime() - img->t_stage) / 1e9);
        gf_metric_inc(
            gf_metric_with(j->r->m_provider_calls, who, img->resumed ? "true" : "false", NULL));
    }
    job__stage_done(img, GF_STAGE_GENERATING);
    img->t_provider_done = uv_hrtime();
    if (!job_is_live(j))
        return;
    if (err->code == GF_OK) {
        const provider_image_t *im = res->image;
        img->bytes = gf_xmalloc(im->len);
        memcpy(img->bytes, im->bytes, im->len);
        img->len = im->len;
        img->state = IMAGE_PROCESSING;
        job__stage(j, GF_STAGE_POSTPROCESSING);
        j->pending++;
        post_enqueue(img);
        return;
    }
    if (j->state == JOB_CANCELING) {
        img->state = IMAGE_PENDING; /* released by the canceled finish */
        j->running--;
        job__advance(j, JOB_EV_PUMP, NULL);
        return;
    }
    const provider_error_t *e = res->error;
    gf_log_ctx ctx = job__log(j, "calling provider");
    ctx.provider = e ? e->provider : NULL;
    ctx.attempt = img->attempts;
    if (e)
        gf_log_err(GF_LOG_WARN, &ctx, &e->err);
    /* providers.md: an output moderation is retried once with a new seed, and a
     * lost job resubmitted once; other retryable faults while attempts last. */
    unsigned once = e && e->fault == PROVIDER_F_MODERATION_OUTPUT ? 1u
                    : e && e->fault == PROVIDER_F_LOST_JOB        ? 2u
                                                                  : 0u;
    if (e && e->retryable && img->attempts < j->r->cfg->worker_image_attempts &&
        !(img->retried_once & once)) {
        img->retried_once |= once;
        if (e->new_seed)
            img->seed = (img->seed + 7919) & 0xffffffff;
        img->resume_next = e->resumable; /* the provider still holds the job: collect it */
        j->running--;
        job__image_start(img);
        return;
    }
    const char *code = e ? provider_error_code_name(e->code) : "provider_error";
    image_fail(img, code,
               e && e->code == PROVIDER_E_CONTENT_REJECTED
                   ? "the provider refused this content"
                   : "the provider could not make this image",
               e ? e->retryable : 0);
}

static void on_provider_done(provider_call_t *call, const gf_err_t *err,
                             const provider_result_t *res, void *data)
{
    (void)call;
    job_image_t *img = data;
    job_t *j = img->job;
    img->call = NULL;
    provider_done(img, err, res);
    job_unref(j);
}

void job__image_start(job_image_t *img)
{
    job_t *j = img->job;
    img->attempts++;
    img->state = IMAGE_CALLING;
    img->t_stage = uv_hrtime();
    if (img->t_called == 0)
        img->t_called = img->t_stage;
    j->running++;
    provider_req_t req = {.prompt = j->prompt,
                          .width = j->params.width,
                          .height = j->params.height,
                          .seed = img->seed,
                          .log_id = j->qj.gen_id};
    const img_params *p = &j->params;
    req.negative_prompt = p->negative_prompt;
    req.only_provider = p->provider;
    req.steps = p->steps;
    req.guidance = p->guidance; /* -1: not given */
    /* The pose map was drawn (or read) on the thread pool when the job started. */
    if (j->pose_maps && j->pose_maps[img->pose].len) {
        req.pose_image = j->pose_maps[img->pose].data;
        req.pose_len = j->pose_maps[img->pose].len;
    }
    if (j->identity.len) {
        req.identity_image = j->identity.data;
        req.identity_len = j->identity.len;
    }
    /* An image asked for with a person or a pose map that cannot be read is not
     * generated without it (and paid for): it fails, and its credits go back. */
    const char *lost = j->identity_key && j->identity.len == 0 ? "the identity image"
                       : j->pose_keys && j->pose_keys[img->pose] && req.pose_image == NULL
                           ? "the uploaded pose map"
                           : NULL;
    if (lost) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s could not be read from storage; upload it again", lost);
        image_fail(img, "internal", msg, 0);
        return;
    }
    /* A request an earlier attempt submitted is resumed, not paid for twice. */
    char resume_provider[16] = "";
    int resume_next = img->resume_next;
    img->resume_next = 0;
    img->resumed = 0;
    img->request_recorded = 0;
    img->request_seq++; /* a record still in flight for the last attempt is not this one's */
    if (img->resume && (img->attempts == 1 || resume_next)) {
        const char *colon = strchr(img->resume, ':');
        if (colon && (size_t)(colon - img->resume) < sizeof(resume_provider)) {
            snprintf(resume_provider, sizeof(resume_provider), "%.*s", (int)(colon - img->resume),
                     img->resume);
            req.resume = colon + 1;
            req.resume_provider = resume_provider;
            img->resumed = 1;
            gf_log_ctx ctx = job__log(j, "resuming a provider request");
            GF_LOG(GF_LOG_INFO, &ctx, "image %d: resuming the %s request of an earlier attempt",
                   img->index, resume_provider);
        }
    }
    provider_cbs_t cbs = {.done = on_provider_done, .accepted = on_accepted, .data = img};
    gf_err_t err = {0};
    int rc = provider_submit(j->r->provider, &req, &cbs, &img->call, &err);
    if (rc < 0) {
        image_fail(img, "internal", "the provider call could not start", 0);
        return;
    }
    j->pending++;
    job__stage(j, GF_STAGE_GENERATING);
}
