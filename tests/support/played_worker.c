/*
 * tests/support/played_worker.c - see played_worker.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
