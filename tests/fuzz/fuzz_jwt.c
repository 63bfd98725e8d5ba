/*
 * tests/fuzz/fuzz_jwt.c - bearer tokens through api__token_verify (api/respond.c,
 * libjwt). The first byte picks what the rest is:
 *   0  a token as a client sends it (header, payload, signature: all fuzzed);
 *   1  a payload (JSON grants) signed HS256 with the farm's secret, so the
 *      claim checks behind the signature are reached;
 *   2  the same payload signed with another secret: must be refused;
 *   3  the same payload unsigned (alg "none"): must be refused.
 * A token that passes must give a principal API.md allows: sub a lower-case
 * UUID, a plan of [a-z0-9_-]; anything else aborts, as a crash would.
 */
#include <jwt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789abcdef"

static void check_principal(const api_principal_t *p)
{
    if (!api_is_uuid(p->sub) || p->plan[0] == '\0' ||
        strspn(p->plan, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(p->plan)) {
        fprintf(stderr, "accepted a token with sub \"%s\" plan \"%s\"\n", p->sub, p->plan);
        abort();
    }
}

/* The grants `json` as a token signed with `alg` and `key`; NULL if libjwt refuses them. */
static char *sign(const char *json, jwt_alg_t alg, const char *key)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, json) == 0 &&
        jwt_set_alg(jwt, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    int mode = data[0] & 3;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *tok = NULL;
    switch (mode) {
    case 0:
        tok = strdup(text);
        break;
    case 1:
        tok = sign(text, JWT_ALG_HS256, SECRET);
        break;
    case 2:
        tok = sign(text, JWT_ALG_HS256, "another-secret-0123456789abcdef0123456789");
        break;
    case 3:
        tok = sign(text, JWT_ALG_NONE, NULL);
        break;
    }
    if (tok != NULL) {
        api_principal_t p;
        gf_err_t err = {0};
        int rc = api__token_verify(SECRET, tok, &p, &err);
        if (rc == 0 && mode >= 2) {
            fprintf(stderr, "accepted a token %s\n", mode == 2 ? "of another secret" : "unsigned");
            abort();
        }
        if (rc == 0)
            check_principal(&p);
        free(tok);
    }
    free(text);
    return 0;
}
