/*
 * tests/fake/fake_routes.c - the protocol endpoints of farm-fake-provider:
 * HF router (sync image), BFL (submit, regional polling, CDN with expiring
 * signed URLs) and the fal queue (submit, status, result, cancel, CDN).
 *
 * Every URL it returns is absolute and built from its own base; some point at
 * a different prefix on purpose (BFL polls on /bfl-region, fal drops the
 * endpoint subpath, images come from /cdn), so a client that rebuilds URLs
 * instead of following them fails.
 */
#include "fake.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int w, h;
    uint64_t seed;
    fake_format_t fmt;
    fake_fault_t ft;
} img_arg_t;

static json_t *body_json(gf_http_req_t *r)
{
    size_t n;
    const char *b = gf_http_req_body(r, &n);
    return json_loadb(b ? b : "", n, 0, NULL);
}

static int has_prefix(const char *s, const char *p)
{
    return s && strncmp(s, p, strlen(p)) == 0;
}

static void send_image_later(fake_t *f, gf_http_req_t *r, void *arg)
{
    img_arg_t *a = arg;
    fake_send_image(f, r, a->w, a->h, a->seed, a->fmt, &a->ft);
    free(a);
}

/*
 * The output_format of a submit body (`names` are the ones the provider
 * takes, NULL-terminated; absent: `def`). 0 and *out set, -1 for a name the
 * provider does not take.
 */
static int output_format(json_t *root, const char *const *names, fake_format_t def,
                         fake_format_t *out)
{
    json_t *v = json_object_get(root, "output_format");
    *out = def;
    if (v == NULL)
        return 0;
    for (size_t i = 0; names[i]; i++)
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0)
            return fake_format_parse(names[i], out);
    return -1;
}

/* --- Hugging Face router ------------------------------------------------------------ */

static void on_hf(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *entry = fake_log(f, r, "hf.submit", NULL);
    if (!has_prefix(gf_http_req_header(r, "authorization"), "Bearer hf_")) {
        fake_json(r, 401,
                  json_pack("{s:s}", "error", "Invalid credentials in Authorization header"));
        return;
    }
    json_t *root = body_json(r);
    json_t *params = json_object_get(root, "parameters");
    const char *prompt = json_string_value(json_object_get(params, "prompt"));
    if (prompt == NULL)
        prompt = json_string_value(json_object_get(root, "inputs"));
    json_t *ts = json_object_get(params, "target_size");
    int w = (int)json_integer_value(json_object_get(ts ? ts : params, "width"));
    int h = (int)json_integer_value(json_object_get(ts ? ts : params, "height"));
    if (prompt == NULL || w <= 0 || h <= 0 || w > 2048 || h > 2048) {
        json_decref(root);
        fake_json(r, 400, json_pack("{s:s}", "error", "inputs and parameters.width/height needed"));
        return;
    }
    /* Image to image: the reference is the base64 `inputs`; a multi-reference
     * model takes data URLs in `input_images`. */
    static const char *const i2i_keys[] = {"inputs", "input_images", NULL};
    fake_received(entry, prompt, root, ts != NULL ? i2i_keys : i2i_keys + 1);
    int64_t seed = json_integer_value(json_object_get(params, "seed"));
    fake_fault_t ft;
    fake_fault(f, r, "hf", "hf.submit", prompt, NULL, &ft);
    uint64_t hash = fake_hash(prompt, strlen(prompt)) ^ (uint64_t)seed;
    json_decref(root);
    if (strcmp(ft.mode, "model_loading") == 0) {
        if (gf_http_req_header(r, "x-wait-for-model") == NULL) {
            fake_json(r, 503,
                      json_pack("{s:s,s:f}", "error",
                                "Model black-forest-labs/FLUX.1-dev is currently loading",
                                "estimated_time", ft.arg[0] ? atof(ft.arg) : 20.0));
            return;
        }
        ft.mode[0] = '\0'; /* x-wait-for-model: wait (latency below), then answer */
    }
    if (fake_generic(f, r, "hf", &ft))
        return;
    const char *cache = gf_http_req_header(r, "x-use-cache");
    gf_http_set_header(r, "x-compute-type", cache && strcmp(cache, "false") == 0 ? "gpu" : "gpu");
    gf_http_set_header(r, "x-compute-time", "0.042");
    gf_http_set_header(r, "x-sha", "0ef5fff789c832c5c7f4e127f94c8b54bbcced44");
    img_arg_t *a = gf_xcalloc(1, sizeof(*a));
    /* HF answers image/jpeg whatever the Accept (providers.md section 2). */
    json_object_set_new(entry, "image_format", json_string(fake_format_ext(f->hf_format)));
    *a = (img_arg_t){.w = w, .h = h, .seed = hash, .fmt = f->hf_format, .ft = ft};
    if (f->latency_ms > 0)
        fake_later(f, r, (uint64_t)f->latency_ms, send_image_later, a);
    else
        send_image_later(f, r, a);
}

static void on_hf_legacy(gf_http_req_t *r, void *data)
{
    fake_log(data, r, "hf.legacy", NULL);
    fake_json(r, 410,
              json_pack("{s:s}", "error",
                        "https://api-inference.huggingface.co/ is no longer supported. "
                        "Please use https://router.huggingface.co/ instead."));
}

static void on_hf_hub(gf_http_req_t *r, void *data)
{
    fake_log(data, r, "hf.hub", NULL);
    gf_buf_t id = {0};
    gf_buf_printf(&id, "%s/%s", gf_http_req_param(r, "org"), gf_http_req_param(r, "name"));
    fake_json(r, 200,
              json_pack("{s:s,s:{s:{s:s,s:s,s:s},s:{s:s,s:s,s:s}}}", "id", id.p,
                        "inferenceProviderMapping", "hf-inference", "status", "live", "providerId",
                        id.p, "task", "text-to-image", "fal-ai", "status", "live", "providerId",
                        "fal-ai/flux/dev", "task", "text-to-image"));
    gf_buf_dispose(&id);
}

/* --- Black Forest Labs ----------------------------------------------------------------- */

static void on_bfl_submit(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *e = fake_log(f, r, "bfl.submit", NULL);
    if (gf_http_req_header(r, "x-key") == NULL) {
        fake_json(r, 403, json_pack("{s:s}", "detail", "Not authenticated - missing x-key"));
        return;
    }
    json_t *root = body_json(r);
    const char *prompt = json_string_value(json_object_get(root, "prompt"));
    int w = (int)json_integer_value(json_object_get(root, "width"));
    int h = (int)json_integer_value(json_object_get(root, "height"));
    if (prompt == NULL || w <= 0 || h <= 0 || w > 2048 || h > 2048) {
        json_decref(root);
        fake_json(r, 422,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body", "prompt", "msg",
                            "field required", "type", "value_error.missing"));
        return;
    }
    /* FLUX.1 on BFL: sizes in steps of 32 (providers.md 2; FLUX.2: 16, checked above by
     * nothing stricter than the api's own rule). */
    const char *model = gf_http_req_param(r, "model");
    if (model && strstr(model, "flux-2") == NULL && (w % 32 || h % 32)) {
        json_decref(root);
        fake_json(r, 422,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body",
                            w % 32 ? "width" : "height", "msg", "Input should be a multiple of 32",
                            "type", "multiple_of"));
        return;
    }
    static const char *const bfl_formats[] = {"jpeg", "png", "webp", NULL};
    fake_format_t fmt;
    if (output_format(root, bfl_formats, FAKE_JPEG, &fmt) < 0) {
        json_decref(root);
        fake_json(r, 422,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body", "output_format",
                            "msg", "Input should be 'jpeg', 'png' or 'webp'", "type", "enum"));
        return;
    }
    static const char *const bfl_keys[] = {"input_image",
                                           "input_image_2",
                                           "input_image_3",
                                           "input_image_4",
                                           "input_image_5",
                                           "input_image_6",
                                           "input_image_7",
                                           "input_image_8",
                                           "control_image",
                                           "image_prompt",
                                           NULL};
    fake_received(e, prompt, root, bfl_keys);
    fake_fault_t ft;
    int hit = fake_fault(f, r, "bfl", "bfl.submit", prompt, NULL, &ft);
    if (hit && fake_generic(f, r, "bfl", &ft)) {
        json_decref(root);
        return;
    }
    /* polling_elsewhere: a polling URL on a host that is not the provider's (the key must not go).
     */
    int elsewhere = hit && strcmp(ft.mode, "polling_elsewhere") == 0;
    fake_job_t *j = fake_job_new(f, r, "bfl", prompt,
                                 json_integer_value(json_object_get(root, "seed")), w, h, fmt);
    json_decref(root);
    json_object_set_new(e, "job", json_string(j->id));
    gf_buf_t url = {0};
    const char *port = strrchr(f->base, ':');
    if (elsewhere && port)
        gf_buf_printf(&url, "http://127.0.0.2%s/bfl-region/v1/get_result?id=%s", port, j->id);
    else
        gf_buf_printf(&url, "%s/bfl-region/v1/get_result?id=%s", f->base, j->id);
    fake_json(r, 200, json_pack("{s:s,s:s}", "id", j->id, "polling_url", url.p));
    gf_buf_dispose(&url);
}

static void bfl_task(gf_http_req_t *r, int status, const fake_job_t *j, const char *st,
                     json_t *result, double progress)
{
    json_t *b = json_pack("{s:s,s:s,s:o}", "id", j ? j->id : "", "status", st, "result",
                          result ? result : json_null());
    json_object_set_new(b, "progress", progress >= 0 ? json_real(progress) : json_null());
    fake_json(r, status, b);
}

static void on_bfl_poll(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    int global = has_prefix(gf_http_req_path(r), "/bfl/");
    const char *ep = global ? "bfl.poll_global" : "bfl.poll";
    fake_job_t *j = fake_job_find(f, gf_http_req_query(r, "id"));
    fake_log(f, r, ep, j ? j->id : NULL);
    if (j == NULL) {
        bfl_task(r, 200, NULL, "Task not found", NULL, -1);
        return;
    }
    fake_fault_t ft;
    int hit = fake_fault(f, r, "bfl", ep, j->prompt, j, &ft);
    const char *m = ft.mode;
    if (hit && strcmp(m, "regional_404") == 0) {
        fake_json(r, 404, json_pack("{s:s}", "detail", "Not Found"));
        return;
    }
    if (hit && fake_generic(f, r, "bfl", &ft))
        return;
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", f->retry_after);
    gf_http_set_header(r, "retry-after", ra);
    gf_http_set_header(r, "x-ratelimit-limit", "1200");
    gf_http_set_header(r, "x-ratelimit-remaining", "1199");
    if (hit && strcmp(m, "bfl_error") == 0)
        bfl_task(r, 200, j, "Error", NULL, -1);
    else if (hit && strcmp(m, "request_moderated") == 0)
        bfl_task(r, 200, j, "Request Moderated", NULL, -1);
    else if (hit && strcmp(m, "content_moderated") == 0)
        bfl_task(r, 200, j, "Content Moderated", NULL, -1);
    else if (hit && strcmp(m, "task_not_found") == 0) {
        if (strcmp(ft.arg, "404") == 0)
            fake_json(r, 404, json_pack("{s:s}", "detail", "Task not found"));
        else
            bfl_task(r, 200, j, "Task not found", NULL, -1);
    } else if (hit && strcmp(m, "pending_forever") == 0)
        bfl_task(r, 200, j, "Pending", NULL, 0.1);
    else if (hit && strcmp(m, "poll_422_with_task") == 0)
        bfl_task(r, 422, j, "Pending", NULL, 0.2);
    else if (++j->polls < f->polls)
        bfl_task(r, 200, j, "Pending", NULL, (double)j->polls / f->polls);
    else {
        if (j->done_at == 0)
            j->done_at = fake_now(f);
        gf_buf_t url = {0};
        gf_buf_printf(&url, "%s/cdn/bfl/%s/sample.%s?se=%lld&sp=r&sig=%016llx", f->base, j->id,
                      fake_format_ext(j->format), (long long)(j->done_at + f->cdn_ttl_s),
                      (unsigned long long)fake_hash(j->id, strlen(j->id)));
        bfl_task(r, 200, j, "Ready",
                 json_pack("{s:s,s:s,s:I}", "sample", url.p, "prompt", j->prompt, "seed",
                           (json_int_t)j->seed),
                 -1);
        gf_buf_dispose(&url);
    }
}

/* --- CDN ------------------------------------------------------------------------------- */

static void on_cdn(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_job_t *j = fake_job_find(f, gf_http_req_param(r, "id"));
    json_t *entry = fake_log(f, r, "cdn", j ? j->id : NULL);
    int bfl = strcmp(gf_http_req_param(r, "prov"), "bfl") == 0;
    const char *se = gf_http_req_query(r, "se");
    fake_fault_t ft = {0};
    int hit = j ? fake_fault(f, r, j->provider, "cdn", j->prompt, j, &ft) : 0;
    int expired = (hit && strcmp(ft.mode, "expired_url") == 0) ||
                  (bfl && (se == NULL || atoll(se) < fake_now(f)));
    if (j == NULL || expired) {
        const char *xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>"
                          "AuthenticationFailed</Code><Message>Signed expiry time has passed"
                          "</Message></Error>";
        if (bfl)
            gf_http_respond(r, 403, "application/xml", xml, strlen(xml));
        else
            gf_http_respond(r, 404, "text/plain", "Not Found", 9);
        return;
    }
    if (hit && fake_generic(f, r, j->provider, &ft))
        return;
    uint64_t seed = fake_hash(j->prompt, strlen(j->prompt)) ^ (uint64_t)j->seed;
    json_object_set_new(entry, "image_format", json_string(fake_format_ext(j->format)));
    fake_send_image(f, r, j->width, j->height, seed, j->format, hit ? &ft : NULL);
}

/* --- fal queue ------------------------------------------------------------------------- */

static void fal_urls(fake_t *f, const fake_job_t *j, gf_buf_t *base)
{
    gf_buf_printf(base, "%s/fal/%s/requests/%s", f->base, j->app, j->id);
}

static void on_fal_submit(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *e = fake_log(f, r, "fal.submit", NULL);
    if (!has_prefix(gf_http_req_header(r, "authorization"), "Key ")) {
        fake_json(r, 401, json_pack("{s:s}", "detail", "Missing or invalid Authorization: Key"));
        return;
    }
    json_t *root = body_json(r);
    const char *prompt = json_string_value(json_object_get(root, "prompt"));
    json_t *size = json_object_get(root, "image_size");
    int w = 1024, h = 768;
    if (json_is_object(size)) {
        w = (int)json_integer_value(json_object_get(size, "width"));
        h = (int)json_integer_value(json_object_get(size, "height"));
    }
    if (prompt == NULL || w <= 0 || h <= 0 || w > 2048 || h > 2048) {
        json_decref(root);
        fake_json(r, 422,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body", "prompt", "msg",
                            "field required", "type", "missing"));
        return;
    }
    static const char *const fal_formats[] = {"jpeg", "png", NULL};
    fake_format_t fmt;
    if (output_format(root, fal_formats, FAKE_JPEG, &fmt) < 0) {
        json_decref(root);
        fake_json(r, 422,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body", "output_format",
                            "msg", "Input should be 'jpeg' or 'png'", "type", "enum"));
        return;
    }
    static const char *const fal_keys[] = {"image_url", "image_urls", NULL};
    fake_received(e, prompt, root, fal_keys);
    fake_fault_t ft;
    if (fake_fault(f, r, "fal", "fal.submit", prompt, NULL, &ft) &&
        fake_generic(f, r, "fal", &ft)) {
        json_decref(root);
        return;
    }
    fake_job_t *j = fake_job_new(f, r, "fal", prompt,
                                 json_integer_value(json_object_get(root, "seed")), w, h, fmt);
    snprintf(j->app, sizeof(j->app), "%s/%s", gf_http_req_param(r, "owner"),
             gf_http_req_param(r, "app"));
    json_decref(root);
    json_object_set_new(e, "job", json_string(j->id));
    gf_buf_t b = {0}, st = {0}, cn = {0};
    fal_urls(f, j, &b);
    gf_buf_printf(&st, "%s/status", b.p);
    gf_buf_printf(&cn, "%s/cancel", b.p);
    fake_json(r, 200,
              json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "status", "IN_QUEUE", "request_id", j->id,
                        "response_url", b.p, "status_url", st.p, "cancel_url", cn.p,
                        "queue_position", 0));
    gf_buf_dispose(&b);
    gf_buf_dispose(&st);
    gf_buf_dispose(&cn);
}

/*
 * The job of a fal request URL at `endpoint`, checking the app path (the subpath must be
 * dropped), logged; NULL once a 404 is answered with {key: value}.
 */
static fake_job_t *fal_job(fake_t *f, gf_http_req_t *r, const char *endpoint, const char *key,
                           const char *value)
{
    fake_job_t *j = fake_job_find(f, gf_http_req_param(r, "id"));
    if (j) {
        char app[160];
        snprintf(app, sizeof(app), "%s/%s", gf_http_req_param(r, "owner"),
                 gf_http_req_param(r, "app"));
        if (strcmp(app, j->app) != 0)
            j = NULL;
    }
    fake_log(f, r, endpoint, j ? j->id : NULL);
    if (j == NULL)
        fake_json(r, 404, json_pack("{s:s}", key, value));
    return j;
}

static void on_fal_status(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_job_t *j = fal_job(f, r, "fal.status", "status", "NOT_FOUND");
    if (j == NULL)
        return;
    fake_fault_t ft;
    int hit = fake_fault(f, r, "fal", "fal.status", j->prompt, j, &ft);
    if (hit && fake_generic(f, r, "fal", &ft))
        return;
    if ((hit && strcmp(ft.mode, "pending_forever") == 0) ||
        (!j->canceled && ++j->polls < f->polls)) {
        int queued = j->polls <= 1 && !hit;
        json_t *b = json_pack("{s:s}", "status", queued ? "IN_QUEUE" : "IN_PROGRESS");
        if (queued)
            json_object_set_new(b, "queue_position", json_integer(0));
        else
            json_object_set_new(b, "logs",
                                json_pack("[{s:s,s:s}]", "message", "step", "level", "INFO"));
        fake_json(r, 202, b);
        return;
    }
    if (j->done_at == 0)
        j->done_at = fake_now(f);
    fake_json(r, 200,
              json_pack("{s:s,s:[],s:{s:f}}", "status", "COMPLETED", "logs", "metrics",
                        "inference_time", 0.042));
}

static void on_fal_result(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_job_t *j = fal_job(f, r, "fal.result", "detail", "Request not found");
    if (j == NULL)
        return;
    if (j->done_at == 0) {
        fake_json(r, 400, json_pack("{s:s}", "detail", "Request is still in progress"));
        return;
    }
    fake_fault_t ft;
    int hit = fake_fault(f, r, "fal", "fal.result", j->prompt, j, &ft);
    if (hit && strcmp(ft.mode, "fal_failed_result") == 0) {
        int code = ft.arg[0] ? atoi(ft.arg) : 422;
        gf_http_set_header(r, "X-Fal-Retryable", code >= 500 ? "true" : "false");
        gf_http_set_header(r, "X-Fal-Error-Type",
                           code >= 500 ? "runner_disconnected" : "validation_error");
        fake_json(r, code,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body", "image_size", "msg",
                            "unsupported size", "type", "value_error"));
        return;
    }
    if (hit && fake_generic(f, r, "fal", &ft))
        return;
    int nsfw = hit && strcmp(ft.mode, "nsfw_flag") == 0;
    gf_buf_t url = {0};
    gf_buf_printf(&url, "%s/cdn/fal/%s/image.%s", f->base, j->id, fake_format_ext(j->format));
    gf_http_set_header(r, "x-fal-request-id", j->id);
    /* content_type says image/jpeg whatever the file is: recorded for a PNG (providers.md 3). */
    fake_json(r, 200,
              json_pack("{s:[{s:s,s:i,s:i,s:s}],s:{s:f},s:I,s:[b],s:s}", "images", "url", url.p,
                        "width", j->width, "height", j->height, "content_type", "image/jpeg",
                        "timings", "inference", 0.042, "seed", (json_int_t)j->seed,
                        "has_nsfw_concepts", nsfw, "prompt", j->prompt));
    gf_buf_dispose(&url);
}

static void on_fal_cancel(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_job_t *j = fal_job(f, r, "fal.cancel", "status", "NOT_FOUND");
    if (j == NULL)
        return;
    fake_fault_t ft;
    int hit = fake_fault(f, r, "fal", "fal.cancel", j->prompt, j, &ft);
    if ((hit && strcmp(ft.mode, "cancel_already_completed") == 0) || j->done_at) {
        fake_json(r, 400, json_pack("{s:s}", "status", "ALREADY_COMPLETED"));
        return;
    }
    j->canceled = 1;
    fake_json(r, 202, json_pack("{s:s}", "status", "CANCELLATION_REQUESTED"));
}

void fake_routes(fake_t *f)
{
    const size_t big = 32 * 1024 * 1024;
    gf_httpd_t *h = f->httpd;
    gf_httpd_route(h, "POST", "/hf/models/:org/:name", big, on_hf, f);
    gf_httpd_route(h, "POST", "/hf-legacy/models/:org/:name", big, on_hf_legacy, f);
    gf_httpd_route(h, "GET", "/hf-hub/api/models/:org/:name", 0, on_hf_hub, f);
    gf_httpd_route(h, "POST", "/bfl/v1/:model", big, on_bfl_submit, f);
    gf_httpd_route(h, "GET", "/bfl/v1/get_result", 0, on_bfl_poll, f);
    gf_httpd_route(h, "GET", "/bfl-region/v1/get_result", 0, on_bfl_poll, f);
    gf_httpd_route(h, "GET", "/cdn/:prov/:id/:file", 0, on_cdn, f);
    gf_httpd_route(h, "GET", "/fal/:owner/:app/requests/:id/status", 0, on_fal_status, f);
    gf_httpd_route(h, "PUT", "/fal/:owner/:app/requests/:id/cancel", 0, on_fal_cancel, f);
    gf_httpd_route(h, "GET", "/fal/:owner/:app/requests/:id", 0, on_fal_result, f);
    gf_httpd_route(h, "POST", "/fal/:owner/:app/:sub", big, on_fal_submit, f);
    gf_httpd_route(h, "POST", "/fal/:owner/:app", big, on_fal_submit, f);
    fake_replicate_routes(f);
}
