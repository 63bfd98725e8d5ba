/*
 * tests/integration/api_generations.c - the generation API as a frontend
 * sees it: a real farm-api process over real HTTP with the fixture's Redis
 * and Postgres. The test plays the worker's part through the queue and
 * store APIs where a flow needs one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "queue.h"
#include "store.h"
#include "support.h"

#define SECRET "test-jwt-secret-0123456789"

extern char **environ;

static char base[64];
static pid_t api_pid;
static gf_config_t *cfg;
static queue_sync_t *qs;
static store_conn_t *sc;

static int setup(void **state)
{
    (void)state;
    static char port_env[64];
    int port = ts_free_port();
    snprintf(port_env, sizeof(port_env), "FARM_API_PORT=%d", port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    char log_path[512];
    snprintf(log_path, sizeof(log_path), "%s/api.log", ts_env("FARM_TEST_TMPDIR"));
    char *argv[] = {(char *)ts_env("FARM_TEST_API_BIN"), NULL};
    char *extra[] = {port_env,
                     "FARM_JWT_SECRET=" SECRET,
                     "FARM_FILE_SECRET=file-secret-x",
                     "FARM_SSE_HEARTBEAT_S=1",
                     "FARM_RATE_LIMIT_BURST=100",
                     "FARM_RATE_LIMIT_PER_MIN=60",
                     "FARM_CORS_ORIGINS=https://app.example",
                     NULL};
    api_pid = ts_spawn(argv, extra, log_path);
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", base);
    gf_err_t err = {0};
    cfg = gf_cfg_load(environ, &err);
    qs = cfg ? queue_sync_new(cfg, &err) : NULL;
    sc = cfg ? store_conn_new(cfg->database_url, &err) : NULL;
    return qs && sc && ts_wait_http(url, 200, NULL, 20) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (api_pid > 0)
        ts_stop(api_pid, SIGTERM, 10);
    queue_sync_free(qs);
    store_conn_free(sc);
    gf_cfg_free(cfg);
    gf_log_clear_secrets();
    return 0;
}

/* A token for a new user (or `sub`), with `plan` and `role`. */
static char *token(const char *sub, const char *plan, const char *role, char user_out[37])
{
    char user[37];
    if (sub == NULL)
        gf_uuid4(user);
    else
        snprintf(user, sizeof(user), "%s", sub);
    if (user_out)
        memcpy(user_out, user, 37);
    api_claims_t c = {.sub = user, .plan = plan, .role = role, .ttl_s = 3600};
    char *t = api_token_issue(SECRET, &c, NULL);
    assert_non_null(t);
    return t;
}

static ts_http_t call(const char *method, const char *path, const char *tok, const char *body,
                      const char *extra_header)
{
    char url[512], auth[2048];
    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok ? tok : "");
    int own_type = extra_header && strncasecmp(extra_header, "Content-Type:", 13) == 0;
    const char *headers[] = {tok ? auth : "X-None: 1",
                             own_type ? extra_header : "Content-Type: application/json",
                             extra_header && !own_type ? extra_header : "X-None: 2", NULL};
    return ts_http(method, url, headers, body, body ? strlen(body) : 0);
}

static void expect_error(ts_http_t *r, long status, const char *code, const char *field)
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

/* The id of a 202/200 answer. */
static void id_of(const ts_http_t *r, char out[37])
{
    const char *p = strstr(r->body, "\"id\":\"");
    assert_non_null(p);
    snprintf(out, 37, "%s", p + 6);
}

static long long credits_field(const char *tok, const char *field)
{
    ts_http_t r = call("GET", "/v1/credits", tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    char needle[32];
    snprintf(needle, sizeof(needle), "\"%s\":", field);
    const char *p = strstr(r.body, needle);
    assert_non_null(p);
    long long v = atoll(p + strlen(needle));
    ts_http_dispose(&r);
    return v;
}

static const char *AVATAR = "{\"kind\":\"avatar\",\"prompt\":\"a watercolor fox\"}";

/* --- authentication ---------------------------------------------------------------- */

static char *craft(const char *alg_none_sub, long exp, int with_sub, const char *key)
{
    jwt_t *j = NULL;
    jwt_new(&j);
    if (with_sub)
        jwt_add_grant(j, "sub", alg_none_sub);
    jwt_add_grant_int(j, "exp", exp);
    if (key)
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key));
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static void test_bad_tokens_are_401(void **state)
{
    (void)state;
    char user[37];
    gf_uuid4(user);
    long later = (long)time(NULL) + 3600;
    char *none = craft(user, later, 1, NULL);           /* alg none */
    char *wrong = craft(user, later, 1, "another-key"); /* bad signature */
    char *expired = craft(user, (long)time(NULL) - 10, 1, SECRET);
    char *nosub = craft(user, later, 0, SECRET);
    const char *cases[] = {NULL, "garbage.token.here", none, wrong, expired, nosub};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ts_http_t r = call("GET", "/v1/credits", cases[i], NULL, NULL);
        expect_error(&r, 401, "unauthorized", NULL);
    }
    free(none);
    free(wrong);
    free(expired);
    free(nosub);
}

/* --- validation and errors ----------------------------------------------------------- */

static void test_bad_requests_name_their_field(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    struct {
        const char *body, *field;
    } cases[] = {
        {"{\"kind\":\"avatar\"}", "prompt"},
        {"{\"kind\":\"portrait\",\"prompt\":\"x\"}", "kind"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"width\":1000}", "width"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"count\":5}", "count"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"seed\":-1}", "seed"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"guidance\":25}", "guidance"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"exports\":[\"poster\"]}", "exports"},
        {"{\"kind\":\"pose\",\"prompt\":\"x\"}", "poses"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"colour\":1}", "colour"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ts_http_t r = call("POST", "/v1/generations", t, cases[i].body, NULL);
        expect_error(&r, 400, "invalid_request", cases[i].field);
    }
    ts_http_t r = call("POST", "/v1/generations", t, "{not json", NULL);
    expect_error(&r, 400, "invalid_request", NULL);
    r = call("POST", "/v1/generations", t, AVATAR, "Content-Type: text/plain");
    expect_error(&r, 415, "unsupported_media_type", NULL);
    r = call("POST", "/v1/generations", t, AVATAR, "Content-Type: application/jsonx");
    expect_error(&r, 415, "unsupported_media_type", NULL);
    r = call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: caf\xc3\xa9");
    expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    r = call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: a\tb");
    expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    size_t big = 70 * 1024;
    char *huge = malloc(big + 64);
    snprintf(huge, big + 64, "{\"kind\":\"avatar\",\"prompt\":\"%0*d\"}", (int)big, 0);
    r = call("POST", "/v1/generations", t, huge, NULL);
    expect_error(&r, 413, "payload_too_large", NULL);
    free(huge);
    r = call("GET", "/v1/nothing-here", t, NULL, NULL);
    expect_error(&r, 404, "not_found", NULL);
    r = call("DELETE", "/v1/credits", t, NULL, NULL);
    expect_error(&r, 405, "method_not_allowed", NULL);
    /* Nothing above was charged. */
    assert_int_equal(credits_field(t, "held"), 0);
    /* A media type with parameters is still JSON. */
    r = call("POST", "/v1/generations", t, AVATAR, "Content-Type: application/json; charset=utf-8");
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    free(t);
}

/* --- accept: credits, idempotency, caps ---------------------------------------------------- */

typedef struct {
    const char *tok;
    int accepted, refused, other;
    pthread_mutex_t *mu;
} post_race_t;

static void *post_worker(void *arg)
{
    post_race_t *p = arg;
    for (int i = 0; i < 5; i++) {
        ts_http_t r = call("POST", "/v1/generations", p->tok, AVATAR, NULL);
        pthread_mutex_lock(p->mu);
        if (r.status == 202)
            p->accepted++;
        else if (r.status == 402)
            p->refused++;
        else
            p->other++;
        pthread_mutex_unlock(p->mu);
        ts_http_dispose(&r);
    }
    return NULL;
}

static void test_parallel_posts_never_overdraw(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    post_race_t p = {.tok = t, .mu = &mu};
    pthread_t th[10];
    for (int i = 0; i < 10; i++)
        pthread_create(&th[i], NULL, post_worker, &p);
    for (int i = 0; i < 10; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(p.other, 0);
    assert_int_equal(p.accepted, 10);
    assert_int_equal(p.refused, 40);
    assert_int_equal(credits_field(t, "held"), 100);
    assert_int_equal(credits_field(t, "available"), 0);
    free(t);
}

static void test_idempotency_key(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    ts_http_t a = call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: order-1");
    assert_int_equal(a.status, 202);
    ts_http_t b = call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: order-1");
    assert_int_equal(b.status, 200);
    char ida[37], idb[37];
    id_of(&a, ida);
    id_of(&b, idb);
    assert_string_equal(ida, idb);
    ts_http_dispose(&a);
    ts_http_dispose(&b);
    assert_int_equal(credits_field(t, "held"), 10);
    ts_http_t c = call("POST", "/v1/generations", t, "{\"kind\":\"avatar\",\"prompt\":\"another\"}",
                       "Idempotency-Key: order-1");
    expect_error(&c, 409, "idempotency_conflict", NULL);
    free(t);
}

static void test_active_cap_is_429_and_releases(void **state)
{
    (void)state;
    char *t = token(NULL, "free", NULL, NULL); /* tier free: 3 active at most */
    for (int i = 0; i < 3; i++) {
        ts_http_t r = call("POST", "/v1/generations", t, AVATAR, NULL);
        assert_int_equal(r.status, 202);
        ts_http_dispose(&r);
    }
    ts_http_t r = call("POST", "/v1/generations", t, AVATAR, NULL);
    assert_non_null(strcasestr(r.headers, "Retry-After:"));
    expect_error(&r, 429, "too_many_active", NULL);
    assert_int_equal(credits_field(t, "held"), 30);
    free(t);
}

static void test_rate_limit_is_429_with_retry_after(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    int before = 0;
    ts_http_t r = {0};
    for (int i = 0; i < 150; i++) {
        r = call("POST", "/v1/generations", t, AVATAR, NULL);
        if (r.status == 429)
            break;
        assert_true(r.status == 202 || r.status == 402);
        assert_non_null(strcasestr(r.headers, "RateLimit-Remaining: "));
        ts_http_dispose(&r);
        before++;
    }
    /* A burst of 100, plus what refilled at one a second while the loop ran. */
    assert_true(before >= 100 && before <= 110);
    assert_non_null(strcasestr(r.headers, "Retry-After: "));
    assert_non_null(strcasestr(r.headers, "RateLimit-Remaining: 0"));
    expect_error(&r, 429, "rate_limited", NULL);
    free(t);
}

static void test_cors_for_configured_origins_only(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    ts_http_t r = call("OPTIONS", "/v1/generations", NULL, NULL, "Origin: https://app.example");
    assert_int_equal(r.status, 204);
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: https://app.example"));
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Headers: Authorization"));
    ts_http_dispose(&r);
    r = call("GET", "/v1/credits", t, NULL, "Origin: https://app.example");
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: https://app.example"));
    assert_non_null(strcasestr(r.headers, "X-Content-Type-Options: nosniff"));
    assert_non_null(strcasestr(r.headers, "Cache-Control: no-store"));
    ts_http_dispose(&r);
    r = call("GET", "/v1/credits", t, NULL, "Origin: https://evil.example");
    assert_int_equal(r.status, 200);
    assert_null(strcasestr(r.headers, "Access-Control-Allow-Origin"));
    ts_http_dispose(&r);
    free(t);
}

/* --- reads, ownership, cancel ----------------------------------------------------------- */

static void test_owner_only_and_cancel_releases(void **state)
{
    (void)state;
    char *a = token(NULL, "pro", NULL, NULL), *b = token(NULL, "pro", NULL, NULL);
    ts_http_t r = call("POST", "/v1/generations", a, AVATAR, NULL);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"queue_position\":"));
    char id[37], path[128];
    id_of(&r, id);
    ts_http_dispose(&r);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = call("GET", path, b, NULL, NULL);
    expect_error(&r, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    r = call("GET", path, b, NULL, NULL);
    expect_error(&r, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    r = call("POST", path, b, NULL, NULL);
    expect_error(&r, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = call("GET", path, a, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"queued\""));
    assert_non_null(strstr(r.body, "\"seed\":"));
    ts_http_dispose(&r);
    assert_int_equal(credits_field(a, "held"), 10);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    r = call("POST", path, a, NULL, NULL);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"status\":\"canceled\""));
    ts_http_dispose(&r);
    assert_int_equal(credits_field(a, "held"), 0);
    assert_int_equal(credits_field(a, "balance"), 100);
    r = call("POST", path, a, NULL, NULL);
    expect_error(&r, 409, "not_cancelable", NULL);
    free(a);
    free(b);
}

static void test_list_pages_with_a_cursor(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    for (int i = 0; i < 3; i++) {
        ts_http_t r = call("POST", "/v1/generations", t, AVATAR, NULL);
        assert_int_equal(r.status, 202);
        ts_http_dispose(&r);
    }
    ts_http_t r = call("GET", "/v1/generations?limit=2", t, NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *cur = strstr(r.body, "\"next_cursor\":\"");
    assert_non_null(cur);
    char path[256], cursor[100];
    snprintf(cursor, sizeof(cursor), "%s", cur + 15);
    *strchr(cursor, '"') = '\0';
    ts_http_dispose(&r);
    snprintf(path, sizeof(path), "/v1/generations?limit=2&cursor=%s", cursor);
    r = call("GET", path, t, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"next_cursor\":null"));
    int items = 0;
    for (const char *p = strstr(r.body, "\"prompt\""); p; p = strstr(p + 1, "\"prompt\""))
        items++;
    assert_int_equal(items, 1);
    ts_http_dispose(&r);
    r = call("GET", "/v1/generations?status=bogus", t, NULL, NULL);
    expect_error(&r, 400, "invalid_request", "status");
    r = call("GET", "/v1/credits/ledger?limit=2", t, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"kind\":\"hold\""));
    ts_http_dispose(&r);
    free(t);
}

static void test_admin_credits(void **state)
{
    (void)state;
    char user[37];
    char *t = token(NULL, "pro", NULL, user);
    char *admin = token(NULL, "pro", "admin", NULL);
    char body[256];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":500,\"reason\":\"support\"}",
             user);
    ts_http_t r = call("POST", "/v1/admin/credits", t, body, NULL);
    expect_error(&r, 403, "forbidden", NULL);
    r = call("POST", "/v1/admin/credits", admin, body, NULL);
    assert_int_equal(r.status, 201);
    ts_http_dispose(&r);
    assert_int_equal(credits_field(t, "balance"), 600);
    r = call("POST", "/v1/admin/credits", admin, "{\"user_id\":\"x\",\"amount\":5}", NULL);
    expect_error(&r, 400, "invalid_request", "user_id");
    free(t);
    free(admin);
}

static void test_admin_stats_lists_live_workers(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    char *admin = token(NULL, "pro", "admin", NULL);
    ts_http_t r = call("GET", "/v1/admin/stats", t, NULL, NULL);
    expect_error(&r, 403, "forbidden", NULL);
    /* A worker that holds one job shows with its count and its last heartbeat. */
    r = call("POST", "/v1/generations", t, "{\"kind\":\"avatar\",\"prompt\":\"stats\"}", NULL);
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    queue_claim_t claim;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_claim(qs, "stats-worker", 1, &claim, &err), 0);
    assert_int_equal(claim.n_jobs, 1);
    r = call("GET", "/v1/admin/stats", admin, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *body = json_loads(r.body, 0, NULL);
    assert_non_null(body);
    assert_true(json_integer_value(json_object_get(body, "in_flight")) >= 1);
    json_t *workers = json_object_get(body, "workers"), *w;
    size_t i;
    int found = 0;
    json_array_foreach(workers, i, w)
    {
        if (strcmp(json_string_value(json_object_get(w, "id")), "stats-worker") != 0)
            continue;
        found = 1;
        assert_int_equal(json_integer_value(json_object_get(w, "in_flight")), 1);
        const char *seen = json_string_value(json_object_get(w, "last_heartbeat"));
        assert_non_null(seen);
        assert_int_equal(strlen(seen), 24); /* 2026-11-22T06:30:00.123Z */
        assert_int_equal(seen[23], 'Z');
    }
    assert_true(found);
    assert_int_equal(json_integer_value(json_object_get(body, "live_workers")),
                     (json_int_t)json_array_size(workers));
    json_decref(body);
    ts_http_dispose(&r);
    assert_int_equal(queue_sync_finish(qs, claim.jobs[0].gen_id, claim.jobs[0].token, QUEUE_FATAL,
                                       "test over", NULL, &err),
                     0);
    queue_claim_dispose(&claim);
    free(t);
    free(admin);
}

/* --- events ------------------------------------------------------------------------------ */

/* Opens GET /v1/events on a raw socket; returns the fd and the response's status (0 if none). */
static int sse_open_raw(const char *tok, int *status)
{
    int port = atoi(strrchr(base, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[2300];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n", tok);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[64] = {0};
    size_t got = 0;
    double end = ts_now() + 5;
    while (got < 12 && ts_now() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) == 1) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    *status = got >= 12 ? atoi(buf + 9) : 0; /* "HTTP/1.1 200" */
    return fd;
}

static void test_event_streams_are_limited_per_user(void **state)
{
    (void)state;
    /* FARM_SSE_MAX_PER_USER is 20 (the default): the 21st is refused, another
     * user is not, and a closed stream frees its place. */
    char *t = token(NULL, "pro", NULL, NULL), *other = token(NULL, "pro", NULL, NULL);
    int fds[20], st;
    for (int i = 0; i < 20; i++) {
        fds[i] = sse_open_raw(t, &st);
        assert_int_equal(st, 200);
    }
    int fd = sse_open_raw(t, &st);
    assert_int_equal(st, 429);
    close(fd);
    fd = sse_open_raw(other, &st);
    assert_int_equal(st, 200);
    close(fd);
    close(fds[0]);
    double end = ts_now() + 5;
    do {
        fd = sse_open_raw(t, &st);
        if (st != 200)
            close(fd);
    } while (st != 200 && ts_now() < end);
    assert_int_equal(st, 200);
    close(fd);
    for (int i = 1; i < 20; i++)
        close(fds[i]);
    free(t);
    free(other);
}

typedef struct {
    char url[512];
    char auth[2048];
    const char *last_event_id;
    gf_buf_t got;
    pthread_mutex_t mu;
    long status;
    double timeout_s;
} sse_client_t;

static size_t on_sse(char *p, size_t size, size_t n, void *ud)
{
    sse_client_t *c = ud;
    pthread_mutex_lock(&c->mu);
    gf_buf_append(&c->got, p, size * n);
    pthread_mutex_unlock(&c->mu);
    return size * n;
}

static void *sse_run(void *arg)
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

static int sse_has(sse_client_t *c, const char *needle)
{
    pthread_mutex_lock(&c->mu);
    int ok = c->got.p && strstr(c->got.p, needle) != NULL;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static int wait_for(sse_client_t *c, const char *needle, double timeout_s)
{
    double end = ts_now() + timeout_s;
    while (ts_now() < end) {
        if (sse_has(c, needle))
            return 1;
        usleep(20000);
    }
    return 0;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* Plays the worker: claims until generation `id` comes up; its fencing token. */
static uint64_t claim_token(const char *id)
{
    queue_claim_t claim = {0};
    gf_err_t err = {0};
    uint64_t tok = 0;
    for (int round = 0; round < 20 && tok == 0; round++) {
        assert_int_equal(queue_sync_claim(qs, "test-worker", 16, &claim, &err), 0);
        for (size_t i = 0; i < claim.n_jobs; i++)
            if (strcmp(claim.jobs[i].gen_id, id) == 0)
                tok = claim.jobs[i].token;
        queue_claim_dispose(&claim);
    }
    assert_true(tok > 0);
    return tok;
}

static void test_events_replay_and_resume_without_gaps(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    ts_http_t r = call("POST", "/v1/generations", t, AVATAR, NULL);
    assert_int_equal(r.status, 202);
    char id[37];
    id_of(&r, id);
    ts_http_dispose(&r);

    /* c1 follows the generation and "disconnects" (its timeout) after event 2. */
    sse_client_t c1 = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 4};
    snprintf(c1.url, sizeof(c1.url), "%s/v1/generations/%s/events?access_token=%s", base, id, t);
    snprintf(c1.auth, sizeof(c1.auth), "X-Client: 1");
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &c1);
    assert_true(wait_for(&c1, "id: 1\nevent: queued\n", 10));
    assert_true(sse_has(&c1, "retry: 2000\n"));
    /* API.md: the queued event carries the queue position. */
    assert_true(wait_for(&c1, "\"queue_position\":", 5));

    /* The worker's part: claim the job, start it, publish. */
    gf_err_t err = {0};
    uint64_t tok = claim_token(id);
    store_call_t sc_call;
    store_call_start(&sc_call, id, (long long)tok, "local");
    assert_int_equal(store_conn_exec(sc, &sc_call), 0);
    store_call_dispose(&sc_call);
    queue_result_t qr = {0};
    assert_int_equal(queue_sync_event_append(qs, id, tok, "started", NULL, &qr, &err), 0);
    assert_true(wait_for(&c1, "id: 2\nevent: started\n", 10));
    pthread_join(th, NULL);

    /* Events 3 and 4 are published while nobody listens. */
    const char *progress = "{\"status\":\"running\",\"stage\":\"generating\",\"progress\":40}";
    assert_int_equal(queue_sync_event_append(qs, id, tok, "progress", progress, &qr, &err), 0);
    assert_int_equal(queue_sync_event_append(qs, id, tok, "progress", progress, &qr, &err), 0);

    /* c2 resumes after 2: it gets 3 and 4 once, then the live terminal event, then the end. */
    sse_client_t c2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 30, .last_event_id = "2"};
    snprintf(c2.url, sizeof(c2.url), "%s/v1/generations/%s/events", base, id);
    snprintf(c2.auth, sizeof(c2.auth), "Authorization: Bearer %s", t);
    pthread_create(&th, NULL, sse_run, &c2);
    assert_true(wait_for(&c2, "id: 4\nevent: progress\n", 10));
    store_call_image(&sc_call, id, (long long)tok, 0, 1, NULL);
    assert_int_equal(store_conn_exec(sc, &sc_call), 0);
    store_call_dispose(&sc_call);
    store_call_finish(&sc_call, id, (long long)tok, "auto", NULL);
    assert_int_equal(store_conn_exec(sc, &sc_call), 0);
    store_call_dispose(&sc_call);
    assert_int_equal(queue_sync_finish(qs, id, tok, QUEUE_DONE, "{}", &qr, &err), 0);
    double started = ts_now();
    pthread_join(th, NULL);
    assert_true(ts_now() - started < 15); /* the stream ended by itself */
    assert_int_equal(c2.status, 200);
    assert_null(strstr(c2.got.p, "id: 1\n"));
    assert_null(strstr(c2.got.p, "id: 2\n"));
    assert_int_equal(count_of(c2.got.p, "id: 3\n"), 1);
    assert_int_equal(count_of(c2.got.p, "id: 4\n"), 1);
    assert_non_null(strstr(c2.got.p, "event: succeeded\ndata: {"));
    assert_non_null(strstr(c2.got.p, "\"charged\":10"));
    assert_null(strstr(c1.got.p, "id: 3\n"));

    /* A finished generation replays everything and ends. */
    sse_client_t c3 = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 30};
    snprintf(c3.url, sizeof(c3.url), "%s/v1/generations/%s/events?access_token=%s", base, id, t);
    snprintf(c3.auth, sizeof(c3.auth), "X-Client: 3");
    sse_run(&c3);
    assert_int_equal(count_of(c3.got.p, "\nevent: "), 5);
    assert_non_null(strstr(c3.got.p, "event: succeeded\n"));
    gf_buf_dispose(&c1.got);
    gf_buf_dispose(&c2.got);
    gf_buf_dispose(&c3.got);
    free(t);
}

/* /v1/events: a generation that failed ends with event 'failed' and its whole record. */
static void test_user_stream_ends_each_generation_with_its_own_status(void **state)
{
    (void)state;
    char *t = token(NULL, "pro", NULL, NULL);
    ts_http_t r = call("POST", "/v1/generations", t, AVATAR, NULL);
    assert_int_equal(r.status, 202);
    char id[37];
    id_of(&r, id);
    ts_http_dispose(&r);
    /* A worker's part: claim, start, its only image fails, finish. */
    gf_err_t err = {0};
    uint64_t tok = claim_token(id);
    store_call_t c;
    store_call_start(&c, id, (long long)tok, "local");
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    store_call_image(&c, id, (long long)tok, 0, 0,
                     "{\"code\":\"provider_error\",\"message\":\"no\",\"retryable\":false}");
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    store_call_finish(&c, id, (long long)tok, "auto", NULL);
    assert_int_equal(store_conn_exec(sc, &c), 0);
    store_call_dispose(&c);
    queue_result_t qr = {0};
    assert_int_equal(queue_sync_finish(qs, id, tok, QUEUE_DONE, "{}", &qr, &err), 0);

    sse_client_t u = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_s = 5};
    snprintf(u.url, sizeof(u.url), "%s/v1/events", base);
    snprintf(u.auth, sizeof(u.auth), "Authorization: Bearer %s", t);
    pthread_t th;
    pthread_create(&th, NULL, sse_run, &u);
    assert_true(wait_for(&u, "event: failed\ndata: {", 5));
    pthread_join(th, NULL);
    assert_int_equal(u.status, 200);
    assert_null(strstr(u.got.p, "event: succeeded")); /* the queue's 'done' is not a success */
    const char *term = strstr(u.got.p, "event: failed\ndata: ");
    assert_non_null(term);
    assert_non_null(strstr(term, "\"status\":\"failed\""));
    assert_non_null(strstr(term, "\"released\":10"));
    assert_non_null(strstr(term, id));
    gf_buf_dispose(&u.got);
    free(t);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_tokens_are_401),
        cmocka_unit_test(test_bad_requests_name_their_field),
        cmocka_unit_test(test_parallel_posts_never_overdraw),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_active_cap_is_429_and_releases),
        cmocka_unit_test(test_rate_limit_is_429_with_retry_after),
        cmocka_unit_test(test_cors_for_configured_origins_only),
        cmocka_unit_test(test_owner_only_and_cancel_releases),
        cmocka_unit_test(test_list_pages_with_a_cursor),
        cmocka_unit_test(test_admin_credits),
        cmocka_unit_test(test_admin_stats_lists_live_workers),
        cmocka_unit_test(test_event_streams_are_limited_per_user),
        cmocka_unit_test(test_events_replay_and_resume_without_gaps),
        cmocka_unit_test(test_user_stream_ends_each_generation_with_its_own_status),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
