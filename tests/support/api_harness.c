/*
 * tests/support/api_harness.c - see api_harness.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.h"
#include "api_harness.h"

char au_base[64];

pid_t au_api_start(const char *const *extra)
{
    static char port_env[64];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    snprintf(au_base, sizeof(au_base), "http://127.0.0.1:%d", port);
    char *env[32] = {port_env, "FARM_JWT_SECRET=" AU_SECRET, AU_FILE_SECRET_ENV};
    size_t n = 3;
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof(env) / sizeof(env[0]); i++)
        env[n++] = (char *)extra[i];
    env[n] = NULL;
    char url[128];
    pid_t pid = ts_spawn_farm("FARM_TEST_API_BIN", env, "api.log");
    snprintf(url, sizeof(url), "%s/readyz", au_base);
    return pid > 0 && ts_wait_http(url, 200, NULL, 20) ? pid : -1;
}

char *au_token(const char *sub, const char *plan, const char *role, char user_out[37])
{
    char user[37];
    if (sub == NULL)
        gf_uuid4(user);
    else
        snprintf(user, sizeof(user), "%s", sub);
    if (user_out)
        memcpy(user_out, user, 37);
    api_claims_t c = {.sub = user, .plan = plan, .role = role, .ttl_s = 3600};
    char *t = api_token_issue(AU_SECRET, &c, NULL);
    assert_non_null(t);
    return t;
}

int au_grant(const char *user, long amount, const char *reason)
{
    return ts_sh("'%s' grant --user %s --amount %ld --reason %s >/dev/null",
                 ts_env("FARM_TEST_CLI"), user, amount, reason);
}

ts_http_t au_call(const char *method, const char *path, const char *tok, const char *body,
                  const char *extra_header)
{
    char url[512], auth[2048];
    snprintf(url, sizeof(url), "%s%s", au_base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok ? tok : "");
    int own_type = extra_header && strncasecmp(extra_header, "Content-Type:", 13) == 0;
    const char *headers[] = {tok ? auth : "X-None: 1",
                             own_type ? extra_header : "Content-Type: application/json",
                             extra_header && !own_type ? extra_header : "X-None: 2", NULL};
    return ts_http(method, url, headers, body, body ? strlen(body) : 0);
}

void au_expect(ts_http_t *r, long status, const char *needle)
{
    if (r->status != status || (needle && !strstr(r->body, needle)))
        fprintf(stderr, "got %ld: %s\n", r->status, r->body);
    assert_int_equal(r->status, status);
    if (needle)
        assert_non_null(strstr(r->body, needle));
    ts_http_dispose(r);
}

void au_expect_error(ts_http_t *r, long status, const char *code, const char *field)
{
    if (r->status != status)
        fprintf(stderr, "got %ld: %s\n", r->status, r->body);
    assert_int_equal(r->status, status);
    char needle[128];
    snprintf(needle, sizeof(needle), "\"code\":\"%s\"", code);
    assert_non_null(strstr(r->body, needle));
    if (field) {
        snprintf(needle, sizeof(needle), "\"field\":\"%s\"", field);
        assert_non_null(strstr(r->body, needle));
    }
    ts_http_dispose(r);
}

const char *au_str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    assert_non_null(v);
    return v;
}

json_t *au_get_json(const char *tok, const char *path)
{
    ts_http_t r = au_call("GET", path, tok, NULL, NULL);
    if (r.status != 200)
        fail_msg("GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    json_t *j = json_loads(r.body, 0, NULL);
    if (j == NULL)
        fail_msg("GET %s: not JSON: %s", path, r.body);
    ts_http_dispose(&r);
    return j;
}

void au_id_of(const ts_http_t *r, char out[37])
{
    const char *p = strstr(r->body, "\"id\":\"");
    assert_non_null(p);
    snprintf(out, 37, "%s", p + 6);
}

void au_create(const char *tok, const char *body, char id[37])
{
    ts_http_t r = au_call("POST", "/v1/generations", tok, body, NULL);
    assert_int_equal(r.status, 202);
    au_id_of(&r, id);
    ts_http_dispose(&r);
}

ts_http_t au_cancel(const char *tok, const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    return au_call("POST", path, tok, NULL, NULL);
}

json_t *au_wait_status(const char *tok, const char *id, const char *want, double timeout_s)
{
    char path[128], pattern[64];
    snprintf(path, sizeof(path), "/v1/generations/%.36s", id);
    snprintf(pattern, sizeof(pattern), "|%s|", want);
    double end = ts_now() + timeout_s;
    do {
        ts_http_t r = au_call("GET", path, tok, NULL, NULL);
        json_t *g = r.status == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        ts_http_dispose(&r);
        const char *st = json_string_value(json_object_get(g, "status"));
        char needle[32];
        snprintf(needle, sizeof(needle), "|%s|", st ? st : "?");
        if (st && strstr(pattern, needle))
            return g;
        json_decref(g);
        usleep(50000);
    } while (ts_now() < end);
    return NULL;
}

long long au_credits_field(const char *tok, const char *field)
{
    ts_http_t r = au_call("GET", "/v1/credits", tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    char needle[32];
    snprintf(needle, sizeof(needle), "\"%s\":", field);
    const char *p = strstr(r.body, needle);
    assert_non_null(p);
    long long v = atoll(p + strlen(needle));
    ts_http_dispose(&r);
    return v;
}

double au_metric(const char *url, const char *series, double absent)
{
    ts_http_t r = ts_http("GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    const char *at = strstr(r.body, series);
    double v = at ? strtod(at + strlen(series), NULL) : absent;
    ts_http_dispose(&r);
    return v;
}

ts_http_t au_get_output(json_t *output)
{
    const char *url = au_str(output, "url");
    char full[1400];
    snprintf(full, sizeof(full), "%s%s", au_base, url);
    ts_http_t r = ts_http("GET", full, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal((long long)r.body_len, json_integer_value(json_object_get(output, "bytes")));
    return r;
}

void au_assert_output_image(const void *data, size_t len, json_t *output, img_info *info)
{
    img_limits lim = {.max_bytes = 50u << 20, .max_pixels = 40000000};
    gf_err_t err = {0};
    assert_int_equal(img_upload_probe(data, len, &lim, info, &err), 0);
    assert_int_equal(info->width, json_integer_value(json_object_get(output, "width")));
    assert_int_equal(info->height, json_integer_value(json_object_get(output, "height")));
    assert_string_equal(img_format_name(info->format), au_str(output, "format"));
}
