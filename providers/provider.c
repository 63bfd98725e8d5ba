/*
 * providers/provider.c - the provider object: its adapters, the `auto`
 * chain and their settings, and closing. The life of a call (slots,
 * breakers, failover, outcomes) is in call.c.
 */
#include "provider_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* --- adapters ------------------------------------------------------------------- */

static const provider_ops *ops_by_name(const char *name)
{
    static const provider_ops *all[] = {&provider_hf_ops, &provider_fal_ops, &provider_bfl_ops,
                                        &provider_replicate_ops, &provider_local_ops};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

static void adapter_free(provider_adapter_t *a)
{
    if (a == NULL)
        return;
    if (a->ops->free)
        a->ops->free(a);
    free(a->base_url);
    free(a->model);
    free(a->pose_model);
    free(a->token);
    free(a);
}

/* Fills base URL, model and token of an adapter; `fake` points it at the fake server. */
static void adapter_settings(provider_adapter_t *a, const gf_config_t *cfg, int fake)
{
    /* Each provider's settings; the fake serves each under /<name> and takes any token. */
    const struct {
        const char *name, *base, *model, *token, *fake_token;
    } settings[] = {
        {"hf", cfg->hf_base_url, cfg->hf_model, cfg->hf_token, "hf_fake"},
        {"fal", cfg->fal_base_url, cfg->fal_model, cfg->fal_key, "fal_fake"},
        {"bfl", cfg->bfl_base_url, cfg->bfl_model, cfg->bfl_key, "bfl_fake"},
        {"replicate", cfg->replicate_base_url, cfg->replicate_model, cfg->replicate_token,
         "r8_fake"},
    };
    const char *base = "", *model = "", *token = "";
    gf_buf_t b = {0};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (strcmp(a->name, settings[i].name) != 0)
            continue;
        base = settings[i].base, model = settings[i].model, token = settings[i].token;
        if (fake) {
            gf_buf_printf(&b, "%s/%s", cfg->fake_provider_url, settings[i].name);
            token = settings[i].fake_token;
        }
        break;
    }
    a->base_url = b.p ? b.p : gf_xstrdup(base ? base : "");
    /* A trailing slash would double in "{base}/models/...". */
    size_t n = strlen(a->base_url);
    while (n > 0 && a->base_url[n - 1] == '/')
        a->base_url[--n] = '\0';
    a->model = gf_xstrdup(model ? model : "");
    provider_caps(cfg, a->name, 0, &a->caps);
    provider_caps(cfg, a->name, 1, &a->pose_caps);
    a->pose_model = gf_xstrdup(a->pose_caps.model);
    a->token = gf_xstrdup(token ? token : "");
}

static provider_adapter_t *adapter_new(provider_t *p, const char *name, int fake, gf_err_t *err)
{
    const provider_ops *ops = ops_by_name(name);
    if (ops == NULL) {
        gf_err_set(err, GF_EINVAL, "provider", "unknown provider '%s'", name);
        return NULL;
    }
    provider_adapter_t *a = gf_xcalloc(1, sizeof(*a));
    a->ops = ops;
    a->p = p;
    a->cfg = p->cfg;
    a->name = ops->name;
    a->max_inflight = (int)p->cfg->provider_concurrency;
    provider__breaker_init(&a->breaker, (int)p->cfg->provider_breaker_failures,
                           (uint64_t)p->cfg->provider_breaker_cooldown_s * 1000);
    adapter_settings(a, p->cfg, fake);
    if (ops->init && ops->init(a, err) < 0) {
        adapter_free(a);
        return NULL;
    }
    return a;
}

static int chain_add(provider_t *p, const char *name, int fake, gf_err_t *err)
{
    provider_adapter_t *a = adapter_new(p, name, fake, err);
    if (a == NULL)
        return GF_EINVAL;
    p->chain[p->nchain++] = a;
    gf_buf_t b = {0};
    gf_buf_printf(&b, "%s%s%s", p->chain_names, p->nchain > 1 ? "," : "", name);
    snprintf(p->chain_names, sizeof(p->chain_names), "%s", b.p);
    gf_buf_dispose(&b);
    return 0;
}

/* Builds the adapters of the chain of `mode` (chain.c says which, in which order). */
static int chain_build(provider_t *p, const char *mode, gf_err_t *err)
{
    provider_chain_plan_t plan;
    gf_log_ctx ctx = {.component = "provider"};
    if (provider__chain_plan(p->cfg, mode, &plan, err) < 0)
        return GF_EINVAL;
    if (plan.local_alone)
        GF_LOG(GF_LOG_WARN, &ctx,
               "no provider token is configured (FARM_HF_TOKEN, FARM_FAL_KEY, FARM_BFL_KEY, "
               "FARM_REPLICATE_TOKEN): "
               "using the local offline renderer, whose images say \"local preview\"");
    for (int i = 0; i < plan.n; i++)
        if (chain_add(p, plan.names[i], plan.fake, err) < 0)
            return GF_EINVAL;
    if (strcmp(mode, "auto") == 0 && !plan.local_alone)
        GF_LOG(GF_LOG_INFO, &ctx, "provider auto: trying %s in this order", p->chain_names);
    return 0;
}

/* FARM_PROVIDER_HTTP2's auto, prior-knowledge, off, in net_http2_t's order. */
static net_http2_t http2_mode(const gf_config_t *cfg)
{
    return (net_http2_t)(NET_HTTP2_AUTO + cfg->provider_http2);
}

/* What FARM_PROVIDER_HTTP2 and FARM_PROVIDER_CA_FILE ask is possible here. */
static int http_check(const gf_config_t *cfg, gf_err_t *err)
{
    char why[160];
    if (net_http2_check(http2_mode(cfg), why, sizeof(why)) < 0) {
        gf_err_set(err, GF_EINVAL, "provider", "FARM_PROVIDER_HTTP2=prior-knowledge: %s", why);
        return GF_EINVAL;
    }
    const char *ca = cfg->provider_ca_file;
    if (ca && *ca && access(ca, R_OK) != 0) {
        gf_err_set(err, GF_EINVAL, "provider", "FARM_PROVIDER_CA_FILE=%s: %s", ca, strerror(errno));
        return GF_EINVAL;
    }
    return 0;
}

/*
 * The engine's HTTP/2: its mode, the CA file, and the cap of connections per
 * host. Over h2 one connection carries 100 calls (curl's stream limit), so
 * FARM_PROVIDER_CONCURRENCY calls (C) need ceil(C / 100) connections to a
 * host; the cap leaves one more. Without a cap, libcurl 7.88 opens a
 * connection for nearly every call beyond the first connection's 100, even
 * when told to wait (CURLOPT_PIPEWAIT), and a cap of 100 was 2.5 to 3 times
 * slower at 2,000 calls than this one (docs/providers.md, "Calls in
 * flight"). A host that answers only HTTP/1.1 carries one call per
 * connection, so the cap would hold it to that many calls: in auto it is set
 * only when every adapter's base URL is https (plain http means HTTP/1.1
 * there); off sets none, as before.
 */
static void http_setup(provider_t *p)
{
    const gf_config_t *cfg = p->cfg;
    net_http2_t mode = http2_mode(cfg);
    int all_https = 1;
    for (int i = 0; i < p->nchain; i++)
        if (strncasecmp(p->chain[i]->base_url, "http://", 7) == 0)
            all_https = 0;
    long cap = (long)(cfg->provider_concurrency + 99) / 100 + 1;
    if (mode == NET_HTTP2_OFF || (mode == NET_HTTP2_AUTO && !all_https))
        cap = 0;
    net_set_http2(p->http, mode, cap);
    if (cfg->provider_ca_file && *cfg->provider_ca_file)
        net_set_ca_file(p->http, cfg->provider_ca_file);
}

provider_t *provider_new(uv_loop_t *loop, const gf_config_t *cfg, const char *name, gf_err_t *err)
{
    provider_t *p = gf_xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->cfg = cfg;
    int rc = chain_build(p, name ? name : gf_cfg_provider_mode(cfg), err);
    if (rc == 0) {
        rc = http_check(cfg, err);
        if (rc == 0) {
            p->http = net_new(loop, err);
            rc = p->http ? 0 : GF_EIO;
        }
        if (p->http)
            http_setup(p);
    }
    if (rc < 0) {
        for (int i = 0; i < p->nchain; i++)
            adapter_free(p->chain[i]);
        free(p);
        return NULL;
    }
    return p;
}

int provider_config_check(const gf_config_t *cfg, gf_err_t *err)
{
    provider_t p = {.cfg = cfg};
    int rc = chain_build(&p, gf_cfg_provider_mode(cfg), err);
    if (rc == 0)
        rc = http_check(cfg, err);
    for (int i = 0; i < p.nchain; i++)
        adapter_free(p.chain[i]);
    return rc < 0 ? GF_EINVAL : 0;
}

const char *provider_chain(const provider_t *p)
{
    return p->chain_names;
}

size_t provider_inflight(const provider_t *p)
{
    return p->ncalls;
}

const char *provider_breaker_state(const provider_t *p, const char *name)
{
    for (int i = 0; i < p->nchain; i++)
        if (strcmp(p->chain[i]->name, name) == 0)
            return provider__breaker_name(&p->chain[i]->breaker, uv_now(p->loop));
    return NULL;
}

int provider_breaker_refusing(const provider_t *p, const char *name)
{
    for (int i = 0; i < p->nchain; i++)
        if (strcmp(p->chain[i]->name, name) == 0)
            return provider__breaker_refusing(&p->chain[i]->breaker, uv_now(p->loop));
    return 0;
}

/* --- closing --------------------------------------------------------------------- */

static void on_http_closed(void *data)
{
    provider_t *p = data;
    provider_closed_cb cb = p->closed_cb;
    void *cb_data = p->closed_data;
    for (int i = 0; i < p->nchain; i++)
        adapter_free(p->chain[i]);
    free(p);
    if (cb)
        cb(NULL, cb_data);
}

void provider__close_when_idle(provider_t *p)
{
    if (p->closing && p->ncalls == 0 && p->ncancels == 0)
        net_close(p->http, on_http_closed, p);
}

void provider_close(provider_t *p, provider_closed_cb cb, void *data)
{
    if (p->closing)
        return;
    p->closing = 1;
    p->closed_cb = cb;
    p->closed_data = data;
    for (provider_call_t *c = p->calls; c; c = c->next)
        provider_cancel(c);
    provider__close_when_idle(p);
}
