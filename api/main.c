/*
 * api/main.c - farm-api: one libuv loop per process serving the HTTP API, run
 * by the process shell of core/include/proc.h (exit statuses there: 0 after a
 * graceful stop, 1 when it cannot start, 2 on bad configuration).
 *
 * With FARM_API_PROCESSES > 1 (0: one per core) the first process forks that
 * many children, each running the shell's gf_proc_serve() on its own loop on
 * the same port (SO_REUSEPORT), and supervises them: its SIGTERM or SIGINT is
 * passed on as SIGUSR2, which a child takes as a graceful stop that is never a
 * "second signal" (it may have had the same SIGTERM directly), a child that dies on its own is
 * started again (unless it exited 2: a bad setting stays bad), and the parent exits once every
 * child has.
 */
#include "api.h"
#include "webhooks.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- the api as the shell's service ---------------------------------------------- */

/* With a webhook secret no worker can use, farm-api would take webhook_url and no
 * webhook would ever be sent. */
static int api_check(const gf_config_t *cfg, gf_err_t *err)
{
    if (api_config_check(cfg, err) < 0)
        return GF_EINVAL;
    return webhook_config_check(cfg, err);
}

static void *api_create(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err)
{
    return api_new(loop, cfg, err);
}

static int api_begin(void *api, gf_err_t *err)
{
    return api_start(api, err);
}

static void on_stopped(api_t *api, void *data)
{
    (void)api;
    (void)data;
    gf_proc_stopped();
}

static void api_halt(void *api)
{
    api_stop(api, on_stopped, NULL);
}

static void api_release(void *api)
{
    api_free(api);
}

/* --- several processes ------------------------------------------------------------ */

static volatile sig_atomic_t stop_signal;

static void on_parent_signal(int sig)
{
    stop_signal = sig;
}

static pid_t spawn(const gf_proc_service_t *svc, gf_config_t *cfg)
{
    /* The child starts with SIGTERM and SIGINT blocked: one that comes before its
     * handlers exist waits for them (gf_proc_serve) instead of killing it (143). */
    sigset_t old;
    gf_proc_stop_signals(SIG_BLOCK, &old);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        int status = gf_proc_serve(svc, cfg);
        gf_cfg_free(cfg);
        gf_log_clear_secrets();
        _exit(status);
    }
    return pid;
}

/* The parent of several api processes: it forks, passes signals on, restarts crashes. */
static int supervise(const gf_proc_service_t *svc, gf_config_t *cfg, int n)
{
    const gf_log_ctx ctx = {.component = "api"};
    pid_t *kids = gf_xcalloc((size_t)n, sizeof(pid_t));
    struct sigaction sa = {.sa_handler = on_parent_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    /* gf_proc_main blocked them until a handler exists: these are the parent's. */
    gf_proc_stop_signals(SIG_UNBLOCK, NULL);
    GF_LOG(GF_LOG_INFO, &ctx, "starting %d api processes on port %lld", n, cfg->api_port);
    for (int i = 0; i < n; i++)
        kids[i] = spawn(svc, cfg);
    int alive = n, status = 0, forwarded = 0;
    while (alive > 0) {
        if (stop_signal && !forwarded) {
            forwarded = 1;
            for (int i = 0; i < n; i++)
                if (kids[i] > 0)
                    kill(kids[i], SIGUSR2);
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
            if (!stop_signal && code != GF_EXIT_CONFIG) {
                GF_LOG(GF_LOG_ERROR, &ctx, "api process %d ended with %d: starting another",
                       (int)pid, code);
                sleep(1); /* a process that cannot start must not spin */
                kids[i] = spawn(svc, cfg);
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

/* The shell's `run`: one process, or a supervisor of several. */
static int api_run(const gf_proc_service_t *svc, gf_config_t *cfg)
{
    int n = cfg->api_processes > 0 ? (int)cfg->api_processes : (int)uv_available_parallelism();
    /* Several processes only share a port that is known before they bind. */
    return n > 1 && cfg->api_port != 0 ? supervise(svc, cfg, n) : gf_proc_serve(svc, cfg);
}

int main(void)
{
    static const gf_proc_service_t api_service = {.component = "api",
                                                  .check = api_check,
                                                  .create = api_create,
                                                  .start = api_begin,
                                                  .stop = api_halt,
                                                  .free = api_release,
                                                  .run = api_run};
    return gf_proc_main(&api_service);
}
