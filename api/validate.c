/*
 * api/validate.c - the body of POST /v1/generations checked against API.md,
 * field by field, into the parameters as accepted (seed filled in). The
 * first problem found is answered, naming its field.
 */
#include "validate.h"
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_fields[] = {
    "kind",    "prompt",   "negative_prompt", "width",       "height",   "count",
    "seed",    "steps",    "guidance",        "style",       "identity", "poses",
    "exports", "provider", "deadline_s",      "webhook_url", "metadata", NULL};

static int bad(api_gen_req_t *g, const char *field, const char *fmt, const char *arg)
{
    snprintf(g->field, sizeof(g->field), "%s", field);
    snprintf(g->message, sizeof(g->message), fmt, arg ? arg : field);
    return GF_EINVAL;
}

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* Characters, not bytes: jansson has already checked the UTF-8. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int check_string(api_gen_req_t *g, json_t *body, const char *field, size_t min, size_t max,
                        int required)
{
    json_t *v = json_object_get(body, field);
    if (v == NULL || json_is_null(v))
        return required ? bad(g, field, "%s is required", NULL) : 0;
    if (!json_is_string(v))
        return bad(g, field, "%s must be a string", NULL);
    size_t n = utf8_len(json_string_value(v));
    if (n < min || n > max) {
        char range[64];
        snprintf(range, sizeof(range), "%s must be %zu..%zu characters", field, min, max);
        return bad(g, field, "%s", range);
    }
    return 0;
}

/* An optional integer in [min, max]; `*out` keeps its default when absent. */
static int check_int(api_gen_req_t *g, json_t *body, const char *field, long long min,
                     long long max, long long *out)
{
    json_t *v = json_object_get(body, field);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be an integer %lld..%lld", field, min, max);
        return bad(g, field, "%s", msg);
    }
    *out = json_integer_value(v);
    return 0;
}

static int check_size(api_gen_req_t *g, json_t *body, const char *field, long long *out)
{
    if (check_int(g, body, field, 256, 1536, out) < 0)
        return GF_EINVAL;
    if (*out % 16 != 0)
        return bad(g, field, "%s must be a multiple of 16", NULL);
    return 0;
}

static int is_uuid_value(json_t *v)
{
    return json_is_string(v) && api_is_uuid(json_string_value(v));
}

static int check_identity(api_gen_req_t *g, json_t *body)
{
    json_t *v = json_object_get(body, "identity");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return bad(g, "identity", "identity must be an object", NULL);
    json_t *up = json_object_get(v, "upload_id"), *gen = json_object_get(v, "generation_id");
    if (up != NULL && gen == NULL && json_object_size(v) == 1 && is_uuid_value(up))
        return 0;
    json_t *idx = json_object_get(v, "index");
    if (up == NULL && is_uuid_value(gen) && json_is_integer(idx) && json_integer_value(idx) >= 0 &&
        json_integer_value(idx) < 40 && json_object_size(v) == 2)
        return 0;
    return bad(g, "identity",
               "identity must be {\"upload_id\": uuid} or {\"generation_id\": uuid, \"index\": n}",
               NULL);
}

static int check_poses(api_gen_req_t *g, json_t *body, const img_presets_t *presets)
{
    json_t *v = json_object_get(body, "poses");
    if (!g->is_pose) {
        if (v != NULL && !json_is_null(v))
            return bad(g, "poses", "poses are only for kind pose", NULL);
        g->nposes = 1;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 20)
        return bad(g, "poses", "poses must be an array of 1..20 poses", NULL);
    size_t i;
    json_t *p;
    json_array_foreach(v, i, p)
    {
        json_t *preset = json_object_get(p, "preset"), *up = json_object_get(p, "upload_id");
        int ok = json_is_object(p) && json_object_size(p) == 1 &&
                 ((json_is_string(preset) && json_string_length(preset) >= 1 &&
                   json_string_length(preset) <= 64) ||
                  is_uuid_value(up));
        if (!ok)
            return bad(g, "poses", "each pose must be {\"preset\": name} or {\"upload_id\": uuid}",
                       NULL);
        if (preset && !img_presets_pose_find(presets, json_string_value(preset)))
            return bad(g, "poses", "unknown pose preset (see GET /v1/presets)", NULL);
    }
    g->nposes = (int)json_array_size(v);
    return 0;
}

static int check_exports(api_gen_req_t *g, json_t *body, const img_presets_t *presets)
{
    json_t *v = json_object_get(body, "exports");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > 16)
        return bad(g, "exports", "exports must be an array of export preset names", NULL);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || !img_presets_export_find(presets, json_string_value(e)))
            return bad(g, "exports", "unknown export preset (see GET /v1/presets)", NULL);
    }
    return 0;
}

static int check_misc(api_gen_req_t *g, json_t *body, const img_presets_t *presets,
                      const gf_config_t *cfg)
{
    json_t *v = json_object_get(body, "guidance");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 20))
        return bad(g, "guidance", "guidance must be a number 0..20", NULL);
    v = json_object_get(body, "style");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || !img_presets_style_find(presets, json_string_value(v))))
        return bad(g, "style", "style must be a preset name (see GET /v1/presets)", NULL);
    v = json_object_get(body, "provider");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || json_string_length(v) > 16 ||
         (strcmp(json_string_value(v), "auto") != 0 &&
          !provider_chain_has(cfg, NULL, json_string_value(v)))))
        return bad(g, "provider", "provider must be auto or a configured provider", NULL);
    v = json_object_get(body, "webhook_url");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || strncmp(json_string_value(v), "https://", 8) != 0 ||
         json_string_length(v) > 2048))
        return bad(g, "webhook_url", "webhook_url must be an https URL", NULL);
    v = json_object_get(body, "metadata");
    if (v != NULL && !json_is_null(v)) {
        char *text = json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
        size_t n = text ? strlen(text) : 0;
        free(text);
        if (!json_is_object(v) || n > 2048)
            return bad(g, "metadata", "metadata must be an object of at most 2 KiB", NULL);
    }
    return 0;
}

int api_gen_validate(json_t *body, const gf_config_t *cfg, const img_presets_t *presets,
                     api_gen_req_t *g)
{
    memset(g, 0, sizeof(*g));
    if (!json_is_object(body))
        return bad(g, "", "the body must be a JSON object", NULL);
    g->field[0] = '\0';
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        if (!in_list(known_fields, key))
            return bad(g, key, "unknown field %s", key);
    }
    json_t *kind = json_object_get(body, "kind");
    if (!json_is_string(kind) || (strcmp(json_string_value(kind), "avatar") != 0 &&
                                  strcmp(json_string_value(kind), "pose") != 0))
        return bad(g, "kind", "kind must be \"avatar\" or \"pose\"", NULL);
    g->is_pose = strcmp(json_string_value(kind), "pose") == 0;
    long long width = 1024, height = 1024, count = 1, steps = 28, deadline = 0;
    long long seed = -1;
    if (check_string(g, body, "prompt", 1, 2000, 1) < 0 ||
        check_string(g, body, "negative_prompt", 0, 1000, 0) < 0 ||
        check_size(g, body, "width", &width) < 0 || check_size(g, body, "height", &height) < 0 ||
        check_int(g, body, "count", 1, 4, &count) < 0 ||
        check_int(g, body, "seed", 0, 4294967295LL, &seed) < 0 ||
        check_int(g, body, "steps", 1, 50, &steps) < 0 ||
        check_int(g, body, "deadline_s", 1, 7 * 86400, &deadline) < 0 ||
        check_identity(g, body) < 0 || check_poses(g, body, presets) < 0 ||
        check_exports(g, body, presets) < 0 || check_misc(g, body, presets, cfg) < 0)
        return GF_EINVAL;
    g->images = (int)count * g->nposes;
    if (g->images > 40)
        return bad(g, g->is_pose ? "poses" : "count", "count times poses must be at most 40 images",
                   NULL);
    if (seed < 0) {
        uint32_t r;
        uv_random(NULL, NULL, &r, sizeof(r), 0, NULL);
        seed = r;
    }
    g->unit_cost = g->is_pose ? cfg->cost_pose : cfg->cost_avatar;
    g->deadline_s = deadline;
    /* The parameters as accepted: the body with its defaults and the seed filled in. */
    g->params = json_deep_copy(body);
    json_object_del(g->params, "metadata");
    json_object_del(g->params, "webhook_url");
    json_object_set_new(g->params, "width", json_integer(width));
    json_object_set_new(g->params, "height", json_integer(height));
    json_object_set_new(g->params, "count", json_integer(count));
    json_object_set_new(g->params, "seed", json_integer(seed));
    json_object_set_new(g->params, "steps", json_integer(steps));
    if (json_object_get(g->params, "provider") == NULL)
        json_object_set_new(g->params, "provider", json_string("auto"));
    g->metadata = json_incref(json_object_get(body, "metadata"));
    return 0;
}

void api_gen_req_dispose(api_gen_req_t *g)
{
    json_decref(g->params);
    json_decref(g->metadata);
    g->params = g->metadata = NULL;
}
