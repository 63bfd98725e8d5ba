/*
 * worker/main.c - farm-worker. Exit status: 0 after a graceful stop, 1 when it
 * cannot start, 2 on bad configuration.
 */
#include "worker.h"

static void on_stopped(worker_t *w, void *data)
{
    (void)w;
    (void)data;
    gf_proc_signals_close();
}

static void on_signal(void *data)
{
    worker_stop(data, on_stopped, NULL);
}

int main(void)
{
    gf_config_t *cfg = gf_proc_init("worker");
    uv_loop_t *loop = uv_default_loop();
    gf_err_t err = {0};
    int status = 0;
    worker_t *w = worker_new(loop, cfg, &err);
    if (w == NULL || worker_start(w, &err) < 0) {
        gf_log_err(GF_LOG_ERROR, &(gf_log_ctx){.component = "worker", .action = "starting"}, &err);
        status = 1;
        if (w)
            worker_stop(w, on_stopped, NULL);
    } else {
        gf_proc_signals_start(loop, on_signal, w);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    gf_proc_signals_close();
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0)
        status = status ? status : 1;
    worker_free(w);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    return status;
}
