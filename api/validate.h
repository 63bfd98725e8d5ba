/*
 * api/validate.h - validation of POST /v1/generations bodies (pure logic,
 * unit-tested on its own).
 */
#ifndef API_VALIDATE_H
#define API_VALIDATE_H

#include <jansson.h>

#include "api.h"
#include "imaging.h"

typedef struct {
    int is_pose;
    int nposes;
    int images;
    long long unit_cost;
    long long deadline_s; /* 0: none */
    json_t *params;       /* as accepted, seed filled in; owned */
    json_t *metadata;     /* owned, may be NULL */
    char field[64];       /* on error: the offending field */
    char message[200];    /* on error: what is wrong, for the client */
} api_gen_req_t;

/*
 * Checks `body` (borrowed); styles, pose presets and exports are checked
 * against `presets` (borrowed). 0, or GF_EINVAL with field and message set.
 */
int api_gen_validate(json_t *body, const gf_config_t *cfg, const img_presets_t *presets,
                     api_gen_req_t *g);

/* Frees what validation built. */
void api_gen_req_dispose(api_gen_req_t *g);

#endif
