/*
 * tests/support/providers_util.c - see providers_util.h.
 */
#include "providers_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "support.h"

void pt_fake_start(pt_fake_t *f, const char *const *args)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/farm-fake-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char portfile[300], logfile[300];
    snprintf(portfile, sizeof(portfile), "%s/port", f->dir);
    snprintf(logfile, sizeof(logfile), "%s/fake.log", f->dir);
    const char *argv[32] = {FAKE_BIN, "--port-file", portfile, "--retry-after", "0"};
    int n = 5;
    for (const char *const *a = args; a && *a && n < 30; a++)
        argv[n++] = *a;
    f->pid = ts_spawn((char *const *)argv, NULL, logfile);
    f->port = ts_wait_port_file(portfile, 20);
    assert_true(f->port > 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
}

void pt_fake_stop(pt_fake_t *f)
{
    int rc = f->pid > 0 ? ts_stop(f->pid, 15 /* SIGTERM */, 10) : 0;
    if (rc != 0)
        ts_sh("tail -n 40 '%s/fake.log' >&2", f->dir);
    ts_sh("rm -rf '%s'", f->dir);
    assert_int_equal(rc, 0);
    f->pid = 0;
}

char *pt_fake_log(const pt_fake_t *f)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/__fake/log", f->base);
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    char *s = strdup(r.body);
    ts_http_dispose(&r);
    return s;
}

long pt_fake_count(const pt_fake_t *f, const char *endpoint)
{
    char *s = pt_fake_log(f);
    json_t *root = json_loads(s, 0, NULL);
    free(s);
    long n = (long)json_integer_value(json_object_get(json_object_get(root, "counts"), endpoint));
    json_decref(root);
    return n;
}

void pt_fake_post(const pt_fake_t *f, const char *what, const char *json)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/__fake/%s", f->base, what);
    static const char *const h[] = {"Content-Type: application/json", NULL};
    ts_http_t r = ts_http("POST", url, h, json, strlen(json));
    assert_int_equal(r.status, 200);
    ts_http_dispose(&r);
}

gf_config_t *pt_config(const pt_fake_t *f, const char *provider, const char *const *extra)
{
    char hf[128], fal[128], bfl[128], rep[128], fake[128], prov[64];
    snprintf(hf, sizeof(hf), "FARM_HF_BASE_URL=%s/hf", f ? f->base : "http://127.0.0.1:9");
    snprintf(fal, sizeof(fal), "FARM_FAL_BASE_URL=%s/fal", f ? f->base : "http://127.0.0.1:9");
    snprintf(bfl, sizeof(bfl), "FARM_BFL_BASE_URL=%s/bfl", f ? f->base : "http://127.0.0.1:9");
    snprintf(rep, sizeof(rep), "FARM_REPLICATE_BASE_URL=%s/replicate",
             f ? f->base : "http://127.0.0.1:9");
    snprintf(fake, sizeof(fake), "FARM_FAKE_PROVIDER_URL=%s", f ? f->base : "http://127.0.0.1:9");
    snprintf(prov, sizeof(prov), "FARM_PROVIDER=%s", provider);
    const char *env[64] = {
        hf, fal, bfl, rep, fake, prov, "FARM_HF_TOKEN=hf_test_token_123",
        "FARM_FAL_KEY=fal_test_key_123", "FARM_BFL_KEY=bfl_test_key_123",
        "FARM_REPLICATE_TOKEN=r8_test_token_123",
        /* A model that takes any size (custom width/height): the protocol
         * tests ask small ones. FLUX.1 schnell, the default, makes only
         * its aspect ratios' sizes; its own tests name it. */
        "FARM_REPLICATE_MODEL=black-forest-labs/flux-1.1-pro", "FARM_LOG_LEVEL=error",
        "FARM_PROVIDER_BACKOFF_BASE_MS=20", "FARM_PROVIDER_BACKOFF_CAP_MS=200",
        "FARM_PROVIDER_POLL_MIN_MS=20", "FARM_PROVIDER_POLL_MAX_MS=100",
        "FARM_PROVIDER_LOADING_WAIT_CAP_MS=100", "FARM_PROVIDER_MAX_RETRIES=3",
        "FARM_PROVIDER_DEADLINE_S=30", "FARM_PROVIDER_SUBMIT_TIMEOUT_S=10",
        "FARM_PROVIDER_SYNC_TIMEOUT_S=10", "FARM_PROVIDER_DOWNLOAD_TIMEOUT_S=10",
        "FARM_PROVIDER_LOW_SPEED_TIME_S=2", "FARM_PROVIDER_CONNECT_TIMEOUT_MS=2000"};
    int n = 23;
    for (const char *const *e = extra; e && *e && n < 62; e++) {
        /* An override replaces an earlier row of the same name. */
        size_t k = strcspn(*e, "=");
        int replaced = 0;
        for (int i = 0; i < n; i++)
            if (strncmp(env[i], *e, k + 1) == 0)
                env[i] = *e, replaced = 1;
        if (!replaced)
            env[n++] = *e;
    }
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load((char *const *)env, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err.msg);
    gf_log_min_level = (int)cfg->log_level;
    return cfg;
}

provider_req_t pt_req(const char *prompt, int w, int h)
{
    return (provider_req_t){
        .prompt = prompt, .width = w, .height = h, .seed = 42, .steps = 4, .guidance = -1};
}

static void on_done(provider_call_t *call, const gf_err_t *err, const provider_result_t *res,
                    void *data)
{
    (void)call;
    pt_result_t *r = data;
    r->done++;
    r->status = err->code;
    r->done_at = ts_now();
    r->call = NULL;
    const provider_image_t *img = res->image;
    const provider_error_t *e = res->error;
    if (img) {
        r->img = malloc(img->len);
        memcpy(r->img, img->bytes, img->len);
        r->len = img->len;
        snprintf(r->mime, sizeof(r->mime), "%s", img->mime);
        snprintf(r->provider, sizeof(r->provider), "%s", img->provider);
    }
    if (e) {
        r->err = *e;
        snprintf(r->provider, sizeof(r->provider), "%s", e->provider);
    }
}

static void on_closed(provider_t *p, void *data);

static void on_accepted(provider_call_t *call, const char *provider, const char *id,
                        const char *resume, void *data)
{
    pt_result_t *r = data;
    snprintf(r->accepted_id, sizeof(r->accepted_id), "%s", id);
    snprintf(r->resume, sizeof(r->resume), "%s", resume ? resume : "");
    snprintf(r->resume_provider, sizeof(r->resume_provider), "%s", provider);
    if (r->cancel_on_accept) {
        provider_cancel(call);
        if (r->close_after_cancel)
            provider_close(r->close_after_cancel, on_closed, &r->closed);
    } else if (r->abandon_on_accept)
        provider_abandon(call);
}

static void on_progress(provider_call_t *call, double p, const char *stage, void *data)
{
    (void)call;
    (void)p;
    (void)stage;
    ((pt_result_t *)data)->progress_calls++;
}

int pt_try_submit(provider_t *p, const provider_req_t *req, pt_result_t *res, gf_err_t *err)
{
    provider_cbs_t cbs = {
        .done = on_done, .accepted = on_accepted, .progress = on_progress, .data = res};
    return provider_submit(p, req, &cbs, &res->call, err);
}

void pt_submit(provider_t *p, const provider_req_t *req, pt_result_t *res)
{
    gf_err_t err = {0};
    int rc = pt_try_submit(p, req, res, &err);
    if (rc != 0)
        fail_msg("provider_submit: %s", err.msg);
}

void pt_run(uv_loop_t *loop, provider_t *p, const provider_req_t *req, pt_result_t *res)
{
    pt_submit(p, req, res);
    double until = ts_now() + 120;
    while (!res->done && ts_now() < until)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(res->done, 1);
}

void pt_run_one(const char *provider, const char *const *extra, const provider_req_t *req,
                pt_result_t *res)
{
    gf_config_t *cfg = pt_config(&fake, provider, extra);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    assert_non_null(p);
    pt_run(&loop, p, req, res);
    pt_close(&loop, p, cfg);
}

static void on_spin(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

void pt_spin(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_spin, ms, 0);
    while (!fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

void pt_result_dispose(pt_result_t *r)
{
    free(r->img);
    memset(r, 0, sizeof(*r));
}

static void on_closed(provider_t *p, void *data)
{
    (void)p;
    *(int *)data = 1;
}

void pt_close(uv_loop_t *loop, provider_t *p, gf_config_t *cfg)
{
    int closed = 0;
    provider_close(p, on_closed, &closed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    gf_cfg_free(cfg);
}

void pt_png_size(const unsigned char *b, size_t n, int *w, int *h)
{
    *w = *h = 0;
    if (n < 24 || memcmp(b, "\x89PNG", 4) != 0)
        return;
    *w = (int)((unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19]);
    *h = (int)((unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23]);
}

pt_fake_t fake;
uv_loop_t loop;

int pt_suite_setup(void **state)
{
    (void)state;
    pt_fake_start(&fake, NULL);
    return uv_loop_init(&loop);
}

int pt_suite_teardown(void **state)
{
    (void)state;
    pt_fake_stop(&fake);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

void pt_run_resumed(provider_t *p, const char *prompt, const char *token, const char *provider,
                    pt_result_t *r)
{
    *r = (pt_result_t){0};
    provider_req_t q = pt_req(prompt, 64, 64);
    q.resume = token;
    q.resume_provider = provider;
    pt_run(&loop, p, &q, r);
}

long pt_fake_wait_one(const char *endpoint)
{
    double until = ts_now() + 10;
    while (pt_fake_count(&fake, endpoint) < 1 && ts_now() < until)
        pt_spin(&loop, 50);
    return pt_fake_count(&fake, endpoint);
}

void pt_cancel_mid_flight(const char *provider, const char *prompt, const char *endpoint,
                          pt_result_t *r)
{
    gf_config_t *cfg = pt_config(&fake, provider, NULL);
    provider_t *p = provider_new(&loop, cfg, NULL, NULL);
    *r = (pt_result_t){.cancel_on_accept = 1};
    provider_req_t q = pt_req(prompt, 64, 64);
    pt_run(&loop, p, &q, r);
    assert_int_equal(r->status, GF_ECANCELED);
    assert_int_equal(r->err.code, PROVIDER_E_CANCELED);
    assert_int_equal(pt_fake_wait_one(endpoint), 1);
    pt_close(&loop, p, cfg);
}

int pt_suite_reset(void **state, const char *config_json)
{
    (void)state;
    pt_fake_post(&fake, "reset", "{}");
    pt_fake_post(&fake, "config", config_json);
    return 0;
}

void pt_run_to_acceptance(provider_t *p, provider_req_t *q, int abandon, pt_result_t *first)
{
    *first = (pt_result_t){.cancel_on_accept = !abandon, .abandon_on_accept = abandon};
    pt_run(&loop, p, q, first);
    assert_int_equal(first->status, GF_ECANCELED);
    assert_true(first->resume[0] != '\0');
    q->resume = first->resume;
    q->resume_provider = first->resume_provider;
}
