/*
 * queue/sync.c - the blocking client (queue_sync_t): one hiredis connection
 * with connect and command timeouts, for the CLI, tests and the benchmark.
 *
 * Invariants: `c` is NULL or a connected context with the library loaded;
 * a failed call drops it, and the next call connects again, so a Redis
 * restart costs the caller one GF_EUNAVAIL, never a hang. A "function not
 * found" answer (FUNCTION FLUSH, or a Redis that lost its data) loads the
 * library and sends the same call again, which is safe because nothing ran.
 */
#include "reply.h"
#include "script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct queue_sync {
    queue__conf_t conf;
    gf_url_t url;
    int db;
    redisContext *c;
};

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void drop(queue_sync_t *qs)
{
    if (qs->c)
        redisFree(qs->c);
    qs->c = NULL;
}

/* One command on the current connection; the reply is the caller's. */
static redisReply *run(queue_sync_t *qs, const queue__cmd_t *cmd)
{
    redisReply *r = redisCommandArgv(qs->c, cmd->argc, (const char **)cmd->argv, cmd->len);
    if (r == NULL)
        drop(qs); /* the context is unusable after an I/O error or a timeout */
    return r;
}

/* Loads the function library (already there is fine). */
static int load(queue_sync_t *qs, gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_plain(&cmd, "FUNCTION");
    queue__cmd_str(&cmd, "LOAD");
    queue__cmd_str(&cmd, qs->conf.lib);
    redisReply *r = run(qs, &cmd);
    if (queue__reply_is_oom(r)) {
        /* A full Redis refuses the load, not the reads: is the library there? */
        freeReplyObject(r);
        queue__cmd_plain(&cmd, "FUNCTION");
        queue__cmd_str(&cmd, "LIST");
        queue__cmd_str(&cmd, "LIBRARYNAME");
        queue__cmd_str(&cmd, qs->conf.lib_name);
        redisReply *l = run(qs, &cmd);
        int there = queue__reply_lists_library(l);
        freeReplyObject(l);
        if (there)
            return 0;
        return gf_err_set(err, GF_EUNAVAIL, "queue",
                          "redis refused FUNCTION LOAD: out of memory (maxmemory)");
    }
    int rc = 0;
    if (r == NULL)
        rc = gf_err_set(err, GF_EUNAVAIL, "queue", "redis connection lost");
    else if (!queue__reply_loaded(r))
        rc = gf_err_set(err, GF_EUNAVAIL, "queue", "redis refused FUNCTION LOAD: %s",
                        r->type == REDIS_REPLY_ERROR ? r->str : "bad answer");
    freeReplyObject(r);
    return rc;
}

static int setup(queue_sync_t *qs, gf_err_t *err)
{
    queue__cmd_t cmd;
    if (qs->url.password && qs->url.password[0]) {
        queue__cmd_plain(&cmd, "AUTH");
        if (qs->url.user && qs->url.user[0])
            queue__cmd_str(&cmd, qs->url.user); /* Redis 6's ACL user */
        queue__cmd_str(&cmd, qs->url.password);
        redisReply *r = run(qs, &cmd);
        int rc = queue__reply_check(r, err);
        freeReplyObject(r);
        if (rc < 0)
            return rc;
    }
    if (qs->db > 0) {
        queue__cmd_plain(&cmd, "SELECT");
        queue__cmd_int(&cmd, qs->db);
        redisReply *r = run(qs, &cmd);
        int rc = queue__reply_check(r, err);
        freeReplyObject(r);
        if (rc < 0)
            return rc;
    }
    return load(qs, err);
}

static int ensure(queue_sync_t *qs, gf_err_t *err)
{
    if (qs->c)
        return 0;
    struct timeval ct = tv_ms(qs->conf.connect_timeout_ms);
    qs->c = redisConnectWithTimeout(qs->url.host, qs->url.port ? qs->url.port : 6379, ct);
    if (qs->c == NULL || qs->c->err) {
        int rc = gf_err_set(err, GF_EUNAVAIL, "queue", "cannot connect to redis at %s:%d: %s",
                            qs->url.host, qs->url.port ? qs->url.port : 6379,
                            qs->c ? qs->c->errstr : "out of memory");
        drop(qs);
        return rc;
    }
    if (redisSetTimeout(qs->c, tv_ms(qs->conf.op_timeout_ms)) != REDIS_OK) {
        drop(qs);
        return gf_err_set(err, GF_EUNAVAIL, "queue", "cannot set the redis timeout");
    }
    int rc = setup(qs, err);
    if (rc < 0)
        drop(qs);
    return rc;
}

/*
 * Runs `cmd` and returns its reply, or NULL with `err` when the connection
 * failed. Loads the library again when Redis has lost it.
 */
static redisReply *call(queue_sync_t *qs, queue__cmd_t *cmd, gf_err_t *err)
{
    if (ensure(qs, err) < 0)
        return NULL;
    redisReply *r = run(qs, cmd);
    if (cmd->script != QS__COUNT && queue__reply_needs_load(r)) {
        freeReplyObject(r);
        if (load(qs, err) < 0)
            return NULL;
        r = run(qs, cmd);
    }
    if (r == NULL) {
        gf_err_set(err, GF_EUNAVAIL, "queue", "redis connection lost");
        return NULL;
    }
    return r;
}

queue_sync_t *queue_sync_new(const gf_config_t *cfg, gf_err_t *err)
{
    queue_sync_t *qs = gf_xcalloc(1, sizeof(*qs));
    if (queue__conf_init(&qs->conf, cfg, err) < 0)
        goto fail;
    if (gf_url_parse(cfg->redis_url, &qs->url, err) < 0)
        goto fail;
    qs->db = cfg->redis_db;
    if (ensure(qs, err) < 0)
        goto fail;
    return qs;
fail:
    queue_sync_free(qs);
    return NULL;
}

void queue_sync_free(queue_sync_t *qs)
{
    if (qs == NULL)
        return;
    drop(qs);
    gf_url_dispose(&qs->url);
    queue__conf_dispose(&qs->conf);
    free(qs);
}

typedef int (*result_parser)(const redisReply *r, queue_result_t *res, gf_err_t *err);

static int call_result(queue_sync_t *qs, queue__cmd_t *cmd, result_parser parse,
                       queue_result_t *res, gf_err_t *err)
{
    queue_result_t scratch;
    if (res == NULL)
        res = &scratch;
    memset(res, 0, sizeof(*res));
    redisReply *r = call(qs, cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0)
        rc = parse(r, res, err);
    freeReplyObject(r);
    return rc;
}

/* enqueue and finish answer a list, one answer per call; this client sends one. */
static const redisReply *first(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 1 ? r->element[0] : NULL;
}

static int parse_first_enqueue(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    return queue__parse_enqueue(first(r), res, err);
}

static int parse_first_finish(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    return queue__parse_finish(first(r), res, err);
}

int queue_sync_enqueue(queue_sync_t *qs, const queue_enqueue_req_t *req, queue_result_t *res,
                       gf_err_t *err)
{
    queue__cmd_t cmd;
    gf_buf_t d = {0};
    int rc = GF_EINVAL;
    if (queue__cmd_enqueue(&cmd, &qs->conf, req, &d, err) == 0)
        rc = call_result(qs, &cmd, parse_first_enqueue, res, err);
    gf_buf_dispose(&d);
    return rc;
}

int queue_sync_claim(queue_sync_t *qs, const char *worker_id, int max, queue_claim_t *out,
                     gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (max < 1)
        return gf_err_set(err, GF_EINVAL, "queue", "claim: max must be at least 1");
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &qs->conf, QS_CLAIM);
    queue__cmd_int(&cmd, max);
    queue__cmd_str(&cmd, worker_id);
    redisReply *r = call(qs, &cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0)
        rc = queue__parse_claim(r, out, err);
    freeReplyObject(r);
    return rc;
}

int queue_sync_heartbeat(queue_sync_t *qs, const char *worker_id, const char *gen_id,
                         uint64_t token, queue_result_t *res, gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &qs->conf, QS_HEARTBEAT);
    queue__cmd_str(&cmd, gen_id);
    queue__cmd_int(&cmd, (long long)token);
    queue__cmd_str(&cmd, worker_id);
    return call_result(qs, &cmd, queue__parse_heartbeat, res, err);
}

int queue_sync_finish(queue_sync_t *qs, const char *gen_id, uint64_t token, queue_outcome_t outcome,
                      const char *detail, queue_result_t *res, gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_finish(&cmd, &qs->conf, gen_id, token, outcome, detail);
    return call_result(qs, &cmd, parse_first_finish, res, err);
}

int queue_sync_cancel(queue_sync_t *qs, const char *gen_id, queue_result_t *res, gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &qs->conf, QS_CANCEL);
    queue__cmd_str(&cmd, gen_id);
    return call_result(qs, &cmd, queue__parse_cancel, res, err);
}

int queue_sync_event_append(queue_sync_t *qs, const char *gen_id, uint64_t token, const char *type,
                            const char *data_json, queue_result_t *res, gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_event(&cmd, &qs->conf, gen_id, token, type, data_json);
    return call_result(qs, &cmd, queue__parse_event, res, err);
}

int queue_sync_position(queue_sync_t *qs, const char *gen_id, queue_result_t *res, gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &qs->conf, QS_POSITION);
    queue__cmd_str(&cmd, gen_id);
    return call_result(qs, &cmd, queue__parse_position, res, err);
}

int queue_sync_events_read(queue_sync_t *qs, const char *gen_id, uint64_t after_id, int max,
                           queue_events_t *out, gf_err_t *err)
{
    queue__cmd_t cmd;
    memset(out, 0, sizeof(*out));
    queue__cmd_gen_events(&cmd, &qs->conf, gen_id, after_id, max);
    redisReply *r = call(qs, &cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0)
        rc = queue__parse_gen_events(r, after_id, out, err);
    freeReplyObject(r);
    return rc;
}

int queue_sync_user_events_read(queue_sync_t *qs, const char *user_id, const char *after, int max,
                                queue_events_t *out, gf_err_t *err)
{
    char key[256], start[64];
    queue__cmd_t cmd;
    memset(out, 0, sizeof(*out));
    queue__cmd_user_events(&cmd, &qs->conf, user_id, after, max, key, sizeof(key), start,
                           sizeof(start));
    redisReply *r = call(qs, &cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0)
        rc = queue__parse_user_events(r, out, err);
    freeReplyObject(r);
    return rc;
}

int queue_sync_positions(queue_sync_t *qs, const char *const *gen_ids, size_t n,
                         queue_positions_t *out, gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    queue__cmd_t cmd;
    gf_buf_t ids = {0};
    int rc = queue__cmd_positions(&cmd, &qs->conf, gen_ids, n, &ids, err);
    if (rc == 0) {
        redisReply *r = call(qs, &cmd, err);
        rc = r == NULL ? GF_EUNAVAIL : queue__reply_check(r, err);
        if (rc == 0)
            rc = queue__parse_positions(r, n, out, err);
        freeReplyObject(r);
    }
    gf_buf_dispose(&ids);
    return rc;
}

int queue_sync_stats(queue_sync_t *qs, queue_stats_t *out, gf_err_t *err)
{
    queue__cmd_t cmd;
    memset(out, 0, sizeof(*out));
    queue__cmd_script(&cmd, &qs->conf, QS_STATS);
    redisReply *r = call(qs, &cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0)
        rc = queue__parse_stats(r, out, err);
    freeReplyObject(r);
    return rc;
}

static int dead_call(queue_sync_t *qs, const char *action, const char *arg, queue_dead_list_t *list,
                     gf_err_t *err)
{
    queue__cmd_t cmd;
    queue__cmd_script(&cmd, &qs->conf, QS_DEAD);
    queue__cmd_str(&cmd, action);
    queue__cmd_str(&cmd, arg);
    redisReply *r = call(qs, &cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0)
        rc = list ? queue__parse_dead_list(r, list, err) : queue__parse_count(r, err);
    freeReplyObject(r);
    return rc;
}

int queue_sync_dead_list(queue_sync_t *qs, int max, queue_dead_list_t *out, gf_err_t *err)
{
    char n[24];
    memset(out, 0, sizeof(*out));
    snprintf(n, sizeof(n), "%d", max > 0 ? max : 100);
    return dead_call(qs, "list", n, out, err);
}

int queue_sync_dead_retry(queue_sync_t *qs, const char *gen_id, gf_err_t *err)
{
    return dead_call(qs, "retry", gen_id, NULL, err);
}

int queue_sync_dead_purge(queue_sync_t *qs, const char *gen_id, gf_err_t *err)
{
    return dead_call(qs, "purge", gen_id, NULL, err);
}

const char *queue_sync_library(const queue_sync_t *qs)
{
    return qs->conf.lib_name;
}

int queue_sync_old_libraries(queue_sync_t *qs, int drop, char ***names, gf_err_t *err)
{
    *names = NULL;
    queue__cmd_t cmd;
    queue__cmd_plain(&cmd, "FUNCTION");
    queue__cmd_str(&cmd, "LIST");
    queue__cmd_str(&cmd, "LIBRARYNAME");
    queue__cmd_str(&cmd, "farm_*");
    redisReply *r = call(qs, &cmd, err);
    if (r == NULL)
        return GF_EUNAVAIL;
    int rc = queue__reply_check(r, err);
    if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
        rc = gf_err_set(err, GF_EUNAVAIL, "queue", "unexpected reply from redis to FUNCTION LIST");
    size_t n = 0;
    char **out = gf_xcalloc(rc == 0 ? r->elements + 1 : 1, sizeof(char *));
    /* Each library is a flat map: library_name, engine, functions, ... */
    for (size_t i = 0; rc == 0 && i < r->elements; i++) {
        const redisReply *lib = r->element[i];
        for (size_t k = 0; lib->type == REDIS_REPLY_ARRAY && k + 1 < lib->elements; k += 2) {
            const redisReply *key = lib->element[k], *val = lib->element[k + 1];
            if (key->type == REDIS_REPLY_STRING && strcmp(key->str, "library_name") == 0 &&
                val->type == REDIS_REPLY_STRING && strcmp(val->str, qs->conf.lib_name) != 0)
                out[n++] = gf_xstrndup(val->str, val->len);
        }
    }
    freeReplyObject(r);
    for (size_t i = 0; rc == 0 && drop && i < n; i++) {
        queue__cmd_plain(&cmd, "FUNCTION");
        queue__cmd_str(&cmd, "DELETE");
        queue__cmd_str(&cmd, out[i]);
        redisReply *d = call(qs, &cmd, err);
        if (d == NULL)
            rc = GF_EUNAVAIL;
        else if (d->type == REDIS_REPLY_ERROR && strstr(d->str, "not exist") == NULL)
            rc = queue__reply_check(d, err); /* already gone (another prune) is fine */
        freeReplyObject(d);
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            free(out[i]);
        free(out);
        return rc;
    }
    *names = out;
    return (int)n;
}
