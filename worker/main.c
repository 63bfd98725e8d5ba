/*
 * worker/main.c - farm-worker, run by the process shell of core/include/proc.h (exit
 * statuses there: 0 after a graceful stop, 1 when it cannot start, 2 on bad
 * configuration).
 */
#include "webhooks.h"
#include "worker.h"

#include <string.h>

/* A webhook's data carries the outputs' file URLs, signed with FARM_FILE_SECRET as farm-api
 * checks them: without it every URL a worker sent would be refused. */
static int worker_check(const gf_config_t *cfg, gf_err_t *err)
{
    if (strlen(cfg->file_secret) < GF_SECRET_MIN)
        return gf_err_set(err, GF_EINVAL, "config",
                          "FARM_FILE_SECRET must be set, %d characters at least, the same as "
                          "farm-api's (webhook bodies carry file URLs signed with it)",
                          GF_SECRET_MIN);
    return webhook_config_check(cfg, err); /* before it connects to anything */
}

static void *worker_create(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    return worker_new(loop, cfg, err);
}

static int worker_begin(void *w, gf_err_t *err)
{
    return worker_start(w, err);
}

static void on_stopped(worker_t *w, void *data)
{
    (void)w;
    (void)data;
    gf_proc_stopped();
}

static void worker_halt(void *w)
{
    worker_stop(w, on_stopped, NULL);
}

static void worker_release(void *w)
{
    worker_free(w);
}

int main(void)
{
    static const gf_proc_service_t worker_service = {.component = "worker",
                                                     .check = worker_check,
                                                     .create = worker_create,
                                                     .start = worker_begin,
                                                     .stop = worker_halt,
                                                     .free = worker_release};
    return gf_proc_main(&worker_service);
}
