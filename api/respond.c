/*
 * api/respond.c - how the api answers: JSON with its headers, the error
 * shape, the one table from gf_status to API.md's errors, authentication,
 * and signed output URLs.
 */
#include "api_int.h"

#include <errno.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void security_headers(gf_http_req_t *req)
{
    gf_http_set_header(req, "X-Content-Type-Options", "nosniff");
    gf_http_set_header(req, "Referrer-Policy", "no-referrer");
    gf_http_set_header(req, "Cache-Control", "no-store");
}

void api__json(gf_http_req_t *req, int status, json_t *body)
{
    api__json_flags(req, status, body, JSON_COMPACT);
}

void api__json_flags(gf_http_req_t *req, int status, json_t *body, size_t flags)
{
    char *text = json_dumps(body, flags);
    json_decref(body);
    security_headers(req);
    gf_http_respond(req, status, "application/json; charset=utf-8", text ? text : "{}",
                    text ? strlen(text) : 2);
    free(text);
}

void api__error(gf_http_req_t *req, int status, const char *code, const char *message,
                const char *field)
{
    security_headers(req);
    gf_http_respond_error(req, status, code, message, field);
}

/* The one table: a status of a failed call -> HTTP status, API.md code, message. */
static const struct {
    int status;
    int http;
    const char *code;
    const char *message;
} fail_table[] = {
    {GF_EINVAL, 400, "invalid_request", "the request is not valid"},
    {GF_ENOTFOUND, 404, "not_found", "no such resource"},
    {GF_ECONFLICT, 409, "not_cancelable", "the generation is already finished"},
    {GF_ECREDITS, 402, "insufficient_credits", "not enough credits"},
    {GF_ETOOBIG, 413, "payload_too_large", "the request is too large"},
    {GF_EUNAVAIL, 503, "unavailable", "a dependency is unavailable; nothing was charged"},
    {GF_ETIMEDOUT, 503, "unavailable", "a dependency did not answer in time; retry"},
    {GF_ECANCELED, 503, "unavailable", "the server is shutting down; retry"},
};

void api__fail(gf_http_req_t *req, int status, const gf_err_t *err)
{
    gf_log_ctx ctx = {.component = "api", .request_id = gf_http_req_id(req)};
    for (size_t i = 0; i < sizeof(fail_table) / sizeof(fail_table[0]); i++) {
        if (fail_table[i].status != status)
            continue;
        if (err && err->code && fail_table[i].http >= 500)
            gf_log_err(GF_LOG_WARN, &ctx, err);
        /* Each 503 here is worth retrying (API.md: Retry-After where a retry makes sense). */
        if (fail_table[i].http == 503)
            gf_http_set_header(req, "Retry-After", "1");
        api__error(req, fail_table[i].http, fail_table[i].code, fail_table[i].message, NULL);
        return;
    }
    if (err && err->code)
        gf_log_err(GF_LOG_ERROR, &ctx, err);
    char msg[200];
    snprintf(msg, sizeof(msg), "internal error (request %s)", gf_http_req_id(req));
    api__error(req, 500, "internal", msg, NULL);
}

void api__fail_page(gf_http_req_t *req, const gf_err_t *err)
{
    if (err->code == GF_EINVAL)
        api__error(req, 400, "invalid_request", "malformed cursor", "cursor");
    else
        api__fail(req, err->code, err);
}

/* A NumericDate claim: 0 when absent, 1 with its value, -1 when it is not an integer. */
static int claim_time(jwt_t *jwt, const char *name, long *out)
{
    char *js = jwt_get_grants_json(jwt, name);
    if (js == NULL)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(js, &end, 10);
    int ok = end != js && *end == '\0' && errno == 0;
    free(js);
    if (!ok)
        return -1;
    *out = v;
    return 1;
}

int api__token_verify(const char *secret, const char *token, api_principal_t *p, gf_err_t *err)
{
    jwt_t *jwt = NULL;
    int rc = GF_EINVAL, signed_ok = 0;
    memset(p, 0, sizeof(*p));
    if (secret == NULL || secret[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "auth", "FARM_JWT_SECRET is not set");
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 ||
        jwt == NULL) {
        gf_err_set(err, GF_EINVAL, "auth", "malformed token or bad signature");
        goto out;
    }
    /* A key was given, so only an HMAC algorithm could verify; demand exactly HS256. */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        gf_err_set(err, GF_EINVAL, "auth", "algorithm %s refused", jwt_alg_str(jwt_get_alg(jwt)));
        goto out;
    }
    signed_ok = 1; /* what refuses it from here is a claim of a token of ours */
    const char *sub = jwt_get_grant(jwt, "sub");
    if (!api_is_uuid(sub)) {
        gf_err_set(err, GF_EINVAL, "auth", "sub missing or not a lowercase UUID");
        goto out;
    }
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno != 0) {
        gf_err_set(err, GF_EINVAL, "auth", "exp missing");
        goto out;
    }
    long now = (long)time(NULL);
    if (exp <= now) {
        gf_err_set(err, GF_EINVAL, "auth", "token expired");
        goto out;
    }
    /* Not before nbf, and not issued in the future; both allow API_TOKEN_SKEW_S of clock skew. */
    long nbf = 0, iat = 0;
    int has_nbf = claim_time(jwt, "nbf", &nbf), has_iat = claim_time(jwt, "iat", &iat);
    if (has_nbf < 0 || has_iat < 0) {
        gf_err_set(err, GF_EINVAL, "auth", "nbf or iat is not a number of seconds");
        goto out;
    }
    if (has_nbf && nbf > now + API_TOKEN_SKEW_S) {
        gf_err_set(err, GF_EINVAL, "auth", "token not valid yet (nbf)");
        goto out;
    }
    if (has_iat && iat > now + API_TOKEN_SKEW_S) {
        gf_err_set(err, GF_EINVAL, "auth", "token issued in the future (iat)");
        goto out;
    }
    const char *role = jwt_get_grant(jwt, "role");
    if (role != NULL && strcmp(role, "user") != 0 && strcmp(role, "admin") != 0) {
        gf_err_set(err, GF_EINVAL, "auth", "unknown role");
        goto out;
    }
    const char *plan = jwt_get_grant(jwt, "plan");
    if (plan == NULL)
        plan = "free";
    if (!api_plan_ok(plan)) {
        gf_err_set(err, GF_EINVAL, "auth", "malformed plan");
        goto out;
    }
    snprintf(p->sub, sizeof(p->sub), "%s", sub);
    snprintf(p->plan, sizeof(p->plan), "%s", plan);
    p->admin = role != NULL && strcmp(role, "admin") == 0;
    p->exp = exp;
    rc = 0;
out:
    if (rc < 0 && signed_ok && err != NULL)
        err->detail = API_TOKEN_SIGNED;
    jwt_free(jwt);
    return rc;
}

/* A token whose signature the current secret refuses may be the previous one's, while the
 * secret is rotated (FARM_JWT_SECRET_PREVIOUS); one that it verifies is judged by it alone. */
int api__token_check(api_t *api, const char *token, api_principal_t *p, gf_err_t *err)
{
    gf_err_t first = {0};
    int rc = api__token_cache_verify(api->tokens, api->cfg->jwt_secret, token, (long)time(NULL), p,
                                     &first);
    const char *prev = api->cfg->jwt_secret_previous;
    if (rc == 0 || first.detail == API_TOKEN_SIGNED || prev == NULL || prev[0] == '\0') {
        if (err != NULL)
            *err = first;
        return rc;
    }
    return api__token_cache_verify(api->tokens, prev, token, (long)time(NULL), p, err);
}

int api__auth(api_t *api, gf_http_req_t *req, api_principal_t *p, int allow_query)
{
    const api_principal_t *gated = api__gate_principal(req);
    if (gated != NULL) {
        *p = *gated;
        return 0;
    }
    const char *token = NULL;
    const char *h = gf_http_req_header(req, "authorization");
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
        token = h + 7;
    else if (h == NULL && allow_query)
        token = gf_http_req_query(req, "access_token");
    gf_err_t err = {0};
    if (token == NULL || token[0] == '\0') {
        gf_err_set(&err, GF_EINVAL, "auth", "no bearer token");
    } else if (api__token_check(api, token, p, &err) == 0) {
        gf_http_req_set_log_user(req, p->sub);
        return 0;
    }
    gf_log_ctx ctx = {.component = "api", .request_id = gf_http_req_id(req)};
    GF_LOG(GF_LOG_INFO, &ctx, "unauthorized: %s", err.msg);
    gf_http_set_header(req, "WWW-Authenticate", "Bearer");
    api__error(req, 401, "unauthorized", "a valid bearer token is required", NULL);
    return GF_EINVAL;
}

void api__file_sig(const char *secret, const char *key, long exp, char out[65])
{
    img_file_sig(secret, key, exp, out);
}

json_t *api__signed_url(api_t *api, const char *prefix, const char *key)
{
    /* Valid for the TTL and up to a quarter more: exp moves in quarter steps,
     * so a page that polls gets the same URL (and the browser's cached image)
     * for a quarter of the TTL instead of a new URL every time. */
    long ttl = (long)api->cfg->file_url_ttl_s, step = ttl / 4 > 0 ? ttl / 4 : 1;
    long exp = ((long)time(NULL) + ttl) / step * step + step;
    char sig[65] = "", url[1200];
    api__file_sig(api->cfg->file_secret ? api->cfg->file_secret : "", key, exp, sig);
    snprintf(url, sizeof(url), "%s%s?exp=%ld&sig=%s", prefix, key, exp, sig);
    return json_string(url);
}

/* Whether `sig` is the signature of key and exp by `secret` (NULL or "": none). */
static int sig_by(const char *secret, const char *key, long exp, const char *sig)
{
    char want[65] = "";
    if (secret == NULL || secret[0] == '\0')
        return 0;
    api__file_sig(secret, key, exp, want);
    return CRYPTO_memcmp(want, sig, 64) == 0;
}

int api__signature_ok(api_t *api, gf_http_req_t *req, const char *key, long *seconds_left)
{
    const char *exp_s = gf_http_req_query(req, "exp"), *sig = gf_http_req_query(req, "sig");
    /* exp: 1 to 18 digits, nothing else (strtol would clamp a longer one). */
    size_t n = exp_s ? strlen(exp_s) : 0;
    if (n == 0 || n > 18 || strspn(exp_s, "0123456789") != n)
        return 0;
    long exp = strtol(exp_s, NULL, 10);
    if (sig == NULL || exp <= (long)time(NULL) || strlen(sig) != 64 || !api->cfg->file_secret ||
        !api->cfg->file_secret[0])
        return 0;
    /* Signed with FARM_FILE_SECRET, or with FARM_FILE_SECRET_PREVIOUS: before a rotation, or by a
     * process that still signs with the secret being replaced. */
    if (!sig_by(api->cfg->file_secret, key, exp, sig) &&
        !sig_by(api->cfg->file_secret_previous, key, exp, sig))
        return 0;
    if (seconds_left)
        *seconds_left = exp - (long)time(NULL);
    return 1;
}

void api__sign_outputs(api_t *api, json_t *gen)
{
    json_t *outputs = json_object_get(gen, "outputs");
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o)
    {
        const char *key = json_string_value(json_object_get(o, "storage_key"));
        json_object_set_new(o, "url", key ? api__signed_url(api, "/v1/files/", key) : json_null());
        json_object_del(o, "storage_key");
    }
}

int api__body_is_json(gf_http_req_t *req)
{
    const char *ctype = gf_http_req_header(req, "content-type");
    /* application/json, alone or with parameters (charset): not a longer type that starts so. */
    if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0 ||
        (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' ' && ctype[16] != '\t')) {
        api__error(req, 415, "unsupported_media_type", "send application/json", NULL);
        return 0;
    }
    return 1;
}

const char *api__query(gf_http_req_t *req, const char *name)
{
    const char *v = gf_http_req_query(req, name);
    return v && *v ? v : NULL;
}
