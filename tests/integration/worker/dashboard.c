/*
 * tests/integration/worker/dashboard.c - deploy/grafana/genfarm.json against a
 * live farm: every metric an expression of the dashboard reads is one a
 * running farm-api or farm-worker exports (the "# TYPE" lines of their
 * /metrics, so a family with no series yet counts), a _bucket/_sum/_count
 * belongs to a histogram, every panel has a query, and promtool (an
 * independent PromQL parser) accepts every expression.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_harness.h"
#include "support.h"

static pid_t api_pid, worker_pid;
static int metrics_port;

static int setup(void **state)
{
    (void)state;
    static char port_env[64], storage_env[600], metrics_env[64];
    snprintf(storage_env, sizeof(storage_env), "FARM_STORAGE_DIR=%s/storage",
             ts_env("FARM_TEST_TMPDIR"));
    const char *extra[] = {storage_env, "FARM_PROVIDER=local", NULL};
    api_pid = au_api_start(extra);
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%s", strrchr(au_base, ':') + 1);
    metrics_port = ts_free_port();
    snprintf(metrics_env, sizeof(metrics_env), "FARM_WORKER_METRICS_PORT=%d", metrics_port);
    char *wextra[] = {port_env,    storage_env, AU_FILE_SECRET_ENV, "FARM_PROVIDER=local",
                      metrics_env, NULL};
    worker_pid = ts_spawn_farm("FARM_TEST_WORKER_BIN", wextra, "worker.log");
    char url[128], api_url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    snprintf(api_url, sizeof(api_url), "%s/metrics", au_base);
    /* The farm's gauges appear with the api's first read of the queue and Postgres. */
    return api_pid > 0 && worker_pid > 0 && ts_wait_http(url, 200, NULL, 20) &&
                   ts_wait_http(api_url, 200, "# TYPE farm_queue_depth ", 25) &&
                   ts_wait_http(api_url, 200, "# TYPE farm_credits_captured_total ", 25)
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    int bad = 0;
    if (api_pid > 0)
        bad |= ts_stop(api_pid, SIGTERM, 15) != 0;
    if (worker_pid > 0)
        bad |= ts_stop(worker_pid, SIGTERM, 40) != 0;
    return bad ? -1 : 0;
}

/* Adds the families of `url`'s /metrics ("# TYPE name type") to `types` (name -> type). */
static void collect(const char *url, json_t *types)
{
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128], type[32];
        if (sscanf(line, "# TYPE %127s %31s", name, type) == 2)
            json_object_set_new(types, name, json_string(type));
    }
    ts_http_dispose(&r);
}

/* Checks the farm_* names of one PromQL expression against `types`; strings are skipped. */
static void check_expr(const char *expr, json_t *types, json_t *used)
{
    for (const char *p = expr; *p;) {
        if (*p == '"') { /* a label value: skip to its closing quote */
            for (p++; *p && *p != '"'; p += (*p == '\\' && p[1]) ? 2 : 1)
                ;
            p += *p == '"';
            continue;
        }
        int starts =
            strncmp(p, "farm_", 5) == 0 &&
            (p == expr || !(p[-1] == '_' || p[-1] == ':' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                            (p[-1] >= '0' && p[-1] <= '9')));
        if (!starts) {
            p++;
            continue;
        }
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        char name[128], family[128];
        snprintf(name, sizeof(name), "%.*s", (int)n, p);
        snprintf(family, sizeof(family), "%s", name);
        const char *type = json_string_value(json_object_get(types, name));
        static const char *const parts[] = {"_bucket", "_sum", "_count"};
        for (size_t i = 0; type == NULL && i < 3; i++) {
            size_t ln = strlen(name), lp = strlen(parts[i]);
            if (ln > lp && strcmp(name + ln - lp, parts[i]) == 0) {
                snprintf(family, sizeof(family), "%.*s", (int)(ln - lp), name);
                type = json_string_value(json_object_get(types, family));
                if (type && strcmp(type, "histogram") != 0)
                    fail_msg("%s: %s is a %s, not a histogram", expr, family, type);
            }
        }
        if (type == NULL)
            fail_msg("%s: %s is not a metric the farm exports", expr, name);
        json_object_set_new(used, family, json_true());
        p += n;
    }
}

static void test_every_expression_reads_exported_metrics(void **state)
{
    (void)state;
    json_t *types = json_object();
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", au_base);
    collect(url, types);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    collect(url, types);
    assert_true(json_object_size(types) > 20);

    char path[700];
    snprintf(path, sizeof(path), "%s/deploy/grafana/genfarm.json", ts_env("FARM_TEST_SOURCE_DIR"));
    json_error_t jerr;
    json_t *dash = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (dash == NULL)
        fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
    assert_string_equal(json_string_value(json_object_get(dash, "uid")), "genfarm");

    /* Every expression, also written as a recording rule for promtool. */
    char rules[700];
    snprintf(rules, sizeof(rules), "%s/dashboard-rules.yml", ts_env("FARM_TEST_TMPDIR"));
    FILE *out = fopen(rules, "w");
    assert_non_null(out);
    fprintf(out, "groups:\n  - name: dashboard\n    rules:\n");
    json_t *used = json_object();
    size_t i, j, n_exprs = 0, n_panels = 0;
    json_t *panel, *target;
    json_array_foreach(json_object_get(dash, "panels"), i, panel)
    {
        const char *type = json_string_value(json_object_get(panel, "type"));
        assert_non_null(type);
        if (strcmp(type, "row") == 0)
            continue;
        n_panels++;
        json_t *targets = json_object_get(panel, "targets");
        if (json_array_size(targets) == 0)
            fail_msg("panel \"%s\" has no query",
                     json_string_value(json_object_get(panel, "title")));
        json_array_foreach(targets, j, target)
        {
            const char *expr = json_string_value(json_object_get(target, "expr"));
            assert_non_null(expr);
            check_expr(expr, types, used);
            json_t *s = json_string(expr);
            char *quoted = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
            json_decref(s);
            fprintf(out, "      - record: dashboard:expr_%zu\n        expr: %s\n", n_exprs++,
                    quoted);
            free(quoted);
        }
    }
    fclose(out);
    assert_true(n_panels >= 20);
    /* The dashboard shows the metrics on-call needs (docs/operations.md, What to watch). */
    static const char *const needed[] = {"farm_queue_depth",
                                         "farm_generations_oldest_queued_seconds",
                                         "farm_generation_outcomes_total",
                                         "farm_http_request_duration_seconds",
                                         "farm_pg_pool_in_use",
                                         "farm_credits_captured_total",
                                         "farm_credits_released_total",
                                         "farm_provider_breaker_open",
                                         "farm_reconcile_violations",
                                         "farm_webhook_deliveries_total",
                                         "farm_storage_requests_total"};
    for (size_t k = 0; k < sizeof(needed) / sizeof(needed[0]); k++)
        if (!json_object_get(used, needed[k]))
            fail_msg("the dashboard does not show %s", needed[k]);
    assert_int_equal(ts_sh("promtool check rules '%s' >/dev/null", rules), 0);
    json_decref(used);
    json_decref(dash);
    json_decref(types);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_expression_reads_exported_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
