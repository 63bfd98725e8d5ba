/*
 * tests/support/played_worker.c - see played_worker.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "played_worker.h"

extern char **environ;

pid_t pw_api_pid;
gf_config_t *pw_cfg;
queue_sync_t *pw_qs;
store_conn_t *pw_sc;

int pw_setup(const char *const *api_extra)
{
    pw_api_pid = au_api_start(api_extra);
    gf_err_t err = {0};
    pw_cfg = gf_cfg_load(environ, &err);
    pw_qs = pw_cfg ? queue_sync_new(pw_cfg, &err) : NULL;
    pw_sc = pw_cfg ? store_conn_new(pw_cfg->database_url, &err) : NULL;
    return pw_api_pid > 0 && pw_qs && pw_sc ? 0 : -1;
}

int pw_teardown(void)
{
    queue_sync_free(pw_qs);
    store_conn_free(pw_sc);
    gf_cfg_free(pw_cfg);
    gf_log_clear_secrets();
    return pw_api_pid > 0 && ts_stop(pw_api_pid, SIGTERM, 10) == 0 ? 0 : -1;
}

uint64_t pw_claim_token(const char *id)
{
    queue_claim_t claim = {0};
    gf_err_t err = {0};
    uint64_t tok = 0;
    for (int round = 0; round < 20 && tok == 0; round++) {
        assert_int_equal(queue_sync_claim(pw_qs, "test-worker", 16, &claim, &err), 0);
        for (size_t i = 0; i < claim.n_jobs; i++)
            if (strcmp(claim.jobs[i].gen_id, id) == 0)
                tok = claim.jobs[i].token;
        queue_claim_dispose(&claim);
    }
    assert_true(tok > 0);
    return tok;
}

/* Runs `c` on the store, which must succeed, and disposes of it. */
static void store_ok(store_call_t *c)
{
    assert_int_equal(store_conn_exec(pw_sc, c), 0);
    store_call_dispose(c);
}

uint64_t pw_start(const char *id)
{
    uint64_t tok = pw_claim_token(id);
    store_call_t c;
    store_call_start(&c, id, (long long)tok, "local", NULL);
    store_ok(&c);
    return tok;
}

void pw_settle_and_finish(const char *id, uint64_t tok, int ok, const char *error_json)
{
    store_call_t c;
    store_call_image(&c, id, (long long)tok, 0, ok, error_json);
    store_ok(&c);
    store_call_finish(&c, id, (long long)tok, "auto", NULL);
    store_ok(&c);
}

int pw_connect(void)
{
    int port = atoi(strrchr(au_base, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

size_t pw_count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* --- an event stream ------------------------------------------------------------- */

static size_t on_sse(char *p, size_t size, size_t n, void *ud)
{
    sse_client_t *c = ud;
    pthread_mutex_lock(&c->mu);
    gf_buf_append(&c->got, p, size * n);
    pthread_mutex_unlock(&c->mu);
    return size * n;
}

void *sse_run(void *arg)
{
    sse_client_t *c = arg;
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, c->auth);
    char last[64];
    if (c->last_event_id) {
        snprintf(last, sizeof(last), "Last-Event-ID: %s", c->last_event_id);
        h = curl_slist_append(h, last);
    }
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return NULL;
}

int sse_has(sse_client_t *c, const char *needle)
{
    pthread_mutex_lock(&c->mu);
    int ok = c->got.p && strstr(c->got.p, needle) != NULL;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int sse_wait_for(sse_client_t *c, const char *needle, double timeout_s)
{
    double end = ts_now() + timeout_s;
    while (ts_now() < end) {
        if (sse_has(c, needle))
            return 1;
        usleep(20000);
    }
    return 0;
}
