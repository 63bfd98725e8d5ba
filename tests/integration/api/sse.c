/*
 * tests/integration/api/sse.c - 1,000 concurrent event streams on one
 * generation, against a real farm-api process: every client gets the live
 * progress event and the terminal event (tests/bench/sse_fanout plays the
 * clients and the worker), and the api still exits 0 on SIGTERM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "support.h"

#define SECRET "sse-jwt-secret-0123456789"

static void test_thousand_streams_all_get_the_terminal_event(void **state)
{
    (void)state;
    static char port_env[64];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    char out[600];
    snprintf(out, sizeof(out), "%s/fanout.out", ts_env("FARM_TEST_TMPDIR"));
    char *extra[] = {port_env, "FARM_JWT_SECRET=" SECRET,
                     "FARM_FILE_SECRET=sse-file-secret-0123456789", "FARM_SSE_MAX_PER_USER=100000",
                     /* one user opens every stream: its reads are not what is measured */
                     "FARM_RATE_LIMITS=reads=1000000/1000000", "FARM_LOG_LEVEL=warn", NULL};
    pid_t api = ts_spawn_farm("FARM_TEST_API_BIN", extra, "api.log");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
    assert_true(ts_wait_http(url, 200, NULL, 20));
    char user[37];
    gf_uuid4(user);
    api_claims_t c = {.sub = user, .plan = "pro", .ttl_s = 3600};
    char *tok = api_token_issue(SECRET, &c, NULL);
    int rc = ts_sh("'%s' http://127.0.0.1:%d '%s' 1000 %d > '%s' 2>&1",
                   ts_env("FARM_TEST_SSE_FANOUT_BIN"), port, tok, (int)api, out);
    free(tok);
    FILE *f = fopen(out, "r");
    char line[512] = "";
    if (f) {
        if (!fgets(line, sizeof(line), f))
            line[0] = '\0';
        fclose(f);
    }
    fprintf(stderr, "%s", line);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(line, "connected 1000 progress 1000 terminal 1000"));
    assert_int_equal(ts_stop(api, SIGTERM, 20), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_streams_all_get_the_terminal_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
