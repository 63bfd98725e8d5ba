/*
 * tests/support/support.c - see support.h.
 */
#include "support.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

double ts_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char **ts_environ_with(const char *const *overrides, const char *const *drop)
{
    size_t n = 0, m = 0;
    while (overrides && overrides[n])
        n++;
    while (environ[m])
        m++;
    char **env = calloc(n + m + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env[i] = (char *)overrides[i];
    size_t k = n;
    for (size_t i = 0; i < m; i++) {
        int keep = 1;
        for (size_t d = 0; drop && drop[d]; d++)
            keep &= strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
        if (keep)
            env[k++] = environ[i];
    }
    return env;
}

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("ts_free_port");
        abort();
    }
    close(fd);
    return ntohs(sa.sin_port);
}

const char *ts_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "this test needs %s (run it through ctest / tests/fixture/with-servers)\n",
                name);
        abort();
    }
    return v;
}

pid_t ts_spawn(char *const argv[], char *const extra[], const char *log_path)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid > 0)
        return pid;
    for (char *const *e = extra; e && *e; e++)
        putenv(*e);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
    }
    execve(argv[0], argv, environ);
    perror(argv[0]);
    _exit(127);
}

pid_t ts_spawn_farm(const char *bin_env, char *const extra[], const char *log_fmt, ...)
{
    char name[256], log_path[800];
    va_list ap;
    va_start(ap, log_fmt);
    vsnprintf(name, sizeof(name), log_fmt, ap);
    va_end(ap);
    snprintf(log_path, sizeof(log_path), "%s/%s", ts_env("FARM_TEST_TMPDIR"), name);
    char *argv[] = {(char *)ts_env(bin_env), NULL};
    return ts_spawn(argv, extra, log_path);
}

int ts_stop(pid_t pid, int sig, double timeout_s)
{
    int status;
    if (sig)
        kill(pid, sig);
    double end = ts_now() + timeout_s;
    while (ts_now() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int ts_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int ts_sh_number(long long *out, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    int n = fscanf(p, "%lld", out);
    pclose(p);
    return n == 1 ? 0 : -1;
}

typedef struct {
    char *p;
    size_t len;
} grow_t;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
    grow_t *g = ud;
    size_t add = size * n;
    g->p = realloc(g->p, g->len + add + 1);
    memcpy(g->p + g->len, ptr, add);
    g->len += add;
    g->p[g->len] = '\0';
    return add;
}

ts_http_t ts_http(const char *method, const char *url, const char *const *headers, const char *body,
                  size_t body_len)
{
    ts_http_t r = {0};
    grow_t b = {0}, h = {0};
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    for (const char *const *p = headers; p && *p; p++)
        hl = curl_slist_append(hl, *p);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r.body = b.p ? b.p : strdup("");
    r.body_len = b.len;
    r.headers = h.p ? h.p : strdup("");
    return r;
}

void ts_http_dispose(ts_http_t *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

int ts_stop_farm(pid_t worker, pid_t api, pid_t fake)
{
    int bad = 0;
    if (worker > 0)
        bad |= ts_stop(worker, SIGTERM, 40) != 0;
    if (api > 0)
        bad |= ts_stop(api, SIGTERM, 15) != 0;
    if (fake > 0)
        ts_stop(fake, SIGTERM, 10);
    return bad ? -1 : 0;
}

int ts_wait_port_file(const char *port_file, double timeout_s)
{
    int port = 0;
    double end = ts_now() + timeout_s;
    do {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port > 0)
            return port;
        usleep(20000);
    } while (ts_now() < end);
    return 0;
}

pid_t ts_fake_start(int latency_ms, char setting[128])
{
    char port_file[600], log_path[600], latency[32];
    snprintf(port_file, sizeof(port_file), "%s/fake.port", ts_env("FARM_TEST_TMPDIR"));
    snprintf(log_path, sizeof(log_path), "%s/fake.log", ts_env("FARM_TEST_TMPDIR"));
    snprintf(latency, sizeof(latency), "%d", latency_ms);
    char *argv[] = {(char *)ts_env("FARM_TEST_FAKE_BIN"),
                    "--port-file",
                    port_file,
                    "--latency-ms",
                    latency,
                    NULL};
    pid_t pid = ts_spawn(argv, NULL, log_path);
    int port = pid > 0 ? ts_wait_port_file(port_file, 10) : 0;
    setting[0] = '\0';
    if (port > 0)
        snprintf(setting, 128, "FARM_FAKE_PROVIDER_URL=http://127.0.0.1:%d", port);
    return pid;
}

int ts_wait_http(const char *url, long status, const char *needle, double timeout_s)
{
    double end = ts_now() + timeout_s;
    do {
        ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
        int ok = r.status == status && (needle == NULL || strstr(r.body, needle) != NULL);
        ts_http_dispose(&r);
        if (ok)
            return 1;
        usleep(50000);
    } while (ts_now() < end);
    return 0;
}

int ts_run_group_with_curl(const char *name, const struct CMUnitTest *tests, size_t n,
                           int (*setup)(void **state), int (*teardown)(void **state))
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = _cmocka_run_group_tests(name, tests, n, setup, teardown);
    curl_global_cleanup();
    return failed;
}
