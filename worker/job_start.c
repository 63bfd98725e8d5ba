/*
 * worker/job_start.c - a claimed generation's start: its start recorded in
 * Postgres (fenced by the lease's token), its parameters read, what an
 * earlier attempt left taken over (settled images, provider requests to
 * resume, its stale files dropped), and its referenced files read and pose
 * maps drawn on the thread pool. Ends with JOB_EV_READY (or the event that
 * ends the job instead); job.c runs it from there.
 */
#include "worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sets the job up from its parameters (parsed by job_start); GF_EINVAL when they cannot be run. */
static int job_parse(job_t *j)
{
    const img_params *p = &j->params;
    if (!j->params_ok)
        return GF_EINVAL;
    j->nposes = p->kind == IMG_KIND_POSE ? p->nposes : 1;
    j->images = p->images;
    gf_buf_t b = {0};
    gf_buf_puts(&b, p->prompt);
    if (p->style_def && p->style_def->prompt_suffix && p->style_def->prompt_suffix[0])
        gf_buf_printf(&b, ", %s", p->style_def->prompt_suffix);
    /* With reference images the prompt names them (presets' reference_prompts). */
    j->prompt = img_presets_reference_prompt(j->r->presets,
                                             p->identity_upload[0] || p->identity_generation[0],
                                             p->kind == IMG_KIND_POSE, b.p);
    gf_buf_dispose(&b);
    /* Pose maps are made on the thread pool at start (on_refs_work), one per pose. */
    j->pose_maps = gf_xcalloc((size_t)j->nposes, sizeof(img_buf));
    int64_t seed = p->seed < 0 ? 0 : p->seed;
    j->imgs = gf_xcalloc((size_t)j->images, sizeof(job_image_t));
    for (int k = 0; k < j->images; k++) {
        j->imgs[k].job = j;
        j->imgs[k].index = k;
        j->imgs[k].pose = k / p->count;
        j->imgs[k].seed = (seed + k) & 0xffffffff; /* API.md: image i uses seed + i */
    }
    return 0;
}

/* The preset a pose names, when this worker has it; NULL for an uploaded pose map. */
static const img_pose_preset *pose_preset(const job_t *j, int k)
{
    return j->params.kind == IMG_KIND_POSE && j->params.poses ? j->params.poses[k].def : NULL;
}

/*
 * Thread pool: one pose map per pose drawn from its preset (uploaded ones
 * were read from storage before). Touches only the job's pose maps, which
 * nothing on the loop reads until on_refs_done.
 */
static void on_refs_work(uv_work_t *w)
{
    job_t *j = w->data;
    for (int i = 0; i < j->nposes; i++) {
        gf_err_t err = {0};
        const img_pose_preset *preset = pose_preset(j, i);
        if (preset && j->pose_maps[i].len == 0)
            img_pose_render(preset->keypoints, j->params.width, j->params.height, &j->pose_maps[i],
                            &err);
    }
}

static void on_refs_done(uv_work_t *w, int status)
{
    job_t *j = w->data;
    if (j->state == JOB_STARTING) {
        if (status < 0 || (j->identity_key && j->identity.len == 0)) {
            gf_log_ctx ctx = job__log(j, "reading referenced files");
            GF_LOG(GF_LOG_WARN, &ctx, "a referenced file is missing: its images fail, released");
        }
        job__advance(j, JOB_EV_READY, NULL);
    }
    job_unref(j);
}

/* Takes what an earlier attempt left (settled images, provider requests, references). */
static int job_resume(job_t *j, const store_resume_result_t *res)
{
    for (size_t i = 0; i < res->n_settled; i++) {
        int k = res->settled[i];
        if (k >= 0 && k < j->images && j->imgs[k].state != IMAGE_SETTLED) {
            j->imgs[k].state = IMAGE_SETTLED;
            j->settled++;
        }
    }
    for (size_t i = 0; i < res->n_requests; i++) {
        int k = res->requests[i].index;
        if (k >= 0 && k < j->images)
            j->imgs[k].resume = gf_xstrdup(res->requests[i].token);
    }
    j->identity_key = res->identity_key ? gf_xstrdup(res->identity_key) : NULL;
    int refs = j->identity_key != NULL;
    for (size_t i = 0; i < res->n_pose_keys; i++) {
        int k = res->pose_keys[i].pose;
        if (k < 0 || k >= j->nposes)
            continue;
        if (j->pose_keys == NULL)
            j->pose_keys = gf_xcalloc((size_t)j->nposes, sizeof(char *));
        j->pose_keys[k] = gf_xstrdup(res->pose_keys[i].storage_key);
        refs = 1;
    }
    for (int k = 0; k < j->nposes; k++)
        refs |= pose_preset(j, k) != NULL;
    return refs;
}

/* Draws the preset pose maps on the thread pool; READY when done. */
static void refs_render(job_t *j)
{
    j->refs_work.data = j;
    if (uv_queue_work(j->r->loop, &j->refs_work, on_refs_work, on_refs_done) == 0) {
        j->pending++;
    } else {
        gf_log_ctx ctx = job__log(j, "reading referenced files");
        GF_LOG(GF_LOG_WARN, &ctx, "the thread pool refused the work: its images fail, released");
        job__advance(j, JOB_EV_READY, NULL);
    }
}

/* One referenced file read from storage into its buffer. */
typedef struct {
    job_t *job;
    img_buf *dst;
} ref_read_t;

static void on_ref_read(storage_t *st, const gf_err_t *err, storage_object_t *obj, void *data)
{
    (void)st;
    ref_read_t *rr = data;
    job_t *j = rr->job;
    if (err->code == 0) {
        rr->dst->data = storage_object_take(obj, &rr->dst->len);
    } else if (err->code != GF_ENOTFOUND && j->refs_err.code == 0) {
        j->refs_err = *err;
    }
    free(rr);
    if (--j->refs_reading == 0 && j->state == JOB_STARTING) {
        if (j->refs_err.code != 0) {
            /* Storage is down or refusing: another attempt may find it back. */
            gf_log_ctx ctx = job__log(j, "reading referenced files");
            gf_log_err(GF_LOG_WARN, &ctx, &j->refs_err);
            job__advance(j, JOB_EV_STORE_FAILED, NULL);
        } else {
            refs_render(j);
        }
    }
    job_unref(j);
}

static void ref_read(job_t *j, const char *key, img_buf *dst)
{
    ref_read_t *rr = gf_xcalloc(1, sizeof(*rr));
    rr->job = j;
    rr->dst = dst;
    /* Counted before the call: a sibling's callback must not see zero too early. */
    j->refs_reading++;
    j->pending++;
    if (storage_get(j->r->storage, key, on_ref_read, rr) < 0) {
        /* A key storage refuses is no file: the images that need it fail. */
        j->refs_reading--;
        j->pending--;
        free(rr);
    }
}

/* Reads the identity and the uploaded pose maps from storage, then draws the presets. */
static void refs_load(job_t *j)
{
    j->refs_reading = 1; /* held until every read is started */
    j->pending++;
    if (j->identity_key)
        ref_read(j, j->identity_key, &j->identity);
    for (int i = 0; j->pose_keys && i < j->nposes; i++)
        if (j->pose_keys[i] && pose_preset(j, i) == NULL)
            ref_read(j, j->pose_keys[i], &j->pose_maps[i]);
    j->refs_reading--;
    j->pending--;
    if (j->refs_reading == 0)
        refs_render(j);
}

static void on_stale_dropped(storage_t *st, const gf_err_t *err, void *data)
{
    (void)st;
    (void)data;
    (void)err; /* not there (the usual case), or storage is down: nothing more to do */
}

/* Earlier attempts looked at when a takeover drops their files (bounded work per start). */
#define JOB_DROP_ATTEMPTS 16

/*
 * A takeover (token > 1) removes what earlier attempts may have written for
 * the images not settled yet: once this attempt's start is recorded, the
 * fence refuses their outputs, so their files can never be served (a worker
 * killed between its puts and its record left them). Their names are known:
 * each attempt's own (img_storage_attempt_key) for the variants the
 * parameters make (img_variant_spec).
 */
static void drop_stale_attempts(job_t *j)
{
    if (j->qj.token <= 1)
        return;
    uint64_t from = j->qj.token > JOB_DROP_ATTEMPTS ? j->qj.token - JOB_DROP_ATTEMPTS : 1;
    const img_export_preset *const *ex = j->params.export_defs;
    size_t nex = (size_t)j->params.n_export_defs;
    for (int k = 0; k < j->images; k++) {
        if (j->imgs[k].state == IMAGE_SETTLED)
            continue;
        for (uint64_t a = from; a < j->qj.token; a++) {
            const char *name;
            img_format fmt;
            for (size_t v = 0; img_variant_spec(ex, nex, v, &name, &fmt) == 0; v++) {
                char key[IMG_KEY_MAX];
                if (img_storage_attempt_key(j->qj.user_id, j->qj.gen_id, k, name, fmt, a, key,
                                            NULL) == 0)
                    (void)storage_delete(j->r->storage, key, on_stale_dropped, NULL);
            }
        }
    }
}

/* Takes what an earlier attempt left, then reads and draws the references; READY after. */
static void job_resumed(job_t *j, const store_resume_result_t *res)
{
    int refs = job_resume(j, res);
    drop_stale_attempts(j);
    if (refs)
        refs_load(j);
    else
        job__advance(j, JOB_EV_READY, NULL);
}

/* A worker that takes over skips what an earlier attempt settled. */
static void on_resume_info(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    if (j->state != JOB_STARTING) {
    } else if (err->code < 0) {
        job__advance(j, JOB_EV_STORE_FAILED, NULL);
    } else {
        job_resumed(j, &call->res.resume);
    }
    job__op_free(op);
    job_unref(j);
}

/* Whether the parameters name a stored file (an identity, an uploaded pose map):
 * only farm_worker_resume knows its storage key. */
static int job_names_stored_files(const job_t *j)
{
    const img_params *p = &j->params;
    if (p->identity_upload[0] || p->identity_generation[0])
        return 1;
    for (int k = 0; p->kind == IMG_KIND_POSE && p->poses && k < p->nposes; k++)
        if (p->poses[k].upload_id[0])
            return 1;
    return 0;
}

static void on_started(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    gf_log_ctx ctx = job__log(j, "starting");
    if (j->state != JOB_STARTING) {
    } else if (err->code == GF_ECONFLICT) {
        job__advance(j, JOB_EV_LEASE_LOST, NULL);
    } else if (err->code == GF_ECANCELED) {
        /* Postgres finished it already (canceled or expired while queued, or an earlier
         * attempt finished it and its close did not reach the queue), or this start did
         * (its cancel was asked, or it was never started before its deadline): the
         * queue ends it with the status Postgres recorded, never another word. */
        int st = gf_gen_status_parse(call->res.start.status);
        GF_LOG(GF_LOG_INFO, &ctx, "already %s in postgres: closing it in the queue",
               call->res.start.status);
        job__advance(j, JOB_EV_CLOSE,
                     &(job_event_arg_t){.outcome = st == GF_GEN_CANCELED || st == GF_GEN_EXPIRED
                                                       ? QUEUE_CANCELED
                                                       : QUEUE_DONE,
                                        .detail = "{}"});
    } else if (err->code == GF_ENOTFOUND) {
        GF_LOG(GF_LOG_ERROR, &ctx, "no such generation in postgres: dead-lettering");
        job__advance(
            j, JOB_EV_CLOSE,
            &(job_event_arg_t){.outcome = QUEUE_FATAL, .detail = "no such generation in postgres"});
    } else if (err->code < 0) {
        gf_log_err(GF_LOG_WARN, &ctx, err);
        job__advance(j, JOB_EV_STORE_FAILED, NULL);
    } else if (job_parse(j) < 0) {
        GF_LOG(GF_LOG_ERROR, &ctx, "its parameters cannot be run: failing it");
        job__advance(j, JOB_EV_UNRUNNABLE, NULL);
    } else if (call->res.start.attempts == 1 && !job_names_stored_files(j)) {
        /* The first attempt, naming no stored file: no earlier attempt settled an
         * image or persisted a provider request, and there is no key to look up,
         * so farm_worker_resume would answer nothing (a round trip saved). */
        job_resumed(j, &(store_resume_result_t){0});
    } else {
        job_op_t *info = job__op_new(j, NULL);
        store_call_resume(&info->call, j->qj.gen_id);
        job__op_exec(info, on_resume_info);
    }
    job__op_free(op);
    job_unref(j);
}

void job_start(worker_runner_t *r, queue_job_t *qj)
{
    job_t *j = gf_xcalloc(1, sizeof(*j));
    j->r = r;
    j->qj = *qj;
    memset(qj, 0, sizeof(*qj)); /* the job owns the strings now */
    j->state = JOB_STARTING;
    j->started_ns = uv_hrtime();
    j->next = r->jobs;
    if (r->jobs)
        r->jobs->prev = j;
    r->jobs = j;
    r->njobs++;
    j->stage = -1;
    job_op_t *op = job__op_new(j, NULL);
    /* The provider of record: the one the request named (the only one it
     * will use), else the chain it may use, in order. (Unreadable parameters
     * are refused once the start is recorded: job_parse.) */
    const char *payload = j->qj.payload ? j->qj.payload : "";
    img_params_opts o = {.mode = IMG_PARAMS_PAYLOAD, .presets = r->presets};
    img_params_err pe = {0};
    j->params_ok = img_params_parse(payload, strlen(payload), &o, &j->params, &pe) == 0;
    if (!j->params_ok) { /* e.g. a preset this worker's FARM_PRESETS_DIR does not have */
        gf_log_ctx ctx = job__log(j, "reading its parameters");
        GF_LOG(GF_LOG_ERROR, &ctx, "%s: %s", pe.field, pe.message);
    }
    /* Queue wait: to the first start only (a retry's wait is its backoff). */
    double age = job__age_s(j);
    if (r->m_queue_wait && j->qj.attempt == 1 && age >= 0)
        gf_metric_observe(gf_metric_with(r->m_queue_wait, job__kind(j), NULL, NULL), age);
    const char *named = j->params_ok ? j->params.provider : NULL;
    store_call_start(&op->call, j->qj.gen_id, (long long)j->qj.token,
                     named && strcmp(named, "auto") != 0 ? named : provider_chain(r->provider),
                     r->worker_id);
    job__op_exec(op, on_started);
}
