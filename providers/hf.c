/*
 * providers/hf.c - Hugging Face Inference Providers through the router,
 * synchronous text-to-image (providers.md section 1).
 *
 * POST {base}/models/{model} with {"inputs": prompt, "parameters": {...}}
 * (flat width/height); the answer is the image itself. With a reference image
 * the image-to-image form is sent: "inputs" is the base64 image and the prompt
 * moves into "parameters" with "target_size". A multi-reference model
 * (FLUX.2, caps.c) keeps the prompt in "inputs" and takes every image as a
 * data URL in "input_images", the identity first. Which model: FARM_HF_MODEL
 * for a text-only call, FARM_HF_POSE_MODEL when it carries a reference.
 *
 * Faults: 503 with estimated_time -> wait min(estimated, cap) with jitter,
 * then resend with `x-wait-for-model: true` (never spin); 429 -> Retry-After /
 * RateLimit, else backoff; JSON on a 200 is an error unless it is one of
 * the success shapes some backends answer with: {"output":["url"]} (the URL
 * is downloaded) or {"data":[{"b64_json": base64}]} (the image inline,
 * decoded and checked like any other).
 */
#include "provider_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void hf_send(provider_call_t *c);

static int hf_init(provider_adapter_t *a, gf_err_t *err)
{
    if (a->token[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider", "hf needs FARM_HF_TOKEN");
    if (a->model[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider", "hf needs FARM_HF_MODEL");
    return 0;
}

static char *hf_body(const provider_call_t *c)
{
    const provider_req_t *q = &c->req;
    json_t *params = json_object();
    json_t *root = json_object();
    const unsigned char *ref = q->pose_image ? q->pose_image : q->identity_image;
    size_t ref_len = q->pose_image ? q->pose_len : q->identity_len;
    if (ref != NULL && provider__call_caps(c)->refs >= 2) {
        /* A multi-reference model (FLUX.2): the prompt stays in `inputs` and
         * every image goes as a data URL in `input_images`, the identity first
         * (the prompt template names it image 1, the pose image 2). */
        json_t *imgs = json_array();
        if (q->identity_image)
            json_array_append_new(imgs, provider__data_url(q->identity_image, q->identity_len));
        if (q->pose_image)
            json_array_append_new(imgs, provider__data_url(q->pose_image, q->pose_len));
        json_object_set_new(root, "inputs", json_string(q->prompt));
        json_object_set_new(root, "input_images", imgs);
        json_object_set_new(params, "width", json_integer(q->width));
        json_object_set_new(params, "height", json_integer(q->height));
    } else if (ref != NULL) {
        char *b64 = provider__base64(ref, ref_len);
        json_object_set_new(root, "inputs", json_string(b64));
        free(b64);
        json_object_set_new(params, "prompt", json_string(q->prompt));
        json_t *ts = json_object();
        json_object_set_new(ts, "width", json_integer(q->width));
        json_object_set_new(ts, "height", json_integer(q->height));
        json_object_set_new(params, "target_size", ts);
    } else {
        json_object_set_new(root, "inputs", json_string(q->prompt));
        json_object_set_new(params, "width", json_integer(q->width));
        json_object_set_new(params, "height", json_integer(q->height));
    }
    if (q->negative_prompt && *q->negative_prompt)
        json_object_set_new(params, "negative_prompt", json_string(q->negative_prompt));
    if (q->seed >= 0)
        json_object_set_new(params, "seed", json_integer(q->seed));
    if (q->steps > 0)
        json_object_set_new(params, "num_inference_steps", json_integer(q->steps));
    if (q->guidance >= 0)
        json_object_set_new(params, "guidance_scale", json_real(q->guidance));
    json_object_set_new(root, "parameters", params);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

/* The JSON success shapes some backends answer with. Returns 1 when handled. */
static int hf_json_success(provider_call_t *c, net_resp_t *r)
{
    json_t *root = provider__json_load_inline(r->body, r->len);
    if (root == NULL)
        return 0;
    int handled = 1;
    const char *url = json_string_value(json_array_get(json_object_get(root, "output"), 0));
    json_t *b64 = json_object_get(json_array_get(json_object_get(root, "data"), 0), "b64_json");
    if (url && strncmp(url, "http", 4) == 0) {
        c->image_url = gf_xstrdup(url);
        provider__fetch_image(c);
    } else if (json_is_string(b64)) {
        size_t len = 0;
        unsigned char *img =
            provider__base64_decode(json_string_value(b64), json_string_length(b64),
                                    (size_t)c->p->cfg->provider_max_image_bytes, &len);
        if (img == NULL)
            provider__call_fail(c, PROVIDER_F_BAD_BODY, r->status,
                                "data[0].b64_json is not base64 of at most %lld bytes",
                                c->p->cfg->provider_max_image_bytes);
        else
            provider__call_succeed(c, img, len); /* checks the magic bytes */
    } else {
        handled = 0;
    }
    json_decref(root);
    return handled;
}

/*
 * The reply's fault, as provider__resp_fault() reads it, but for the router's
 * 400 naming a model no provider serves on this route ("Model not supported
 * by provider together", "The requested model '...' is not supported by any
 * provider you have enabled"): not the caller's input but the route's, so
 * model_unavailable, which fails over (shared/reference/providers.md).
 */
static provider_fault hf_fault(const net_resp_t *r)
{
    provider_fault f = provider__resp_fault(r);
    if (f != PROVIDER_F_BAD_INPUT || r->status != 400)
        return f;
    char *text = provider__json_error_text(r->body, r->len);
    if (text && strcasestr(text, "not supported"))
        f = PROVIDER_F_MODEL_UNAVAILABLE;
    GF_FREE(text);
    return f;
}

static void hf_done(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    c->xfer = NULL;
    c->last_status = r->status;
    const char *rid = net_header(r, "x-request-id");
    if (rid)
        provider__sanitize(c->request_id, sizeof(c->request_id), rid, strlen(rid));
    if (r->too_big) {
        provider__call_fail(c, PROVIDER_F_TOO_BIG, r->status, "reply above %lld bytes",
                            c->p->cfg->provider_max_image_bytes);
        return;
    }
    provider_fault f = hf_fault(r);
    if (f == PROVIDER_F_NONE) {
        if (provider__looks_json(r->body, r->len) && hf_json_success(c, r))
            return;
        if (provider__sniff_image((const unsigned char *)r->body, r->len) == NULL &&
            !provider__looks_json(r->body, r->len) &&
            provider__call_retry_post(c, r, PROVIDER_F_BAD_BODY, hf_send))
            return;
        provider__accept_image(c, r);
        return;
    }
    if (f == PROVIDER_F_MODEL_LOADING) {
        double est = provider__hf_estimated_time(r->body, r->len);
        uint64_t cap = (uint64_t)c->p->cfg->provider_loading_wait_cap_ms;
        uint64_t ms = est * 1000.0 < (double)cap ? (uint64_t)(est * 1000.0) : cap;
        ms += provider__rand() % (ms / 4 + 50); /* jitter: a fleet must not resend at once */
        if (++c->waits <= 20 && ms < provider__call_remaining(c)) {
            c->wait_for_model = 1;
            provider__call_progress(c, -1, "model_loading");
            provider__call_wait(c, ms, hf_send);
            return;
        }
        provider__call_fail(c, PROVIDER_F_MODEL_LOADING, r->status,
                            "the model is still loading (estimated %.0f s)", est);
        return;
    }
    if (provider__call_retry_post(c, r, f, hf_send))
        return;
    provider__call_fail_resp(c, r, f, NULL);
}

static void hf_send(provider_call_t *c)
{
    provider_adapter_t *a = c->a;
    char url[1024], auth[512];
    snprintf(url, sizeof(url), "%s/models/%s", a->base_url, provider__call_model(c));
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->token);
    const char *headers[] = {auth, "Content-Type: application/json", "Accept: image/png",
                             c->wait_for_model ? "x-wait-for-model: true" : NULL, NULL};
    char *body = hf_body(c);
    net_req_t req = {
        .method = "POST", .url = url, .headers = headers, .body = body, .body_len = strlen(body)};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_sync_timeout_s * 1000);
    /* The image is the answer: nothing comes until it is made (or, with
     * x-wait-for-model, the model has loaded), for up to the whole phase. */
    provider__http_silent(&req, (long)c->p->cfg->provider_sync_timeout_s);
    c->submits++;
    provider__call_progress(c, -1, c->submits == 1 ? "running" : "retrying");
    provider__call_http(c, &req, hf_done);
    free(body);
}

static void hf_submit(provider_call_t *c)
{
    hf_send(c);
}

const provider_ops provider_hf_ops = {
    .name = "hf",
    .init = hf_init,
    .submit = hf_submit,
    .cancel = NULL, /* a synchronous call: aborting the transfer is the cancel */
    .free = NULL,
};
