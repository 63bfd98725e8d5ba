/*
 * api/server.c - the api process: its HTTP server, its Redis and Postgres
 * clients, the operations routes, and the order of a graceful stop
 * (HTTP first, so in-flight requests can still reach Redis and Postgres).
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One /readyz request waiting on its dependencies. */
typedef struct {
    gf_http_req_t *req;
    int pending;
    int redis, postgres, storage;
    long storage_status; /* the HTTP status S3 refused with, 0 otherwise */
} readyz_t;

static const char *dep_state(int status)
{
    switch (status) {
    case 0:
        return "ok";
    case GF_ETIMEDOUT:
        return "timeout";
    case GF_EINVAL:
    case GF_ENOTFOUND:
        return "refused";
    default:
        return "unavailable";
    }
}

static void readyz_answer(readyz_t *rz)
{
    if (--rz->pending > 0)
        return;
    char body[512];
    /* API.md: ready when Redis and Postgres answer; storage is reported, not required. */
    if (rz->redis == 0 && rz->postgres == 0) {
        snprintf(body, sizeof(body),
                 "{\"status\":\"ready\",\"redis\":\"ok\",\"postgres\":\"ok\","
                 "\"storage\":\"%s\"}",
                 dep_state(rz->storage));
        gf_http_respond(rz->req, 200, "application/json; charset=utf-8", body, strlen(body));
    } else {
        gf_buf_t which = {0};
        if (rz->redis)
            gf_buf_puts(&which, "redis");
        if (rz->postgres)
            gf_buf_printf(&which, "%spostgres", which.len ? " and " : "");
        if (rz->storage)
            gf_buf_printf(&which, "%sstorage", which.len ? " and " : "");
        const char *how =
            rz->storage && dep_state(rz->storage)[0] == 'r' && !rz->redis && !rz->postgres
                ? "refusing our requests"
                : "not answering";
        snprintf(body, sizeof(body),
                 "{\"error\":{\"code\":\"unavailable\",\"message\":\"%s %s\","
                 "\"field\":null},\"status\":\"unavailable\",\"redis\":\"%s\","
                 "\"postgres\":\"%s\",\"storage\":\"%s\"}",
                 which.p, how, dep_state(rz->redis), dep_state(rz->postgres),
                 dep_state(rz->storage));
        gf_buf_dispose(&which);
        gf_http_respond(rz->req, 503, "application/json; charset=utf-8", body, strlen(body));
    }
    free(rz);
}

static void on_storage_checked(storage_t *st, const gf_err_t *err, void *data)
{
    readyz_t *rz = data;
    (void)st;
    rz->storage = err->code;
    if (err->code < 0)
        gf_log_err(GF_LOG_WARN, &(gf_log_ctx){.component = "api"}, err);
    readyz_answer(rz);
}

static void on_redis_ping(queue_t *q, const gf_err_t *err, void *data)
{
    readyz_t *rz = data;
    (void)q;
    rz->redis = err->code;
    readyz_answer(rz);
}

static void on_pg_ping(store_t *st, const gf_err_t *err, void *data)
{
    readyz_t *rz = data;
    (void)st;
    rz->postgres = err->code;
    readyz_answer(rz);
}

static void on_readyz(gf_http_req_t *req, void *data)
{
    api_t *api = data;
    uint64_t timeout = (uint64_t)api->cfg->readyz_timeout_ms;
    readyz_t *rz = gf_xcalloc(1, sizeof(*rz));
    rz->req = req;
    /* One count per ping sent and one held here, given back last, so the
     * answer goes out once, after the last of them. */
    rz->pending = 1;
    int rc = queue_ping(api->queue, timeout, on_redis_ping, rz);
    if (rc == 0)
        rz->pending++;
    else
        rz->redis = rc;
    rc = store_ping(api->store, timeout, on_pg_ping, rz);
    if (rc == 0)
        rz->pending++;
    else
        rz->postgres = rc;
    rc = storage_check(api->storage, timeout, on_storage_checked, rz);
    if (rc == 0)
        rz->pending++;
    else
        rz->storage = rc;
    readyz_answer(rz);
}

api_t *api_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    api_t *api = gf_xcalloc(1, sizeof(*api));
    api->loop = loop;
    api->cfg = cfg;
    api->metrics = gf_metrics_new();
    api->tokens = api__token_cache_new(API_TOKEN_CACHE_SLOTS);
    api->m_credits_held = gf_metric_with(
        gf_metrics_counter(api->metrics, "farm_credits_held_total",
                           "credits held by generations this process accepted", NULL),
        NULL, NULL, NULL);
    int width = gf_proc_pool_width();
    api->decode_slots = width > 1 ? (size_t)width - 1 : 1;
    api->m_decode_bytes = gf_metric_with(
        gf_metrics_gauge(api->metrics, "farm_upload_decode_bytes",
                         "memory of the uploads this process decodes whole now (WebP, turned)",
                         NULL),
        NULL, NULL, NULL);
    api->m_decodes_waiting = gf_metric_with(
        gf_metrics_gauge(api->metrics, "farm_upload_decodes_waiting",
                         "uploads waiting for room to decode (FARM_UPLOAD_MAX_INFLIGHT_BYTES)",
                         NULL),
        NULL, NULL, NULL);
    gf_httpd_opts_t o;
    gf_proc_httpd_opts(&o, cfg, "api", api->metrics);
    o.access_log = cfg->access_log == 1;
    o.access_sample_pct = (int)cfg->access_log_sample_pct;
    o.host = cfg->api_host;
    o.port = (int)cfg->api_port;
    o.reuseport = 1;
    o.write_threads = (int)cfg->sse_write_threads;
    api->httpd = gf_httpd_new(loop, &o, err);
    if (api->httpd == NULL)
        goto fail;
    gf_proc_add_ops_routes(api->httpd, api->metrics);
    gf_httpd_route(api->httpd, "GET", "/readyz", 0, on_readyz, api);
    api__generations_routes(api);
    api__credits_routes(api);
    api__audit_routes(api);
    api__events_routes(api);
    api__files_routes(api);
    api__lifecycle_routes(api);
    api__cors_routes(api);
    api__gate_install(api);
    api__web_routes(api);
    return api;
fail:
    api_free(api);
    return NULL;
}

int api_config_check(const gf_config_t *cfg, gf_err_t *err)
{
    /* Without them farm-api would answer 401 to every request, or hand out file URLs
     * that nothing can verify. */
    if (strlen(cfg->jwt_secret) < GF_SECRET_MIN || strlen(cfg->file_secret) < GF_SECRET_MIN)
        return gf_err_set(err, GF_EINVAL, "config",
                          "FARM_JWT_SECRET and FARM_FILE_SECRET must be set, %d characters at "
                          "least",
                          GF_SECRET_MIN);
    /* A second secret that could never verify anything the first does not is a mistake. */
    const char *prev[][3] = {{cfg->jwt_secret_previous, cfg->jwt_secret, "FARM_JWT_SECRET"},
                             {cfg->file_secret_previous, cfg->file_secret, "FARM_FILE_SECRET"}};
    for (size_t i = 0; i < 2; i++) {
        if (prev[i][0][0] == '\0')
            continue;
        if (strlen(prev[i][0]) < GF_SECRET_MIN || strcmp(prev[i][0], prev[i][1]) == 0)
            return gf_err_set(err, GF_EINVAL, "config",
                              "%s_PREVIOUS must be empty, or %d characters at least and not %s",
                              prev[i][2], GF_SECRET_MIN, prev[i][2]);
    }
    if (store_config_check(cfg, err) < 0 || storage_config_check(cfg, err) < 0)
        return GF_EINVAL;
    img_presets_t *presets = img_presets_load(cfg->presets_dir, err);
    img_presets_free(presets);
    return presets ? 0 : GF_EINVAL;
}

int api_start(api_t *api, gf_err_t *err)
{
    if (img_init(api->cfg, err) < 0)
        return err ? err->code : GF_EUNAVAIL;
    api->imaging_up = 1;
    api->presets = img_presets_load(api->cfg->presets_dir, err);
    if (api->presets == NULL)
        return err ? err->code : GF_EINVAL;
    api->queue = queue_new(api->loop, api->cfg, err);
    if (api->queue == NULL)
        return err ? err->code : GF_EINVAL;
    api->store = store_new(api->loop, api->cfg, err);
    if (api->store == NULL)
        return err ? err->code : GF_EINVAL;
    if (storage_start_check(api->cfg, err) < 0)
        return err ? err->code : GF_EINVAL;
    api->storage = storage_new(api->loop, api->cfg, api->metrics, err);
    if (api->storage == NULL)
        return err ? err->code : GF_EINVAL;
    store_metrics(api->store, api->metrics);
    queue_metrics(api->queue, api->metrics);
    int rc = gf_httpd_listen(api->httpd, err);
    if (rc < 0)
        return rc;
    GF_LOG(GF_LOG_INFO, &(gf_log_ctx){.component = "api"}, "listening on http://%s:%d",
           api->cfg->api_host, gf_httpd_port(api->httpd));
    api__gauges_start(api);
    api__requeue_start(api);
    api__accept_start(api);
    api__resolve_start(api);
    return 0;
}

int api_port(const api_t *api)
{
    return gf_httpd_port(api->httpd);
}

static void api_maybe_stopped(api_t *api)
{
    if (--api->closes_pending > 0)
        return;
    if (api->stopped_cb)
        api->stopped_cb(api, api->stopped_data);
}

static void on_queue_closed(queue_t *q, void *data)
{
    (void)q;
    api_t *api = data;
    api->queue = NULL;
    api_maybe_stopped(api);
}

int api__store_exec(api_t *api, store_call_t *call, store_call_cb cb, void *data)
{
    if (api->store == NULL)
        return gf_err_set(&call->err, GF_ECANCELED, "store", "the store is closed");
    return store_exec(api->store, call, cb, data);
}

static void on_store_closed(void *data)
{
    api_t *api = data;
    api->store = NULL;
    api_maybe_stopped(api);
}

static void on_storage_closed(void *data)
{
    api_t *api = data;
    api->storage = NULL;
    api_maybe_stopped(api);
}

static void on_httpd_stopped(gf_httpd_t *h, void *data)
{
    (void)h;
    api_t *api = data;
    api->closes_pending = 1;
    api__gauges_stop(api);
    api__requeue_stop(api);
    api__accept_stop(api);
    api__resolve_stop(api);
    api__events_close_all(api); /* their watches go before the queue does */
    if (api->queue) {
        api->closes_pending++;
        queue_close(api->queue, on_queue_closed, api);
    }
    if (api->store) {
        api->closes_pending++;
        store_close(api->store, on_store_closed, api);
    }
    if (api->storage) {
        api->closes_pending++;
        storage_close(api->storage, on_storage_closed, api);
    }
    api_maybe_stopped(api);
}

void api_stop(api_t *api, api_stopped_cb cb, void *data)
{
    api->stopped_cb = cb;
    api->stopped_data = data;
    gf_httpd_stop(api->httpd, on_httpd_stopped, api);
}

void api_free(api_t *api)
{
    if (api == NULL)
        return;
    gf_httpd_free(api->httpd);
    gf_slab_dispose(&api->sse_slab); /* api/events.c's streams */
    gf_metrics_free(api->metrics);
    api__files_free(api);
    api__token_cache_free(api->tokens);
    img_presets_free(api->presets);
    if (api->imaging_up)
        img_shutdown();
    free(api);
}
