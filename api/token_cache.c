/*
 * api/token_cache.c - the bearer tokens this process verified, remembered
 * until they expire, so a client that sends the same token again (every
 * request of a session does) costs a hash and a compare instead of
 * api__token_verify's base64 decode, two JSON parses and an HMAC.
 *
 * Only a token that passed api__token_verify is remembered, with the
 * principal it gave and its exp; a refused one is verified again every time
 * (nothing of it is kept). A remembered token is answered from here only
 * when the whole text is the same (compared in constant time), and only
 * while its exp is in the future: at exp it is refused as "token expired",
 * the answer api__token_verify gives then, and forgotten. Its other checks
 * (signature, alg, sub, role, plan, nbf and iat not in the future) cannot
 * turn from pass to fail as time goes on, so what passed once passes again.
 * The secret is fixed for the process's life (FARM_JWT_SECRET is read once).
 *
 * Bounded: API_TOKEN_CACHE_SLOTS slots, each holding at most one token of
 * at most API_TOKEN_CACHE_TOKEN_MAX bytes (a longer one is never kept); a
 * token takes the slot its hash names, replacing what was there.
 */
#include "api_int.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *token; /* NULL: empty */
    size_t len;
    api_principal_t who; /* who.exp: when it stops being answered from here */
} slot_t;

struct api_token_cache {
    size_t n;
    slot_t slots[];
};

api_token_cache_t *api__token_cache_new(size_t slots)
{
    api_token_cache_t *c = gf_xcalloc(1, sizeof(*c) + slots * sizeof(c->slots[0]));
    c->n = slots;
    return c;
}

void api__token_cache_free(api_token_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->slots[i].token);
    free(c);
}

/* FNV-1a: spreads the tokens over the slots (the compare, not the hash, decides a match). */
static size_t slot_of(const api_token_cache_t *c, const char *t, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)t[i]) * 1099511628211ULL;
    return (size_t)(h % c->n);
}

int api__token_cache_verify(api_token_cache_t *c, const char *secret, const char *token, long now,
                            api_principal_t *p, gf_err_t *err)
{
    size_t len = strlen(token);
    slot_t *s =
        c->n > 0 && len <= API_TOKEN_CACHE_TOKEN_MAX ? &c->slots[slot_of(c, token, len)] : NULL;
    if (s != NULL && s->token != NULL && s->len == len &&
        CRYPTO_memcmp(s->token, token, len) == 0) {
        if (s->who.exp > now) {
            *p = s->who;
            return 0;
        }
        free(s->token);
        s->token = NULL;
        memset(p, 0, sizeof(*p));
        gf_err_set(err, GF_EINVAL, "auth", "token expired");
        if (err != NULL)
            err->detail = API_TOKEN_SIGNED;
        return GF_EINVAL;
    }
    int rc = api__token_verify(secret, token, p, err);
    if (rc == 0 && s != NULL) {
        free(s->token);
        s->token = gf_xmalloc(len + 1);
        memcpy(s->token, token, len + 1);
        s->len = len;
        s->who = *p;
    }
    return rc;
}
