/*
 * queue/script.c - the calling side of the Lua functions, shared by the async
 * and the blocking client: the function library with this process's settings
 * compiled in, and building each operation's argv.
 *
 * Invariant: a command is built from borrowed strings and handed to hiredis
 * before the builder's caller returns (hiredis copies it into its output
 * buffer), so nothing here owns memory except queue__conf_t.
 */
#include "script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The tiers (FARM_QUEUE_TIERS, checked by the config loader: names of
 * [A-Za-z0-9_-] only, which keeps the Lua string literals safe) as the Lua
 * tables TIERS (in order), TIER (by name) and TIER_NAMES. They are literals
 * because a library's load-time code may not call even ipairs (Redis runs it
 * with no standard library).
 */
static void tiers_lua(const gf_config_t *cfg, gf_buf_t *lua)
{
    gf_buf_puts(lua, "local TIERS = {");
    for (int i = 0; i < cfg->n_tiers; i++)
        gf_buf_printf(lua, "%s{name = '%s', weight = %lld, cap = %lld}", i ? ", " : "",
                      cfg->tiers[i].name, cfg->tiers[i].weight, cfg->tiers[i].cap);
    gf_buf_puts(lua, "}\nlocal TIER = {");
    for (int i = 0; i < cfg->n_tiers; i++)
        gf_buf_printf(lua, "%s['%s'] = TIERS[%d]", i ? ", " : "", cfg->tiers[i].name, i + 1);
    gf_buf_puts(lua, "}\nlocal TIER_NAMES = {");
    for (int i = 0; i < cfg->n_tiers; i++)
        gf_buf_printf(lua, "%s'%s'", i ? ", " : "", cfg->tiers[i].name);
    gf_buf_puts(lua, "}\n");
}

static uint64_t fnv1a(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

int queue__conf_init(queue__conf_t *c, const gf_config_t *cfg, gf_err_t *err)
{
    memset(c, 0, sizeof(*c));
    (void)err; /* the config loader checked the name and the tiers */
    gf_buf_t pre = {0};
    gf_buf_printf(
        &pre,
        "-- settings of this process (queue/script.c)\n"
        "local LEASE_MS, MAX_RECLAIMS, BASE_MS = %lld, %lld, %lld\n"
        "local RETENTION_MS, DEAD_RETENTION_MS, DEAD_MAX = %lld, %lld, %lld\n"
        "local EV_MAX, USER_MAXLEN, USER_AGE_MS = %lld, %lld, %lld\n"
        "local RETENTION_MS_S, DEAD_RETENTION_MS_S = '%lld', '%lld'\n"
        "local LEASE_MS_S = '%lld'\n"
        "local USER_MAXLEN_S, USER_AGE_MS2_S = '%lld', '%lld'\n"
        "local HANDBACK_CAP_MS, HANDBACK_MAX = %lld, %lld\n",
        cfg->queue_lease_s * 1000, cfg->queue_max_reclaims, cfg->queue_retry_base_ms,
        cfg->events_retention_s * 1000,
        cfg->queue_dead_retention_s * 1000, cfg->queue_dead_max, cfg->events_max_per_gen,
        cfg->events_user_maxlen, cfg->events_user_max_age_s * 1000, cfg->events_retention_s * 1000,
        cfg->queue_dead_retention_s * 1000, cfg->queue_lease_s * 1000, cfg->events_user_maxlen,
        cfg->events_user_max_age_s * 2000, cfg->queue_handback_cap_ms, cfg->queue_handback_max);
    tiers_lua(cfg, &pre);
    gf_buf_puts(&pre, queue__lua_common);
    /*
     * The library is named after its code and settings, so processes that
     * agree share one library and any difference makes another, side by side.
     */
    uint64_t h = fnv1a(pre.p, pre.len, 1469598103934665603ULL);
    for (int s = 0; s < QS__COUNT; s++)
        h = fnv1a(queue__lua_body[s], strlen(queue__lua_body[s]), h);
    snprintf(c->lib_name, sizeof(c->lib_name), "farm_%016llx", (unsigned long long)h);
    gf_buf_t lib = {0};
    gf_buf_printf(&lib, "#!lua name=%s\n", c->lib_name);
    gf_buf_append(&lib, pre.p, pre.len);
    /*
     * Each operation is a function made once, at load; the registered entry
     * point adds what every call does first (begin) and last (done). The
     * reads are flagged no-writes: Redis then runs them even when it refuses
     * writes (maxmemory reached), so a watch or a position never goes blind
     * while the data is there to read.
     */
    for (int s = 0; s < QS__COUNT; s++) {
        int ro = s == QS_EVENTS || s == QS_POSITION || s == QS_POSITIONS || s == QS_STATS;
        gf_buf_printf(
            &lib,
            "\nlocal function op_%s(ARGV)\n%s\nend\n"
            "redis.register_function{function_name = '%s_%s',\n"
            "    callback = function(KEYS, ARGV)\n"
            "    begin(KEYS)\n    local r = op_%s(ARGV)\n    done()\n    return r\nend%s}\n",
            queue__script_name[s], queue__lua_body[s], c->lib_name, queue__script_name[s],
            queue__script_name[s], ro ? ",\n    flags = {'no-writes'}" : "");
    }
    c->lib = lib.p;
    for (int s = 0; s < QS__COUNT; s++)
        snprintf(c->fname[s], sizeof(c->fname[s]), "%s_%s", c->lib_name, queue__script_name[s]);
    gf_buf_dispose(&pre);
    gf_buf_t b = {0};
    gf_buf_printf(&b, "{%s}", cfg->queue_name);
    c->tag = b.p;
    c->op_timeout_ms = cfg->queue_op_timeout_ms;
    c->connect_timeout_ms = cfg->redis_connect_timeout_ms;
    return 0;
}

void queue__conf_dispose(queue__conf_t *c)
{
    GF_FREE(c->tag);
    GF_FREE(c->lib);
}

static void cmd_push(queue__cmd_t *cmd, const char *s, size_t n)
{
    /* The argument count is fixed by our own code, not by input. */
    if (cmd->argc >= QUEUE_ARGV_MAX)
        abort();
    cmd->argv[cmd->argc] = s;
    cmd->len[cmd->argc] = n;
    cmd->argc++;
}

void queue__cmd_str(queue__cmd_t *cmd, const char *s)
{
    cmd_push(cmd, s ? s : "", s ? strlen(s) : 0);
}

void queue__cmd_int(queue__cmd_t *cmd, long long v)
{
    if (cmd->nnum >= 4)
        abort();
    char *buf = cmd->num[cmd->nnum++];
    int n = snprintf(buf, sizeof(cmd->num[0]), "%lld", v);
    cmd_push(cmd, buf, (size_t)n);
}

void queue__cmd_jitter(queue__cmd_t *cmd)
{
    if (cmd->nnum >= 4)
        abort();
    char *buf = cmd->num[cmd->nnum++];
    /* Full jitter needs a uniform fraction, not a cryptographic one. */
    int n = snprintf(buf, sizeof(cmd->num[0]), "%.6f", (double)rand() / ((double)RAND_MAX + 1.0));
    cmd_push(cmd, buf, (size_t)n);
}

void queue__cmd_plain(queue__cmd_t *cmd, const char *name)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->script = QS__COUNT;
    queue__cmd_str(cmd, name);
}

void queue__cmd_script(queue__cmd_t *cmd, const queue__conf_t *c, queue__script s)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->script = s;
    queue__cmd_str(cmd, "FCALL");
    queue__cmd_str(cmd, c->fname[s]);
    queue__cmd_str(cmd, "1");
    queue__cmd_str(cmd, c->tag);
}

/* Ids become key names: keep them to what a UUID or a user id can hold. */
static int id_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s == '{' || *s == '}' || *s == 0x7f)
            return 0;
    return 1;
}

int queue__cmd_enqueue(queue__cmd_t *cmd, const queue__conf_t *c, const queue_enqueue_req_t *req,
                       gf_buf_t *d, gf_err_t *err)
{
    if (!id_ok(req->gen_id) || !id_ok(req->user_id) || !id_ok(req->tier))
        return gf_err_set(err, GF_EINVAL, "queue", "enqueue: a bad generation, user or tier id");
    if (req->deadline_ms < 0)
        return gf_err_set(err, GF_EINVAL, "queue", "enqueue: a negative deadline");
    /*
     * The job's fixed data as the queue stores it (field 'd', common.lua):
     * user, tier, start deadline, creation time and payload, packed here so
     * the payload passes through Redis's Lua once (Lua hashes every byte of
     * every string it makes, so each copy made there costs in proportion to
     * the payload). The creation time, this clock's, is informational.
     */
    d->len = 0;
    gf_buf_printf(d, "%s\n%s\n%lld\n%lld\n", req->user_id, req->tier, (long long)req->deadline_ms,
                  (long long)gf_clock_unix_ms());
    gf_buf_puts(d, req->payload ? req->payload : "{}");
    queue__cmd_script(cmd, c, QS_ENQUEUE);
    queue__cmd_str(cmd, req->gen_id);
    queue__cmd_str(cmd, req->user_id);
    queue__cmd_str(cmd, req->tier);
    cmd_push(cmd, d->p, d->len);
    queue__cmd_int(cmd, (long long)req->token_floor);
    return 0;
}

void queue__cmd_finish(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id,
                       uint64_t token, queue_outcome_t outcome, const char *detail)
{
    queue__cmd_script(cmd, c, QS_FINISH);
    queue__cmd_str(cmd, gen_id);
    queue__cmd_int(cmd, (long long)token);
    queue__cmd_str(cmd, queue__outcome_name(outcome));
    queue__cmd_str(cmd, detail ? detail : (outcome == QUEUE_DONE ? "{}" : "failed"));
    queue__cmd_jitter(cmd);
}

void queue__cmd_event(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id, uint64_t token,
                      const char *type, const char *data_json)
{
    queue__cmd_script(cmd, c, QS_EVENT);
    queue__cmd_str(cmd, gen_id);
    queue__cmd_int(cmd, (long long)token);
    queue__cmd_str(cmd, type);
    queue__cmd_str(cmd, data_json ? data_json : "{}");
}

int queue__cmd_positions(queue__cmd_t *cmd, const queue__conf_t *c, const char *const *gen_ids,
                         size_t n, gf_buf_t *ids, gf_err_t *err)
{
    if (n < 1 || n > QUEUE_POSITIONS_MAX)
        return gf_err_set(err, GF_EINVAL, "queue", "positions: %zu ids (1 to %d)", n,
                          QUEUE_POSITIONS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (gen_ids[i] == NULL || gen_ids[i][0] == '\0' || strchr(gen_ids[i], '\n') != NULL)
            return gf_err_set(err, GF_EINVAL, "queue",
                              "positions: id %zu is empty or has a newline", i);
        gf_buf_puts(ids, gen_ids[i]);
        gf_buf_append(ids, "\n", 1);
    }
    queue__cmd_script(cmd, c, QS_POSITIONS);
    queue__cmd_str(cmd, ids->p);
    return 0;
}

void queue__cmd_gen_events(queue__cmd_t *cmd, const queue__conf_t *c, const char *gen_id,
                           uint64_t after_id, int max)
{
    queue__cmd_script(cmd, c, QS_EVENTS);
    queue__cmd_str(cmd, gen_id);
    queue__cmd_int(cmd, (long long)after_id);
    queue__cmd_int(cmd, max > 0 ? max : 100);
}

void queue__cmd_user_events(queue__cmd_t *cmd, const queue__conf_t *c, const char *user_id,
                            const char *after, int max, char *keybuf, size_t keylen, char *startbuf,
                            size_t startlen)
{
    snprintf(keybuf, keylen, "%s:ue:%s", c->tag, user_id);
    if (after && *after)
        snprintf(startbuf, startlen, "(%s", after);
    else
        snprintf(startbuf, startlen, "-");
    queue__cmd_plain(cmd, "XRANGE");
    queue__cmd_str(cmd, keybuf);
    queue__cmd_str(cmd, startbuf);
    queue__cmd_str(cmd, "+");
    queue__cmd_str(cmd, "COUNT");
    queue__cmd_int(cmd, max > 0 ? max : 100);
}

const char *queue__outcome_name(queue_outcome_t o)
{
    switch (o) {
    case QUEUE_DONE:
        return "done";
    case QUEUE_CANCELED:
        return "canceled";
    case QUEUE_HANDBACK:
        return "handback";
    case QUEUE_FATAL:
    default:
        return "fatal";
    }
}

int queue_state_is_terminal(const char *s)
{
    return gf_queue_state_is_final(gf_queue_state_parse(s));
}

const char *queue_tier_of(const gf_config_t *cfg, const char *plan)
{
    const char *fallback = cfg->tiers[cfg->n_tiers - 1].name;
    for (int i = 0; i < cfg->n_tiers; i++) {
        if (plan != NULL && strcmp(cfg->tiers[i].name, plan) == 0)
            return cfg->tiers[i].name;
        if (strcmp(cfg->tiers[i].name, "free") == 0)
            fallback = cfg->tiers[i].name;
    }
    return fallback;
}
