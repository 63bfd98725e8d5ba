/*
 * tests/unit/core/test_config.c - core/config.c: the FARM_* table, its
 * loader's refusals, secret handling in errors, prints and logs, and the URL
 * parser.
 *
 * Every refusal must name the variable, the bad value (unless it is secret)
 * and what is accepted, since that line is all an operator sees at startup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "url.h"
#include "config_util.h"
#include "core_test.h"

#define JWT_SECRET  "jwt-s3cret-Value-42"
#define DB_PASSWORD "hunter2-Pass-99"

/* Runs gf_cfg_print into a string; free with free(). */
static char *print_to_string(const gf_config_t *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    gf_cfg_print(cfg, f);
    assert_int_equal(fclose(f), 0);
    return out;
}

/* README's table of variables is the one `farm config --markdown` prints: row for row. */
static void test_the_readme_table_is_the_printed_one(void **state)
{
    (void)state;
    char *table = NULL, *readme = NULL;
    size_t len = 0, rlen = 0;
    FILE *f = open_memstream(&table, &len);
    assert_non_null(f);
    gf_cfg_print_markdown(f);
    assert_int_equal(fclose(f), 0);
    f = fopen(FARM_SOURCE_DIR "/README.md", "r");
    assert_non_null(f);
    FILE *m = open_memstream(&readme, &rlen);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, m);
    fclose(f);
    assert_int_equal(fclose(m), 0);
    int printed = 0, documented = 0;
    for (char *line = strtok(table, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `FARM_", 8) != 0)
            continue;
        printed++;
        if (strstr(readme, line) == NULL)
            fail_msg("README.md lacks the row: %s", line);
    }
    for (const char *p = strstr(readme, "\n| `FARM_"); p != NULL; p = strstr(p + 1, "\n| `FARM_"))
        documented++;
    assert_true(printed > 50);
    assert_int_equal(documented, printed);
    free(table);
    free(readme);
}

static void test_defaults_apply_with_an_empty_environment(void **state)
{
    (void)state;
    char *envp[] = {NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(envp, &err);
    assert_non_null(cfg);
    assert_int_equal(err.code, GF_OK);
    assert_string_equal(cfg->api_host, "127.0.0.1");
    assert_int_equal(cfg->api_port, 8080);
    assert_int_equal(cfg->readyz_timeout_ms, 1000);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg->database_url, "postgresql://farm@127.0.0.1:5432/farm");
    assert_string_equal(cfg->migrations_dir, "migrations");
    assert_int_equal(cfg->http_max_header_bytes, 16384);
    assert_int_equal(cfg->http_max_body_bytes, 65536);
    assert_int_equal(cfg->http_max_connections, 10000);
    assert_int_equal(cfg->http_idle_timeout_s, 60);
    assert_int_equal(cfg->http_header_timeout_s, 10);
    assert_int_equal(cfg->http_body_timeout_s, 30);
    assert_int_equal(cfg->http_stream_max_queued_bytes, 1048576);
    assert_int_equal(cfg->shutdown_s, 10);
    assert_int_equal(cfg->worker_metrics_port, 9100);
    assert_string_equal(cfg->jwt_secret, "");
    assert_int_equal(cfg->log_level, GF_LOG_INFO);
    gf_cfg_free(cfg);
    gf_cfg_free(NULL); /* a no-op */
}

static void test_environment_overrides_defaults(void **state)
{
    (void)state;
    char *envp[] = {"PATH=/usr/bin",
                    "FARM_API_HOST=0.0.0.0",
                    "FARM_API_PORT=0",
                    "FARM_HTTP_MAX_BODY_BYTES=67108864",
                    "FARM_REDIS_URL=redis://cache.internal:6380/2",
                    "FARM_DATABASE_URL=postgres://app@[::1]/farm",
                    "FARM_LOG_LEVEL=debug",
                    "FARM_SHUTDOWN_S=0",
                    NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(envp, &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->api_host, "0.0.0.0");
    assert_int_equal(cfg->api_port, 0);
    assert_int_equal(cfg->http_max_body_bytes, 64 * 1024 * 1024);
    assert_string_equal(cfg->redis_url, "redis://cache.internal:6380/2");
    assert_string_equal(cfg->database_url, "postgres://app@[::1]/farm");
    assert_int_equal(cfg->log_level, GF_LOG_DEBUG);
    assert_int_equal(cfg->shutdown_s, 0);
    gf_cfg_free(cfg);
}

static void test_every_log_level_name_is_accepted(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const int levels[] = {GF_LOG_DEBUG, GF_LOG_INFO, GF_LOG_WARN, GF_LOG_ERROR};
    for (int i = 0; i < 4; i++) {
        char var[64];
        snprintf(var, sizeof(var), "FARM_LOG_LEVEL=%s", names[i]);
        char *envp[] = {var, NULL};
        gf_config_t *cfg = gf_cfg_load(envp, NULL);
        assert_non_null(cfg);
        assert_int_equal(cfg->log_level, levels[i]);
        gf_cfg_free(cfg);
    }
}

static void test_port_out_of_range_is_refused(void **state)
{
    (void)state;
    char *high[] = {"FARM_API_PORT=65536", NULL};
    gf_err_t err = cu_load_refused(high);
    assert_string_equal(err.msg,
                        "FARM_API_PORT=65536: out of range; accepted: an integer 0..65535");

    char *neg[] = {"FARM_WORKER_METRICS_PORT=-1", NULL};
    err = cu_load_refused(neg);
    assert_non_null(strstr(err.msg, "FARM_WORKER_METRICS_PORT=-1"));
    assert_non_null(strstr(err.msg, "0..65535"));
}

static void test_bounds_are_inclusive(void **state)
{
    (void)state;
    char *envp[] = {"FARM_HTTP_MAX_HEADER_BYTES=1024",
                    "FARM_HTTP_STREAM_MAX_QUEUED_BYTES=268435456", NULL};
    gf_config_t *cfg = gf_cfg_load(envp, NULL);
    assert_non_null(cfg);
    assert_int_equal(cfg->http_max_header_bytes, 1024);
    assert_int_equal(cfg->http_stream_max_queued_bytes, 256LL * 1024 * 1024);
    gf_cfg_free(cfg);

    char *below[] = {"FARM_HTTP_MAX_HEADER_BYTES=1023", NULL};
    gf_err_t err = cu_load_refused(below);
    assert_non_null(strstr(err.msg, "FARM_HTTP_MAX_HEADER_BYTES=1023"));
    assert_non_null(strstr(err.msg, "1024..1048576"));
}

static void test_non_integer_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "80x", "", " 80", "80 ", "0x50", "8.0", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char var[64];
        snprintf(var, sizeof(var), "FARM_API_PORT=%s", bad[i]);
        char *envp[] = {var, NULL};
        gf_err_t err = cu_load_refused(envp);
        char want[128];
        snprintf(want, sizeof(want),
                 "FARM_API_PORT=%s: not an integer; accepted: an integer 0..65535", bad[i]);
        assert_string_equal(err.msg, want);
    }
}

/* Lifecycle: retention in days, 0 (the default) keeps; anything else than 0..36500 names the
 * variable. */
static void test_retention_days_default_to_keep_and_are_checked(void **state)
{
    (void)state;
    char *none[] = {NULL};
    gf_config_t *cfg = gf_cfg_load(none, NULL);
    assert_non_null(cfg);
    assert_int_equal(cfg->output_retention_days, 0);
    assert_int_equal(cfg->upload_retention_days, 0);
    gf_cfg_free(cfg);
    char *set[] = {"FARM_OUTPUT_RETENTION_DAYS=30", "FARM_UPLOAD_RETENTION_DAYS=7", NULL};
    cfg = gf_cfg_load(set, NULL);
    assert_non_null(cfg);
    assert_int_equal(cfg->output_retention_days, 30);
    assert_int_equal(cfg->upload_retention_days, 7);
    gf_cfg_free(cfg);
    char *neg[] = {"FARM_OUTPUT_RETENTION_DAYS=-1", NULL};
    gf_err_t err = cu_load_refused(neg);
    assert_string_equal(err.msg, "FARM_OUTPUT_RETENTION_DAYS=-1: out of range; accepted: an "
                                 "integer 0..36500");
    char *word[] = {"FARM_UPLOAD_RETENTION_DAYS=week", NULL};
    err = cu_load_refused(word);
    assert_string_equal(err.msg, "FARM_UPLOAD_RETENTION_DAYS=week: not an integer; accepted: an "
                                 "integer 0..36500");
}

static void test_unknown_log_level_is_refused(void **state)
{
    (void)state;
    char *envp[] = {"FARM_LOG_LEVEL=verbose", NULL};
    gf_err_t err = cu_load_refused(envp);
    assert_string_equal(
        err.msg, "FARM_LOG_LEVEL=verbose: unknown value; accepted: one of debug|info|warn|error");

    cu_refused("FARM_LOG_LEVEL=INFO", "FARM_LOG_LEVEL=INFO"); /* the names are exact */
}

static void test_provider_http2_takes_its_three_modes_only(void **state)
{
    (void)state;
    static const char *const modes[] = {"auto", "prior-knowledge", "off"};
    for (size_t i = 0; i < 3; i++) {
        char var[64];
        snprintf(var, sizeof(var), "FARM_PROVIDER_HTTP2=%s", modes[i]);
        char *envp[] = {var, NULL};
        gf_err_t err = {0};
        gf_config_t *cfg = gf_cfg_load(envp, &err);
        assert_non_null(cfg);
        assert_int_equal(cfg->provider_http2, (long long)i);
        gf_cfg_free(cfg);
    }
    char *none[] = {NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(none, &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->provider_http2, 0); /* auto */
    gf_cfg_free(cfg);
    char *h2c[] = {"FARM_PROVIDER_HTTP2=h2c", NULL};
    err = cu_load_refused(h2c);
    assert_string_equal(err.msg, "FARM_PROVIDER_HTTP2=h2c: unknown value; accepted: one of "
                                 "auto|prior-knowledge|off");
    static const char *const bad[] = {"FARM_PROVIDER_HTTP2=on", "FARM_PROVIDER_HTTP2=1",
                                      "FARM_PROVIDER_HTTP2=", "FARM_PROVIDER_HTTP2=OFF",
                                      "FARM_PROVIDER_HTTP2=prior_knowledge"};
    ALL_REFUSED(bad, "accepted: one of auto|prior-knowledge|off");
}

static void test_malformed_url_is_refused(void **state)
{
    (void)state;
    char *no_scheme[] = {"FARM_REDIS_URL=localhost:6379", NULL};
    gf_err_t err = cu_load_refused(no_scheme);
    assert_non_null(strstr(err.msg, "FARM_REDIS_URL=localhost:6379"));
    assert_non_null(strstr(err.msg, "accepted: a URL redis://"));

    char *bad_port[] = {"FARM_REDIS_URL=redis://localhost:653790", NULL};
    err = cu_load_refused(bad_port);
    assert_non_null(strstr(err.msg, "FARM_REDIS_URL=redis://localhost:653790"));
    assert_non_null(strstr(err.msg, "port"));
    assert_non_null(strstr(err.msg, "accepted: a URL redis://"));

    char *no_host[] = {"FARM_DATABASE_URL=postgresql:///farm", NULL};
    err = cu_load_refused(no_host);
    assert_non_null(strstr(err.msg, "FARM_DATABASE_URL=postgresql:///farm"));
    assert_non_null(strstr(err.msg, "host"));
    assert_non_null(strstr(err.msg, "postgresql|postgres"));
}

static void test_wrong_url_scheme_is_refused(void **state)
{
    (void)state;
    char *envp[] = {"FARM_REDIS_URL=http://localhost:6379/0", NULL};
    gf_err_t err = cu_load_refused(envp);
    assert_string_equal(err.msg, "FARM_REDIS_URL=http://localhost:6379/0: unsupported scheme; "
                                 "accepted: a URL redis://[user[:password]@]host[:port][/path]");

    /* A refused URL with an '@' is not shown: a malformed one could hide a password anywhere. */
    char *db[] = {"FARM_DATABASE_URL=mysql://farm@db/farm", NULL};
    err = cu_load_refused(db);
    assert_non_null(strstr(err.msg, "FARM_DATABASE_URL=[redacted]: unsupported scheme"));
    assert_non_null(strstr(err.msg, "postgresql|postgres"));
}

static void test_database_password_never_appears_in_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "FARM_DATABASE_URL=mysql://farm:" DB_PASSWORD "@db:5432/farm",       /* wrong scheme */
        "FARM_DATABASE_URL=postgresql://farm:" DB_PASSWORD "@/farm",         /* no host */
        "FARM_DATABASE_URL=postgresql://farm:" DB_PASSWORD "@db:99999/farm", /* bad port */
        "FARM_REDIS_URL=redis://:" DB_PASSWORD "@cache:0",                   /* bad port, no user */
        "FARM_S3_ENDPOINT=https://key:" DB_PASSWORD "@s3 host",              /* a space */
        "FARM_S3_ENDPOINT=ftp://key:" DB_PASSWORD "@s3.example",             /* wrong scheme */
    };
    static const char *const named[] = {
        "FARM_DATABASE_URL=", "FARM_DATABASE_URL=", "FARM_DATABASE_URL=",
        "FARM_REDIS_URL=",    "FARM_S3_ENDPOINT=",  "FARM_S3_ENDPOINT="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *envp[] = {(char *)bad[i], NULL};
        gf_err_t err = cu_load_refused(envp);
        assert_null(strstr(err.msg, DB_PASSWORD));
        assert_non_null(strstr(err.msg, named[i]));
        assert_non_null(strstr(err.msg, "[redacted]"));
    }
}

static void test_secrets_never_appear_in_print(void **state)
{
    (void)state;
    char *envp[] = {"FARM_JWT_SECRET=" JWT_SECRET,
                    "FARM_DATABASE_URL=postgresql://farm:" DB_PASSWORD "@db:5432/farm",
                    "FARM_S3_ENDPOINT=https://key:" DB_PASSWORD "@s3.example", NULL};
    gf_config_t *cfg = gf_cfg_load(envp, NULL);
    assert_non_null(cfg);
    assert_string_equal(cfg->jwt_secret, JWT_SECRET); /* the value itself is kept */
    char *out = print_to_string(cfg);
    assert_null(strstr(out, JWT_SECRET));
    assert_null(strstr(out, DB_PASSWORD));
    assert_non_null(strstr(out, "\nFARM_JWT_SECRET=[set]\n"));
    assert_non_null(strstr(out, "\nFARM_DATABASE_URL=postgresql://farm:[redacted]@db:5432/farm\n"));
    assert_non_null(strstr(out, "FARM_API_PORT=8080\n"));
    assert_non_null(strstr(out, "\nFARM_LOG_LEVEL=info\n"));
    free(out);
    gf_cfg_free(cfg);

    char *none[] = {NULL};
    cfg = gf_cfg_load(none, NULL);
    assert_non_null(cfg);
    out = print_to_string(cfg);
    assert_non_null(strstr(out, "\nFARM_JWT_SECRET=[unset]\n"));
    free(out);
    gf_cfg_free(cfg);
}

static void test_loaded_secrets_are_masked_in_log_lines(void **state)
{
    (void)state;
    char *envp[] = {"FARM_JWT_SECRET=" JWT_SECRET,
                    "FARM_DATABASE_URL=postgresql://farm:" DB_PASSWORD "@db:5432/farm", NULL};
    gf_config_t *cfg = gf_cfg_load(envp, NULL);
    assert_non_null(cfg);

    /* Registered with the redactor: masked even where no pattern would catch them. */
    char *line = gf_log_format(GF_LOG_INFO, NULL, "t",
                               "secret " JWT_SECRET " and password " DB_PASSWORD " seen");
    assert_null(strstr(line, JWT_SECRET));
    assert_null(strstr(line, DB_PASSWORD));
    free(line);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    gf_log_set_fd(fds[1]);
    gf_cfg_log(cfg, "test");
    gf_log_set_fd(2);
    close(fds[1]);
    char *logged = ct_drain(fds[0]);
    close(fds[0]);
    assert_non_null(strstr(logged, "configuration: "));
    assert_non_null(strstr(logged, "FARM_JWT_SECRET=[set]"));
    assert_null(strstr(logged, JWT_SECRET));
    assert_null(strstr(logged, DB_PASSWORD));
    free(logged);
    gf_cfg_free(cfg);
}

static void test_unknown_farm_variable_is_warned_not_fatal(void **state)
{
    (void)state;
    char *envp[] = {"FARM_API_PROT=9000", "FARM_TEST_WHATEVER=1", "HOME=/root", NULL};
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    gf_log_set_fd(fds[1]);
    gf_config_t *cfg = gf_cfg_load(envp, NULL);
    gf_log_set_fd(2);
    close(fds[1]);
    char *logged = ct_drain(fds[0]);
    close(fds[0]);
    assert_non_null(cfg);
    assert_int_equal(cfg->api_port, 8080);
    assert_non_null(strstr(logged, "FARM_API_PROT"));
    assert_non_null(strstr(logged, "\"level\":\"warn\""));
    assert_null(strstr(logged, "FARM_TEST_WHATEVER")); /* reserved for tests */
    free(logged);
    gf_cfg_free(cfg);
}

static void test_markdown_lists_every_variable_with_its_range(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    gf_cfg_print_markdown(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(out, "| `FARM_API_PORT` | `8080` | an integer 0..65535 |"));
    assert_non_null(strstr(out, "| `FARM_JWT_SECRET` | (empty) | a string (secret) |"));
    /* A '|' inside a cell would split it: the choices are escaped. */
    assert_non_null(
        strstr(out, "| `FARM_LOG_LEVEL` | `info` | one of debug\\|info\\|warn\\|error |"));
    assert_non_null(strstr(out, "a URL postgresql\\|postgres://"));
    free(out);
}

/* A newline in a token went into the provider's request headers (a header injection). */
static void test_strings_are_refused_with_control_characters_or_outside_their_class(void **state)
{
    (void)state;
    static const char *const bad[] = {"FARM_HF_TOKEN=hf_abcd1234\r\nX-Injected: yes",
                                      "FARM_HF_TOKEN=hf_abcd1234\n",
                                      "FARM_FAL_KEY=key with space",
                                      "FARM_BFL_KEY=k\t",
                                      "FARM_JWT_SECRET=secret\n",
                                      "FARM_HF_MODEL=../../admin",
                                      "FARM_FAL_MODEL=/abs",
                                      "FARM_BFL_MODEL=flux dev",
                                      "FARM_API_HOST=127.0.0.1\nx",
                                      "FARM_API_HOST=a b",
                                      "FARM_CORS_ORIGINS=https://a\r\nX: y",
                                      "FARM_API_PORT=1\nfake: line"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *envp[] = {(char *)bad[i], NULL};
        gf_err_t err = cu_load_refused(envp);
        assert_null(strchr(err.msg, '\n'));
        assert_null(strstr(err.msg, "abcd1234"));
        assert_null(strstr(err.msg, "with space"));
    }
    cu_accepted("FARM_HF_MODEL=black-forest-labs/FLUX.1-dev");
    char *body[] = {"FARM_HTTP_MAX_BODY_BYTES=0", NULL};
    cu_load_refused(body);
}

/* --- gf_url_parse ----------------------------------------------------------------- */

static void test_url_with_user_password_host_port_path(void **state)
{
    (void)state;
    gf_url_t u;
    gf_err_t err = {0};
    assert_int_equal(
        gf_url_parse("postgresql://farm:pa:ss@db.example:5433/farm?sslmode=require", &u, &err), 0);
    assert_string_equal(u.scheme, "postgresql");
    assert_string_equal(u.user, "farm");
    assert_string_equal(u.password, "pa:ss"); /* the first ':' splits user from password */
    assert_string_equal(u.host, "db.example");
    assert_int_equal(u.port, 5433);
    assert_string_equal(u.path, "/farm?sslmode=require");
    gf_url_dispose(&u);

    /* An '@' in a password is written %40 (libpq would split at the first '@', we at the
     * last: a URL with two is refused rather than read two ways). */
    assert_int_equal(gf_url_parse("redis://u:p@ss@cache", &u, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "%40"));
    assert_int_equal(gf_url_parse("redis://u%2Bv:p%40ss%3a@cache", &u, NULL), 0);
    assert_string_equal(u.user, "u+v");
    assert_string_equal(u.password, "p@ss:");
    assert_string_equal(u.password_raw, "p%40ss%3a");
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.path, "");
    gf_url_dispose(&u);
    static const char *const bad_escapes[] = {"redis://u:p%4@h", "redis://u:p%@h",
                                              "redis://u:p%zz@h", "redis://u%00:p@h",
                                              /* an escaped control character is one too */
                                              "redis://:pw%0d%0aQUIT@h", "redis://u%7f:p@h"};
    for (size_t i = 0; i < sizeof(bad_escapes) / sizeof(bad_escapes[0]); i++)
        assert_int_equal(gf_url_parse(bad_escapes[i], &u, NULL), GF_EINVAL);
}

static void test_url_without_user_info(void **state)
{
    (void)state;
    gf_url_t u;
    assert_int_equal(gf_url_parse("redis://127.0.0.1:6379/0", &u, NULL), 0);
    assert_null(u.user);
    assert_null(u.password);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.path, "/0");
    gf_url_dispose(&u);

    assert_int_equal(gf_url_parse("postgres://farm@db/farm", &u, NULL), 0);
    assert_string_equal(u.user, "farm");
    assert_null(u.password);
    assert_string_equal(u.host, "db");
    gf_url_dispose(&u);
}

static void test_url_with_ipv6_host(void **state)
{
    (void)state;
    gf_url_t u;
    assert_int_equal(gf_url_parse("redis://[::1]:6380/2", &u, NULL), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.path, "/2");
    gf_url_dispose(&u);

    assert_int_equal(gf_url_parse("postgresql://farm:pw@[fe80::1%25eth0]/farm", &u, NULL), 0);
    assert_string_equal(u.host, "fe80::1%25eth0");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.password, "pw");
    gf_url_dispose(&u);

    gf_err_t err = {0};
    assert_int_equal(gf_url_parse("redis://[::1:6379", &u, &err), GF_EINVAL);
    assert_non_null(strstr(err.msg, "host"));
    assert_int_equal(gf_url_parse("redis://[::1]6379", &u, NULL), GF_EINVAL);
}

static void test_url_missing_host_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"redis://",        "redis://:6379",
                                      "redis:///0",      "postgresql://farm:pw@/farm",
                                      "redis://[]:6379", "redis://ca che:6379"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gf_url_t u;
        gf_err_t err = {0};
        assert_int_equal(gf_url_parse(bad[i], &u, &err), GF_EINVAL);
        assert_string_equal(err.msg, "missing or malformed host");
        /* Nothing is left allocated after a refusal; disposing is harmless. */
        assert_null(u.scheme);
        assert_null(u.host);
        gf_url_dispose(&u);
    }
}

static void test_url_bad_port_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"redis://h:0",
                                      "redis://h:65536",
                                      "redis://h:12a",
                                      "redis://h:",
                                      "redis://h:-1",
                                      "redis://[::1]:99999",
                                      "redis://h:999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gf_url_t u;
        gf_err_t err = {0};
        assert_int_equal(gf_url_parse(bad[i], &u, &err), GF_EINVAL);
        assert_string_equal(err.msg, "port is not a number in 1..65535");
        gf_url_dispose(&u);
    }
    gf_url_t u;
    assert_int_equal(gf_url_parse("redis://h:65535", &u, NULL), 0);
    assert_int_equal(u.port, 65535);
    gf_url_dispose(&u);
}

static void test_url_without_scheme_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"localhost:6379", "://host", "re dis://host", "redis:/host"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gf_url_t u;
        assert_int_equal(gf_url_parse(bad[i], &u, NULL), GF_EINVAL);
        gf_url_dispose(&u);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_the_readme_table_is_the_printed_one, cu_teardown),
        cmocka_unit_test_teardown(test_defaults_apply_with_an_empty_environment, cu_teardown),
        cmocka_unit_test_teardown(test_environment_overrides_defaults, cu_teardown),
        cmocka_unit_test_teardown(test_every_log_level_name_is_accepted, cu_teardown),
        cmocka_unit_test_teardown(test_port_out_of_range_is_refused, cu_teardown),
        cmocka_unit_test_teardown(test_bounds_are_inclusive, cu_teardown),
        cmocka_unit_test_teardown(test_non_integer_is_refused, cu_teardown),
        cmocka_unit_test_teardown(test_unknown_log_level_is_refused, cu_teardown),
        cmocka_unit_test_teardown(test_malformed_url_is_refused, cu_teardown),
        cmocka_unit_test_teardown(test_wrong_url_scheme_is_refused, cu_teardown),
        cmocka_unit_test_teardown(test_database_password_never_appears_in_errors, cu_teardown),
        cmocka_unit_test_teardown(test_secrets_never_appear_in_print, cu_teardown),
        cmocka_unit_test_teardown(test_loaded_secrets_are_masked_in_log_lines, cu_teardown),
        cmocka_unit_test_teardown(test_unknown_farm_variable_is_warned_not_fatal, cu_teardown),
        cmocka_unit_test_teardown(test_markdown_lists_every_variable_with_its_range, cu_teardown),
        cmocka_unit_test(test_url_with_user_password_host_port_path),
        cmocka_unit_test(test_url_without_user_info),
        cmocka_unit_test(test_url_with_ipv6_host),
        cmocka_unit_test(test_url_missing_host_is_refused),
        cmocka_unit_test(test_url_bad_port_is_refused),
        cmocka_unit_test(test_url_without_scheme_is_refused),
        cmocka_unit_test(test_strings_are_refused_with_control_characters_or_outside_their_class),
        cmocka_unit_test(test_retention_days_default_to_keep_and_are_checked),
        cmocka_unit_test(test_provider_http2_takes_its_three_modes_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
