/*
 * tests/unit/core/test_log.c - core/log.c: the exact JSON line, escaping
 * (every line must parse as JSON and hold no raw newline but its last byte,
 * whatever bytes a message carries) and redaction of secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"
#include "core_test.h"

#define TS   "2024-01-02T03:04:05.678Z"
#define FFFD "\xef\xbf\xbd" /* U+FFFD REPLACEMENT CHARACTER in UTF-8 */

static int teardown(void **state)
{
    (void)state;
    gf_log_clear_secrets();
    gf_log_set_fd(2);
    gf_log_min_level = GF_LOG_INFO;
    return 0;
}

/*
 * Checks what every line must be: one JSON object, a single trailing newline
 * and no other; returns the parsed object (json_decref it).
 */
static json_t *assert_json_line(const char *line)
{
    size_t n = strlen(line);
    assert_true(n > 1);
    assert_int_equal(line[n - 1], '\n');
    assert_ptr_equal(strchr(line, '\n'), line + n - 1);
    assert_null(strchr(line, '\r'));
    json_error_t jerr;
    json_t *root = json_loads(line, 0, &jerr);
    if (root == NULL)
        fail_msg("not JSON (%s): %s", jerr.text, line);
    assert_true(json_is_object(root));
    return root;
}

/* The "msg" of a formatted line, decoded; free with free(). */
static char *msg_of(const char *msg)
{
    char *line = gf_log_format(GF_LOG_INFO, NULL, TS, msg);
    json_t *root = assert_json_line(line);
    const char *m = json_string_value(json_object_get(root, "msg"));
    assert_non_null(m);
    char *copy = strdup(m);
    json_decref(root);
    free(line);
    return copy;
}

/* Asserts that gf_log_redact(in) is exactly `want`. */
static void assert_redacted(const char *in, const char *want)
{
    char *got = gf_log_redact(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_line_has_exact_fields_in_order(void **state)
{
    (void)state;
    gf_log_ctx ctx = {.component = "api",
                      .request_id = "r-1",
                      .generation_id = "g-2",
                      .worker_id = "w-3",
                      .user_id = "u-4",
                      .job_id = "j-5",
                      .provider = "hf",
                      .action = "calling provider",
                      .attempt = 2};
    char *line = gf_log_format(GF_LOG_WARN, &ctx, TS, "provider answered 503");
    assert_string_equal(
        line, "{\"ts\":\"" TS "\",\"level\":\"warn\",\"component\":\"api\","
              "\"msg\":\"provider answered 503\",\"action\":\"calling provider\","
              "\"request_id\":\"r-1\",\"generation_id\":\"g-2\",\"worker_id\":\"w-3\","
              "\"user_id\":\"u-4\",\"job_id\":\"j-5\",\"provider\":\"hf\",\"attempt\":2}\n");
    json_decref(assert_json_line(line));
    free(line);
}

/* An access-log line (core/httpd): the request's fields after the ids, numbers as numbers. */
static void test_access_line_carries_the_request(void **state)
{
    (void)state;
    gf_log_http_t http = {.method = "GET",
                          .route = "/v1/generations/:id",
                          .status = 404,
                          .bytes = 97,
                          .duration_ms = 1.25};
    gf_log_ctx ctx = {.component = "api", .request_id = "r-1", .user_id = "u-4", .http = &http};
    char *line = gf_log_format(GF_LOG_INFO, &ctx, TS, "request");
    assert_string_equal(line, "{\"ts\":\"" TS "\",\"level\":\"info\",\"component\":\"api\","
                              "\"msg\":\"request\",\"request_id\":\"r-1\",\"user_id\":\"u-4\","
                              "\"method\":\"GET\",\"route\":\"/v1/generations/:id\",\"status\":404,"
                              "\"bytes\":97,\"duration_ms\":1.250}\n");
    json_decref(assert_json_line(line));
    free(line);
}

static void test_absent_ids_are_left_out(void **state)
{
    (void)state;
    char *line = gf_log_format(GF_LOG_ERROR, NULL, TS, "boom");
    assert_string_equal(line, "{\"ts\":\"" TS "\",\"level\":\"error\",\"component\":\"farm\","
                              "\"msg\":\"boom\"}\n");
    free(line);

    gf_log_ctx ctx = {.component = "worker", .job_id = "j1"};
    line = gf_log_format(GF_LOG_DEBUG, &ctx, TS, "");
    assert_string_equal(line, "{\"ts\":\"" TS "\",\"level\":\"debug\",\"component\":\"worker\","
                              "\"msg\":\"\",\"job_id\":\"j1\"}\n");
    free(line);
}

static void test_quotes_backslashes_and_control_bytes_are_escaped(void **state)
{
    (void)state;
    const char *msg = "say \"hi\" \\ back\nnext\ttab\rcr\x01\x1f\x7f end";
    char *line = gf_log_format(GF_LOG_INFO, NULL, TS, msg);
    assert_string_equal(line, "{\"ts\":\"" TS "\",\"level\":\"info\",\"component\":\"farm\","
                              "\"msg\":\"say \\\"hi\\\" \\\\ back\\nnext\\ttab\\rcr\\u0001\\u001f"
                              "\\u007f end\"}\n");
    json_t *root = assert_json_line(line);
    assert_string_equal(json_string_value(json_object_get(root, "msg")), msg); /* round trip */
    json_decref(root);
    free(line);
}

static void test_escaping_applies_to_context_fields(void **state)
{
    (void)state;
    gf_log_ctx ctx = {.component = "a\"b", .user_id = "line\nbreak", .provider = "\\"};
    char *line = gf_log_format(GF_LOG_INFO, &ctx, TS, "m");
    json_t *root = assert_json_line(line);
    assert_string_equal(json_string_value(json_object_get(root, "component")), "a\"b");
    assert_string_equal(json_string_value(json_object_get(root, "user_id")), "line\nbreak");
    assert_string_equal(json_string_value(json_object_get(root, "provider")), "\\");
    json_decref(root);
    free(line);
}

static void test_invalid_utf8_becomes_replacement_characters(void **state)
{
    (void)state;
    /* Valid multi-byte text survives; every byte of an invalid sequence is replaced. */
    char *m = msg_of("ok \xc3\xa9 \xf0\x9f\x98\x80|"
                     "\xff|\xc3\x28|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\x80|end\xe2\x82");
    assert_string_equal(m, "ok \xc3\xa9 \xf0\x9f\x98\x80|" FFFD "|" FFFD "(|" FFFD FFFD
                           "|" FFFD FFFD FFFD "|" FFFD FFFD FFFD FFFD "|" FFFD "|end" FFFD FFFD);
    free(m);
}

static void test_every_byte_value_yields_a_valid_line(void **state)
{
    (void)state;
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    char *m = msg_of(all);
    /* Printable ASCII passes through unchanged. */
    assert_non_null(strstr(m, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"));
    free(m);
}

static void test_bearer_tokens_are_masked(void **state)
{
    (void)state;
    assert_redacted("Authorization: Bearer abc.DEF-123_x/+=", "Authorization: Bearer [redacted]");
    assert_redacted("header authorization=bearer tok_1 rest",
                    "header authorization=bearer [redacted] rest");
    assert_redacted("Bearer  spaced", "Bearer  spaced"); /* not a token: nothing to hide */
}

static void test_jwts_are_masked(void **state)
{
    (void)state;
    assert_redacted("got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl-_x from client",
                    "got [jwt] from client");
    assert_redacted("\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.sig\"", "\"[jwt]\"");
    assert_redacted("eyJonly", "eyJonly"); /* no dot: not a JWT */
}

static void test_url_passwords_are_masked(void **state)
{
    (void)state;
    assert_redacted("connecting to postgresql://farm:hunter2@db:5432/farm failed",
                    "connecting to postgresql://farm:[redacted]@db:5432/farm failed");
    assert_redacted("redis://:s3cret@cache:6379/0", "redis://:[redacted]@cache:6379/0");
    assert_redacted("postgres://farm@db/farm", "postgres://farm@db/farm"); /* no password */
    assert_redacted("see http://host:8080/path@x", "see http://host:8080/path@x");
    /* An unescaped '@' in the password: the mask runs to the last '@' of the authority. */
    assert_redacted("postgresql://farm:p@ssw0rdtail@127.0.0.1:1/x",
                    "postgresql://farm:[redacted]@127.0.0.1:1/x");
}

/* A registered secret is masked before the patterns, which could cut it so it no longer matched. */
static void test_registered_secrets_go_before_patterns(void **state)
{
    (void)state;
    gf_log_add_secret("p@ssw0rdtail");
    char *out = gf_log_redact("FARM_DATABASE_URL=postgresql://farm:p@ssw0rdtail@db/farm refused");
    assert_null(strstr(out, "ssw0rd"));
    free(out);
    /* A pattern that drops a value must not join what surrounds it into a secret. */
    gf_log_add_secret("key=&x");
    out = gf_log_redact("key=:&x");
    assert_null(strstr(out, "key=&x"));
    free(out);
    gf_log_add_secret("pa/ss@word");
    out = gf_log_redact("postgresql://farm:pa/ss@word@db/farm");
    assert_null(strstr(out, "ss@word"));
    assert_null(strstr(out, "pa/ss"));
    free(out);
    gf_log_clear_secrets();
}

static void test_secret_query_values_are_masked(void **state)
{
    (void)state;
    assert_redacted("GET /files/a.png?exp=1700000000&sig=abcDEF0123&w=64",
                    "GET /files/a.png?exp=1700000000&sig=[redacted]&w=64");
    assert_redacted("/cb?access_token=ya29.a0AfH6-x&state=s1",
                    "/cb?access_token=[redacted]&state=s1");
    assert_redacted("/x?token=t0k&password=pw&api_key=k1,next",
                    "/x?token=[redacted]&password=[redacted]&api_key=[redacted],next");
    assert_redacted("monkey=banana donkey=kong", "monkey=banana donkey=kong");
    /* libpq's key passphrase, in a FARM_DATABASE_URL or a keyword/value string */
    assert_redacted("postgresql://farm@db/farm?sslmode=verify-full&sslpassword=hunter2secret",
                    "postgresql://farm@db/farm?sslmode=verify-full&sslpassword=[redacted]");
    assert_redacted("host=db sslpassword=hunter2 user=farm",
                    "host=db sslpassword=[redacted] user=farm");
}

static void test_registered_secrets_are_masked_everywhere(void **state)
{
    (void)state;
    gf_log_add_secret("sk-live-0123456789");
    gf_log_add_secret("sk-live-0123456789"); /* twice is once */
    gf_log_add_secret("abc");                /* too short to mask safely: ignored */
    gf_log_add_secret(NULL);
    assert_redacted("using sk-live-0123456789 and again sk-live-0123456789, abc",
                    "using [redacted] and again [redacted], abc");

    gf_log_ctx ctx = {.action = "posting sk-live-0123456789"};
    char *line = gf_log_format(GF_LOG_INFO, &ctx, TS, "key=sk-live-0123456789x");
    assert_null(strstr(line, "sk-live"));
    json_decref(assert_json_line(line));
    free(line);

    gf_log_clear_secrets();
    assert_redacted("using sk-live-0123456789", "using sk-live-0123456789");
}

static void test_lines_mask_every_kind_of_secret(void **state)
{
    (void)state;
    gf_log_add_secret("registered-secret-value");
    gf_log_ctx ctx = {.component = "api",
                      .action = "calling https://user:pw1234@provider.example/v1?sig=zz9"};
    char *line =
        gf_log_format(GF_LOG_ERROR, &ctx, TS,
                      "auth Bearer tok.en-1 jwt eyJa.eyJb.c postgresql://farm:dbpass@db/farm "
                      "/f?access_token=at1&sig=s1 registered-secret-value");
    json_t *root = assert_json_line(line);
    assert_string_equal(json_string_value(json_object_get(root, "msg")),
                        "auth Bearer [redacted] jwt [jwt] postgresql://farm:[redacted]@db/farm "
                        "/f?access_token=[redacted]&sig=[redacted] [redacted]");
    assert_string_equal(json_string_value(json_object_get(root, "action")),
                        "calling https://user:[redacted]@provider.example/v1?sig=[redacted]");
    json_decref(root);
    static const char *const leaked[] = {
        "tok.en-1", "eyJb", "dbpass", "at1", "s1 ", "registered-secret-value", "pw1234", "zz9"};
    for (size_t i = 0; i < sizeof(leaked) / sizeof(leaked[0]); i++)
        if (strstr(line, leaked[i]) != NULL)
            fail_msg("%s leaked into %s", leaked[i], line);
    free(line);
}

static int evaluations;

static int counted(int v)
{
    evaluations++;
    return v;
}

static void test_log_skips_lower_levels_without_evaluating_arguments(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    gf_log_set_fd(fds[1]);
    gf_log_min_level = GF_LOG_WARN;
    evaluations = 0;
    GF_LOG(GF_LOG_INFO, NULL, "hidden %d", counted(1));
    GF_LOG(GF_LOG_DEBUG, NULL, "hidden %d", counted(2));
    assert_int_equal(evaluations, 0);
    gf_log_ctx ctx = {.component = "queue", .job_id = "j9"};
    GF_LOG(GF_LOG_ERROR, &ctx, "claim failed %d times", counted(3));
    assert_int_equal(evaluations, 1);
    gf_log_set_fd(2);
    close(fds[1]);
    char *out = ct_drain(fds[0]);
    close(fds[0]);
    json_t *root = assert_json_line(out); /* exactly one line */
    assert_string_equal(json_string_value(json_object_get(root, "msg")), "claim failed 3 times");
    assert_string_equal(json_string_value(json_object_get(root, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(root, "component")), "queue");
    const char *ts = json_string_value(json_object_get(root, "ts"));
    assert_non_null(ts); /* 2024-01-02T03:04:05.678Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    json_decref(root);
    free(out);
}

static void test_long_messages_are_written_whole(void **state)
{
    (void)state;
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    gf_log_set_fd(fds[1]);
    GF_LOG(GF_LOG_ERROR, NULL, "%s|%d", big, 42);
    gf_log_set_fd(2);
    close(fds[1]);
    char *out = ct_drain(fds[0]);
    close(fds[0]);
    json_t *root = assert_json_line(out);
    const char *msg = json_string_value(json_object_get(root, "msg"));
    assert_int_equal(strlen(msg), sizeof(big) - 1 + 3);
    assert_string_equal(msg + sizeof(big) - 1, "|42");
    json_decref(root);
    free(out);
}

static void test_error_records_read_with_their_action(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    gf_log_set_fd(fds[1]);
    gf_err_t err = {0};
    gf_err_set(&err, GF_EUNAVAIL, "store", "insert into outputs failed");
    gf_log_err(GF_LOG_ERROR, &(gf_log_ctx){.action = "saving output"}, &err);
    gf_log_err(GF_LOG_WARN, NULL, &err);
    gf_log_err(GF_LOG_DEBUG, NULL, &err); /* below the default level: nothing */
    gf_log_set_fd(2);
    close(fds[1]);
    char *out = ct_drain(fds[0]);
    close(fds[0]);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    second++;
    char *first = strndup(out, (size_t)(second - out));
    json_t *a = assert_json_line(first);
    json_t *b = assert_json_line(second);
    assert_string_equal(json_string_value(json_object_get(a, "msg")),
                        "store: insert into outputs failed (EUNAVAIL) while saving output");
    assert_string_equal(json_string_value(json_object_get(b, "msg")),
                        "store: insert into outputs failed (EUNAVAIL)");
    json_decref(a);
    json_decref(b);
    free(first);
    free(out);
}

static void test_level_names_parse_both_ways(void **state)
{
    (void)state;
    assert_int_equal(gf_log_level_parse("debug"), GF_LOG_DEBUG);
    assert_int_equal(gf_log_level_parse("info"), GF_LOG_INFO);
    assert_int_equal(gf_log_level_parse("warn"), GF_LOG_WARN);
    assert_int_equal(gf_log_level_parse("error"), GF_LOG_ERROR);
    assert_int_equal(gf_log_level_parse("WARN"), -1);
    assert_int_equal(gf_log_level_parse("warning"), -1);
    assert_string_equal(gf_log_level_name(GF_LOG_ERROR), "error");
    assert_string_equal(gf_log_level_name(7), "?");
    assert_string_equal(gf_log_level_name(-1), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_line_has_exact_fields_in_order, teardown),
        cmocka_unit_test_teardown(test_access_line_carries_the_request, teardown),
        cmocka_unit_test_teardown(test_absent_ids_are_left_out, teardown),
        cmocka_unit_test_teardown(test_quotes_backslashes_and_control_bytes_are_escaped, teardown),
        cmocka_unit_test_teardown(test_escaping_applies_to_context_fields, teardown),
        cmocka_unit_test_teardown(test_invalid_utf8_becomes_replacement_characters, teardown),
        cmocka_unit_test_teardown(test_every_byte_value_yields_a_valid_line, teardown),
        cmocka_unit_test_teardown(test_bearer_tokens_are_masked, teardown),
        cmocka_unit_test_teardown(test_jwts_are_masked, teardown),
        cmocka_unit_test_teardown(test_url_passwords_are_masked, teardown),
        cmocka_unit_test_teardown(test_registered_secrets_go_before_patterns, teardown),
        cmocka_unit_test_teardown(test_secret_query_values_are_masked, teardown),
        cmocka_unit_test_teardown(test_registered_secrets_are_masked_everywhere, teardown),
        cmocka_unit_test_teardown(test_lines_mask_every_kind_of_secret, teardown),
        cmocka_unit_test_teardown(test_log_skips_lower_levels_without_evaluating_arguments,
                                  teardown),
        cmocka_unit_test_teardown(test_long_messages_are_written_whole, teardown),
        cmocka_unit_test_teardown(test_error_records_read_with_their_action, teardown),
        cmocka_unit_test_teardown(test_level_names_parse_both_ways, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
