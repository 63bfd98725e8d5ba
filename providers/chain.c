/*
 * providers/chain.c - what a provider chain is: which adapters FARM_PROVIDER
 * and FARM_PROVIDER_FALLBACK put in it, in which order. Pure policy on the
 * configuration (no handle, no I/O), so the worker's chain (provider.c) and
 * the api's check of a request's "provider" read one rule.
 *
 * The configuration table checks the raw value (known names, each once);
 * this file says what the list means.
 */
#include "provider_int.h"

#include <stdio.h>
#include <string.h>

/* Whether `name` is one of the comma-separated entries of `list`. */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *f = list; *f; f += strcspn(f, ",") + (f[strcspn(f, ",")] != 0))
        if (strcspn(f, ",") == n && strncmp(f, name, n) == 0)
            return 1;
    return 0;
}

static int no_remote_token(const gf_config_t *cfg)
{
    return !cfg->hf_token[0] && !cfg->fal_key[0] && !cfg->bfl_key[0] && !cfg->replicate_token[0];
}

int provider_chain_has(const gf_config_t *cfg, const char *mode, const char *name)
{
    if (mode == NULL)
        mode = gf_cfg_provider_mode(cfg);
    if (strcmp(mode, "auto") != 0 && strcmp(mode, "fake") != 0)
        return strcmp(name, mode) == 0;
    if (strcmp(mode, "auto") == 0 && no_remote_token(cfg))
        return strcmp(name, "local") == 0;
    if (!listed(cfg->provider_fallback, name))
        return 0;
    if (strcmp(mode, "fake") == 0)
        return strcmp(name, "local") != 0;
    return strcmp(name, "local") == 0 || (strcmp(name, "hf") == 0 && cfg->hf_token[0]) ||
           (strcmp(name, "fal") == 0 && cfg->fal_key[0]) ||
           (strcmp(name, "bfl") == 0 && cfg->bfl_key[0]) ||
           (strcmp(name, "replicate") == 0 && cfg->replicate_token[0]);
}

int provider__chain_plan(const gf_config_t *cfg, const char *mode, provider_chain_plan_t *plan,
                         gf_err_t *err)
{
    memset(plan, 0, sizeof(*plan));
    plan->fake = strcmp(mode, "fake") == 0;
    if (!plan->fake && strcmp(mode, "auto") != 0) {
        snprintf(plan->names[plan->n++], sizeof(plan->names[0]), "%s", mode);
        return 0;
    }
    if (!plan->fake && no_remote_token(cfg)) {
        plan->local_alone = 1;
        snprintf(plan->names[plan->n++], sizeof(plan->names[0]), "local");
        return 0;
    }
    for (const char *f = cfg->provider_fallback; *f;
         f += strcspn(f, ",") + (f[strcspn(f, ",")] != 0)) {
        char name[16];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(f, ","), f);
        int seen = 0;
        for (int i = 0; i < plan->n; i++)
            seen |= strcmp(plan->names[i], name) == 0;
        if (seen || !provider_chain_has(cfg, mode, name))
            continue; /* listed twice: once is enough */
        if (plan->n == CHAIN_MAX)
            return gf_err_set(err, GF_EINVAL, "provider", "more than %d providers", CHAIN_MAX);
        snprintf(plan->names[plan->n++], sizeof(plan->names[0]), "%s", name);
    }
    if (plan->n == 0)
        return gf_err_set(err, GF_EINVAL, "provider",
                          plan->fake ? "FARM_PROVIDER=fake needs hf, fal, bfl or replicate in "
                                       "FARM_PROVIDER_FALLBACK"
                                     : "FARM_PROVIDER_FALLBACK lists no provider that has a token");
    return 0;
}
