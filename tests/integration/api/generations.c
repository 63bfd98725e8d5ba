/*
 * tests/integration/api/generations.c - the generation API as a frontend
 * sees it: a real farm-api process over real HTTP with the fixture's Redis
 * and Postgres. The test plays the worker's part through the queue and
 * store APIs where a flow needs one. The event routes are in events.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "queue.h"
#include "store.h"
#include "played_worker.h"
#include "support.h"

static int setup(void **state)
{
    (void)state;
    static const char *const extra[] = {"FARM_FILE_SECRET=file-secret-x-0123456789",
                                        "FARM_RATE_LIMIT_BURST=100", "FARM_RATE_LIMIT_PER_MIN=60",
                                        "FARM_CORS_ORIGINS=https://app.example", NULL};
    return pw_setup(extra);
}

static int teardown(void **state)
{
    (void)state;
    return pw_teardown();
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
    char *expired = craft(user, (long)time(NULL) - 10, 1, AU_SECRET);
    char *nosub = craft(user, later, 0, AU_SECRET);
    const char *cases[] = {NULL, "garbage.token.here", none, wrong, expired, nosub};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ts_http_t r = au_call("GET", "/v1/credits", cases[i], NULL, NULL);
        au_expect_error(&r, 401, "unauthorized", NULL);
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
    char *t = au_token(NULL, "pro", NULL, NULL);
    struct {
        const char *body, *field;
    } cases[] = {
        {"{\"kind\":\"avatar\"}", "prompt"},
        {"{\"kind\":\"portrait\",\"prompt\":\"x\"}", "kind"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"width\":1000}", "width"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"count\":5}", "count"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"seed\":-1}", "seed"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"seed\":18446744073709551616}", "seed"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"guidance\":25}", "guidance"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"exports\":[\"poster\"]}", "exports"},
        {"{\"kind\":\"pose\",\"prompt\":\"x\"}", "poses"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"colour\":1}", "colour"},
        /* This api has no provider token: auto and local only (it was accepted, and run
         * on whatever provider the worker had). */
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"provider\":\"hf\"}", "provider"},
        {"{\"kind\":\"avatar\",\"prompt\":\"x\",\"provider\":\"fake\"}", "provider"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ts_http_t r = au_call("POST", "/v1/generations", t, cases[i].body, NULL);
        au_expect_error(&r, 400, "invalid_request", cases[i].field);
    }
    ts_http_t r = au_call("POST", "/v1/generations", t, "{not json", NULL);
    au_expect_error(&r, 400, "invalid_request", NULL);
    r = au_call("POST", "/v1/generations", t, AVATAR, "Content-Type: text/plain");
    au_expect_error(&r, 415, "unsupported_media_type", NULL);
    r = au_call("POST", "/v1/generations", t, AVATAR, "Content-Type: application/jsonx");
    au_expect_error(&r, 415, "unsupported_media_type", NULL);
    r = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: caf\xc3\xa9");
    au_expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    r = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: a\tb");
    au_expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    size_t big = 70 * 1024;
    char *huge = malloc(big + 64);
    snprintf(huge, big + 64, "{\"kind\":\"avatar\",\"prompt\":\"%0*d\"}", (int)big, 0);
    r = au_call("POST", "/v1/generations", t, huge, NULL);
    au_expect_error(&r, 413, "payload_too_large", NULL);
    free(huge);
    r = au_call("GET", "/v1/nothing-here", t, NULL, NULL);
    au_expect_error(&r, 404, "not_found", NULL);
    r = au_call("DELETE", "/v1/credits", t, NULL, NULL);
    au_expect_error(&r, 405, "method_not_allowed", NULL);
    /* Nothing above was charged. */
    assert_int_equal(au_credits_field(t, "held"), 0);
    /* A media type with parameters is still JSON. */
    r = au_call("POST", "/v1/generations", t, AVATAR,
                "Content-Type: application/json; charset=utf-8");
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
        ts_http_t r = au_call("POST", "/v1/generations", p->tok, AVATAR, NULL);
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
    char *t = au_token(NULL, "pro", NULL, NULL);
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
    assert_int_equal(au_credits_field(t, "held"), 100);
    assert_int_equal(au_credits_field(t, "available"), 0);
    free(t);
}

static void test_idempotency_key(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    ts_http_t a = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: order-1");
    assert_int_equal(a.status, 202);
    ts_http_t b = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: order-1");
    assert_int_equal(b.status, 200);
    char ida[37], idb[37];
    au_id_of(&a, ida);
    au_id_of(&b, idb);
    assert_string_equal(ida, idb);
    ts_http_dispose(&a);
    ts_http_dispose(&b);
    assert_int_equal(au_credits_field(t, "held"), 10);
    ts_http_t c =
        au_call("POST", "/v1/generations", t, "{\"kind\":\"avatar\",\"prompt\":\"another\"}",
                "Idempotency-Key: order-1");
    au_expect_error(&c, 409, "idempotency_conflict", NULL);
    free(t);
}

/* A repeated request is answered the first answer's body (API.md): a generation still
 * queued keeps its queue_position, not null. */
static void test_a_replay_of_a_queued_generation_has_its_position(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    ts_http_t a = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: place-1");
    ts_http_t b = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: place-1");
    assert_int_equal(a.status, 202);
    assert_int_equal(b.status, 200);
    json_t *ja = json_loads(a.body, 0, NULL), *jb = json_loads(b.body, 0, NULL);
    assert_true(json_is_integer(json_object_get(ja, "queue_position")));
    assert_true(json_is_integer(json_object_get(jb, "queue_position")));
    assert_true(
        json_equal(json_object_get(ja, "queue_position"), json_object_get(jb, "queue_position")));
    json_decref(ja);
    json_decref(jb);
    char id[37], path[128];
    au_id_of(&a, id);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id); /* credits, active cap */
    ts_http_t r = au_call("POST", path, t, NULL, NULL);
    au_expect(&r, 202, NULL);
    ts_http_dispose(&a);
    ts_http_dispose(&b);
    free(t);
}

/* The created_at of answer `r` (200 or 202, asserted), into `out`; disposes of `r`. */
static void created_at_of(ts_http_t *r, long status, char out[32])
{
    assert_int_equal(r->status, status);
    json_t *j = json_loads(r->body, 0, NULL);
    assert_non_null(j);
    snprintf(out, 32, "%s", au_str(j, "created_at"));
    json_decref(j);
    ts_http_dispose(r);
}

/* The 202, a repeated request's 200 and GET give a generation the same created_at (the api's
 * clock stamped the 202 and Postgres's the row: they differed by a few ms, more across hosts). */
static void test_created_at_is_the_same_in_every_answer(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    for (int i = 0; i < 20; i++) { /* a few, to catch a clock that differs by < 1 ms */
        char key[64], path[96], first[32], again[32], got[32], id[37];
        snprintf(key, sizeof(key), "Idempotency-Key: same-time-%d", i);
        ts_http_t r = au_call("POST", "/v1/generations", t, AVATAR, key);
        au_id_of(&r, id);
        created_at_of(&r, 202, first);
        r = au_call("POST", "/v1/generations", t, AVATAR, key);
        created_at_of(&r, 200, again);
        snprintf(path, sizeof(path), "/v1/generations/%s", id);
        r = au_call("GET", path, t, NULL, NULL);
        created_at_of(&r, 200, got);
        if (strcmp(first, again) != 0 || strcmp(first, got) != 0)
            fail_msg("created_at: 202 %s, repeated 200 %s, GET %s", first, again, got);
        snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id); /* credits, active cap */
        r = au_call("POST", path, t, NULL, NULL);
        au_expect(&r, 202, NULL);
    }
    free(t);
}

/* How many times `needle` is in the body of GET `path`. */
static int occurrences(const char *tok, const char *path, const char *needle)
{
    ts_http_t r = au_call("GET", path, tok, NULL, NULL);
    assert_int_equal(r.status, 200);
    int n = 0;
    for (const char *p = r.body; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    ts_http_dispose(&r);
    return n;
}

static void test_active_cap_is_429_and_releases(void **state)
{
    (void)state;
    char *t = au_token(NULL, "free", NULL, NULL); /* tier free: 3 active at most */
    char first[37];
    for (int i = 0; i < 3; i++) {
        ts_http_t r = au_call("POST", "/v1/generations", t, AVATAR, NULL);
        assert_int_equal(r.status, 202);
        if (i == 0)
            au_id_of(&r, first);
        ts_http_dispose(&r);
    }
    ts_http_t r = au_call("POST", "/v1/generations", t, AVATAR, NULL);
    assert_non_null(strcasestr(r.headers, "Retry-After:"));
    au_expect_error(&r, 429, "too_many_active", NULL);
    assert_int_equal(au_credits_field(t, "held"), 30);
    /* Refused before anything was written: no canceled generation, no hold and release. */
    assert_int_equal(occurrences(t, "/v1/generations?limit=100", "\"images_done\""), 3);
    assert_int_equal(occurrences(t, "/v1/credits/ledger?limit=100", "\"kind\":\"hold\""), 3);
    assert_int_equal(occurrences(t, "/v1/credits/ledger?limit=100", "\"kind\":\"release\""), 0);
    /* Refused with an Idempotency-Key, then retried with it once there is room: a new
     * attempt, not a replay of the refusal (the key used to stay bound to it for 24 h). */
    r = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: cap-retry-1");
    au_expect_error(&r, 429, "too_many_active", NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", first);
    r = au_call("POST", path, t, NULL, NULL);
    au_expect(&r, 202, NULL);
    r = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: cap-retry-1");
    au_expect(&r, 202, "\"status\":\"queued\"");
    r = au_call("POST", "/v1/generations", t, AVATAR, "Idempotency-Key: cap-retry-1");
    assert_int_equal(r.status, 200); /* and from now on the key replays that one */
    ts_http_dispose(&r);
    assert_int_equal(au_credits_field(t, "held"), 30);
    free(t);
}

static void test_rate_limit_is_429_with_retry_after(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    int before = 0;
    ts_http_t r = {0};
    for (int i = 0; i < 150; i++) {
        r = au_call("POST", "/v1/generations", t, AVATAR, NULL);
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
    au_expect_error(&r, 429, "rate_limited", NULL);
    free(t);
}

static void test_cors_for_configured_origins_only(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    ts_http_t r = au_call("OPTIONS", "/v1/generations", NULL, NULL, "Origin: https://app.example");
    assert_int_equal(r.status, 204);
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: https://app.example"));
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Headers: Authorization"));
    ts_http_dispose(&r);
    r = au_call("GET", "/v1/credits", t, NULL, "Origin: https://app.example");
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "Access-Control-Allow-Origin: https://app.example"));
    assert_non_null(strcasestr(r.headers, "X-Content-Type-Options: nosniff"));
    assert_non_null(strcasestr(r.headers, "Cache-Control: no-store"));
    ts_http_dispose(&r);
    r = au_call("GET", "/v1/credits", t, NULL, "Origin: https://evil.example");
    assert_int_equal(r.status, 200);
    assert_null(strcasestr(r.headers, "Access-Control-Allow-Origin"));
    ts_http_dispose(&r);
    free(t);
}

/* --- reads, ownership, cancel ----------------------------------------------------------- */

static void test_owner_only_and_cancel_releases(void **state)
{
    (void)state;
    char *a = au_token(NULL, "pro", NULL, NULL), *b = au_token(NULL, "pro", NULL, NULL);
    ts_http_t r = au_call("POST", "/v1/generations", a, AVATAR, NULL);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"queue_position\":"));
    char id[37], path[128];
    au_id_of(&r, id);
    ts_http_dispose(&r);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = au_call("GET", path, b, NULL, NULL);
    au_expect_error(&r, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s/events", id);
    r = au_call("GET", path, b, NULL, NULL);
    au_expect_error(&r, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    r = au_call("POST", path, b, NULL, NULL);
    au_expect_error(&r, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = au_call("GET", path, a, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"queued\""));
    assert_non_null(strstr(r.body, "\"seed\":"));
    ts_http_dispose(&r);
    assert_int_equal(au_credits_field(a, "held"), 10);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    r = au_call("POST", path, a, NULL, NULL);
    au_expect(&r, 202, "\"status\":\"canceled\"");
    assert_int_equal(au_credits_field(a, "held"), 0);
    assert_int_equal(au_credits_field(a, "balance"), 100);
    r = au_call("POST", path, a, NULL, NULL);
    au_expect_error(&r, 409, "not_cancelable", NULL);
    free(a);
    free(b);
}

/*
 * A cancel of a running generation whose worker had handed its job back
 * (Postgres: running; the queue: waiting, no holder to tell): the queue
 * ends the job canceled at once, and the api finishes it in Postgres too,
 * with no sweeper: GET says canceled and the credits are back. Before, GET
 * said running, and the user's event stream held every later event, until
 * a sweep.
 */
static void test_a_cancel_of_a_handed_back_generation_ends_it_at_once(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37], path[128];
    au_create(t, AVATAR, id);
    uint64_t tok = pw_start(id);
    queue_result_t qr = {0};
    gf_err_t err = {0};
    assert_int_equal(queue_sync_finish(pw_qs, id, tok, QUEUE_HANDBACK, NULL, &qr, &err), 0);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", id);
    ts_http_t r = au_call("POST", path, t, NULL, NULL);
    assert_int_equal(r.status, 202);
    ts_http_dispose(&r);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    int canceled = 0;
    for (double end = ts_now() + 5; !canceled && ts_now() < end; usleep(100000)) {
        r = au_call("GET", path, t, NULL, NULL);
        canceled = r.status == 200 && strstr(r.body, "\"status\":\"canceled\"") != NULL;
        ts_http_dispose(&r);
    }
    assert_true(canceled);
    assert_int_equal(au_credits_field(t, "held"), 0);
    free(t);
}

static void test_list_pages_with_a_cursor(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    for (int i = 0; i < 3; i++) {
        ts_http_t r = au_call("POST", "/v1/generations", t, AVATAR, NULL);
        au_expect(&r, 202, NULL);
    }
    ts_http_t r = au_call("GET", "/v1/generations?limit=2", t, NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *cur = strstr(r.body, "\"next_cursor\":\"");
    assert_non_null(cur);
    char path[256], cursor[100];
    snprintf(cursor, sizeof(cursor), "%s", cur + 15);
    *strchr(cursor, '"') = '\0';
    ts_http_dispose(&r);
    snprintf(path, sizeof(path), "/v1/generations?limit=2&cursor=%s", cursor);
    r = au_call("GET", path, t, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"next_cursor\":null"));
    int items = 0;
    for (const char *p = strstr(r.body, "\"prompt\""); p; p = strstr(p + 1, "\"prompt\""))
        items++;
    assert_int_equal(items, 1);
    ts_http_dispose(&r);
    r = au_call("GET", "/v1/generations?status=bogus", t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "status");
    /* API.md writes the route as ?status=&kind=&limit=&cursor=: empty values are absent. */
    r = au_call("GET", "/v1/generations?status=&kind=&limit=&cursor=", t, NULL, NULL);
    au_expect(&r, 200, "\"items\":[{");
    r = au_call("GET", "/v1/credits/ledger?limit=&cursor=", t, NULL, NULL);
    au_expect(&r, 200, NULL);
    r = au_call("GET", "/v1/credits/ledger?limit=2", t, NULL, NULL);
    au_expect(&r, 200, "\"kind\":\"hold\"");
    free(t);
}

static void test_admin_credits(void **state)
{
    (void)state;
    char user[37];
    char *t = au_token(NULL, "pro", NULL, user);
    char *admin = au_token(NULL, "pro", "admin", NULL);
    char body[256];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":500,\"reason\":\"support\"}",
             user);
    ts_http_t r = au_call("POST", "/v1/admin/credits", t, body, NULL);
    au_expect_error(&r, 403, "forbidden", NULL);
    r = au_call("POST", "/v1/admin/credits", admin, body, NULL);
    au_expect(&r, 201, NULL);
    assert_int_equal(au_credits_field(t, "balance"), 600);
    r = au_call("POST", "/v1/admin/credits", admin, "{\"user_id\":\"x\",\"amount\":5}", NULL);
    au_expect_error(&r, 400, "invalid_request", "user_id");
    /* As for POST /v1/generations: JSON only, and a field we do not know is named. */
    r = au_call("POST", "/v1/admin/credits", admin, body, "Content-Type: text/plain");
    au_expect_error(&r, 415, "unsupported_media_type", NULL);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":5,\"reason\":\"x\",\"amuont\":7}",
             user);
    r = au_call("POST", "/v1/admin/credits", admin, body, NULL);
    au_expect_error(&r, 400, "invalid_request", "amuont");
    /* Taking back more than is free is 402, as API.md lists insufficient_credits. */
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":-100000,\"reason\":\"x\"}", user);
    r = au_call("POST", "/v1/admin/credits", admin, body, NULL);
    au_expect_error(&r, 402, "insufficient_credits", "amount");
    /* A take-back is in the ledger as a grant of a negative amount (API.md's four kinds). */
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":-50,\"reason\":\"x\"}", user);
    r = au_call("POST", "/v1/admin/credits", admin, body, NULL);
    au_expect(&r, 201, NULL);
    r = au_call("GET", "/v1/credits/ledger?limit=1", t, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"kind\":\"grant\""));
    assert_non_null(strstr(r.body, "\"amount\":-50"));
    ts_http_dispose(&r);
    free(t);
    free(admin);
}

/* What a route would not act on is refused, naming it, and changes nothing: a query parameter
 * it does not read (a typo would otherwise list everything), an Idempotency-Key where no
 * route would honour it (a retried grant would otherwise be applied twice), a body where it
 * reads none. */
static void test_unread_input_refused(void **state)
{
    (void)state;
    char user[37];
    char *t = au_token(NULL, "pro", NULL, user);
    char *admin = au_token(NULL, "pro", "admin", NULL);
    ts_http_t r = au_call("GET", "/v1/generations?stauts=failed", t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "stauts");
    r = au_call("GET", "/v1/generations?status=failed&limit=1&page=2", t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "page");
    r = au_call("GET", "/v1/credits?limit=2", t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "limit");
    r = au_call("GET", "/v1/credits/ledger?limit=1&user_id=x", t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "user_id");
    r = au_call("GET", "/v1/generations", t, NULL, "Idempotency-Key: k1");
    au_expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    char body[256];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"amount\":500,\"reason\":\"x\"}", user);
    r = au_call("POST", "/v1/admin/credits", admin, body, "Idempotency-Key: grant-1");
    au_expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    assert_int_equal(au_credits_field(t, "balance"), 100);
    r = au_call("GET", "/v1/credits/ledger?limit=1&cursor=", t, NULL, NULL);
    au_expect(&r, 200, NULL);
    /* A body where the route reads none: refused, nothing canceled. */
    char gen[37], path[1536];
    au_create(t, "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256}", gen);
    snprintf(path, sizeof(path), "/v1/generations/%s/cancel", gen);
    r = au_call("POST", path, t, "{\"reason\":\"changed my mind\"}", NULL);
    au_expect_error(&r, 400, "invalid_request", NULL);
    snprintf(path, sizeof(path), "/v1/generations/%s", gen);
    r = au_call("GET", path, t, NULL, NULL);
    au_expect(&r, 200, "\"status\":\"queued\"");
    r = au_call("GET", "/v1/credits", t, "{}", NULL);
    au_expect_error(&r, 400, "invalid_request", NULL);
    /* The presets and the public routes too: a filter /v1/presets does not have, a header
     * a file GET ignores. */
    r = au_call("GET", "/v1/presets?style=watercolor", t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "style");
    r = au_call("GET", "/v1/presets?style=watercolor", NULL, NULL, NULL);
    au_expect_error(&r, 401, "unauthorized", NULL); /* who asks, first */
    r = au_call("GET", "/v1/openapi.json?v=2", NULL, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "v");
    r = au_call("GET", "/v1/openapi.json", NULL, NULL, "Idempotency-Key: k2");
    au_expect_error(&r, 400, "invalid_request", "Idempotency-Key");
    r = au_call("GET", "/v1/presets", t, NULL, NULL);
    au_expect(&r, 200, "\"styles\"");
    r = au_call("GET", "/v1/openapi.json", NULL, NULL, NULL);
    au_expect(&r, 200, "\"openapi\"");
    /* Two tokens on an event route: which one is meant? Neither is dropped silently. */
    snprintf(path, sizeof(path), "/v1/generations/%s/events?access_token=%s", gen, t);
    r = au_call("GET", path, t, NULL, NULL);
    au_expect_error(&r, 400, "invalid_request", "access_token");
    free(t);
    free(admin);
}

/* metadata comes back as sent, every digit of its numbers included. */
static void test_metadata_comes_back_as_sent(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL), id[37], path[128];
    ts_http_t r =
        au_call("POST", "/v1/generations", t,
                "{\"kind\":\"avatar\",\"prompt\":\"m\",\"metadata\":{\"t\":1712345678.123456,"
                "\"p\":0.30000000000000004,\"s\":\"x\"}}",
                NULL);
    assert_int_equal(r.status, 202);
    au_id_of(&r, id);
    ts_http_dispose(&r);
    snprintf(path, sizeof(path), "/v1/generations/%s", id);
    r = au_call("GET", path, t, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *g = json_loads(r.body, 0, NULL);
    ts_http_dispose(&r);
    json_t *m = json_object_get(g, "metadata");
    assert_true(json_real_value(json_object_get(m, "t")) == 1712345678.123456);
    assert_true(json_real_value(json_object_get(m, "p")) == 0.30000000000000004);
    json_decref(g);
    free(t);
}

/* A user whose first request is the ledger sees the welcome grant in it. */
static void test_ledger_of_a_new_user_starts_with_the_welcome_grant(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    ts_http_t r = au_call("GET", "/v1/credits/ledger", t, NULL, NULL);
    au_expect(&r, 200, "\"kind\":\"grant\"");
    free(t);
}

static void test_admin_stats_lists_live_workers(void **state)
{
    (void)state;
    char *t = au_token(NULL, "pro", NULL, NULL);
    char *admin = au_token(NULL, "pro", "admin", NULL);
    ts_http_t r = au_call("GET", "/v1/admin/stats", t, NULL, NULL);
    au_expect_error(&r, 403, "forbidden", NULL);
    /* A worker that holds one job shows with its count and its last heartbeat. */
    r = au_call("POST", "/v1/generations", t, "{\"kind\":\"avatar\",\"prompt\":\"stats\"}", NULL);
    au_expect(&r, 202, NULL);
    queue_claim_t claim;
    gf_err_t err = {0};
    assert_int_equal(queue_sync_claim(pw_qs, "stats-worker", 1, &claim, &err), 0);
    assert_int_equal(claim.n_jobs, 1);
    r = au_call("GET", "/v1/admin/stats", admin, NULL, NULL);
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
    /* `ready`, the one number an autoscaler reads: every tier's ready jobs. One more
     * generation, of the other tier, waits unclaimed. */
    char *free_user = au_token(NULL, "free", NULL, NULL);
    r = au_call("POST", "/v1/generations", free_user, "{\"kind\":\"avatar\",\"prompt\":\"ready\"}",
                NULL);
    au_expect(&r, 202, NULL);
    r = au_call("GET", "/v1/admin/stats", admin, NULL, NULL);
    assert_int_equal(r.status, 200);
    body = json_loads(r.body, 0, NULL);
    assert_non_null(body);
    json_int_t sum = 0;
    const char *tier;
    json_t *depth;
    json_object_foreach(json_object_get(body, "queued_by_tier"), tier, depth) sum +=
        json_integer_value(depth);
    assert_true(json_is_integer(json_object_get(body, "ready")));
    assert_int_equal(json_integer_value(json_object_get(body, "ready")), sum);
    assert_true(
        json_integer_value(json_object_get(json_object_get(body, "queued_by_tier"), "free")) >= 1);
    json_decref(body);
    ts_http_dispose(&r);
    free(free_user);
    assert_int_equal(queue_sync_finish(pw_qs, claim.jobs[0].gen_id, claim.jobs[0].token,
                                       QUEUE_FATAL, "test over", NULL, &err),
                     0);
    queue_claim_dispose(&claim);
    free(t);
    free(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_tokens_are_401),
        cmocka_unit_test(test_bad_requests_name_their_field),
        cmocka_unit_test(test_parallel_posts_never_overdraw),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_a_replay_of_a_queued_generation_has_its_position),
        cmocka_unit_test(test_created_at_is_the_same_in_every_answer),
        cmocka_unit_test(test_active_cap_is_429_and_releases),
        cmocka_unit_test(test_rate_limit_is_429_with_retry_after),
        cmocka_unit_test(test_cors_for_configured_origins_only),
        cmocka_unit_test(test_owner_only_and_cancel_releases),
        cmocka_unit_test(test_a_cancel_of_a_handed_back_generation_ends_it_at_once),
        cmocka_unit_test(test_list_pages_with_a_cursor),
        cmocka_unit_test(test_unread_input_refused),
        cmocka_unit_test(test_admin_credits),
        cmocka_unit_test(test_ledger_of_a_new_user_starts_with_the_welcome_grant),
        cmocka_unit_test(test_metadata_comes_back_as_sent),
        cmocka_unit_test(test_admin_stats_lists_live_workers),
    };
    return ts_run_tests_with_curl(tests, setup, teardown);
}
