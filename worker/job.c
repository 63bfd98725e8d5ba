/*
 * worker/job.c - one generation through a worker: its state machine, the
 * pump that runs its images (job_image.c), and its end: finish, cancel, lost
 * lease, hand-back. Its start (and what a takeover resumes) is job_start.c.
 *
 * The job's course is one state machine (worker_int.h): every event goes
 * through job__advance(). Every write carries the lease's fencing token, so
 * a worker that lost its lease is refused by Postgres and by the queue; when
 * that happens the job only aborts (JOB_LOST) and writes nothing more. An image is charged in the
 * same transaction that records its outputs (farm_image_done), and released
 * when it fails for good or the generation ends without it.
 */
#include "worker_int.h"
#include "webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gf_log_ctx job__log(const job_t *j, const char *action)
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
    img_params_dispose(&j->params);
    free(j->prompt);
    free(j->last_error);
    free(j->queue_detail);
    free(j->identity_key);
    img_buf_dispose(&j->identity);
    for (int i = 0; i < j->nposes; i++) {
        if (j->pose_keys)
            free(j->pose_keys[i]);
        if (j->pose_maps)
            img_buf_dispose(&j->pose_maps[i]);
    }
    free(j->pose_keys);
    free(j->pose_maps);
    for (int i = 0; j->imgs && i < j->images; i++) {
        free(j->imgs[i].bytes);
        free(j->imgs[i].outputs_json);
        img_variants_dispose(&j->imgs[i].vars);
        free(j->imgs[i].keys);
        free(j->imgs[i].resume);
    }
    free(j->imgs);
    free(j);
}

int job_is_live(const job_t *j)
{
    return j->state < JOB_HANDING_BACK;
}

/* Frees the job once it has ended and nothing of it is in flight. */
void job__check_end(job_t *j)
{
    if (!job__state_is_ended(j->state) || j->pending > 0)
        return;
    worker_runner__job_gone(j->r, j);
    job_free(j);
}

void job_unref(job_t *j)
{
    j->pending--;
    job__check_end(j);
}

/* Ends the image's current stage in the stage histogram and starts the next. */
void job__stage_done(job_image_t *img, gf_stage stage)
{
    uint64_t now = uv_hrtime();
    worker_runner_t *r = img->job->r;
    if (r->m_stage && img->t_stage)
        gf_metric_observe(gf_metric_with(r->m_stage, gf_stage_name(stage), NULL, NULL),
                          (double)(now - img->t_stage) / 1e9);
    img->t_stage = now;
}

job_op_t *job__op_new(job_t *j, job_image_t *img)
{
    job_op_t *op = gf_xcalloc(1, sizeof(*op));
    op->job = j;
    op->img = img;
    j->pending++;
    return op;
}

/*
 * Runs `op`'s call. The store refuses a call only while it closes, and it is
 * closed after the jobs have ended; should it happen, the job is handed back
 * here (its callback never runs) and the op is freed.
 */
void job__op_exec(job_op_t *op, store_call_cb cb)
{
    job_t *j = op->job;
    if (store_exec(j->r->store, &op->call, cb, op) == 0)
        return;
    gf_log_ctx ctx = job__log(j, "calling postgres");
    gf_log_err(GF_LOG_WARN, &ctx, &op->call.err);
    job__op_free(op);
    job__advance(j, JOB_EV_STORE_FAILED, NULL);
    job_unref(j);
}

void job__op_free(job_op_t *op)
{
    if (op->webhook_reserved) /* its call never answered: the reservation goes back */
        webhook_deliverer_adopt(op->job->r->webhooks, NULL);
    store_call_dispose(&op->call);
    free(op->error_json);
    free(op);
}

static void on_event_appended(queue_t *q, const gf_err_t *err, const queue_result_t *res,
                              void *data)
{
    (void)q;
    (void)res;
    (void)data;
    (void)err; /* events are best effort: the generation's record is in Postgres */
}

void job__event(job_t *j, const char *type, json_t *data)
{
    json_object_set_new(data, "id", json_string(j->qj.gen_id));
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    /* Best effort, as above: a refused append is dropped like a failed one. */
    (void)queue_event_append(j->r->queue, j->qj.gen_id, j->qj.token, type, text, on_event_appended,
                             NULL);
    free(text);
}

/* --- the state machine ------------------------------------------------------------ */

/*
 * The queue's answer to a close or a hand-back. A refusal (the lease went to
 * another worker, or the job is gone) ends the job here; so does success. A
 * queue that did not answer (Redis down, a timeout) is asked again on the
 * runner's next tick, until it lands: a close that never reached Redis would
 * leave the job to expire, and its next holder to end it again.
 */
static void queue_answered(job_t *j, int status)
{
    if (status < 0 && status != GF_ECONFLICT && status != GF_ENOTFOUND && !j->r->drain_over) {
        if (!j->queue_retry) {
            gf_log_ctx ctx = job__log(j, "finishing in the queue");
            GF_LOG(GF_LOG_WARN, &ctx, "queue finish failed (%s): sending it again",
                   gf_status_name(status));
        }
        j->queue_retry = 1;
        return;
    }
    if (status < 0 && status != GF_ECONFLICT) {
        gf_log_ctx ctx = job__log(j, "finishing in the queue");
        GF_LOG(GF_LOG_WARN, &ctx, "queue finish failed (%s): the lease will expire",
               gf_status_name(status));
    }
    j->queue_retry = 0;
    job__advance(j, JOB_EV_QUEUE_ANSWERED, NULL);
}

static void on_queue_finished(queue_t *q, const gf_err_t *err, const queue_result_t *res,
                              void *data)
{
    (void)q;
    (void)res;
    job_t *j = data;
    queue_answered(j, err->code);
    job_unref(j);
}

static void queue_send_end(job_t *j)
{
    int rc = queue_finish(j->r->queue, j->qj.gen_id, j->qj.token, j->queue_outcome, j->queue_detail,
                          on_queue_finished, j);
    if (rc == 0)
        j->pending++;
    else
        queue_answered(j, rc);
}

/* CLOSING and HANDING_BACK: tells the queue how the lease ends. */
static void queue_end(job_t *j, queue_outcome_t outcome, const char *detail)
{
    j->queue_outcome = outcome;
    free(j->queue_detail);
    j->queue_detail = gf_xstrdup(detail);
    queue_send_end(j);
}

void job_queue_retry(job_t *j)
{
    if (!j->queue_retry || (j->state != JOB_CLOSING && j->state != JOB_HANDING_BACK))
        return;
    j->queue_retry = 0;
    j->pending++; /* held: an answer at once may end the job */
    queue_send_end(j);
    job_unref(j);
}

static void on_finished(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    job_op_t *op = data;
    job_t *j = op->job;
    if (err->code == GF_ECONFLICT)
        job__advance(j, JOB_EV_LEASE_LOST, NULL);
    else if (err->code < 0)
        job__advance(j, JOB_EV_STORE_FAILED, NULL);
    else
        job__advance(j, JOB_EV_FINISHED,
                     &(job_event_arg_t){.status = call->res.finish.status,
                                        .applied = call->res.finish.applied});
    job__op_free(op);
    job_unref(j);
}

/* FINISHING: records the generation's end in Postgres. */
static void job_finish(job_t *j, const char *status, const char *error)
{
    job_op_t *op = job__op_new(j, NULL);
    store_call_finish(&op->call, j->qj.gen_id, (long long)j->qj.token, status, error);
    job__op_exec(op, on_finished);
}

static void cancel_calls(job_t *j)
{
    for (int i = 0; j->imgs && i < j->images; i++)
        if (j->imgs[i].call)
            provider_cancel(j->imgs[i].call);
}

/*
 * The job goes on elsewhere (handed back, or its lease taken): a request
 * recorded in Postgres, or resumed from it, is left running at the provider
 * for the next holder to resume (a cancel there would make it pay again);
 * one not recorded is canceled, since nobody can ever collect it.
 */
static void leave_calls(job_t *j)
{
    for (int i = 0; j->imgs && i < j->images; i++) {
        job_image_t *img = &j->imgs[i];
        if (img->call == NULL)
            continue;
        if (img->request_recorded || img->resumed)
            provider_abandon(img->call);
        else
            provider_cancel(img->call);
    }
}

/* RUNNING: starts pending images, FARM_WORKER_IMAGES_PARALLEL at a time. */
static void start_images(job_t *j)
{
    /* A start can end the job at once (image_fail -> the store refuses: a hand-back):
     * then no further image may start. */
    for (int i = 0; i < j->images && j->running < j->r->cfg->worker_images_parallel; i++) {
        if (j->state != JOB_RUNNING)
            return;
        if (j->imgs[i].state == IMAGE_PENDING)
            job__image_start(&j->imgs[i]);
    }
}

/* The kind label of the job's metrics: bounded to the kinds, "unknown" if unreadable. */
const char *job__kind(const job_t *j)
{
    if (!j->params_ok)
        return "unknown";
    return j->params.kind == IMG_KIND_POSE ? "pose" : "avatar";
}

/* Seconds since the job was enqueued (its creation time, unix ms), or -1 when unknown. */
double job__age_s(const job_t *j)
{
    if (j->qj.created_ms <= 0)
        return -1;
    int64_t d = gf_clock_unix_ms() - j->qj.created_ms;
    return d < 0 ? 0 : (double)d / 1000.0; /* another host's clock may be ahead */
}

/* Whether `c` reads as an error code (API.md's are short snake_case words): the label
 * stays bounded even if an error JSON were to carry something else. */
static int code_ok(const char *c)
{
    size_t n = 0;
    for (; c[n]; n++)
        if (n >= 31 || !((c[n] >= 'a' && c[n] <= 'z') || c[n] == '_'))
            return 0;
    return n > 0;
}

/* Counts a finish in `status` by kind, status and code: the error's code (the worker's
 * own error JSON, API.md's vocabulary) when it failed or partly failed, "none"
 * otherwise; and observes the generation's age. */
static void job_count_finish(job_t *j, const char *status)
{
    worker_runner_t *r = j->r;
    if (r->m_gen_outcomes == NULL)
        return;
    int st = gf_gen_status_parse(status);
    char code[32] = "none";
    if (!j->params_ok) {
        snprintf(code, sizeof(code), "internal");
    } else if ((st == GF_GEN_FAILED || st == GF_GEN_PARTIAL) && j->last_error != NULL) {
        json_t *e = json_loads(j->last_error, 0, NULL);
        const char *c = json_string_value(json_object_get(e, "code"));
        snprintf(code, sizeof(code), "%s", c && code_ok(c) ? c : "unknown");
        json_decref(e);
    } else if (st == GF_GEN_FAILED || st == GF_GEN_PARTIAL) {
        snprintf(code, sizeof(code), "unknown");
    }
    gf_metric_inc(gf_metric_with(r->m_gen_outcomes, job__kind(j), status, code));
    double age = job__age_s(j);
    if (age >= 0)
        gf_metric_observe(gf_metric_with(r->m_gen_duration, job__kind(j), NULL, NULL), age);
}

static double ms_between(uint64_t from, uint64_t to)
{
    return from && to >= from ? (double)(to - from) / 1e6 : -1;
}

/*
 * Debug: where a finished job's time went after its claim, along the image
 * that was recorded last (the one its finish waited for); -1 where a stage
 * did not happen. "wait" is the image's wait for a post-processing slot.
 */
static void job_log_timing(const job_t *j)
{
    if (gf_log_min_level > GF_LOG_DEBUG || j->imgs == NULL)
        return;
    const job_image_t *last = NULL;
    for (int i = 0; i < j->images; i++)
        if (j->imgs[i].t_recorded && (!last || j->imgs[i].t_recorded > last->t_recorded))
            last = &j->imgs[i];
    if (last == NULL)
        return;
    uint64_t now = uv_hrtime();
    gf_log_ctx ctx = job__log(j, NULL);
    GF_LOG(GF_LOG_DEBUG, &ctx,
           "timing: start %.1f provider %.1f wait %.1f post %.1f store %.1f finish %.1f total "
           "%.1f ms; held %zu limit %d",
           ms_between(j->started_ns, last->t_called),
           ms_between(last->t_called, last->t_provider_done),
           ms_between(last->t_pool_queued, last->t_pool_begun),
           ms_between(last->t_pool_begun, last->t_pool_ended),
           ms_between(last->t_pool_ended, last->t_recorded), ms_between(last->t_recorded, now),
           ms_between(j->started_ns, now), j->r->njobs, claim_ctl_limit(&j->r->ctl));
}

/* What entering the job's new state (left `from` on `ev`) does. */
static void job_enter(job_t *j, job_state_t from, job_event_t ev, const job_event_arg_t *arg)
{
    switch (j->state) {
    case JOB_RUNNING:
        job__stage(j, GF_STAGE_STARTING);
        job__advance(j, JOB_EV_PUMP, NULL);
        return;
    case JOB_CANCELING:
        if (from == JOB_STARTING)
            job__stage(j, GF_STAGE_STARTING);
        cancel_calls(j);
        job__advance(j, JOB_EV_PUMP, NULL);
        return;
    case JOB_FINISHING:
        if (j->finished_status[0]) /* its last image's record finished it already */
            job__advance(
                j, JOB_EV_FINISHED,
                &(job_event_arg_t){.status = j->finished_status, .applied = j->finished_applied});
        else if (ev == JOB_EV_UNRUNNABLE)
            job_finish(j, gf_gen_status_name(GF_GEN_FAILED),
                       "{\"code\":\"internal\",\"message\":\"unreadable parameters\","
                       "\"retryable\":false}");
        else if (from == JOB_CANCELING)
            job_finish(j, gf_gen_status_name(GF_GEN_CANCELED), NULL);
        else /* "auto": succeeded, partial or failed, from its images (farm_finish). A
              * generation with no image delivered carries its last image's error. */
            job_finish(j, "auto", j->delivered == 0 ? j->last_error : NULL);
        return;
    case JOB_CLOSING:
        if (ev == JOB_EV_CLOSE) {
            queue_end(j, arg->outcome, arg->detail);
        } else {
            /* Counted by whoever set the status: a claim or the sweeper that finished it
             * first counted it (worker_count_queue_finish). */
            if (j->r->m_outcomes && arg->applied)
                gf_metric_inc(gf_metric_with(j->r->m_outcomes, arg->status, NULL, NULL));
            if (arg->applied)
                job_count_finish(j, arg->status);
            gf_log_ctx ctx = job__log(j, NULL);
            GF_LOG(GF_LOG_INFO, &ctx, "finished: %s (%d images, %.0f ms)", arg->status, j->images,
                   (double)(uv_hrtime() - j->started_ns) / 1e6);
            job_log_timing(j);
            queue_end(j,
                      gf_gen_status_parse(arg->status) == GF_GEN_CANCELED ? QUEUE_CANCELED
                                                                          : QUEUE_DONE,
                      "{}");
        }
        return;
    case JOB_HANDING_BACK:
        leave_calls(j);
        /* Not the job's fault: it waits for another worker without spending an attempt. */
        queue_end(j, QUEUE_HANDBACK,
                  "handed back by a worker that is stopping or could not reach postgres, redis "
                  "or storage");
        return;
    case JOB_LOST: {
        gf_log_ctx ctx = job__log(j, NULL);
        GF_LOG(GF_LOG_WARN, &ctx, "lease lost while %s: aborting without writing anything",
               job__state_name(from));
        leave_calls(j);
        job__check_end(j);
        return;
    }
    case JOB_ENDED:
        job__check_end(j);
        return;
    case JOB_STARTING:
        return; /* only ever the first state */
    }
}

void job__advance(job_t *j, job_event_t ev, const job_event_arg_t *arg)
{
    if (ev == JOB_EV_CANCEL && j->state == JOB_STARTING)
        j->cancel_asked = 1; /* nothing runs yet: it cancels once ready */
    if (ev == JOB_EV_PUMP && j->state == JOB_RUNNING) {
        start_images(j);
        if (j->state != JOB_RUNNING)
            return; /* a start ended it */
    }
    job_facts_t f = {.cancel_asked = j->cancel_asked,
                     .running = j->running,
                     .settled = j->settled,
                     .images = j->images,
                     .finish_sent = j->finish_sent};
    job_state_t from = j->state;
    job_state_t to = job__next(from, ev, &f);
    if (to == from)
        return;
    j->state = to;
    job_enter(j, from, ev, arg);
}

/*
 * How far an image in `s` is, of its whole: the provider's call is most of
 * an image's time, and a step counts once it began.
 */
static int image_share(image_state s)
{
    switch (s) {
    case IMAGE_CALLING:
        return 10;
    case IMAGE_PROCESSING:
        return 80;
    case IMAGE_STORING:
        return 95;
    case IMAGE_SETTLED:
        return 100;
    case IMAGE_PENDING:
    default:
        return 0;
    }
}

/*
 * The generation's progress, 0..100 (API.md's GET shows one that has moved
 * while a lone image is generating): each image by how far it is, settled
 * ones whole, so it moves while a single image is made, not only as each
 * one ends (10 for a lone image while its provider call runs). Below
 * 100 until every image has settled, and never lower than it said before
 * (an image tried again starts over; the generation does not go back).
 */
int job__progress(job_t *j)
{
    long sum = 0;
    for (int i = 0; i < j->images; i++)
        sum += image_share(j->imgs[i].state);
    int p = j->images > 0 ? (int)(sum / j->images) : 0;
    if (p >= 100 && j->settled < j->images)
        p = 99;
    if (p > j->progress)
        j->progress = p;
    return j->progress;
}

/*
 * The generation's stage is the one the latest step of any of its images
 * began: `started` says starting, a `progress` event each change after that.
 */
void job__stage(job_t *j, gf_stage s)
{
    if (j->stage == (int)s || !job_is_live(j))
        return;
    j->stage = (int)s;
    job__event(j, gf_event_name(s == GF_STAGE_STARTING ? GF_EV_STARTED : GF_EV_PROGRESS),
               json_pack("{s:s, s:s, s:i}", "status", gf_gen_status_name(GF_GEN_RUNNING), "stage",
                         gf_stage_name(s), "progress", job__progress(j)));
}
