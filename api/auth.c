/*
 * api/auth.c - bearer tokens: HS256 JWTs through libjwt, never hand-rolled.
 */
#include "api.h"

#include <jwt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int api_is_uuid(const char *s)
{
    return gf_uuid_is_valid(s);
}

int api_plan_ok(const char *plan)
{
    size_t n = strlen(plan);
    return n > 0 && n <= API_PLAN_MAX &&
           strspn(plan, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

char *api_token_issue(const char *secret, const api_claims_t *c, gf_err_t *err)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (secret == NULL || secret[0] == '\0') {
        gf_err_set(err, GF_EINVAL, "api", "FARM_JWT_SECRET is not set");
        return NULL;
    }
    if (strlen(secret) < GF_SECRET_MIN) {
        gf_err_set(
            err, GF_EINVAL, "api",
            "FARM_JWT_SECRET is shorter than %d characters: farm-api would not start with it",
            GF_SECRET_MIN);
        return NULL;
    }
    if (!api_is_uuid(c->sub)) {
        gf_err_set(err, GF_EINVAL, "api", "sub must be a lowercase UUID");
        return NULL;
    }
    if (c->ttl_s <= 0 || c->ttl_s > API_TOKEN_TTL_MAX_S) {
        gf_err_set(err, GF_EINVAL, "api", "a token lives 1 s to 366 days");
        return NULL;
    }
    const char *role = c->role ? c->role : "user";
    if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0) {
        gf_err_set(err, GF_EINVAL, "api", "role must be user or admin");
        return NULL;
    }
    if (c->plan != NULL && !api_plan_ok(c->plan)) {
        gf_err_set(err, GF_EINVAL, "api", "plan must be 1 to %d of a-z, 0-9, '_' and '-'",
                   API_PLAN_MAX);
        return NULL;
    }
    if (jwt_new(&jwt) != 0)
        goto fail;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0 ||
        jwt_add_grant(jwt, "sub", c->sub) != 0 || jwt_add_grant(jwt, "role", role) != 0 ||
        (c->plan && jwt_add_grant(jwt, "plan", c->plan) != 0) ||
        jwt_add_grant_int(jwt, "iat", (long)time(NULL)) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)time(NULL) + c->ttl_s) != 0)
        goto fail;
    token = jwt_encode_str(jwt);
    if (token == NULL)
        goto fail;
    jwt_free(jwt);
    return token;
fail:
    jwt_free(jwt);
    gf_err_set(err, GF_ENOMEM, "api", "cannot build the token");
    return NULL;
}
