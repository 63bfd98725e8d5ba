/*
 * api/main.c - farm-api: one libuv loop per process serving the HTTP API.
 *
 * With FARM_API_PROCESSES > 1 (0: one per core) the first process forks that
 * many children, each with its own loop on the same port (SO_REUSEPORT), and
 * supervises them: SIGTERM and SIGINT are passed on, a child that dies on its
 * own is started again, and the parent exits once every child has.
 * Exit status: 0 after a graceful stop, 1 when it cannot start, 2 on bad
 * configuration.
 */
#include "api.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* One process: its loop, its api, until a signal stops it. */
static int run_api(gf_config_t *cfg)
{
    uv_loop_t *loop = uv_default_loop();
    gf_err_t err = {0};
    int status = 0;
    api_t *api = api_new(loop, cfg, &err);
    if (api == NULL || api_start(api, &err) < 0) {
        gf_log_err(GF_LOG_ERROR, &(gf_log_ctx){.component = "api", .action = "starting"}, &err);
        /* A bad setting is 2: the supervisor does not start it again. */
        status = err.code == GF_EINVAL ? 2 : 1;
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
    return status;
}

static volatile sig_atomic_t stop_signal;

static void on_parent_signal(int sig)
{
    stop_signal = sig;
}

static pid_t spawn(gf_config_t *cfg)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        int status = run_api(cfg);
        gf_cfg_free(cfg);
        gf_log_clear_secrets();
        _exit(status);
    }
    return pid;
}

/* The parent of several api processes: it forks, passes signals on, restarts crashes. */
static int supervise(gf_config_t *cfg, int n)
{
    const gf_log_ctx ctx = {.component = "api"};
    pid_t *kids = gf_xcalloc((size_t)n, sizeof(pid_t));
    struct sigaction sa = {.sa_handler = on_parent_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    GF_LOG(GF_LOG_INFO, &ctx, "starting %d api processes on port %lld", n, cfg->api_port);
    for (int i = 0; i < n; i++)
        kids[i] = spawn(cfg);
    int alive = n, status = 0, forwarded = 0;
    while (alive > 0) {
        if (stop_signal && !forwarded) {
            forwarded = 1;
            for (int i = 0; i < n; i++)
                if (kids[i] > 0)
                    kill(kids[i], stop_signal);
        }
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (kids[i] != pid)
                continue;
            int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
            if (!stop_signal && code != 2) {
                GF_LOG(GF_LOG_ERROR, &ctx, "api process %d ended with %d: starting another",
                       (int)pid, code);
                sleep(1); /* a process that cannot start must not spin */
                kids[i] = spawn(cfg);
                break;
            }
            kids[i] = 0;
            alive--;
            if (code != 0)
                status = code;
        }
    }
    free(kids);
    return status;
}

/* The shortest secret accepted: a guessable one signs tokens and file URLs for anyone. */
#define API_SECRET_MIN 16

int main(void)
{
    gf_config_t *cfg = gf_proc_init("api");
    /* Without them farm-api would start and answer 401 to every request, or
     * hand out file URLs that nothing can verify. */
    if (strlen(cfg->jwt_secret) < API_SECRET_MIN || strlen(cfg->file_secret) < API_SECRET_MIN) {
        GF_LOG(GF_LOG_ERROR, &(gf_log_ctx){.component = "api"},
               "configuration error: FARM_JWT_SECRET and FARM_FILE_SECRET must be set, %d "
               "characters at least",
               API_SECRET_MIN);
        gf_cfg_free(cfg);
        return 2;
    }
    int n = cfg->api_processes > 0 ? (int)cfg->api_processes : (int)uv_available_parallelism();
    /* Several processes only share a port that is known before they bind. */
    int status = n > 1 && cfg->api_port != 0 ? supervise(cfg, n) : run_api(cfg);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    GF_LOG(GF_LOG_INFO, &(gf_log_ctx){.component = "api"}, "stopped");
    return status;
}
