/*
 * providers/caps.c - what each adapter's configured model can condition on
 * (text only, one reference image, several, a control image) and the
 * largest side it takes, and whether a request fits. Pure policy on the
 * configuration, like chain.c: the api refuses a request no adapter of the
 * chain can honour (400 unsupported) and the worker's `auto` skips the
 * adapters that cannot take a call, both by this one rule.
 *
 * A call that carries a reference image (a pose map, an identity) goes to
 * the adapter's FARM_<P>_POSE_MODEL, any other to FARM_<P>_MODEL. What a
 * model takes is read from its id, by the families providers.md documents:
 * FLUX.2 (several references: BFL input_image..input_image_8, fal edit
 * image_urls[], Replicate input_images[]), Kontext and fal image-to-image
 * (one reference), BFL
 * canny/depth and HF ControlNets (a control image), anything else text only.
 * `local` draws the pose map into its preview and insets the identity, so it
 * takes both (honestly: it does not keep the person).
 *
 * A negative prompt: only hf sends one (its text-to-image and image-to-image
 * parameters have `negative_prompt`); the FLUX APIs of fal, BFL and
 * Replicate have no such input, and `local` draws no prompt. A request with
 * one is for hf alone, never sent elsewhere without it.
 */
#include "provider_int.h"

#include <ctype.h>
#include <string.h>

/* Whether `model` contains `word`, ignoring case. */
static int has_word(const char *model, const char *word)
{
    size_t n = strlen(word);
    for (const char *s = model; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == word[i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

int provider_ratio_size(int width, int height, const char **aspect, const char **megapixels)
{
    static const struct {
        int w, h;
        const char *ratio, *mp;
    } sizes[] = {
        {1024, 1024, "1:1", "1"}, {512, 512, "1:1", "0.25"}, {1344, 768, "16:9", "1"},
        {768, 1344, "9:16", "1"}, {1536, 640, "21:9", "1"},  {640, 1536, "9:21", "1"},
        {1216, 832, "3:2", "1"},  {832, 1216, "2:3", "1"},   {896, 1088, "4:5", "1"},
        {1088, 896, "5:4", "1"},  {896, 1152, "3:4", "1"},   {1152, 896, "4:3", "1"},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (sizes[i].w == width && sizes[i].h == height) {
            if (aspect)
                *aspect = sizes[i].ratio;
            if (megapixels)
                *megapixels = sizes[i].mp;
            return 1;
        }
    }
    return 0;
}

static void model_caps(const char *name, const char *model, provider_caps_t *c)
{
    memset(c, 0, sizeof(*c));
    c->model = model;
    c->max_side = 2048;
    c->negative = strcmp(name, "hf") == 0;
    if (strcmp(name, "local") == 0) {
        c->refs = 2;
        c->control = 1;
        return;
    }
    if (strcmp(name, "bfl") == 0) {
        c->max_side = 1440; /* FLUX.1 on BFL: at most 1440, in steps of 32 (FLUX.2: 4 MP, 16) */
        c->step = 32;
    }
    /* Replicate's FLUX.1 schnell and dev take an aspect ratio, no width or height
     * (providers.md 4): only the sizes those make. */
    if (strcmp(name, "replicate") == 0 &&
        (has_word(model, "flux-schnell") || has_word(model, "flux-dev")))
        c->ratio_sizes = 1;
    if (has_word(model, "flux.2") || has_word(model, "flux-2")) {
        c->refs = strcmp(name, "bfl") == 0 ? 8 : 4;
        c->max_side = 2048;
        c->step = 0;
    } else if (has_word(model, "kontext") || has_word(model, "image-to-image")) {
        c->refs = 1;
    } else if (has_word(model, "canny") || has_word(model, "depth") ||
               has_word(model, "controlnet")) {
        c->control = 1;
    }
}

static const char *cfg_model(const gf_config_t *cfg, const char *name, int refs)
{
    if (strcmp(name, "hf") == 0)
        return refs ? cfg->hf_pose_model : cfg->hf_model;
    if (strcmp(name, "fal") == 0)
        return refs ? cfg->fal_pose_model : cfg->fal_model;
    if (strcmp(name, "bfl") == 0)
        return refs ? cfg->bfl_pose_model : cfg->bfl_model;
    if (strcmp(name, "replicate") == 0)
        return refs ? cfg->replicate_pose_model : cfg->replicate_model;
    return "local";
}

void provider_caps(const gf_config_t *cfg, const char *name, int with_refs, provider_caps_t *out)
{
    model_caps(name, cfg_model(cfg, name, with_refs), out);
}

int provider_caps_fit(const provider_caps_t *c, const provider_needs_t *n, const char **field)
{
    const char *why = NULL;
    if (n->pose && c->refs < 1 && !c->control)
        why = "poses";
    else if (n->identity && c->refs < (n->pose ? 2 : 1))
        why = "identity";
    else if (n->width > c->max_side)
        why = "width";
    else if (n->height > c->max_side)
        why = "height";
    else if (c->ratio_sizes && !provider_ratio_size(n->width, n->height, NULL, NULL))
        why = "width";
    else if (c->step && n->width % c->step)
        why = "width";
    else if (c->step && n->height % c->step)
        why = "height";
    else if (n->negative && !c->negative)
        why = "negative_prompt";
    if (field)
        *field = why;
    return why == NULL;
}

int provider_chain_can(const gf_config_t *cfg, const char *mode, const char *only,
                       const provider_needs_t *n, const char **field)
{
    static const char *const names[] = {"hf", "fal", "bfl", "replicate", "local"};
    /* The field named is the one the most capable adapter still misses:
     * "identity" when some adapter takes the pose but not the person too. */
    static const char *const order[] = {"negative_prompt", "height", "width", "identity", "poses"};
    int best = -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!provider_chain_has(cfg, mode, names[i]))
            continue;
        if (only && strcmp(only, "auto") != 0 && strcmp(only, names[i]) != 0)
            continue;
        provider_caps_t c;
        provider_caps(cfg, names[i], n->identity || n->pose, &c);
        const char *why;
        if (provider_caps_fit(&c, n, &why))
            return 1;
        for (int k = 0; k < (int)(sizeof(order) / sizeof(order[0])); k++)
            if (strcmp(why, order[k]) == 0 && (best < 0 || k < best))
                best = k;
    }
    if (field)
        *field = best >= 0 ? order[best] : "provider";
    return 0;
}
