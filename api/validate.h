/*
 * api/validate.h - the body of POST /v1/generations made into the
 * parameters as accepted (no loop, no I/O: tests/unit/api/test_validate.c). The checks
 * and their limits are imaging's generation parameters (imaging.h), the
 * same the worker reads the payload with; this adds what only a request
 * has: the providers this farm configured, the random seed, the cost.
 */
#ifndef API_VALIDATE_H
#define API_VALIDATE_H

#include "api.h"
#include "imaging.h"

typedef struct {
    img_params params; /* as accepted, seed filled in */
    char *payload;     /* params as JSON: the queue's payload and Postgres' `params`; owned */
    long long unit_cost;
    char field[64];    /* on error: the offending field ("" for the body itself) */
    char message[200]; /* on error: what is wrong, for the client */
    int unsupported;   /* on error: valid, but no configured provider can honour `field` */
} api_gen_req_t;

/*
 * Checks `len` bytes of request body against API.md; styles, pose presets
 * and exports against `presets` (borrowed). 0, or GF_EINVAL with field and
 * message set (and `unsupported` when the body is valid but no provider the
 * request may use has a model that takes its identity, poses or size:
 * API.md's 400 unsupported). Dispose of `g` either way.
 */
int api_gen_validate(const char *body, size_t len, const gf_config_t *cfg,
                     const img_presets_t *presets, api_gen_req_t *g);

/* Frees what validation built. */
void api_gen_req_dispose(api_gen_req_t *g);

#endif
