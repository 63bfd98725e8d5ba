/*
 * tests/fuzz/fuzz_gen_validate.c - a POST /v1/generations body through
 * api_gen_validate (api/validate.c, imaging/params.c) with the repository's
 * presets, under two provider configurations: every adapter in the chain,
 * and `local` alone. The input is the body as a client sends it.
 *
 * What must hold, else abort:
 * - a refusal carries a message for the client and leaves no payload;
 * - an accepted body's payload is what the worker reads back: imaging's
 *   parse in payload mode accepts it, and its own payload is the same text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

static gf_config_t *cfgs[2];
static img_presets_t *presets;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gf_log_min_level = GF_LOG_ERROR + 1;
    char *all[] = {"FARM_PROVIDER=auto", "FARM_PROVIDER_FALLBACK=hf,fal,bfl,local",
                   "FARM_HF_TOKEN=x",    "FARM_FAL_KEY=x",
                   "FARM_BFL_KEY=x",     NULL};
    char *local[] = {"FARM_PROVIDER=local", NULL};
    gf_err_t err = {0};
    cfgs[0] = gf_cfg_load(all, &err);
    cfgs[1] = gf_cfg_load(local, &err);
    presets = img_presets_load(FARM_SOURCE_DIR "/imaging/presets", &err);
    if (cfgs[0] == NULL || cfgs[1] == NULL || presets == NULL) {
        fprintf(stderr, "fuzz_gen_validate: setup failed: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void check_round_trip(const api_gen_req_t *g)
{
    img_params_opts o = {.mode = IMG_PARAMS_PAYLOAD, .presets = presets};
    img_params back;
    img_params_err e;
    if (img_params_parse(g->payload, strlen(g->payload), &o, &back, &e) != 0) {
        fprintf(stderr, "the worker refuses the payload %s: %s: %s\n", g->payload, e.field,
                e.message);
        abort();
    }
    char *again = img_params_payload(&back);
    if (strcmp(again, g->payload) != 0) {
        fprintf(stderr, "payload changed on its way through the worker:\n%s\n%s\n", g->payload,
                again);
        abort();
    }
    free(again);
    img_params_dispose(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) /* the route's body limit */
        return 0;
    for (int i = 0; i < 2; i++) {
        api_gen_req_t g;
        int rc = api_gen_validate((const char *)data, size, cfgs[i], presets, &g);
        if (rc == 0) {
            check_round_trip(&g);
        } else if (g.payload != NULL || g.message[0] == '\0') {
            fprintf(stderr, "a refusal with a payload or without a message\n");
            abort();
        }
        api_gen_req_dispose(&g);
    }
    return 0;
}
