/*
 * imaging/params.c - a generation's parameters (API.md POST
 * /v1/generations): checked field by field against the one set of limits
 * of imaging.h, in API.md's order, and written back as the payload the
 * queue carries and Postgres keeps. The api parses request bodies with it
 * (IMG_PARAMS_REQUEST), the worker payloads (IMG_PARAMS_PAYLOAD).
 */
#include "imaging.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The fields of a request, in the order they are checked and written. */
typedef enum {
    F_KIND,
    F_PROMPT,
    F_NEGATIVE_PROMPT,
    F_WIDTH,
    F_HEIGHT,
    F_COUNT,
    F_SEED,
    F_STEPS,
    F_GUIDANCE,
    F_STYLE,
    F_IDENTITY,
    F_POSES,
    F_EXPORTS,
    F_PROVIDER,
    F_DEADLINE_S,
    F_WEBHOOK_URL,
    F_WEBHOOK_EVENTS,
    F_METADATA,
    F_COUNT_OF_FIELDS
} field;

static const char *const field_names[F_COUNT_OF_FIELDS] = {
    "kind",    "prompt",   "negative_prompt", "width",       "height",         "count",
    "seed",    "steps",    "guidance",        "style",       "identity",       "poses",
    "exports", "provider", "deadline_s",      "webhook_url", "webhook_events", "metadata"};

/* One parse: its input, options, output and error. */
typedef struct {
    json_t *body;
    const img_params_opts *o;
    img_params *p;
    img_params_err *e;
} parse_t;

static int bad(parse_t *c, const char *field, const char *fmt, const char *arg)
{
    if (c->e) {
        snprintf(c->e->field, sizeof(c->e->field), "%s", field);
        snprintf(c->e->message, sizeof(c->e->message), fmt, arg ? arg : field);
    }
    return GF_EINVAL;
}

static int is_request(const parse_t *c)
{
    return c->o->mode == IMG_PARAMS_REQUEST;
}

/*
 * Whether a preset name that is not among the presets must be refused: in a
 * request always; in a payload when the presets are known (a worker), since
 * a job run without its pose, style or export would be charged for what it
 * was not made with. (A payload read without presets, as the CLI reads one,
 * keeps the name.)
 */
static int refuse_unknown(const parse_t *c)
{
    return is_request(c) || c->o->presets != NULL;
}

/* The field's value; NULL when absent or null (a null one is remembered: it is echoed). */
static json_t *get(parse_t *c, field f)
{
    json_t *v = json_object_get(c->body, field_names[f]);
    if (v != NULL && json_is_null(v)) {
        c->p->nulls |= 1u << f;
        return NULL;
    }
    return v;
}

/* Characters, not bytes: jansson has already checked the UTF-8. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int check_string(parse_t *c, field f, size_t min, size_t max, char **out)
{
    const char *name = field_names[f];
    json_t *v = get(c, f);
    if (v == NULL)
        return min > 0 ? bad(c, name, "%s is required", NULL) : 0;
    if (!json_is_string(v))
        return bad(c, name, "%s must be a string", NULL);
    size_t n = utf8_len(json_string_value(v));
    if (n < min || n > max) {
        char range[64];
        snprintf(range, sizeof(range), "%s must be %zu..%zu characters", name, min, max);
        return bad(c, name, "%s", range);
    }
    *out = gf_xstrdup(json_string_value(v));
    return 0;
}

/* An optional integer in [min, max]; `*out` keeps its default when absent. */
static int check_int(parse_t *c, field f, long long min, long long max, long long *out)
{
    json_t *v = get(c, f);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be an integer %lld..%lld", field_names[f], min, max);
        return bad(c, field_names[f], "%s", msg);
    }
    *out = json_integer_value(v);
    return 0;
}

static int check_size(parse_t *c, field f, int *out)
{
    long long v = IMG_PARAMS_SIZE_DEFAULT;
    if (check_int(c, f, IMG_PARAMS_SIZE_MIN, IMG_PARAMS_SIZE_MAX, &v) < 0)
        return GF_EINVAL;
    if (v % IMG_PARAMS_SIZE_STEP != 0)
        return bad(c, field_names[f], "%s must be a multiple of 16", NULL);
    *out = (int)v;
    return 0;
}

static int is_uuid_value(json_t *v)
{
    return json_is_string(v) && img_id_is_valid(json_string_value(v));
}

static int check_identity(parse_t *c)
{
    json_t *v = get(c, F_IDENTITY);
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return bad(c, "identity", "identity must be an object", NULL);
    json_t *up = json_object_get(v, "upload_id"), *gen = json_object_get(v, "generation_id");
    if (up != NULL && gen == NULL && json_object_size(v) == 1 && is_uuid_value(up)) {
        snprintf(c->p->identity_upload, sizeof(c->p->identity_upload), "%s", json_string_value(up));
        return 0;
    }
    json_t *idx = json_object_get(v, "index");
    if (up == NULL && is_uuid_value(gen) && json_is_integer(idx) && json_integer_value(idx) >= 0 &&
        json_integer_value(idx) < IMG_PARAMS_IMAGES_MAX && json_object_size(v) == 2) {
        snprintf(c->p->identity_generation, sizeof(c->p->identity_generation), "%s",
                 json_string_value(gen));
        c->p->identity_index = (int)json_integer_value(idx);
        return 0;
    }
    return bad(c, "identity",
               "identity must be {\"upload_id\": uuid} or {\"generation_id\": uuid, \"index\": n}",
               NULL);
}

static int check_poses(parse_t *c)
{
    json_t *v = get(c, F_POSES);
    if (c->p->kind != IMG_KIND_POSE)
        return v != NULL ? bad(c, "poses", "poses are only for kind pose", NULL) : 0;
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > IMG_PARAMS_POSES_MAX)
        return bad(c, "poses", "poses must be an array of 1..20 poses", NULL);
    c->p->poses = gf_xcalloc(json_array_size(v), sizeof(img_params_pose));
    size_t i;
    json_t *p;
    json_array_foreach(v, i, p)
    {
        json_t *preset = json_object_get(p, "preset"), *up = json_object_get(p, "upload_id");
        int ok = json_is_object(p) && json_object_size(p) == 1 &&
                 ((json_is_string(preset) && json_string_length(preset) >= 1 &&
                   json_string_length(preset) <= IMG_PARAMS_PRESET_NAME_MAX) ||
                  is_uuid_value(up));
        if (!ok)
            return bad(c, "poses", "each pose must be {\"preset\": name} or {\"upload_id\": uuid}",
                       NULL);
        img_params_pose *pose = &c->p->poses[c->p->nposes++];
        if (preset == NULL) {
            snprintf(pose->upload_id, sizeof(pose->upload_id), "%s", json_string_value(up));
            continue;
        }
        snprintf(pose->preset, sizeof(pose->preset), "%s", json_string_value(preset));
        pose->def = c->o->presets ? img_presets_pose_find(c->o->presets, pose->preset) : NULL;
        if (pose->def == NULL && refuse_unknown(c))
            return bad(c, "poses", "unknown pose preset (see GET /v1/presets)", NULL);
    }
    return 0;
}

static int check_exports(parse_t *c)
{
    json_t *v = get(c, F_EXPORTS);
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > IMG_PARAMS_EXPORTS_MAX)
        return bad(c, "exports", "exports must be an array of export preset names", NULL);
    img_params *p = c->p;
    p->exports = gf_xcalloc(json_array_size(v) + 1, sizeof(char *));
    p->export_defs = gf_xcalloc(json_array_size(v) + 1, sizeof(*p->export_defs));
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const img_export_preset *def =
            json_is_string(e) && c->o->presets
                ? img_presets_export_find(c->o->presets, json_string_value(e))
                : NULL;
        if (!json_is_string(e) || (def == NULL && refuse_unknown(c)))
            return bad(c, "exports", "unknown export preset (see GET /v1/presets)", NULL);
        /* API.md: a repeated export is refused (it would be rendered and stored twice). */
        for (int k = 0; is_request(c) && k < p->nexports; k++)
            if (strcmp(p->exports[k], json_string_value(e)) == 0)
                return bad(c, "exports", "an export preset is named twice", NULL);
        p->exports[p->nexports++] = gf_xstrdup(json_string_value(e));
        if (def)
            p->export_defs[p->n_export_defs++] = def;
    }
    return 0;
}

/* Whether `v` is, or holds, a number outside the range of a 64-bit integer (read as a real). */
static int holds_too_big(json_t *v)
{
    const char *key;
    size_t i;
    json_t *m;
    if (json_is_real(v))
        return fabs(json_real_value(v)) >= 9223372036854775807.0;
    json_object_foreach(v, key, m)
    {
        if (holds_too_big(m))
            return 1;
    }
    json_array_foreach(v, i, m)
    {
        if (holds_too_big(m))
            return 1;
    }
    return 0;
}

static int check_misc(parse_t *c)
{
    img_params *p = c->p;
    json_t *v = get(c, F_GUIDANCE);
    if (v != NULL && (!json_is_number(v) || json_number_value(v) < 0 ||
                      json_number_value(v) > IMG_PARAMS_GUIDANCE_MAX))
        return bad(c, "guidance", "guidance must be a number 0..20", NULL);
    if (v != NULL) {
        p->guidance = json_number_value(v);
        p->guidance_is_int = json_is_integer(v);
    }
    v = get(c, F_STYLE);
    if (v != NULL) {
        p->style_def = json_is_string(v) && c->o->presets
                           ? img_presets_style_find(c->o->presets, json_string_value(v))
                           : NULL;
        if (!json_is_string(v) || (p->style_def == NULL && refuse_unknown(c)))
            return bad(c, "style", "style must be a preset name (see GET /v1/presets)", NULL);
        p->style = gf_xstrdup(json_string_value(v));
    }
    v = get(c, F_PROVIDER);
    if (v == NULL && !(p->nulls & (1u << F_PROVIDER)))
        p->provider = gf_xstrdup("auto");
    if (v != NULL) {
        const char *name = json_string_value(v);
        if (name == NULL || strlen(name) > IMG_PARAMS_PROVIDER_MAX ||
            (is_request(c) && strcmp(name, "auto") != 0 && c->o->provider_ok &&
             !c->o->provider_ok(name, c->o->provider_data)))
            return bad(c, "provider", "provider must be auto or a configured provider", NULL);
        p->provider = gf_xstrdup(name);
    }
    if (!is_request(c))
        return 0; /* what follows is not part of a payload */
    v = get(c, F_WEBHOOK_URL);
    if (v != NULL &&
        (!json_is_string(v) ||
         (strncasecmp(json_string_value(v), "https://", 8) != 0 && /* schemes ignore case */
          !(c->o->webhook_allow_http && strncasecmp(json_string_value(v), "http://", 7) == 0)) ||
         json_string_length(v) > IMG_PARAMS_WEBHOOK_URL_MAX))
        return bad(c, "webhook_url", "webhook_url must be an https URL", NULL);
    if (v != NULL)
        p->webhook_url = gf_xstrdup(json_string_value(v));
    v = get(c, F_WEBHOOK_EVENTS);
    if (v != NULL) {
        static const char *const events[] = {"started", "image"};
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            return bad(c, "webhook_events",
                       "webhook_events must be a list of \"started\", \"image\"", NULL);
        json_array_foreach(v, i, e)
        {
            unsigned bit = 0;
            for (unsigned k = 0; k < 2 && json_is_string(e); k++)
                if (strcmp(json_string_value(e), events[k]) == 0)
                    bit = IMG_WEBHOOK_STARTED << k;
            if (bit == 0 || (p->webhook_events & bit))
                return bad(c, "webhook_events",
                           "webhook_events must be a list of \"started\", \"image\", each once",
                           NULL);
            p->webhook_events |= bit;
        }
        if (p->webhook_events && p->webhook_url == NULL)
            return bad(c, "webhook_events", "webhook_events needs a webhook_url", NULL);
    }
    v = get(c, F_METADATA);
    if (v != NULL) {
        char *text = json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
        if (text == NULL || strlen(text) > IMG_PARAMS_METADATA_MAX) {
            free(text);
            return bad(c, "metadata", "metadata must be an object of at most 2 KiB", NULL);
        }
        /* Postgres keeps 1e19 as 10000000000000000000, which would come back an
         * integer no reader of 64 bits takes: GET and the webhook would fail. */
        if (holds_too_big(v)) {
            free(text);
            return bad(c, "metadata", "%s is out of range: a number beyond 64-bit integers", NULL);
        }
        p->metadata = text;
    }
    return 0;
}

static int parse_fields(parse_t *c)
{
    img_params *p = c->p;
    if (!json_is_object(c->body))
        return bad(c, "", "the body must be a JSON object", NULL);
    const char *key;
    json_t *val;
    json_object_foreach(c->body, key, val)
    {
        int known = 0;
        for (int f = 0; f < F_COUNT_OF_FIELDS && !known; f++)
            known = strcmp(field_names[f], key) == 0;
        if (!known && is_request(c))
            return bad(c, key, "unknown field %s", key);
    }
    const char *kind = json_string_value(json_object_get(c->body, "kind"));
    if (kind == NULL || (strcmp(kind, "avatar") != 0 && strcmp(kind, "pose") != 0))
        return bad(c, "kind", "kind must be \"avatar\" or \"pose\"", NULL);
    p->kind = strcmp(kind, "pose") == 0 ? IMG_KIND_POSE : IMG_KIND_AVATAR;
    long long count = 1, seed = -1, steps = IMG_PARAMS_STEPS_DEFAULT, deadline = 0;
    if (check_string(c, F_PROMPT, 1, IMG_PARAMS_PROMPT_MAX, &p->prompt) < 0 ||
        check_string(c, F_NEGATIVE_PROMPT, 0, IMG_PARAMS_NEGATIVE_MAX, &p->negative_prompt) < 0 ||
        check_size(c, F_WIDTH, &p->width) < 0 || check_size(c, F_HEIGHT, &p->height) < 0 ||
        check_int(c, F_COUNT, 1, IMG_PARAMS_COUNT_MAX, &count) < 0 ||
        check_int(c, F_SEED, 0, IMG_PARAMS_SEED_MAX, &seed) < 0 ||
        check_int(c, F_STEPS, 1, IMG_PARAMS_STEPS_MAX, &steps) < 0 ||
        check_int(c, F_DEADLINE_S, 1, IMG_PARAMS_DEADLINE_MAX_S, &deadline) < 0 ||
        check_identity(c) < 0 || check_poses(c) < 0 || check_exports(c) < 0 || check_misc(c) < 0)
        return GF_EINVAL;
    p->count = (int)count;
    p->seed = seed;
    p->steps = (int)steps;
    p->deadline_s = deadline;
    p->images = p->count * (p->kind == IMG_KIND_POSE ? p->nposes : 1);
    if (p->images > IMG_PARAMS_IMAGES_MAX)
        return bad(c, p->kind == IMG_KIND_POSE ? "poses" : "count",
                   "count times poses must be at most 40 images", NULL);
    return 0;
}

/*
 * A body jansson refused for an integer beyond 64 bits is valid JSON with an out-of-range
 * value: read again with integers as reals, the top-level field that holds it is named.
 * Every field but `metadata` is a bounded number or holds one, so such a number in any of
 * them is out of range whatever jansson tripped on; `metadata` (free JSON: check_misc refuses
 * its reals that large too) is named only when no other field is. GF_EINVAL then, or 0 when no
 * field can be named (the caller's generic answer stands).
 */
static int out_of_range(parse_t *c, const char *json, size_t len)
{
    json_t *b = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, NULL);
    const char *key;
    json_t *v;
    int rc = 0;
    for (int metadata = 0; metadata < 2 && rc == 0; metadata++) {
        json_object_foreach(b, key, v)
        {
            if ((strcmp(key, field_names[F_METADATA]) == 0) == metadata && holds_too_big(v)) {
                rc = bad(c, key, "%s is out of range", NULL);
                break;
            }
        }
    }
    json_decref(b);
    return rc;
}

int img_params_parse(const char *json, size_t len, const img_params_opts *o, img_params *out,
                     img_params_err *e)
{
    memset(out, 0, sizeof(*out));
    out->seed = -1;
    out->guidance = -1;
    out->width = out->height = IMG_PARAMS_SIZE_DEFAULT;
    if (e)
        e->field[0] = e->message[0] = '\0';
    parse_t c = {.o = o, .p = out, .e = e};
    json_error_t jerr;
    c.body = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (c.body == NULL) {
        if (json_error_code(&jerr) == json_error_numeric_overflow && out_of_range(&c, json, len))
            return GF_EINVAL;
        return bad(&c, "", "the body is not valid JSON", NULL);
    }
    int rc = parse_fields(&c);
    json_decref(c.body);
    return rc;
}

/* Sets `f` to `v` (stolen), or to null when it was given as null, or leaves it out. */
static void put(json_t *o, const img_params *p, field f, json_t *v)
{
    if (v != NULL)
        json_object_set_new(o, field_names[f], v);
    else if (p->nulls & (1u << f))
        json_object_set_new(o, field_names[f], json_null());
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : NULL;
}

char *img_params_payload(const img_params *p)
{
    json_t *o = json_object();
    put(o, p, F_KIND, json_string(p->kind == IMG_KIND_POSE ? "pose" : "avatar"));
    put(o, p, F_PROMPT, string_or_null(p->prompt));
    put(o, p, F_NEGATIVE_PROMPT, string_or_null(p->negative_prompt));
    put(o, p, F_WIDTH, json_integer(p->width));
    put(o, p, F_HEIGHT, json_integer(p->height));
    put(o, p, F_COUNT, json_integer(p->count));
    put(o, p, F_SEED, p->seed >= 0 ? json_integer(p->seed) : NULL);
    put(o, p, F_STEPS, json_integer(p->steps));
    put(o, p, F_GUIDANCE,
        p->guidance < 0      ? NULL
        : p->guidance_is_int ? json_integer((json_int_t)p->guidance)
                             : json_real(p->guidance));
    put(o, p, F_STYLE, string_or_null(p->style));
    json_t *identity = NULL;
    if (p->identity_upload[0])
        identity = json_pack("{s:s}", "upload_id", p->identity_upload);
    else if (p->identity_generation[0])
        identity = json_pack("{s:s, s:i}", "generation_id", p->identity_generation, "index",
                             p->identity_index);
    put(o, p, F_IDENTITY, identity);
    json_t *poses = p->kind == IMG_KIND_POSE ? json_array() : NULL;
    for (int i = 0; poses && i < p->nposes; i++)
        json_array_append_new(poses, p->poses[i].preset[0]
                                         ? json_pack("{s:s}", "preset", p->poses[i].preset)
                                         : json_pack("{s:s}", "upload_id", p->poses[i].upload_id));
    put(o, p, F_POSES, poses);
    json_t *exports = p->exports ? json_array() : NULL;
    for (int i = 0; exports && i < p->nexports; i++)
        json_array_append_new(exports, json_string(p->exports[i]));
    put(o, p, F_EXPORTS, exports);
    put(o, p, F_PROVIDER, string_or_null(p->provider));
    put(o, p, F_DEADLINE_S, p->deadline_s > 0 ? json_integer(p->deadline_s) : NULL);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

void img_params_dispose(img_params *p)
{
    free(p->prompt);
    free(p->negative_prompt);
    free(p->style);
    free(p->poses);
    for (int i = 0; p->exports && i < p->nexports; i++)
        free(p->exports[i]);
    free(p->exports);
    free(p->export_defs);
    free(p->provider);
    free(p->webhook_url);
    free(p->metadata);
    memset(p, 0, sizeof(*p));
}
