/*
 * queue/reply.c - hiredis replies into queue.h's types, and Redis errors into
 * gf_status: the one place that knows the shape of each script's answer
 * (documented at the top of each file in queue/lua/).
 *
 * Invariant: a parser either fills its output completely (every string a new
 * copy, as hiredis frees the reply when the callback returns) or leaves
 * nothing allocated and returns a negative status.
 */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

#define BAD_REPLY(err, what)                                                                       \
    gf_err_set(err, GF_EUNAVAIL, "queue", "unexpected reply from redis to %s", what)

int queue__reply_needs_load(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "Function not found") != NULL;
}

int queue__reply_loaded(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_STRING)
        return 1;
    /* Another process with the same code and settings loaded it first. */
    return r->type == REDIS_REPLY_ERROR && strstr(r->str, "already exists") != NULL;
}

int queue__reply_is_oom(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0;
}

int queue__reply_lists_library(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
}

int queue__reply_check(const redisReply *r, gf_err_t *err)
{
    if (r == NULL)
        return gf_err_set(err, GF_EUNAVAIL, "queue", "redis connection lost");
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    /* Our scripts raise "EINVAL ..." for bad input; the script runner wraps it. */
    if (strstr(r->str, "EINVAL ") != NULL)
        return gf_err_set(err, GF_EINVAL, "queue", "%s", r->str);
    return gf_err_set(err, GF_EUNAVAIL, "queue", "redis: %s", r->str);
}

static int is_arr(const redisReply *r, size_t min)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

static long long num(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static char *dup_str(const redisReply *r)
{
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        return gf_xstrndup(r->str, r->len);
    return gf_xstrdup("");
}

static void copy_state(char *dst, const redisReply *r)
{
    dst[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING) {
        size_t n = r->len < 15 ? r->len : 15;
        memcpy(dst, r->str, n);
        dst[n] = '\0';
    }
}

/*
 * The start shared by the fenced scripts' replies: `res` cleared, an array,
 * the {-1, state} and {-2} answers, and for any other code at least `min`
 * elements.
 */
static int fenced(const redisReply *r, queue_result_t *res, const char *what, size_t min,
                  gf_err_t *err)
{
    memset(res, 0, sizeof(*res));
    if (!is_arr(r, 1))
        return BAD_REPLY(err, what);
    long long code = num(r->element[0]);
    if (code == -1) {
        copy_state(res->state, r->elements > 1 ? r->element[1] : NULL);
        return gf_err_set(err, GF_ECONFLICT, "queue",
                          "%s: refused: the token is not the job's current lease (job %s)", what,
                          res->state);
    }
    if (code == -2)
        return gf_err_set(err, GF_ENOTFOUND, "queue", "%s: no such job", what);
    if (r->elements < min)
        return BAD_REPLY(err, what);
    return 0;
}

int queue__parse_enqueue(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    memset(res, 0, sizeof(*res));
    if (!is_arr(r, 2))
        return BAD_REPLY(err, "enqueue");
    long long code = num(r->element[0]);
    if (code == -9 && r->element[1]->type == REDIS_REPLY_STRING) /* {-9, 'EINVAL …'} */
        return gf_err_set(err, GF_EINVAL, "queue", "%s", r->element[1]->str);
    if (r->elements < 3)
        return BAD_REPLY(err, "enqueue");
    if (code == -1) {
        res->limit = num(r->element[2]);
        return gf_err_setd(err, GF_ETOOBIG, "queue", res->limit,
                           "too many active generations (cap %lld)", (long long)res->limit);
    }
    res->created = code == 1;
    copy_state(res->state, r->element[1]);
    res->position = num(r->element[2]);
    return 0;
}

/*
 * One claimed job from the claim's flat list (gen, d, token, attempt): `d` is
 * the job's fixed data as the queue stores it, "user\ntier\ndeadline\n
 * created\npayload" (queue__cmd_enqueue packs it), which is split here
 * rather than in Redis. 0, or -1 when the entries are not that shape.
 */
static int job_fill(queue_job_t *j, const redisReply *const *e, long long lease_until)
{
    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING ||
        e[2]->type != REDIS_REPLY_INTEGER || e[3]->type != REDIS_REPLY_INTEGER)
        return -1;
    const char *d = e[1]->str, *end = d + e[1]->len, *nl[4];
    const char *p = d;
    for (int i = 0; i < 4; i++) {
        nl[i] = memchr(p, '\n', (size_t)(end - p));
        if (nl[i] == NULL)
            return -1;
        p = nl[i] + 1;
    }
    if (nl[0] == d || nl[1] == nl[0] + 1)
        return -1; /* no user or no tier */
    long long dl = 0;
    for (p = nl[1] + 1; p < nl[2]; p++) {
        if (*p < '0' || *p > '9' || dl > (INT64_MAX - 9) / 10)
            return -1;
        dl = dl * 10 + (*p - '0');
    }
    if (p == nl[1] + 1)
        return -1; /* an empty deadline */
    /* The creation time is informational (metrics): one that does not read is 0. */
    long long created = 0;
    for (p = nl[2] + 1; p < nl[3] && *p >= '0' && *p <= '9' && created <= (INT64_MAX - 9) / 10; p++)
        created = created * 10 + (*p - '0');
    if (p != nl[3])
        created = 0;
    j->gen_id = dup_str(e[0]);
    j->user_id = gf_xstrndup(d, (size_t)(nl[0] - d));
    j->tier = gf_xstrndup(nl[0] + 1, (size_t)(nl[1] - nl[0] - 1));
    j->payload = gf_xstrndup(nl[3] + 1, (size_t)(end - nl[3] - 1));
    j->token = (uint64_t)e[2]->integer;
    j->attempt = (int)e[3]->integer;
    j->deadline_ms = dl;
    j->created_ms = created;
    j->lease_until = lease_until;
    return 0;
}

int queue__parse_claim(const redisReply *r, queue_claim_t *out, gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!is_arr(r, 3) || r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_INTEGER)
        return BAD_REPLY(err, "claim");
    const redisReply *jobs = r->element[0], *exp = r->element[1];
    /* ended: from a library that reports it (claim.lua) */
    const redisReply *ended = r->elements > 3 ? r->element[3] : NULL;
    if (jobs->elements % 4 != 0 || (ended != NULL && ended->type != REDIS_REPLY_ARRAY))
        return BAD_REPLY(err, "claim");
    for (size_t i = 0; i < exp->elements; i++)
        if (!is_arr(exp->element[i], 2))
            return BAD_REPLY(err, "claim");
    for (size_t i = 0; ended != NULL && i < ended->elements; i++)
        if (!is_arr(ended->element[i], 3))
            return BAD_REPLY(err, "claim");
    size_t n = jobs->elements / 4;
    if (n) {
        out->jobs = gf_xcalloc(n, sizeof(*out->jobs));
        for (size_t i = 0; i < n; i++) {
            const redisReply *const *e = (const redisReply *const *)jobs->element + 4 * i;
            if (job_fill(&out->jobs[out->n_jobs], e, r->element[2]->integer) == 0) {
                out->n_jobs++;
                continue;
            }
            /*
             * Leased but not handed out: one job whose data this client
             * cannot read must not fail the others claimed with it. Its
             * lease runs out, and after FARM_QUEUE_MAX_RECLAIMS it is
             * dead-lettered as poison, where the operator sees it.
             */
            gf_log_ctx ctx = {.component = "queue",
                              .generation_id = e[0]->type == REDIS_REPLY_STRING ? e[0]->str : NULL};
            GF_LOG(GF_LOG_WARN, &ctx,
                   "claim: a job's data is not user, tier, deadline, created, "
                   "payload; not run (it will be dead-lettered)");
        }
    }
    if (exp->elements) {
        out->expired = gf_xcalloc(exp->elements, sizeof(*out->expired));
        for (size_t i = 0; i < exp->elements; i++) {
            out->expired[i].gen_id = dup_str(exp->element[i]->element[0]);
            out->expired[i].user_id = dup_str(exp->element[i]->element[1]);
        }
        out->n_expired = exp->elements;
    }
    if (ended != NULL && ended->elements) {
        out->ended = gf_xcalloc(ended->elements, sizeof(*out->ended));
        for (size_t i = 0; i < ended->elements; i++) {
            out->ended[i].gen_id = dup_str(ended->element[i]->element[0]);
            out->ended[i].user_id = dup_str(ended->element[i]->element[1]);
            copy_state(out->ended[i].state, ended->element[i]->element[2]);
        }
        out->n_ended = ended->elements;
    }
    return 0;
}

int queue__parse_heartbeat(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    int rc = fenced(r, res, "heartbeat", 3, err);
    if (rc < 0)
        return rc;
    res->cancel = num(r->element[1]) != 0;
    res->lease_until = num(r->element[2]);
    strcpy(res->state, "running");
    return 0;
}

int queue__parse_finish(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    int rc = fenced(r, res, "finish", 3, err);
    if (rc < 0)
        return rc;
    copy_state(res->state, r->element[1]);
    res->retry_in_ms = num(r->element[2]);
    return 0;
}

int queue__parse_cancel(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    memset(res, 0, sizeof(*res));
    if (!is_arr(r, 1))
        return BAD_REPLY(err, "cancel");
    if (num(r->element[0]) == -2)
        return gf_err_set(err, GF_ENOTFOUND, "queue", "cancel: no such job");
    if (r->elements < 2)
        return BAD_REPLY(err, "cancel");
    copy_state(res->state, r->element[1]);
    return 0;
}

int queue__parse_event(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    int rc = fenced(r, res, "event", 1, err);
    if (rc < 0)
        return rc;
    if (num(r->element[0]) == -3)
        return gf_err_set(err, GF_ETOOBIG, "queue", "event: the generation has too many events");
    if (r->elements < 2)
        return BAD_REPLY(err, "event");
    res->event_id = (uint64_t)num(r->element[1]);
    return 0;
}

/* A running job's progress as the queue kept it ("0".."100"), or -1: none, or not a percent. */
static int progress_of(const redisReply *e)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len < 1 || e->len > 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9')
            return -1;
        v = v * 10 + (e->str[i] - '0');
    }
    return v <= 100 ? v : -1;
}

int queue__parse_position(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    memset(res, 0, sizeof(*res));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return BAD_REPLY(err, "position");
    if (r->elements == 0)
        return gf_err_set(err, GF_ENOTFOUND, "queue", "position: no such job");
    if (r->elements < 2)
        return BAD_REPLY(err, "position");
    copy_state(res->state, r->element[0]);
    res->position = num(r->element[1]);
    res->progress = -1;
    if (r->elements > 2) /* the stage, from a library that reports it */
        copy_state(res->stage, r->element[2]);
    if (r->elements > 3) /* and the progress */
        res->progress = progress_of(r->element[3]);
    return 0;
}

int queue__parse_positions(const redisReply *r, size_t n, queue_positions_t *out, gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!is_arr(r, 4 * n) || r->elements != 4 * n)
        return BAD_REPLY(err, "positions");
    out->items = gf_xcalloc(n, sizeof(*out->items));
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        queue_result_t *res = &out->items[i];
        copy_state(res->state, r->element[4 * i]);
        res->position = num(r->element[4 * i + 1]);
        copy_state(res->stage, r->element[4 * i + 2]);
        res->progress = progress_of(r->element[4 * i + 3]);
    }
    return 0;
}

void queue_positions_dispose(queue_positions_t *p)
{
    if (p == NULL)
        return;
    GF_FREE(p->items);
    p->n = 0;
}

int queue__parse_ratelimit(const redisReply *r, queue_result_t *res, gf_err_t *err)
{
    memset(res, 0, sizeof(*res));
    if (!is_arr(r, 4))
        return BAD_REPLY(err, "ratelimit");
    res->created = num(r->element[0]) == 1;
    res->limit = num(r->element[3]);
    res->position = num(r->element[1]);
    res->retry_in_ms = num(r->element[2]);
    return 0;
}

int queue__parse_stats(const redisReply *r, queue_stats_t *out, gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!is_arr(r, 9) || r->element[0]->type != REDIS_REPLY_ARRAY)
        return BAD_REPLY(err, "stats");
    const redisReply *t = r->element[0];
    out->n_tiers = t->elements / 2;
    if (out->n_tiers)
        out->tiers = gf_xcalloc(out->n_tiers, sizeof(*out->tiers));
    for (size_t i = 0; i < out->n_tiers; i++) {
        out->tiers[i].name = dup_str(t->element[2 * i]);
        out->tiers[i].depth = num(t->element[2 * i + 1]);
    }
    out->delayed = num(r->element[1]);
    out->in_flight = num(r->element[2]);
    out->dead = num(r->element[3]);
    out->workers = num(r->element[4]);
    out->done_last_min = num(r->element[5]);
    out->failed_last_min = num(r->element[6]);
    out->done_this_min = num(r->element[7]);
    out->failed_this_min = num(r->element[8]);
    const redisReply *live = r->elements > 9 ? r->element[9] : NULL;
    if (live && live->type == REDIS_REPLY_ARRAY && live->elements >= 3) {
        out->n_live = live->elements / 3;
        out->live = gf_xcalloc(out->n_live, sizeof(*out->live));
        for (size_t i = 0; i < out->n_live; i++) {
            out->live[i].id = dup_str(live->element[3 * i]);
            out->live[i].last_seen_ms = num(live->element[3 * i + 1]);
            out->live[i].in_flight = num(live->element[3 * i + 2]);
        }
    }
    return 0;
}

/* An event is "type\nts\ndata" (common.lua, ev_append). */
static void event_split(queue_event_t *ev, const char *s, size_t n)
{
    const char *nl1 = memchr(s, '\n', n);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', n - (size_t)(nl1 + 1 - s)) : NULL;
    if (nl1 == NULL || nl2 == NULL) {
        ev->type = gf_xstrdup("unknown");
        ev->data = gf_xstrndup(s, n);
        return;
    }
    ev->type = gf_xstrndup(s, (size_t)(nl1 - s));
    ev->ts_ms = strtoll(nl1 + 1, NULL, 10);
    ev->data = gf_xstrndup(nl2 + 1, n - (size_t)(nl2 + 1 - s));
}

int queue__parse_gen_events(const redisReply *r, uint64_t after_id, queue_events_t *out,
                            gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return BAD_REPLY(err, "events");
    if (r->elements == 0)
        return 0;
    /* {id, event}: an ended job's terminal event, at or below the cursor (events.lua). */
    if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER) {
        const redisReply *e = r->element[1];
        if (r->element[0]->integer < 1 || (uint64_t)r->element[0]->integer > after_id ||
            e->type != REDIS_REPLY_STRING)
            return BAD_REPLY(err, "events");
        out->ev = gf_xcalloc(1, sizeof(*out->ev));
        out->n = 1;
        out->ev[0].id = (uint64_t)r->element[0]->integer;
        event_split(&out->ev[0], e->str, e->len);
        return 0;
    }
    out->ev = gf_xcalloc(r->elements, sizeof(*out->ev));
    for (size_t i = 0; i < r->elements; i++) {
        queue_event_t *ev = &out->ev[out->n++];
        ev->id = after_id + i + 1;
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING)
            event_split(ev, e->str, e->len);
        else
            event_split(ev, "", 0);
    }
    return 0;
}

static const redisReply *field(const redisReply *kv, const char *name)
{
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && strcmp(kv->element[i]->str, name) == 0)
            return kv->element[i + 1];
    return NULL;
}

int queue__parse_user_events(const redisReply *r, queue_events_t *out, gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return BAD_REPLY(err, "XRANGE");
    for (size_t i = 0; i < r->elements; i++)
        if (!is_arr(r->element[i], 2) || r->element[i]->element[1]->type != REDIS_REPLY_ARRAY)
            return BAD_REPLY(err, "XRANGE");
    if (r->elements == 0)
        return 0;
    out->ev = gf_xcalloc(r->elements, sizeof(*out->ev));
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *kv = e->element[1];
        queue_event_t *ev = &out->ev[out->n++];
        ev->stream_id = dup_str(e->element[0]);
        ev->gen_id = dup_str(field(kv, "g"));
        ev->id = (uint64_t)num(field(kv, "n"));
        ev->type = dup_str(field(kv, "t"));
        /* A stream id is "<unix ms>-<seq>": the entry's time. */
        ev->ts_ms = strtoll(ev->stream_id, NULL, 10);
        ev->data = dup_str(field(kv, "d"));
    }
    return 0;
}

int queue__parse_dead_list(const redisReply *r, queue_dead_list_t *out, gf_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return BAD_REPLY(err, "dead list");
    for (size_t i = 0; i < r->elements; i++)
        if (!is_arr(r->element[i], 6))
            return BAD_REPLY(err, "dead list");
    if (r->elements == 0)
        return 0;
    out->items = gf_xcalloc(r->elements, sizeof(*out->items));
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        queue_dead_t *d = &out->items[out->n++];
        d->gen_id = dup_str(e->element[0]);
        d->user_id = dup_str(e->element[1]);
        d->tier = dup_str(e->element[2]);
        d->reason = dup_str(e->element[3]);
        d->attempts = (int)num(e->element[4]);
        d->dead_at_ms = num(e->element[5]);
    }
    return 0;
}

int queue__parse_count(const redisReply *r, gf_err_t *err)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return BAD_REPLY(err, "dead letter");
    return (int)r->integer;
}

void queue_job_dispose(queue_job_t *j)
{
    if (j == NULL)
        return;
    GF_FREE(j->gen_id);
    GF_FREE(j->user_id);
    GF_FREE(j->tier);
    GF_FREE(j->payload);
}

void queue_claim_dispose(queue_claim_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_jobs; i++)
        queue_job_dispose(&c->jobs[i]);
    for (size_t i = 0; i < c->n_expired; i++) {
        free(c->expired[i].gen_id);
        free(c->expired[i].user_id);
    }
    for (size_t i = 0; i < c->n_ended; i++) {
        free(c->ended[i].gen_id);
        free(c->ended[i].user_id);
    }
    GF_FREE(c->jobs);
    GF_FREE(c->expired);
    GF_FREE(c->ended);
    c->n_jobs = c->n_expired = c->n_ended = 0;
}

void queue_events_dispose(queue_events_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->ev[i].stream_id);
        free(e->ev[i].gen_id);
        free(e->ev[i].type);
        free(e->ev[i].data);
    }
    GF_FREE(e->ev);
    e->n = 0;
}

void queue_stats_dispose(queue_stats_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_tiers; i++)
        free(s->tiers[i].name);
    GF_FREE(s->tiers);
    s->n_tiers = 0;
    for (size_t i = 0; i < s->n_live; i++)
        free(s->live[i].id);
    GF_FREE(s->live);
    s->n_live = 0;
}

void queue_dead_list_dispose(queue_dead_list_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].gen_id);
        free(d->items[i].user_id);
        free(d->items[i].tier);
        free(d->items[i].reason);
    }
    GF_FREE(d->items);
    d->n = 0;
}
