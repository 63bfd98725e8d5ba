/*
 * api/main.c - farm-api: one libuv loop serving the HTTP API.
 * Exit status: 0 after a graceful stop, 1 when it cannot start, 2 on bad configuration.
 */
#include "api.h"

#include <stdlib.h>

static void on_stopped(api_t *api, void *data)
{
    (void)api;
    (void)data;
    gf_proc_signals_close();
}

static void on_signal(void *data)
{
    api_stop(data, on_stopped, NULL);
}

int main(void)
{
    gf_config_t *cfg = gf_proc_init("api");
    uv_loop_t *loop = uv_default_loop();
    gf_err_t err = {0};
    int status = 0;
    api_t *api = api_new(loop, cfg, &err);
    if (api == NULL || api_start(api, &err) < 0) {
        gf_log_err(GF_LOG_ERROR, &(gf_log_ctx){.component = "api", .action = "starting"}, &err);
        status = 1;
        if (api)
            api_stop(api, on_stopped, NULL);
    } else {
        gf_proc_signals_start(loop, on_signal, api);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    gf_proc_signals_close();
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0) {
        GF_LOG(GF_LOG_ERROR, &(gf_log_ctx){.component = "api"}, "handles left open at exit");
        status = status ? status : 1;
    }
    api_free(api);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    GF_LOG(GF_LOG_INFO, &(gf_log_ctx){.component = "api"}, "stopped");
    return status;
}
