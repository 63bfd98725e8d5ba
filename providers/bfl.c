/*
 * providers/bfl.c - Black Forest Labs (providers.md section 2).
 *
 * submit: POST {base}/v1/{model} (x-key) -> {"id", "polling_url"}
 * poll:   GET polling_url exactly as returned (its host may be regional and
 *         differ from the submit host; the global host answers 404 for it)
 *         -> {"status": Pending|Ready|Error|Content Moderated|
 *             Request Moderated|Task not found, "result": {"sample"}}
 *         A 422 may still carry a task object: the body is read first.
 * image:  GET result.sample at once with no key (a signed URL, ~10 min).
 *
 * The resume token is the polling_url.
 */
#include "provider_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void bfl_post(provider_call_t *c);
static void bfl_poll(provider_call_t *c);

static int bfl_init(provider_adapter_t *a, gf_err_t *err)
{
    if (a->token[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider", "bfl needs FARM_BFL_KEY");
    return 0;
}

/* Sets reference `n` (1: input_image, 2: input_image_2...) to the base64 of `b`. */
static void set_b64(json_t *root, int n, const unsigned char *b, size_t len)
{
    char key[32];
    if (n == 1)
        snprintf(key, sizeof(key), "input_image");
    else
        snprintf(key, sizeof(key), "input_image_%d", n);
    char *b64 = provider__base64(b, len);
    json_object_set_new(root, key, json_string(b64));
    free(b64);
}

static char *bfl_body(const provider_call_t *c)
{
    const provider_req_t *q = &c->req;
    json_t *root = json_object();
    json_object_set_new(root, "prompt", json_string(q->prompt));
    json_object_set_new(root, "width", json_integer(q->width));
    json_object_set_new(root, "height", json_integer(q->height));
    if (q->seed >= 0)
        json_object_set_new(root, "seed", json_integer(q->seed));
    if (q->steps > 0)
        json_object_set_new(root, "steps", json_integer(q->steps));
    if (q->guidance >= 0)
        json_object_set_new(root, "guidance", json_real(q->guidance));
    json_object_set_new(root, "output_format", json_string("png"));
    json_object_set_new(root, "safety_tolerance", json_integer(2));
    /* References in order, the identity first (input_image, input_image_2 on
     * FLUX.2; Kontext takes input_image alone); a pose map goes as
     * control_image to a model that takes no reference (canny/depth). The
     * chain only gives this adapter what its model takes (caps.c). */
    const provider_caps_t *caps = provider__call_caps(c);
    int nref = 0;
    if (q->identity_image)
        set_b64(root, ++nref, q->identity_image, q->identity_len);
    if (q->pose_image && caps->refs > nref)
        set_b64(root, ++nref, q->pose_image, q->pose_len);
    else if (q->pose_image) {
        char *b64 = provider__base64(q->pose_image, q->pose_len);
        json_object_set_new(root, "control_image", json_string(b64));
        free(b64);
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static void bfl_submitted(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    if (!provider__call_submit_answered(c, r, bfl_post))
        return;
    json_t *root = provider__json_load(r->body, r->len);
    const char *id = json_string_value(json_object_get(root, "id"));
    const char *url = json_string_value(json_object_get(root, "polling_url"));
    if (id == NULL || url == NULL) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status,
                            "submit answered without id/polling_url");
        return;
    }
    if (!provider__url_allowed(c->a->base_url, url, 1)) {
        json_decref(root);
        provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status,
                            "submit answered a polling_url off the provider's hosts");
        return;
    }
    c->status_url = gf_xstrdup(url);
    char safe_id[128];
    provider__sanitize(safe_id, sizeof(safe_id), id, strlen(id));
    json_decref(root);
    provider__call_accepted(c, safe_id, c->status_url);
    provider__call_progress(c, 0, "queued");
    provider__call_poll_later(c, r, bfl_poll);
}

static void bfl_post(provider_call_t *c)
{
    char url[1024], key[512];
    snprintf(url, sizeof(url), "%s/v1/%s", c->a->base_url, provider__call_model(c));
    snprintf(key, sizeof(key), "x-key: %s", c->a->token);
    const char *h[] = {key, "Content-Type: application/json", "Accept: application/json", NULL};
    char *body = bfl_body(c);
    net_req_t req = {
        .method = "POST", .url = url, .headers = h, .body = body, .body_len = strlen(body)};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    c->submits++;
    provider__call_http(c, &req, bfl_submitted);
    free(body);
}

/* Acts on a task object's status. Returns 0 when `st` is not a known status. */
static int bfl_task(provider_call_t *c, net_resp_t *r, json_t *root, const char *st)
{
    if (strcmp(st, "Pending") == 0 || strcmp(st, "Processing") == 0 || strcmp(st, "Queued") == 0) {
        json_t *pr = json_object_get(root, "progress");
        provider__call_progress(c, json_is_number(pr) ? json_number_value(pr) : -1, "running");
        provider__call_poll_later(c, r, bfl_poll);
        return 1;
    }
    if (strcmp(st, "Ready") == 0) {
        const char *sample =
            json_string_value(json_object_get(json_object_get(root, "result"), "sample"));
        if (sample == NULL) {
            provider__call_fail(c, PROVIDER_F_PROTOCOL, r->status, "Ready without result.sample");
            return 1;
        }
        c->image_url = gf_xstrdup(sample);
        c->get_failures = 0;
        provider__call_progress(c, 1, "completed");
        provider__fetch_image(c); /* at once: the signed URL is short-lived */
        return 1;
    }
    if (strcmp(st, "Request Moderated") == 0)
        provider__call_fail(c, PROVIDER_F_MODERATION_INPUT, r->status, "BFL moderated the request");
    else if (strcmp(st, "Content Moderated") == 0)
        provider__call_fail(c, PROVIDER_F_MODERATION_OUTPUT, r->status, "BFL moderated the output");
    else if (strcmp(st, "Task not found") == 0)
        provider__call_fail(c, PROVIDER_F_LOST_JOB, r->status, "BFL: Task not found");
    else if (strcmp(st, "Error") == 0 || strcmp(st, "Failed") == 0)
        provider__call_fail(c, PROVIDER_F_SERVER, r->status, "BFL reported status Error");
    else
        return 0;
    return 1;
}

static void bfl_polled(net_resp_t *r, void *data)
{
    provider_call_t *c = data;
    c->xfer = NULL;
    c->last_status = r->status;
    provider_fault f = provider__resp_fault(r);
    /* The body first: a 422 (or a 404) may still carry a task object. */
    json_t *root = r->curl_code == 0 ? provider__json_load(r->body, r->len) : NULL;
    const char *st = json_string_value(json_object_get(root, "status"));
    if (st && (r->status < 500) && bfl_task(c, r, root, st)) {
        if (r->status < 300)
            c->get_failures = 0;
        json_decref(root);
        return;
    }
    json_decref(root);
    if (r->status == 404) {
        provider__call_fail(c, PROVIDER_F_LOST_JOB, r->status, "the polling URL answered 404");
        return;
    }
    if (r->status == 202) {
        provider__call_poll_later(c, r, bfl_poll);
        return;
    }
    if (f == PROVIDER_F_NONE)
        f = PROVIDER_F_PROTOCOL;
    if (!provider__call_retry_get(c, r, f, bfl_poll))
        provider__call_fail_resp(c, r, f, "poll");
}

static void bfl_poll(provider_call_t *c)
{
    char key[512];
    snprintf(key, sizeof(key), "x-key: %s", c->a->token);
    const char *h[] = {key, "Accept: application/json", NULL};
    net_req_t req = {.method = "GET", .url = c->status_url, .headers = h};
    provider__http_defaults(c, &req, (uint64_t)c->p->cfg->provider_submit_timeout_s * 1000);
    req.max_bytes = PROVIDER_JSON_MAX_BYTES;
    provider__call_http(c, &req, bfl_polled);
}

static void bfl_submit(provider_call_t *c)
{
    if (c->req.resume) {
        if (!provider__url_allowed(c->a->base_url, c->req.resume, 1)) {
            provider__call_fail(c, PROVIDER_F_PROTOCOL, 0,
                                "the resume URL is off the provider's hosts");
            return;
        }
        c->status_url = gf_xstrdup(c->req.resume);
        bfl_poll(c);
        return;
    }
    bfl_post(c);
}

const provider_ops provider_bfl_ops = {
    .name = "bfl",
    .init = bfl_init,
    .submit = bfl_submit,
    .cancel = NULL, /* BFL has no cancel endpoint: the poll stops, the task runs out */
    .free = NULL,
};
