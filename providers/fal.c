/*
 * providers/fal.c - the fal.ai queue protocol (providers.md section 3).
 *
 * submit: POST {base}/{model} -> {request_id, status_url, response_url, cancel_url}
 * status: GET status_url -> 202 IN_QUEUE / IN_PROGRESS, 200 COMPLETED
 * result: GET response_url -> {"images":[{"url"}], "has_nsfw_concepts":[...]}
 *         (a failed job still reaches COMPLETED; its result is a 422/5xx)
 * image:  GET images[0].url at once (short-lived)
 * cancel: PUT cancel_url
 *
 * The returned URLs are used exactly as given: the endpoint subpath ("/dev")
 * is not in them, so rebuilding them from the submit URL would be wrong. The
 * resume token is the three URLs joined by single spaces.
 */
#include "provider_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void fal_post(provider_call_t *c);
static void fal_poll(provider_call_t *c);
static void fal_result(provider_call_t *c);

static int fal_init(provider_adapter_t *a, gf_err_t *err)
{
    if (a->token[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider", "fal needs FARM_FAL_KEY");
    return 0;
}

static void fal_headers(const provider_call_t *c, char *auth, size_t n, const char *h[4])
{
    snprintf(auth, n, "Authorization: Key %s", c->a->token);
    h[0] = auth;
    h[1] = "Accept: application/json";
    h[2] = "Content-Type: application/json";
    h[3] = NULL;
}

static char *fal_body(const provider_call_t *c)
{
    const provider_req_t *q = &c->req;
    json_t *root = json_object();
    json_object_set_new(root, "prompt", json_string(q->prompt));
    json_t *size = json_object();
    json_object_set_new(size, "width", json_integer(q->width));
    json_object_set_new(size, "height", json_integer(q->height));
    json_object_set_new(root, "image_size", size);
    if (q->steps > 0)
        json_object_set_new(root, "num_inference_steps", json_integer(q->steps));
    if (q->guidance >= 0)
        json_object_set_new(root, "guidance_scale", json_real(q->guidance));
    if (q->seed >= 0)
        json_object_set_new(root, "seed", json_integer(q->seed));
    json_object_set_new(root, "num_images", json_integer(1));
    json_object_set_new(root, "enable_safety_checker", json_true());
    json_object_set_new(root, "output_format", json_string("png"));
    const unsigned char *ref = q->pose_image ? q->pose_image : q->identity_image;
    size_t ref_len = q->pose_image ? q->pose_len : q->identity_len;
    if (ref && provider__call_caps(c)->refs >= 2) {
        /* FLUX.2 edit: every reference in image_urls[], the identity first. */
        json_t *urls = json_array();
        if (q->identity_image)
            json_array_append_new(urls, provider__data_url(q->identity_image, q->identity_len));
        if (q->pose_image)
            json_array_append_new(urls, provider__data_url(q->pose_image, q->pose_len));
        json_object_set_new(root, "image_urls", urls);
    } else if (ref) {
        json_object_set_new(root, "image_url", provider__data_url(ref, ref_len));
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static void fal_submitted(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    if (!provider__call_submit_answered(c, r, fal_post))
        return;
    json_t *root = provider__json_load(r->body, r->len);
    const char *id = json_string_value(json_object_get(root, "request_id"));
    const char *st = json_string_value(json_object_get(root, "status_url"));
    const char *rs = json_string_value(json_object_get(root, "response_url"));
    const char *cn = json_string_value(json_object_get(root, "cancel_url"));
    if (!id || !st || !rs) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status,
                            "submit answered without request_id/status_url/response_url");
        return;
    }
    const char *base = c->a->base_url;
    /* (A URL with a space or tab fails the check too: the resume token is space-separated.) */
    if (!provider__url_allowed(base, st, 1) || !provider__url_allowed(base, rs, 1) ||
        (cn && !provider__url_allowed(base, cn, 1))) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status,
                            "submit answered URLs off the provider's hosts");
        return;
    }
    c->status_url = gf_xstrdup(st);
    c->result_url = gf_xstrdup(rs);
    c->cancel_url = cn ? gf_xstrdup(cn) : NULL;
    gf_buf_t tok = {0};
    gf_buf_printf(&tok, "%s %s %s", st, rs, cn ? cn : "-");
    char safe_id[128];
    provider__sanitize(safe_id, sizeof(safe_id), id, strlen(id));
    json_decref(root);
    provider__call_accepted(c, safe_id, tok.p);
    gf_buf_dispose(&tok);
    provider__call_progress(c, 0, "queued");
    provider__call_poll_later(c, NULL, fal_poll);
}

static void fal_post(provider_call_t *c)
{
    char url[1024], auth[512];
    const char *h[4];
    snprintf(url, sizeof(url), "%s/%s", c->a->base_url, provider__call_model(c));
    fal_headers(c, auth, sizeof(auth), h);
    char *body = fal_body(c);
    net_req_t req = {
        .method = "POST", .url = url, .headers = h, .body = body, .body_len = strlen(body)};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    c->submits++;
    provider__call_http(c, &req, fal_submitted);
    free(body);
}

static void fal_status(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    c->xfer = NULL;
    c->last_status = r->status;
    provider_fault f = provider__resp_fault(r);
    json_t *root =
        f == PROVIDER_F_NONE || r->status == 404 ? provider__json_load(r->body, r->len) : NULL;
    const char *st = json_string_value(json_object_get(root, "status"));
    if (r->status == 404 || (st && strcmp(st, "NOT_FOUND") == 0)) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_LOST_JOB, r->status, "fal does not know the request");
        return;
    }
    if (f != PROVIDER_F_NONE || st == NULL) {
        json_decref(root);
        if (f == PROVIDER_F_NONE)
            f = PROVIDER_F_PROTOCOL;
        if (!provider__call_retry_get(c, r, f, fal_poll))
            provider__call_fail_resp(c, r, f, "status");
        return;
    }
    c->get_failures = 0;
    if (strcmp(st, "COMPLETED") == 0) {
        json_decref(root);
        provider__call_progress(c, 1, "completed");
        fal_result(c);
        return;
    }
    provider__call_progress(c, strcmp(st, "IN_QUEUE") == 0 ? 0 : 0.5,
                            strcmp(st, "IN_QUEUE") == 0 ? "queued" : "running");
    json_decref(root);
    provider__call_poll_later(c, r, fal_poll);
}

/* A GET of one of the URLs fal returned, answered with JSON. */
static void fal_get(provider_call_t *c, const char *url, net_done_cb done)
{
    char auth[512];
    const char *h[4];
    fal_headers(c, auth, sizeof(auth), h);
    h[2] = NULL;
    net_req_t req = {.method = "GET", .url = url, .headers = h};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    provider__call_http(c, &req, done);
}

static void fal_poll(provider_call_t *c)
{
    fal_get(c, c->status_url, fal_status);
}

static void fal_result_done(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    c->xfer = NULL;
    c->last_status = r->status;
    if (r->status == 404 && r->curl_code == 0) {
        /* As on the status URL: fal no longer knows the request (only a
         * submit's 404 means the model is not there). */
        provider__call_fail(c, PROVIDER_F_LOST_JOB, r->status, "fal does not know the request");
        return;
    }
    provider_fault f = provider__resp_fault(r);
    if (f != PROVIDER_F_NONE) {
        const char *retryable = net_header(r, "x-fal-retryable");
        const char *etype = net_header(r, "x-fal-error-type");
        if (etype && strstr(etype, "content_policy")) {
            provider__call_fail_resp(c, r, PROVIDER_F_MODERATION_INPUT, "result");
            return;
        }
        /* The app's own failure: X-Fal-Retryable says whether running it again may help. */
        if (f == PROVIDER_F_BAD_INPUT && retryable && strcmp(retryable, "true") == 0)
            f = PROVIDER_F_SERVER;
        if (f != PROVIDER_F_BAD_INPUT && provider__call_retry_get(c, r, f, fal_result))
            return;
        provider__call_fail_resp(c, r, f, "result");
        return;
    }
    json_t *root = provider__json_load(r->body, r->len);
    json_t *img = json_array_get(json_object_get(root, "images"), 0);
    const char *url = json_string_value(json_object_get(img, "url"));
    int nsfw = json_is_true(json_array_get(json_object_get(root, "has_nsfw_concepts"), 0));
    if (nsfw) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_MODERATION_OUTPUT, r->status,
                            "fal flagged the output (has_nsfw_concepts)");
        return;
    }
    if (url == NULL) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status, "the result has no images[0].url");
        return;
    }
    c->image_url = gf_xstrdup(url);
    json_decref(root);
    c->get_failures = 0;
    provider__fetch_image(c);
}

static void fal_result(provider_call_t *c)
{
    fal_get(c, c->result_url, fal_result_done);
}

static void fal_submit(provider_call_t *c)
{
    if (c->req.resume == NULL) {
        fal_post(c);
        return;
    }
    char u[3][1024]; /* status, result, cancel */
    if (provider__call_resume_urls(c, "fal", 3, u) < 0)
        return;
    c->status_url = gf_xstrdup(u[0]);
    c->result_url = gf_xstrdup(u[1]);
    c->cancel_url = strcmp(u[2], "-") == 0 ? NULL : gf_xstrdup(u[2]);
    fal_poll(c);
}

static void fal_cancel(provider_call_t *c)
{
    if (c->cancel_url == NULL)
        return;
    char auth[512];
    const char *h[4];
    fal_headers(c, auth, sizeof(auth), h);
    net_req_t req = {.method = "PUT", .url = c->cancel_url, .headers = h};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    provider__send_cancel(c, &req); /* the call ends now; the cancel outlives it */
}

const provider_ops provider_fal_ops = {
    .name = "fal",
    .init = fal_init,
    .submit = fal_submit,
    .cancel = fal_cancel,
    .free = NULL,
};
