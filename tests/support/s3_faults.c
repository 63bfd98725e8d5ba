/*
 * tests/support/s3_faults.c - see s3_faults.h.
 */
#include "s3_faults.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static void url_of(char *out, size_t n)
{
    snprintf(out, n, "%s/_faults", ts_env("FARM_TEST_S3_FAULTS_ENDPOINT"));
}

int s3f_clear(void)
{
    char url[256];
    url_of(url, sizeof(url));
    ts_http_t r = ts_http("DELETE", url, NULL, NULL, 0);
    int ok = r.status == 200;
    ts_http_dispose(&r);
    return ok ? 0 : -1;
}

int s3f_add(const char *method, const char *match, int count, const char *action, int status,
            int ms)
{
    char url[256];
    url_of(url, sizeof(url));
    json_t *rule = json_pack("{s:s, s:i, s:s}", "method", method, "count", count, "action", action);
    if (match)
        json_object_set_new(rule, "match", json_string(match));
    if (status)
        json_object_set_new(rule, "status", json_integer(status));
    if (ms)
        json_object_set_new(rule, "ms", json_integer(ms));
    char *body = json_dumps(rule, JSON_COMPACT);
    json_decref(rule);
    const char *h[] = {"Content-Type: application/json", NULL};
    ts_http_t r = ts_http("POST", url, h, body, strlen(body));
    free(body);
    int ok = r.status == 201;
    if (!ok)
        fprintf(stderr, "s3f_add: %ld %s\n", r.status, r.body);
    ts_http_dispose(&r);
    return ok ? 0 : -1;
}

static json_t *state(void)
{
    char url[256];
    url_of(url, sizeof(url));
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    ts_http_dispose(&r);
    return j;
}

int s3f_seen(const char *method, const char *match, const char *action)
{
    return s3f_times(method, match, action, NULL, 0);
}

int s3f_times(const char *method, const char *match, const char *action, double *out, int max)
{
    json_t *j = state();
    if (j == NULL)
        return -1;
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "log"), i, e)
    {
        const char *m = json_string_value(json_object_get(e, "method"));
        const char *p = json_string_value(json_object_get(e, "path"));
        const char *a = json_string_value(json_object_get(e, "action"));
        if (m && p && a && strcmp(m, method) == 0 && (!match || strstr(p, match)) &&
            (!action || strcmp(a, action) == 0)) {
            if (n < max)
                out[n] = json_number_value(json_object_get(e, "ms")) / 1000.0;
            n++;
        }
    }
    json_decref(j);
    return n;
}

int s3f_rules_left(void)
{
    json_t *j = state();
    if (j == NULL)
        return -1;
    int n = (int)json_array_size(json_object_get(j, "rules"));
    json_decref(j);
    return n;
}
