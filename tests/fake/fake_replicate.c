/*
 * tests/fake/fake_replicate.c - Replicate's predictions API in
 * farm-fake-provider (providers.md sections 4 and 6):
 *
 *   POST /replicate/v1/models/{owner}/{name}/predictions  {"input"}    replicate.submit
 *   POST /replicate/v1/predictions                 {"version","input"}  replicate.submit
 *   GET  /replicate/v1/predictions/{id}                                 replicate.poll
 *   POST /replicate/v1/predictions/{id}/cancel                          replicate.cancel
 *
 * A prediction runs for the fake's latency (`--latency-ms`) or `polls`
 * polls. With `Prefer: wait[=N]` the submit answers once it is done, or
 * after N s (at most 60) with `starting`, and says `Preference-Applied`.
 * `Cancel-After` (s, m, h, ms) is honoured on the virtual clock: a
 * prediction not done by then is `aborted` (never polled) or `canceled`.
 * Outputs are served from /cdn/replicate/{id}/out-0.{webp,jpg,png} (as
 * input.output_format says, webp by default); `cdn_ttl_s` after completion
 * the prediction shows `data_removed: true` and `output: null`.
 *
 * Faults (modes; their natural endpoint is replicate.submit unless said):
 * sync_timeout[:s] (the wait runs out: `starting` after s, 0 by default),
 * processing_with_output (`processing` with the output already filled in),
 * prediction_failed_nsfw (`failed` with the NSFW error), aborted_deadline
 * (`aborted`, as when Cancel-After passes before it starts), pending_forever
 * (replicate.poll: `processing` for ever), and the error statuses of
 * fake_replicate_problem(), in problem+json: rate_limit[:s] (429,
 * Retry-After), credits_402, auth_401, forbidden_403, not_found_404,
 * validation_422; the generic ones (server_500, reset...) too.
 */
#include "fake.h"
#include "httpd_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t *body_json(gf_http_req_t *r)
{
    size_t n;
    const char *b = gf_http_req_body(r, &n);
    return json_loadb(b ? b : "", n, 0, NULL);
}

static void problem(gf_http_req_t *r, int status, const char *title, const char *detail)
{
    json_t *b = json_pack("{s:s,s:s,s:i}", "title", title, "detail", detail, "status", status);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    gf_http_respond(r, status, "application/problem+json", s, strlen(s));
    free(s);
}

int fake_replicate_problem(gf_http_req_t *r, const fake_fault_t *ft)
{
    const char *m = ft->mode;
    if (strcmp(m, "rate_limit") == 0) {
        const char *s = ft->arg[0] ? ft->arg : "1";
        char detail[128];
        snprintf(detail, sizeof(detail), "Request was throttled. Expected available in %s seconds.",
                 s);
        gf_http_set_header(r, "Retry-After", s);
        gf_http_set_header(r, "ratelimit-remaining", "0");
        problem(r, 429, "Request was throttled", detail);
    } else if (strcmp(m, "credits_402") == 0) {
        problem(r, 402, "Insufficient credit",
                "You have insufficient credit to run this model. Go to "
                "https://replicate.com/account/billing#billing to purchase credit.");
    } else if (strcmp(m, "auth_401") == 0) {
        problem(r, 401, "Unauthenticated", "You did not pass a valid authentication token");
    } else if (strcmp(m, "forbidden_403") == 0) {
        problem(r, 403, "Forbidden", "You do not have permission to run this model");
    } else if (strcmp(m, "not_found_404") == 0) {
        problem(r, 404, "Not found", "The requested resource could not be found.");
    } else if (strcmp(m, "validation_422") == 0) {
        problem(r, 422, "Input validation failed", "input.width: must be at most 1440");
    } else {
        return 0;
    }
    return 1;
}

/* --- predictions --------------------------------------------------------------------- */

static int is_done(const fake_job_t *j)
{
    return j->finished || strcmp(j->outcome, "processing_with_output") == 0;
}

/* The status the prediction shows now. */
static const char *rep_status(fake_t *f, const fake_job_t *j)
{
    if (j->canceled)
        return "canceled";
    if (strcmp(j->outcome, "aborted_deadline") == 0)
        return "aborted";
    if (!j->finished && j->cancel_after_at && fake_now(f) >= j->cancel_after_at)
        return j->polls == 0 ? "aborted" : "canceled";
    if (strcmp(j->outcome, "processing_with_output") == 0)
        return "processing";
    if (!j->finished)
        return j->polls == 0 ? "starting" : "processing";
    return strcmp(j->outcome, "prediction_failed_nsfw") == 0 ? "failed" : "succeeded";
}

/* The prediction object of `j`, as POST, GET and cancel answer it. */
static json_t *rep_prediction(fake_t *f, fake_job_t *j)
{
    const char *st = rep_status(f, j);
    int has_output = strcmp(st, "succeeded") == 0 || strcmp(st, "processing") == 0;
    has_output = has_output && is_done(j);
    if (has_output && j->done_at == 0)
        j->done_at = fake_now(f);
    int removed = has_output && fake_now(f) > j->done_at + f->cdn_ttl_s;
    gf_buf_t self = {0}, get = {0}, cancel = {0}, stream = {0}, out = {0};
    gf_buf_printf(&self, "%s/replicate/v1/predictions/%s", f->base, j->id);
    gf_buf_printf(&get, "%s", self.p);
    gf_buf_printf(&cancel, "%s/cancel", self.p);
    gf_buf_printf(&stream, "%s/replicate/stream/%s", f->base, j->id);
    gf_buf_printf(&out, "%s/cdn/replicate/%s/out-0.%s", f->base, j->id,
                  strcmp(fake_format_ext(j->format), "jpeg") == 0 ? "jpg"
                                                                  : fake_format_ext(j->format));
    json_t *p = json_pack("{s:s,s:s,s:s,s:{s:s},s:s,s:s,s:b,s:{s:s,s:s,s:s}}", "id", j->id, "model",
                          j->app, "version", "fake", "input", "prompt", j->prompt, "logs", "",
                          "status", st, "data_removed", removed, "urls", "get", get.p, "cancel",
                          cancel.p, "stream", stream.p);
    json_object_set_new(p, "output",
                        has_output && !removed ? json_pack("[s]", out.p) : json_null());
    json_object_set_new(p, "error",
                        strcmp(st, "failed") == 0
                            ? json_string("NSFW content detected. Try running it again, or try a "
                                          "different prompt.")
                            : json_null());
    json_object_set_new(p, "metrics",
                        is_done(j) ? json_pack("{s:f}", "predict_time", 0.042) : json_object());
    gf_buf_dispose(&self);
    gf_buf_dispose(&get);
    gf_buf_dispose(&cancel);
    gf_buf_dispose(&stream);
    gf_buf_dispose(&out);
    return p;
}

/* Cancel-After: "30s", "1m", "2h", "500ms" or bare seconds; < 0 when unreadable. */
static int64_t duration_s(const char *v)
{
    char *end;
    double n = strtod(v, &end);
    if (end == v || n < 0)
        return -1;
    if (strcmp(end, "ms") == 0)
        return (int64_t)ceil(n / 1000.0);
    if (*end == '\0' || strcmp(end, "s") == 0)
        return (int64_t)ceil(n);
    if (strcmp(end, "m") == 0)
        return (int64_t)(n * 60);
    if (strcmp(end, "h") == 0)
        return (int64_t)(n * 3600);
    return -1;
}

/* Prefer: "wait" (60 s) or "wait=N" (1..60); 0 when absent, -1 when unreadable. */
static int prefer_wait(gf_http_req_t *r)
{
    const char *v = gf_http_req_header(r, "prefer");
    if (v == NULL)
        return 0;
    if (strcmp(v, "wait") == 0)
        return 60;
    if (strncmp(v, "wait=", 5) != 0)
        return -1;
    int n = atoi(v + 5);
    return n >= 1 && n <= 60 ? n : -1;
}

typedef struct {
    char id[40];
} rep_arg_t;

static void answer_created(fake_t *f, gf_http_req_t *r, void *arg)
{
    rep_arg_t *a = arg;
    fake_job_t *j = fake_job_find(f, a->id);
    if (j == NULL) {
        problem(r, 404, "Not found", "The prediction is gone (reset)");
    } else {
        /* [[close]] in the prompt: the connection closes after this answer, so the
         * client's next request (a cancel) needs a connection of its own. */
        if (strstr(j->prompt, "[[close]]") && r->conn)
            r->keep_alive = 0;
        fake_json(r, 201, rep_prediction(f, j));
    }
    free(a);
}

/* The sync wait covered the model's run: it is done when the answer goes. */
static void answer_finished(fake_t *f, gf_http_req_t *r, void *arg)
{
    fake_job_t *j = fake_job_find(f, ((rep_arg_t *)arg)->id);
    if (j)
        j->finished = 1;
    answer_created(f, r, arg);
}

/*
 * The size a FLUX.1 schnell or dev predictor (cog-flux) makes: its aspect
 * ratio choices (providers.md 4; there is no "custom", no width or height) at
 * megapixels "1", each side halved at "0.25". 0 for a ratio it refuses.
 */
static int cog_flux_size(const char *ar, const char *mp, int *w, int *h)
{
    static const struct {
        const char *ratio;
        int w, h;
    } t[] = {{"1:1", 1024, 1024}, {"16:9", 1344, 768}, {"21:9", 1536, 640}, {"3:2", 1216, 832},
             {"2:3", 832, 1216},  {"4:5", 896, 1088},  {"5:4", 1088, 896},  {"3:4", 896, 1152},
             {"4:3", 1152, 896},  {"9:16", 768, 1344}, {"9:21", 640, 1536}};
    int half = mp != NULL && strcmp(mp, "0.25") == 0;
    if (mp != NULL && !half && strcmp(mp, "1") != 0)
        return 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (strcmp(t[i].ratio, ar ? ar : "1:1") == 0) {
            *w = half ? t[i].w / 2 : t[i].w;
            *h = half ? t[i].h / 2 : t[i].h;
            return 1;
        }
    }
    return 0;
}

/* Size from the input: width/height with a custom aspect ratio, else about 1 MP at the
 * ratio; a FLUX.1 schnell/dev model (`cog_flux`) only by its own choices. */
static int rep_size(json_t *in, int cog_flux, int *w, int *h)
{
    const char *ar = json_string_value(json_object_get(in, "aspect_ratio"));
    if (cog_flux)
        return cog_flux_size(ar, json_string_value(json_object_get(in, "megapixels")), w, h);
    if (ar == NULL || strcmp(ar, "custom") == 0) {
        *w = (int)json_integer_value(json_object_get(in, "width"));
        *h = (int)json_integer_value(json_object_get(in, "height"));
        return ar != NULL || (*w > 0 && *h > 0);
    }
    int a = 0, b = 0;
    if (sscanf(ar, "%d:%d", &a, &b) != 2 || a <= 0 || b <= 0)
        return 0;
    *w = (int)(1024.0 * sqrt((double)a / b)) / 16 * 16;
    *h = (int)(1024.0 * sqrt((double)b / a)) / 16 * 16;
    return 1;
}

static void on_submit(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *e = fake_log(f, r, "replicate.submit", NULL);
    const char *auth = gf_http_req_header(r, "authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0) {
        problem(r, 401, "Unauthenticated", "You did not pass a valid authentication token");
        return;
    }
    json_t *root = body_json(r);
    json_t *in = json_object_get(root, "input");
    const char *prompt = json_string_value(json_object_get(in, "prompt"));
    const char *owner = gf_http_req_param(r, "owner");
    const char *version = json_string_value(json_object_get(root, "version"));
    int w = 0, h = 0;
    int wait = prefer_wait(r);
    const char *name = owner ? gf_http_req_param(r, "name") : NULL;
    int cog_flux =
        name && (strncmp(name, "flux-schnell", 12) == 0 || strncmp(name, "flux-dev", 8) == 0);
    if (prompt == NULL || (owner == NULL && version == NULL) || !rep_size(in, cog_flux, &w, &h) ||
        w < 64 || h < 64 || w > 2048 || h > 2048 || wait < 0) {
        json_decref(root);
        problem(r, 422, "Input validation failed",
                cog_flux ? "input.aspect_ratio: must be one of 1:1, 16:9, 21:9, 3:2, 2:3, 4:5, "
                           "5:4, 3:4, 4:3, 9:16, 9:21; input.megapixels: 1 or 0.25"
                         : "input: prompt, a size (aspect_ratio custom with width/height "
                           "64..2048) and a valid Prefer are required");
        return;
    }
    /* Replicate's flux models: output_format webp (the default), jpg or png. */
    json_t *of = json_object_get(in, "output_format");
    const char *ofs = json_string_value(of);
    fake_format_t fmt = FAKE_WEBP;
    if (of && (ofs == NULL || strcmp(ofs, "jpeg") == 0 || fake_format_parse(ofs, &fmt) < 0)) {
        json_decref(root);
        problem(r, 422, "Input validation failed",
                "input.output_format: must be one of webp, jpg, png");
        return;
    }
    static const char *const keys[] = {"input.input_images", "input.input_image",
                                       "input.control_image", NULL};
    fake_received(e, prompt, root, keys);
    fake_fault_t ft;
    int hit = fake_fault(f, r, "replicate", "replicate.submit", prompt, NULL, &ft);
    if (hit && fake_generic(f, r, "replicate", &ft)) {
        json_decref(root);
        return;
    }
    fake_job_t *j = fake_job_new(f, r, "replicate", prompt,
                                 json_integer_value(json_object_get(in, "seed")), w, h, fmt);
    if (owner)
        snprintf(j->app, sizeof(j->app), "%s/%s", owner, gf_http_req_param(r, "name"));
    else
        snprintf(j->app, sizeof(j->app), "%s", version);
    if (hit)
        snprintf(j->outcome, sizeof(j->outcome), "%s", ft.mode);
    json_decref(root);
    const char *ca = gf_http_req_header(r, "cancel-after");
    int64_t ca_s = ca ? duration_s(ca) : 0;
    if (ca_s > 0)
        j->cancel_after_at = fake_now(f) + ca_s;
    json_object_set_new(e, "job", json_string(j->id));
    json_object_set_new(e, "cancel_after", ca ? json_string(ca) : json_null());
    rep_arg_t *a = gf_xcalloc(1, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", j->id);
    if (wait > 0) {
        char applied[32];
        snprintf(applied, sizeof(applied), "wait=%d", wait);
        gf_http_set_header(r, "Preference-Applied", applied);
    }
    if (wait > 0 && strcmp(j->outcome, "sync_timeout") == 0) {
        double s = ft.arg[0] ? atof(ft.arg) : 0;
        fake_later(f, r, (uint64_t)((s < wait ? s : wait) * 1000), answer_created, a);
    } else if (wait > 0 && (uint64_t)f->latency_ms <= (uint64_t)wait * 1000) {
        fake_later(f, r, (uint64_t)f->latency_ms, answer_finished, a);
    } else if (wait > 0) {
        fake_later(f, r, (uint64_t)wait * 1000, answer_created, a); /* the wait ran out */
    } else {
        answer_created(f, r, a);
    }
}

/* The prediction of request `r` at `endpoint`, logged; NULL once a 404 is answered. */
static fake_job_t *rep_job(fake_t *f, gf_http_req_t *r, const char *endpoint)
{
    fake_job_t *j = fake_job_find(f, gf_http_req_param(r, "id"));
    fake_log(f, r, endpoint, j ? j->id : NULL);
    if (j == NULL || strcmp(j->provider, "replicate") != 0) {
        problem(r, 404, "Not found", "The requested resource could not be found.");
        return NULL;
    }
    return j;
}

static void on_poll(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_job_t *j = rep_job(f, r, "replicate.poll");
    if (j == NULL)
        return;
    fake_fault_t ft;
    int hit = fake_fault(f, r, "replicate", "replicate.poll", j->prompt, j, &ft);
    if (hit && fake_generic(f, r, "replicate", &ft))
        return;
    int forever = hit && strcmp(ft.mode, "pending_forever") == 0;
    if (!forever && !j->finished && !j->canceled && ++j->polls >= f->polls)
        j->finished = 1;
    if (forever && j->polls == 0)
        j->polls = 1; /* processing, not starting */
    fake_json(r, 200, rep_prediction(f, j));
}

static void on_cancel(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_job_t *j = rep_job(f, r, "replicate.cancel");
    if (j == NULL)
        return;
    const char *st = rep_status(f, j);
    if (strcmp(st, "starting") == 0 || strcmp(st, "processing") == 0)
        j->canceled = 1;
    fake_json(r, 200, rep_prediction(f, j));
}

void fake_replicate_routes(fake_t *f)
{
    const size_t big = 32 * 1024 * 1024;
    gf_httpd_t *h = f->httpd;
    gf_httpd_route(h, "POST", "/replicate/v1/models/:owner/:name/predictions", big, on_submit, f);
    gf_httpd_route(h, "POST", "/replicate/v1/predictions", big, on_submit, f);
    gf_httpd_route(h, "GET", "/replicate/v1/predictions/:id", 0, on_poll, f);
    gf_httpd_route(h, "POST", "/replicate/v1/predictions/:id/cancel", 0, on_cancel, f);
}
