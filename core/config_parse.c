/*
 * core/config_parse.c - the settings with a structure of their own, which the
 * table in config.c stores as strings: FARM_QUEUE_TIERS, FARM_REDIS_URL's
 * database, FARM_PROVIDER_FALLBACK, and the "[plan.]key=value,..." lists
 * FARM_RATE_LIMITS and FARM_UPLOAD_QUOTAS; their parsed forms, and the
 * look-ups over them.
 */
#include "config.h"
#include "config_int.h"
#include "url.h"

#include <limits.h>
#include <stdio.h>
#include <ctype.h>
#include <stddef.h>
#include <string.h>

/*
 * Reads 1 to `most` digits at *p into *out, within [min, max]; no sign, space
 * or exponent. *p moves past the digits.
 */
static int read_number(const char **p, size_t most, long long min, long long max, long long *out)
{
    size_t n = strspn(*p, "0123456789");
    if (n == 0 || n > most)
        return 0;
    long long v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + ((*p)[i] - '0');
    *p += n;
    *out = v;
    return v >= min && v <= max;
}

/* A number of 1-7 digits within [min, max]. */
static int strict_number(const char **p, long long min, long long max, long long *out)
{
    return read_number(p, 7, min, max, out);
}

/* FARM_QUEUE_TIERS: "name:weight:cap,..." exactly: no spaces, signs, empty items or repeats. */
static int parse_tiers(gf_config_t *cfg, gf_err_t *err)
{
    /* A tier is a token's plan, and a plan is lower case (api/auth.c): a tier named with
     * capitals could never be reached. */
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789_-";
    const char *p = cfg->queue_tiers;
    cfg->n_tiers = 0;
    for (;;) {
        size_t n = strspn(p, name_chars);
        if (n == 0 || n > GF_TIER_NAME_MAX || p[n] != ':')
            break;
        if (cfg->n_tiers == GF_TIERS_MAX)
            return gf_err_set(err, GF_EINVAL, "config", "FARM_QUEUE_TIERS: at most %d tiers",
                              GF_TIERS_MAX);
        struct gf_tier *t = &cfg->tiers[cfg->n_tiers];
        memcpy(t->name, p, n);
        t->name[n] = '\0';
        for (int i = 0; i < cfg->n_tiers; i++)
            if (strcmp(cfg->tiers[i].name, t->name) == 0)
                return gf_err_set(err, GF_EINVAL, "config",
                                  "FARM_QUEUE_TIERS: tier %s is named twice", t->name);
        p += n + 1;
        if (!strict_number(&p, 1, 1000, &t->weight) || *p != ':')
            break;
        p++;
        if (!strict_number(&p, 1, 1000000, &t->cap))
            break;
        cfg->n_tiers++;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            break;
        p++;
    }
    return gf_err_set(err, GF_EINVAL, "config",
                      "FARM_QUEUE_TIERS=%s: expected name:weight:cap,... (a name of lower-case "
                      "letters, digits, '_' and '-', up to %d, as a token's plan is; a weight "
                      "1-1000; a cap 1-1000000)",
                      cfg->queue_tiers, GF_TIER_NAME_MAX);
}

/* FARM_REDIS_URL's path: none, "/" or "/N" with N a database 0-15. */
static int parse_redis_db(gf_config_t *cfg, gf_err_t *err)
{
    gf_url_t u;
    if (gf_url_parse(cfg->redis_url, &u, err) < 0)
        return GF_EINVAL;
    const char *p = u.path + (u.path[0] == '/');
    long long db = 0;
    int ok = u.path[0] == '\0' ||
             (u.path[0] == '/' && (*p == '\0' || (strict_number(&p, 0, 15, &db) && *p == '\0')));
    gf_url_dispose(&u);
    if (!ok)
        return gf_err_set(
            err, GF_EINVAL, "config",
            "FARM_REDIS_URL: the path must be /N, a database number 0-15, and nothing after it");
    cfg->redis_db = (int)db;
    return 0;
}

/* FARM_PROVIDER_FALLBACK: known providers, comma-separated, each once. */
static int check_fallback(const gf_config_t *cfg, gf_err_t *err)
{
    static const char *const known[] = {"hf", "fal", "bfl", "local", "replicate"};
    int seen[5] = {0};
    const char *p = cfg->provider_fallback;
    for (;;) {
        size_t n = strcspn(p, ",");
        int k = -1;
        for (int i = 0; i < 5; i++)
            if (strlen(known[i]) == n && strncmp(p, known[i], n) == 0)
                k = i;
        if (k < 0 || seen[k]++)
            return gf_err_set(
                err, GF_EINVAL, "config",
                "FARM_PROVIDER_FALLBACK=%s: expected some of hf,fal,bfl,replicate,local, "
                "comma-separated, each once",
                cfg->provider_fallback);
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

/* --- "[plan.]key=value,..." lists ----------------------------------------------- */

#define PLAN_LIST_MAX 32

/* A list setting and how its entries are written. */
typedef struct {
    const char *var;         /* "FARM_RATE_LIMITS" */
    const char *const *keys; /* the names an entry may have after its "plan." */
    int n_keys;
    int max;              /* most entries, at most PLAN_LIST_MAX */
    int last_comma_ok;    /* 1: "a=1," reads as "a=1"; 0: refused */
    const char *expected; /* what the entries look like, for the error */
    /*
     * Stores entry `i` (`plan`: "" for every plan; `key`: an index into
     * keys) and reads its value at *p into it, moving *p past it; 0 when the
     * value is malformed.
     */
    int (*entry)(gf_config_t *cfg, int i, const char *plan, int key, const char **p);
} plan_list;

/*
 * The "[plan.]" of an entry of `var` at *p, copied into `plan` when there is
 * one (it must name a tier of FARM_QUEUE_TIERS); leaves *p at the entry's
 * name and *n at its length.
 */
static int entry_plan(const gf_config_t *cfg, const char *var, const char **p, char *plan,
                      size_t *n, gf_err_t *err)
{
    *n = strcspn(*p, ".=,");
    if ((*p)[*n] != '.')
        return 0;
    int known = 0;
    for (int i = 0; i < cfg->n_tiers; i++)
        known |= strlen(cfg->tiers[i].name) == *n && strncmp(cfg->tiers[i].name, *p, *n) == 0;
    if (!known)
        return gf_err_set(err, GF_EINVAL, "config",
                          "%s: plan %.*s is not a tier of FARM_QUEUE_TIERS", var, (int)*n, *p);
    memcpy(plan, *p, *n);
    *p += *n + 1;
    *n = strcspn(*p, "=,");
    return 0;
}

/*
 * Reads `text`, the value of l->var, entry by entry through l->entry: each
 * plan a tier, each key one of l->keys, each (plan, key) once. The number of
 * entries, or GF_EINVAL with `err` naming the variable.
 */
static int plan_list_read(gf_config_t *cfg, const plan_list *l, const char *text, gf_err_t *err)
{
    struct {
        char plan[GF_TIER_NAME_MAX + 1];
        int key;
    } seen[PLAN_LIST_MAX];
    const char *p = text;
    int count = 0;
    while (*p != '\0') {
        if (count == l->max)
            return gf_err_set(err, GF_EINVAL, "config", "%s: at most %d entries", l->var, l->max);
        char *plan = seen[count].plan;
        memset(plan, 0, sizeof(seen[count].plan));
        size_t n;
        int rc = entry_plan(cfg, l->var, &p, plan, &n, err);
        if (rc < 0)
            return rc;
        int key = -1;
        for (int k = 0; k < l->n_keys; k++)
            if (strlen(l->keys[k]) == n && strncmp(l->keys[k], p, n) == 0)
                key = k;
        p += n;
        if (key < 0 || *p++ != '=' || !l->entry(cfg, count, plan, key, &p) ||
            (*p != ',' && *p != '\0'))
            return gf_err_set(err, GF_EINVAL, "config", "%s=%s: expected %s", l->var, text,
                              l->expected);
        for (int i = 0; i < count; i++)
            if (seen[i].key == key && strcmp(seen[i].plan, plan) == 0)
                return gf_err_set(err, GF_EINVAL, "config", "%s: %s%s%s is named twice", l->var,
                                  plan, plan[0] ? "." : "", l->keys[key]);
        seen[count++].key = key;
        if (*p == ',' && *++p == '\0' && !l->last_comma_ok)
            return gf_err_set(err, GF_EINVAL, "config",
                              "%s=%s: an entry after the last comma is missing", l->var, text);
    }
    return count;
}

const char *const gf_rl_action_names[GF_RL_N] = {"generations", "uploads", "reads", "anonymous"};

/* A FARM_RATE_LIMITS entry: per_min/burst, each 1-1000000. */
static int rate_limit_entry(gf_config_t *cfg, int i, const char *plan, int key, const char **p)
{
    struct gf_rate_limit *rl = &cfg->rl[i];
    snprintf(rl->plan, sizeof(rl->plan), "%s", plan);
    rl->action = key;
    return strict_number(p, 1, 1000000, &rl->per_min) && *(*p)++ == '/' &&
           strict_number(p, 1, 1000000, &rl->burst);
}

/* A FARM_UPLOAD_QUOTAS entry: a whole number of at most 15 digits (bytes may be terabytes). */
static int upload_quota_entry(gf_config_t *cfg, int i, const char *plan, int key, const char **p)
{
    struct gf_upload_quota *q = &cfg->uq[i];
    snprintf(q->plan, sizeof(q->plan), "%s", plan);
    q->bytes = key;
    return read_number(p, 15, 0, LLONG_MAX, &q->max);
}

static const char *const quota_axes[] = {"count", "bytes"}; /* gf_upload_quota.bytes */

/* FARM_RATE_LIMITS: "[plan.]action=per_min/burst,..."; a comma may end it. */
static const plan_list rate_limits = {
    "FARM_RATE_LIMITS",
    gf_rl_action_names,
    GF_RL_N,
    GF_RATE_LIMITS_MAX,
    1,
    "[plan.]action=per_min/burst,... with actions generations, uploads, reads, anonymous and "
    "numbers 1-1000000",
    rate_limit_entry};

/* FARM_UPLOAD_QUOTAS: "[plan.]count=N,[plan.]bytes=N,...". */
static const plan_list upload_quotas = {
    "FARM_UPLOAD_QUOTAS",
    quota_axes,
    2,
    GF_UPLOAD_QUOTAS_MAX,
    0,
    "[plan.]count=N and [plan.]bytes=N, comma-separated, N a whole number (0: no quota)",
    upload_quota_entry};

_Static_assert(GF_RATE_LIMITS_MAX <= PLAN_LIST_MAX && GF_UPLOAD_QUOTAS_MAX <= PLAN_LIST_MAX,
               "a list's entries fit plan_list_read's buffer");

/* FARM_RATE_LIMITS into cfg->rl, FARM_UPLOAD_QUOTAS into cfg->uq. */
static int parse_plan_lists(gf_config_t *cfg, gf_err_t *err)
{
    int n = plan_list_read(cfg, &rate_limits, cfg->rate_limits, err);
    if (n < 0)
        return n;
    cfg->n_rl = n;
    n = plan_list_read(cfg, &upload_quotas, cfg->upload_quotas, err);
    if (n < 0)
        return n;
    cfg->n_uq = n;
    return 0;
}

int gf_cfg_rate_limit(const gf_config_t *cfg, const char *plan, gf_rl_action action,
                      long long *per_min, long long *burst)
{
    const struct gf_rate_limit *any = NULL;
    for (int i = 0; i < cfg->n_rl; i++) {
        const struct gf_rate_limit *rl = &cfg->rl[i];
        if (rl->action != (int)action)
            continue;
        if (plan != NULL && rl->plan[0] && strcmp(rl->plan, plan) == 0) {
            *per_min = rl->per_min, *burst = rl->burst;
            return 1;
        }
        if (rl->plan[0] == '\0' && any == NULL)
            any = rl;
    }
    if (any != NULL) {
        *per_min = any->per_min, *burst = any->burst;
        return 1;
    }
    if (action == GF_RL_GENERATIONS) {
        *per_min = cfg->rate_limit_per_min, *burst = cfg->rate_limit_burst;
        return 1;
    }
    return 0;
}

void gf_cfg_upload_quota(const gf_config_t *cfg, const char *plan, long long *count,
                         long long *bytes)
{
    for (int axis = 0; axis < 2; axis++) {
        const struct gf_upload_quota *mine = NULL, *any = NULL;
        for (int i = 0; i < cfg->n_uq; i++) {
            const struct gf_upload_quota *q = &cfg->uq[i];
            if (q->bytes != axis)
                continue;
            if (q->plan[0] == '\0')
                any = q;
            else if (plan != NULL && strcmp(q->plan, plan) == 0)
                mine = q;
        }
        long long v = mine ? mine->max : any ? any->max : 0;
        *(axis ? bytes : count) = v;
    }
}

/* Whether s[0..n) is an origin as a browser sends it: "null", or a lowercase scheme, "://",
 * a lowercase host (a name, an IPv4 address or a bracketed IPv6 one), an optional port,
 * nothing after (apps' schemes such as capacitor:// and chrome-extension:// included). */
static int is_origin(const char *s, size_t n)
{
    if (n == 4 && strncmp(s, "null", 4) == 0)
        return 1;
    size_t i = 0;
    while (i < n && (islower((unsigned char)s[i]) ||
                     (i > 0 && (isdigit((unsigned char)s[i]) || strchr("+.-", s[i])))))
        i++;
    if (i == 0 || n - i < 4 || strncmp(s + i, "://", 3) != 0)
        return 0;
    i += 3;
    if (s[i] == '[') { /* [v6] */
        const char *close = memchr(s + i, ']', n - i);
        if (close == NULL || close == s + i + 1)
            return 0;
        for (const char *p = s + i + 1; p < close; p++)
            if (strchr("0123456789abcdef:.", *p) == NULL)
                return 0;
        i = (size_t)(close - s) + 1;
    } else {
        size_t h = i;
        while (i < n && s[i] != ':' && strchr("abcdefghijklmnopqrstuvwxyz0123456789.-_", s[i]))
            i++;
        if (i == h)
            return 0;
    }
    if (i < n && s[i] == ':') { /* a port: 1 to 5 digits */
        size_t d = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == d || i - d > 5)
            return 0;
    }
    return i == n;
}

/* FARM_CORS_ORIGINS: "" (none), "*" (any), or origins, comma-separated (spaces around
 * each, and empty entries, are ignored): a browser's Origin header is compared with each
 * as it is, so an entry with a path, a trailing slash, capitals or a '*' inside would
 * never match. */
static int check_cors(const gf_config_t *cfg, gf_err_t *err)
{
    const char *p = cfg->cors_origins;
    if (p[0] == '\0' || strcmp(p, "*") == 0)
        return 0;
    for (;;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, ","), n = len;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0 && !is_origin(p, n))
            return gf_err_set(err, GF_EINVAL, "config",
                              "FARM_CORS_ORIGINS: \"%.*s\" is not an origin as browsers send it "
                              "(scheme://host[:port] in lowercase, no path, or null); or * alone "
                              "for any",
                              (int)(n > 200 ? 200 : n), p);
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

/*
 * Settings that are each in range but contradict each other: refused rather
 * than quietly bent (a minimum above its maximum used to be lowered to it),
 * or, for the upload sizes, rather than answering every large upload 503 for
 * ever.
 */
static int check_pairs(const gf_config_t *cfg, gf_err_t *err)
{
    static const struct {
        const char *low, *high;
        size_t lo, hi; /* offsets of two long long fields */
    } pairs[] = {
        {"FARM_PROVIDER_BACKOFF_BASE_MS", "FARM_PROVIDER_BACKOFF_CAP_MS",
         offsetof(gf_config_t, provider_backoff_base_ms),
         offsetof(gf_config_t, provider_backoff_cap_ms)},
        {"FARM_PROVIDER_POLL_MIN_MS", "FARM_PROVIDER_POLL_MAX_MS",
         offsetof(gf_config_t, provider_poll_min_ms), offsetof(gf_config_t, provider_poll_max_ms)},
        {"FARM_UPLOAD_MAX_BYTES", "FARM_UPLOAD_MAX_INFLIGHT_BYTES",
         offsetof(gf_config_t, upload_max_bytes), offsetof(gf_config_t, upload_max_inflight_bytes)},
        /* An upload the api takes must fit in storage (its normalised file may still not). */
        {"FARM_UPLOAD_MAX_BYTES", "FARM_STORAGE_MAX_OBJECT_BYTES",
         offsetof(gf_config_t, upload_max_bytes), offsetof(gf_config_t, storage_max_object_bytes)},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        long long lo = *(const long long *)((const char *)cfg + pairs[i].lo);
        long long hi = *(const long long *)((const char *)cfg + pairs[i].hi);
        if (lo > hi)
            return gf_err_set(err, GF_EINVAL, "config", "%s=%lld is more than %s=%lld",
                              pairs[i].low, lo, pairs[i].high, hi);
    }
    if (cfg->api_processes > 1 && cfg->api_port == 0)
        return gf_err_set(err, GF_EINVAL, "config",
                          "FARM_API_PROCESSES=%lld needs a FARM_API_PORT: the processes share "
                          "one port, and 0 gives each its own",
                          cfg->api_processes);
    return 0;
}

int gf_cfg__derive(gf_config_t *cfg, gf_err_t *err)
{
    if (cfg->queue_name[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "config", "FARM_QUEUE_NAME: must not be empty");
    if (parse_tiers(cfg, err) < 0 || parse_redis_db(cfg, err) < 0 || check_fallback(cfg, err) < 0 ||
        parse_plan_lists(cfg, err) < 0 || check_pairs(cfg, err) < 0 || check_cors(cfg, err) < 0)
        return GF_EINVAL;
    return 0;
}
