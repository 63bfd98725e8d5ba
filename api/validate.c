/*
 * api/validate.c - the body of POST /v1/generations checked against API.md
 * (img_params_parse, whose first problem found is answered, naming its
 * field), then checked against what the configured providers' models can
 * take (provider_chain_can: 400 unsupported naming identity, poses, width,
 * height or negative_prompt), then completed as accepted: the seed drawn when none was given,
 * the unit cost of its kind, the payload text.
 */
#include "validate.h"
#include "net.h"
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request may name a provider of the configured chain. */
static int provider_ok(const char *name, void *data)
{
    const gf_config_t *cfg = data;
    return provider_chain_has(cfg, NULL, name);
}

/*
 * A webhook_url is refused where that is knowable now (docs/webhooks.md):
 * when this farm cannot sign webhooks, or when the URL's host is written as
 * a loopback, private or link-local address. A name is checked by the worker
 * on the address it connects to.
 */
static int check_webhook(const char *url, const gf_config_t *cfg, api_gen_req_t *g)
{
    char reason[128];
    snprintf(g->field, sizeof(g->field), "webhook_url");
    int allow = (int)cfg->webhook_allow_private;
    if (net_url_check(url, allow, allow, NULL, 0, reason, sizeof(reason)) < 0) {
        snprintf(g->message, sizeof(g->message), "webhook_url %s", reason);
        return GF_EINVAL;
    }
    if (cfg->webhook_secret == NULL || cfg->webhook_secret[0] == '\0') {
        snprintf(g->message, sizeof(g->message),
                 "webhook_url cannot be honoured: this farm has no webhook secret configured");
        g->unsupported = 1; /* a valid URL the farm cannot honour (API.md: unsupported) */
        return GF_EINVAL;
    }
    g->field[0] = '\0';
    return 0;
}

int api_gen_validate(const char *body, size_t len, const gf_config_t *cfg,
                     const img_presets_t *presets, api_gen_req_t *g)
{
    memset(g, 0, sizeof(*g));
    img_params_opts o = {.mode = IMG_PARAMS_REQUEST,
                         .presets = presets,
                         .provider_ok = provider_ok,
                         .provider_data = (void *)cfg,
                         .webhook_allow_http = (int)cfg->webhook_allow_private};
    img_params_err e;
    if (img_params_parse(body, len, &o, &g->params, &e) < 0) {
        memcpy(g->field, e.field, sizeof(g->field));
        memcpy(g->message, e.message, sizeof(g->message));
        return GF_EINVAL;
    }
    /* What the request carries, against the models of the providers it may use. */
    const img_params *p = &g->params;
    if (p->webhook_url && check_webhook(p->webhook_url, cfg, g) < 0)
        return GF_EINVAL;
    provider_needs_t need = {.identity = p->identity_upload[0] || p->identity_generation[0],
                             .pose = p->kind == IMG_KIND_POSE,
                             .width = p->width,
                             .height = p->height,
                             .negative = p->negative_prompt && p->negative_prompt[0]};
    const char *field = NULL;
    if (!provider_chain_can(cfg, NULL, p->provider, &need, &field)) {
        g->unsupported = 1;
        snprintf(g->field, sizeof(g->field), "%s", field);
        snprintf(g->message, sizeof(g->message),
                 "no configured provider has a model that can honour %s%s", field,
                 strcmp(field, "identity") == 0 && need.pose ? " together with poses" : "");
        return GF_EINVAL;
    }
    if (g->params.seed < 0) {
        uint32_t r;
        uv_random(NULL, NULL, &r, sizeof(r), 0, NULL);
        g->params.seed = r;
    }
    g->unit_cost = g->params.kind == IMG_KIND_POSE ? cfg->cost_pose : cfg->cost_avatar;
    g->payload = img_params_payload(&g->params);
    return 0;
}

void api_gen_req_dispose(api_gen_req_t *g)
{
    img_params_dispose(&g->params);
    GF_FREE(g->payload);
}
