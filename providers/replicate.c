/*
 * providers/replicate.c - the Replicate predictions API (providers.md section 4).
 *
 * submit: POST {base}/v1/models/{owner}/{name}/predictions {"input": {...}}
 *         (a versioned model "owner/name:<version>": POST {base}/v1/predictions
 *         {"version", "input"}), with `Prefer: wait=N` (FARM_REPLICATE_WAIT_S)
 *         and `Cancel-After` (what is left of the call's deadline)
 *         -> 201 and a prediction {"id", "status", "output", "error",
 *         "data_removed", "urls": {"get", "cancel"}}
 * poll:   GET urls.get exactly as returned -> 200 and the same object
 * cancel: POST urls.cancel
 *
 * A prediction is done when its output is present: `succeeded`, or any
 * status with a non-null output (the recorded quirk: `processing` with the
 * output already there under `Prefer: wait`). Its first URL is downloaded at
 * once (results are removed after an hour). `failed` with an NSFW error is
 * output moderation, any other `failed` a server fault; `canceled` or
 * `aborted` that the farm did not ask for means `Cancel-After` (the call's
 * deadline) ran out; `succeeded` with `data_removed` and no output is an
 * expired result. `starting` / `processing` are polled.
 *
 * The resume token is urls.get and urls.cancel ("-" when absent) joined by a
 * space, both checked like every URL that carries the token.
 */
#include "provider_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void rep_post(provider_call_t *c);
static void rep_poll(provider_call_t *c);

static int rep_init(provider_adapter_t *a, gf_err_t *err)
{
    if (a->token[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider", "replicate needs FARM_REPLICATE_TOKEN");
    if (a->model[0] == '\0' || a->pose_model[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider",
                          "replicate needs FARM_REPLICATE_MODEL and FARM_REPLICATE_POSE_MODEL");
    return 0;
}

static void rep_auth(const provider_call_t *c, char *auth, size_t n)
{
    snprintf(auth, n, "Authorization: Bearer %s", c->a->token);
}

static json_t *rep_input(const provider_call_t *c)
{
    const provider_req_t *q = &c->req;
    const char *model = provider__call_model(c);
    json_t *in = json_object();
    json_object_set_new(in, "prompt", json_string(q->prompt));
    /* The farm needs the exact size (it checks the output). FLUX.1 schnell and
     * dev take no width or height, only an aspect ratio and megapixels, and
     * make a fixed size for each (providers.md 4; the chain sends them only
     * those sizes, caps.c). Other models: a custom aspect ratio with width and
     * height, FLUX 1.1 pro's form on Replicate. */
    const char *ratio, *mp;
    if (provider__call_caps(c)->ratio_sizes &&
        provider_ratio_size(q->width, q->height, &ratio, &mp)) {
        json_object_set_new(in, "aspect_ratio", json_string(ratio));
        json_object_set_new(in, "megapixels", json_string(mp));
    } else {
        json_object_set_new(in, "aspect_ratio", json_string("custom"));
        json_object_set_new(in, "width", json_integer(q->width));
        json_object_set_new(in, "height", json_integer(q->height));
    }
    if (q->seed >= 0)
        json_object_set_new(in, "seed", json_integer(q->seed));
    if (q->steps > 0) {
        /* schnell takes 1..4 steps and refuses more (422): its most, then. */
        int steps = strstr(model, "schnell") && q->steps > 4 ? 4 : q->steps;
        json_object_set_new(in, "num_inference_steps", json_integer(steps));
    }
    if (q->guidance >= 0 && strstr(model, "schnell") == NULL)
        json_object_set_new(in, "guidance", json_real(q->guidance));
    json_object_set_new(in, "output_format", json_string("png"));
    /* References, the identity first: several in input_images[] (FLUX.2),
     * one in input_image (Kontext); a pose map to a model that takes no
     * reference for it goes as control_image (canny/depth). The chain only
     * gives this adapter what its model takes (caps.c). */
    const provider_caps_t *caps = provider__call_caps(c);
    if (caps->refs >= 2 && (q->identity_image || q->pose_image)) {
        json_t *imgs = json_array();
        if (q->identity_image)
            json_array_append_new(imgs, provider__data_url(q->identity_image, q->identity_len));
        if (q->pose_image)
            json_array_append_new(imgs, provider__data_url(q->pose_image, q->pose_len));
        json_object_set_new(in, "input_images", imgs);
        return in;
    }
    int used = 0;
    if (q->identity_image && caps->refs >= 1) {
        json_object_set_new(in, "input_image",
                            provider__data_url(q->identity_image, q->identity_len));
        used = 1;
    }
    if (q->pose_image && caps->refs > used)
        json_object_set_new(in, "input_image", provider__data_url(q->pose_image, q->pose_len));
    else if (q->pose_image)
        json_object_set_new(in, "control_image", provider__data_url(q->pose_image, q->pose_len));
    return in;
}

/* The submit URL and body of the call's model: an official model, or a pinned version. */
static char *rep_request(const provider_call_t *c, char *url, size_t n)
{
    const char *model = provider__call_model(c);
    const char *colon = strchr(model, ':');
    json_t *root = json_object();
    if (colon) {
        snprintf(url, n, "%s/v1/predictions", c->a->base_url);
        json_object_set_new(root, "version", json_string(colon + 1));
    } else {
        snprintf(url, n, "%s/v1/models/%s/predictions", c->a->base_url, model);
    }
    json_object_set_new(root, "input", rep_input(c));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

/* The prediction's first output URL (output is a string or an array of them), or NULL. */
static const char *rep_output(json_t *root)
{
    json_t *out = json_object_get(root, "output");
    if (json_is_array(out))
        out = json_array_get(out, 0);
    return json_string_value(out);
}

/* Keeps urls.get / urls.cancel of the first prediction seen and reports the call accepted. */
static int rep_accept(provider_call_t *c, net_resp_t *r, json_t *root)
{
    const char *id = json_string_value(json_object_get(root, "id"));
    json_t *urls = json_object_get(root, "urls");
    const char *get = json_string_value(json_object_get(urls, "get"));
    const char *cn = json_string_value(json_object_get(urls, "cancel"));
    if (id == NULL || get == NULL) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status,
                            "submit answered a prediction without id/urls.get");
        return -1;
    }
    const char *base = c->a->base_url;
    /* (A URL with a space or tab fails the check too: the resume token is space-separated.) */
    if (!provider__url_allowed(base, get, 1) || (cn && !provider__url_allowed(base, cn, 1))) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status,
                            "submit answered URLs off the provider's hosts");
        return -1;
    }
    c->status_url = gf_xstrdup(get);
    c->cancel_url = cn ? gf_xstrdup(cn) : NULL;
    gf_buf_t tok = {0};
    gf_buf_printf(&tok, "%s %s", get, cn ? cn : "-");
    char safe_id[128];
    provider__sanitize(safe_id, sizeof(safe_id), id, strlen(id));
    provider__call_accepted(c, safe_id, tok.p);
    gf_buf_dispose(&tok);
    return 0;
}

/* Acts on a prediction object (from the submit or a poll). */
static void rep_prediction(provider_call_t *c, net_resp_t *r, json_t *root)
{
    const char *st = json_string_value(json_object_get(root, "status"));
    if (st == NULL) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status, "a prediction without status");
        return;
    }
    if (c->status_url == NULL && rep_accept(c, r, root) < 0)
        return;
    const char *url = rep_output(root);
    if (url && strcmp(st, "failed") != 0 && strcmp(st, "canceled") != 0) {
        c->image_url = gf_xstrdup(url);
        c->get_failures = 0;
        provider__call_progress(c, 1, "completed");
        provider__fetch_image(c); /* at once: outputs are removed after an hour */
        return;
    }
    if (strcmp(st, "starting") == 0 || strcmp(st, "processing") == 0) {
        provider__call_progress(c, strcmp(st, "starting") == 0 ? 0 : 0.5,
                                strcmp(st, "starting") == 0 ? "queued" : "running");
        provider__call_poll_later(c, r, rep_poll);
        return;
    }
    if (strcmp(st, "succeeded") == 0) {
        if (json_is_true(json_object_get(root, "data_removed")))
            provider__call_fail(c, PROVIDER_F_URL_EXPIRED, r->status,
                                "the prediction's output was removed (data_removed)");
        else
            provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status, "succeeded without an output");
        return;
    }
    if (strcmp(st, "failed") == 0) {
        const char *e = json_string_value(json_object_get(root, "error"));
        char safe[160];
        provider__sanitize(safe, sizeof(safe), e ? e : "", e ? strlen(e) : 0);
        if (e && strcasestr(e, "nsfw"))
            provider__call_fail(c, PROVIDER_F_MODERATION_OUTPUT, r->status,
                                "Replicate flagged the output: %s", safe);
        else
            provider__call_fail(c, PROVIDER_F_SERVER, r->status, "the prediction failed: %s", safe);
        return;
    }
    if (strcmp(st, "canceled") == 0 || strcmp(st, "aborted") == 0) {
        /* Not the farm's cancel (that ends the call before any answer): Cancel-After. */
        provider__call_fail(c, PROVIDER_F_DEADLINE, r->status,
                            "Replicate %s the prediction at its Cancel-After deadline", st);
        return;
    }
    char safe[40];
    provider__sanitize(safe, sizeof(safe), st, strlen(st));
    provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status, "unknown prediction status '%s'", safe);
}

static void rep_submitted(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    if (!provider__call_submit_answered(c, r, rep_post))
        return;
    json_t *root = provider__json_load(r->body, r->len);
    if (root == NULL) {
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status, "submit answered no JSON");
        return;
    }
    rep_prediction(c, r, root);
    json_decref(root);
}

static void rep_post(provider_call_t *c)
{
    const gf_config_t *cfg = c->p->cfg;
    char url[1024], auth[512], prefer[32], cancel_after[48];
    rep_auth(c, auth, sizeof(auth));
    snprintf(prefer, sizeof(prefer), "Prefer: wait=%lld", cfg->replicate_wait_s);
    /* The provider stops the prediction when the farm would abandon it anyway. */
    uint64_t left_s = provider__call_remaining(c) / 1000;
    snprintf(cancel_after, sizeof(cancel_after), "Cancel-After: %llus",
             (unsigned long long)(left_s > 0 ? left_s : 1));
    const char *h[] = {auth, "Content-Type: application/json", prefer, cancel_after, NULL};
    char *body = rep_request(c, url, sizeof(url));
    net_req_t req = {
        .method = "POST", .url = url, .headers = h, .body = body, .body_len = strlen(body)};
    /* The answer may take the whole wait, then the submit's own time. */
    provider__http_defaults(
        c, &req, (uint64_t)(cfg->replicate_wait_s + cfg->provider_submit_timeout_s) * 1000);
    provider__http_silent(&req, (long)cfg->replicate_wait_s);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    c->submits++;
    provider__call_progress(c, -1, c->submits == 1 ? "running" : "retrying");
    provider__call_http(c, &req, rep_submitted);
    free(body);
}

static void rep_polled(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    c->xfer = NULL;
    c->last_status = r->status;
    if (r->status == 404 && r->curl_code == 0) {
        provider__call_fail(c, PROVIDER_F_LOST_JOB, r->status,
                            "Replicate does not know the prediction");
        return;
    }
    provider_fault f = provider__resp_fault(r);
    json_t *root = f == PROVIDER_F_NONE ? provider__json_load(r->body, r->len) : NULL;
    if (root == NULL) {
        if (f == PROVIDER_F_NONE)
            f = PROVIDER_F_PROTOCOL;
        if (!provider__call_retry_get(c, r, f, rep_poll))
            provider__call_fail_resp(c, r, f, "poll");
        return;
    }
    c->get_failures = 0;
    rep_prediction(c, r, root);
    json_decref(root);
}

static void rep_poll(provider_call_t *c)
{
    char auth[512];
    rep_auth(c, auth, sizeof(auth));
    const char *h[] = {auth, "Accept: application/json", NULL};
    net_req_t req = {.method = "GET", .url = c->status_url, .headers = h};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    provider__call_http(c, &req, rep_polled);
}

static void rep_submit(provider_call_t *c)
{
    if (c->req.resume == NULL) {
        rep_post(c);
        return;
    }
    char u[2][1024]; /* the prediction's get URL, its cancel URL */
    if (provider__call_resume_urls(c, "replicate", 2, u) < 0)
        return;
    c->status_url = gf_xstrdup(u[0]);
    c->cancel_url = strcmp(u[1], "-") == 0 ? NULL : gf_xstrdup(u[1]);
    rep_poll(c);
}

static void rep_cancel(provider_call_t *c)
{
    if (c->cancel_url == NULL)
        return;
    char auth[512];
    rep_auth(c, auth, sizeof(auth));
    const char *h[] = {auth, "Accept: application/json", NULL};
    net_req_t req = {.method = "POST", .url = c->cancel_url, .headers = h};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    provider__send_cancel(c, &req); /* the call ends now; the cancel outlives it */
}

const provider_ops provider_replicate_ops = {
    .name = "replicate",
    .init = rep_init,
    .submit = rep_submit,
    .cancel = rep_cancel,
    .free = NULL,
};
