/*
 * webhooks/deliver.c - the deliverer of a worker process: it claims due
 * deliveries (farm_webhook_claim, a lease token each; or the terminal
 * delivery its own worker leased as it finished the generation:
 * webhook_deliverer_reserve/adopt), sends each as one POST over net/, and
 * records the attempt under that token with its next claim (one statement:
 * farm_webhook_claim records first), so an attempt is recorded once and a
 * worker whose lease ran out records nothing.
 *
 * Invariants:
 * - `held` counts deliveries claimed and not yet recorded (waiting, in
 *   flight, waiting to be recorded, being recorded) and reservations not yet
 *   adopted; a claim asks for at most concurrency - held.
 * - One claim in flight at most; `batch` holds the attempts it records. An
 *   attempt waits for the next poll (FARM_WEBHOOK_POLL_MS) to be recorded,
 *   or goes at once while closing. A claim that returns with attempts still
 *   waiting behind a full batch, or after a poll came while it was in
 *   flight, is followed by another at once: a poll records every attempt
 *   that ended before it, however many, as the lease's budget of one poll
 *   after the answer assumes.
 * - A delivery is sent only while its lease still covers the whole request
 *   (claimed less than lease - timeout - 5 s ago); one that waited longer
 *   behind its host's bound is released unsent, so no other worker can be
 *   sending the same attempt.
 * - Requests in flight to one host never exceed FARM_WEBHOOK_PER_HOST, and a
 *   claim brings no host's deliveries beyond that bound with what is sent or
 *   waiting of it: a receiver that hangs holds that many slots, not all.
 * - The deliverer is freed only when nothing is held, no store call is in
 *   flight and its handles (timer, net) are closed.
 */
#include "webhooks.h"
#include "dueq.h"
#include "net.h"

#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_MARGIN_MS 5000

typedef struct item item_t;

typedef struct host {
    struct host *next;
    int inflight, waiting; /* its items sent and not answered; claimed and not sent */
    char name[];           /* the claim's: store_webhook_claimed_t.host ("": none) */
} host_t;

struct webhook_deliverer {
    uv_loop_t *loop;
    const gf_config_t *cfg;
    store_t *store;
    net_t *net;
    unsigned char key[WEBHOOK_KEY_MAX];
    size_t key_len;
    int enabled; /* a secret and a concurrency: it claims */
    uv_timer_t timer;
    store_call_t claim;
    int claiming;
    int tick_missed; /* a poll came while the claim was in flight: claim again as it returns */
    long long claim_limit; /* what the claim in flight asked for */
    int held, handles_open;
    item_t *waiting, *waiting_tail; /* claimed, not yet sent, oldest first */
    gf_dueq_t to_record; /* attempts ended, for the next claim to record: all due at 0, a FIFO */
    item_t *batch[STORE_WEBHOOK_RESULTS_MAX]; /* the attempts the claim in flight records */
    size_t nbatch;
    host_t *hosts;
    int closing;
    void (*closed_cb)(void *data);
    void *closed_data;
    gf_mfamily_t *m_outcomes;
    gf_metric_t *m_lag;
};

struct item {
    webhook_deliverer_t *d;
    item_t *next;              /* in `waiting` */
    gf_due_t rec;              /* in `to_record` */
    store_webhook_claimed_t w; /* its strings are owned by the item */
    host_t *host;
    uint64_t claimed_at;       /* uv_now */
    long long clock_offset_ms; /* the database's clock minus ours, at the claim */
    net_xfer_t *xfer;
    /* What is being recorded (record()): */
    const char *outcome;
    int status_code;
    char *error; /* owned; NULL: none */
    long long next_ms;
};

static const gf_log_ctx log_ctx = {.component = "webhooks"};

static void pump(webhook_deliverer_t *d);
static void claim(webhook_deliverer_t *d);

/* --- lifetime ---------------------------------------------------------------------- */

static void maybe_free(webhook_deliverer_t *d)
{
    if (!d->closing || d->held > 0 || d->claiming || d->handles_open > 0)
        return;
    for (host_t *h = d->hosts, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    void (*cb)(void *) = d->closed_cb;
    void *data = d->closed_data;
    free(d);
    if (cb)
        cb(data);
}

static void on_handle_closed(uv_handle_t *h)
{
    webhook_deliverer_t *d = h->data;
    d->handles_open--;
    maybe_free(d);
}

static void on_net_closed(void *data)
{
    webhook_deliverer_t *d = data;
    d->handles_open--;
    maybe_free(d);
}

/* Once nothing is held: close the timer and the net engine. */
static void maybe_close_handles(webhook_deliverer_t *d)
{
    if (!d->closing || d->held > 0 || d->claiming)
        return;
    if (d->net) {
        net_close(d->net, on_net_closed, d);
        d->net = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&d->timer))
        uv_close((uv_handle_t *)&d->timer, on_handle_closed);
    maybe_free(d);
}

static void item_free(item_t *it)
{
    webhook_deliverer_t *d = it->d;
    free(it->w.url);
    free(it->w.host);
    free(it->w.event);
    free(it->w.data);
    free(it->error);
    free(it);
    d->held--;
}

/* --- recording attempts ------------------------------------------------------------ */

/* Records `outcome` for the item under its lease token, with the next claim (at once when
 * closing: no poll comes); the item is freed once recorded. */
static void record(item_t *it, const char *outcome, int status, const char *error,
                   long long next_ms)
{
    webhook_deliverer_t *d = it->d;
    it->outcome = outcome;
    it->status_code = status;
    it->error = error ? gf_xstrdup(error) : NULL;
    it->next_ms = next_ms;
    if (d->m_outcomes && strcmp(outcome, "release") != 0)
        gf_metric_inc(gf_metric_with(
            d->m_outcomes, strcmp(outcome, "retry") == 0 ? "retried" : outcome, NULL, NULL));
    gf_dueq_push(&d->to_record, &it->rec, 0); /* all due at 0: after the last one */
    if (d->closing) {
        claim(d);
        maybe_close_handles(d); /* a claim the store refused freed what it held */
    }
}

/* --- one request ----------------------------------------------------------------------- */

static void on_response(net_resp_t *resp, void *data)
{
    item_t *it = data;
    it->xfer = NULL;
    it->host->inflight--;
    webhook_attempt_t a = {
        .attempts = it->w.window_attempts + 1,
        .now_ms = gf_clock_unix_ms() + it->clock_offset_ms,
        .status = resp->status,
        .timed_out = net_timed_out(resp->curl_code),
        .refused = resp->refused,
        .retry_after = net_header(resp, "retry-after"),
        .error = resp->curl_msg,
    };
    a.first_attempt_ms = it->w.first_attempt_ms > 0 ? it->w.first_attempt_ms : a.now_ms;
    webhook_decision_t dec;
    webhook_decide(&a, &dec);
    gf_log_ctx ctx = log_ctx;
    ctx.generation_id = it->w.generation_id;
    ctx.attempt = it->w.attempts + 1;
    if (dec.verdict != WEBHOOK_DELIVERED)
        GF_LOG(dec.verdict == WEBHOOK_FAILED ? GF_LOG_WARN : GF_LOG_INFO, &ctx,
               "webhook %s (%s) %s: %s", it->w.id, it->w.event,
               dec.verdict == WEBHOOK_FAILED ? "failed" : "to be retried", dec.reason);
    record(it,
           dec.verdict == WEBHOOK_DELIVERED ? "delivered"
           : dec.verdict == WEBHOOK_RETRY   ? "retry"
                                            : "failed",
           (int)resp->status, dec.verdict == WEBHOOK_DELIVERED ? NULL : dec.reason, dec.next_ms);
}

static void send_item(item_t *it)
{
    webhook_deliverer_t *d = it->d;
    const gf_config_t *cfg = d->cfg;
    long long now_ms = gf_clock_unix_ms() + it->clock_offset_ms;
    char *body = webhook_body(it->w.event, it->w.created_ms, it->w.data, cfg->file_secret,
                              cfg->file_url_ttl_s, now_ms);
    if (body == NULL) {
        record(it, "failed", 0, "its data is not JSON", 0);
        return;
    }
    long long ts = now_ms / 1000;
    char sig[128], h_id[64], h_ts[48], h_sig[160];
    webhook_sign(d->key, d->key_len, it->w.id, ts, body, strlen(body), sig, sizeof(sig));
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", it->w.id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", ts);
    snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
    const char *headers[] = {"Content-Type: application/json",
                             "User-Agent: genfarm-webhooks/1 (+https://github.com/genfarm)",
                             h_id,
                             h_ts,
                             h_sig,
                             NULL};
    net_req_t req = {.method = "POST",
                     .url = it->w.url,
                     .headers = headers,
                     .body = body,
                     .body_len = strlen(body),
                     .timeout_ms = (uint64_t)cfg->webhook_timeout_s * 1000,
                     .connect_timeout_ms = (uint64_t)cfg->webhook_timeout_s * 1000,
                     .max_bytes = (size_t)cfg->webhook_max_response_bytes,
                     .public_only = !cfg->webhook_allow_private};
    it->host->inflight++;
    it->xfer = net_start(d->net, &req, on_response, it);
    free(body);
}

/* Starts what its host's bound allows, oldest first; releases what waited too long: a
 * request started later could time out and then wait for the next poll to be recorded past
 * its lease, when another worker may send it again. */
static void pump(webhook_deliverer_t *d)
{
    uint64_t now = uv_now(d->loop);
    uint64_t send_by = (uint64_t)d->cfg->webhook_lease_s * 1000 -
                       (uint64_t)d->cfg->webhook_timeout_s * 1000 - LEASE_MARGIN_MS -
                       (uint64_t)d->cfg->webhook_poll_ms;
    item_t **pp = &d->waiting, *prev = NULL;
    while (*pp) {
        item_t *it = *pp;
        int stale = now - it->claimed_at > send_by;
        if (!d->closing && !stale && it->host->inflight >= d->cfg->webhook_per_host) {
            prev = it;
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        if (d->waiting_tail == it)
            d->waiting_tail = prev;
        it->next = NULL;
        it->host->waiting--;
        if (d->closing || stale)
            record(it, "release", 0, NULL, 0);
        else
            send_item(it);
    }
}

/* --- claims -------------------------------------------------------------------------- */

static host_t *host_get(webhook_deliverer_t *d, const char *name)
{
    for (host_t *h = d->hosts; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    size_t len = strlen(name);
    host_t *h = gf_xcalloc(1, sizeof(*h) + len + 1);
    memcpy(h->name, name, len);
    h->next = d->hosts;
    d->hosts = h;
    return h;
}

/* Hosts with nothing in flight are forgotten after each claim: the list stays bounded. */
static void hosts_trim(webhook_deliverer_t *d)
{
    host_t **pp = &d->hosts;
    while (*pp) {
        host_t *h = *pp;
        if (h->inflight > 0 || h->waiting > 0) {
            pp = &h->next;
        } else {
            *pp = h->next;
            free(h);
        }
    }
}

/* Takes the leased deliveries of `r` over (their strings too), each held and waiting for its
 * host, or failed at once when its URL is refused. */
static void take_items(webhook_deliverer_t *d, store_webhook_claim_result_t *r)
{
    long long offset = r->now_ms - gf_clock_unix_ms();
    int allow = (int)d->cfg->webhook_allow_private;
    hosts_trim(d);
    for (size_t i = 0; i < r->n; i++) {
        item_t *it = gf_xcalloc(1, sizeof(*it));
        it->d = d;
        it->w = r->items[i];
        memset(&r->items[i], 0, sizeof(r->items[i])); /* the item owns its strings now */
        it->claimed_at = uv_now(d->loop);
        it->clock_offset_ms = offset;
        d->held++;
        char host[256], reason[128];
        if (net_url_check(it->w.url, allow, allow, host, sizeof(host), reason, sizeof(reason)) <
            0) {
            char why[160];
            snprintf(why, sizeof(why), "webhook_url %s: never sent", reason);
            record(it, "failed", 0, why, 0);
            continue;
        }
        it->host = host_get(d, it->w.host ? it->w.host : "");
        it->host->waiting++;
        if (d->waiting_tail)
            d->waiting_tail->next = it;
        else
            d->waiting = it;
        d->waiting_tail = it;
    }
}

/* The attempts the claim carried, recorded (or not: a stale lease, or the call failed and
 * their leases run out, so they are claimed again), then freed. */
static void batch_done(webhook_deliverer_t *d, const store_webhook_claim_result_t *r)
{
    gf_log_ctx ctx = log_ctx;
    ctx.action = "recording a webhook attempt";
    for (size_t i = 0; i < d->nbatch; i++) {
        item_t *it = d->batch[i];
        const store_webhook_result_t *res = r ? &r->results[i] : NULL;
        ctx.generation_id = it->w.generation_id;
        if (res && !res->recorded)
            GF_LOG(GF_LOG_INFO, &ctx, "delivery %s: lease lost, attempt not recorded", it->w.id);
        else if (res && res->lag_s >= 0 && d->m_lag)
            gf_metric_observe(d->m_lag, res->lag_s);
        item_free(it);
    }
    d->nbatch = 0;
}

static void on_claimed(store_t *st, const gf_err_t *err, store_call_t *call, void *data)
{
    (void)st;
    webhook_deliverer_t *d = data;
    /* d->claiming stays set until `call` (d->claim) is disposed: a record() meanwhile (a
     * refused URL in take_items) must not start the next claim in the call being read. */
    if (err->code < 0) {
        if (!d->closing || d->nbatch > 0) {
            gf_log_ctx ctx = log_ctx;
            ctx.action = "claiming webhook deliveries";
            gf_log_err(GF_LOG_WARN, &ctx, err);
        }
        batch_done(d, NULL);
        store_call_dispose(call);
        d->claiming = 0;
        if (d->closing)
            claim(d); /* what waits to be recorded: tried once more */
        maybe_close_handles(d);
        return;
    }
    store_webhook_claim_result_t *r = &call->res.webhook_claim;
    int results_full = d->nbatch == STORE_WEBHOOK_RESULTS_MAX;
    batch_done(d, r);
    take_items(d, r);
    int full = d->claim_limit > 0 && (long long)r->n == d->claim_limit;
    int missed = d->tick_missed;
    d->tick_missed = 0;
    store_call_dispose(call);
    d->claiming = 0;
    pump(d);
    /* closing: what waits to be recorded; full: more may be due; a full batch
     * of results: more attempts may wait; a missed poll: this is that poll. */
    if (d->closing || full || missed || (results_full && d->to_record.head != NULL))
        claim(d);
    if (d->closing)
        maybe_close_handles(d);
}

/*
 * Claims what is due (at most concurrency - held; nothing once closing) and,
 * in the same statement, records the attempts that ended since the last
 * claim. One claim in flight at most.
 */
static void claim(webhook_deliverer_t *d)
{
    long long room = d->closing ? 0 : d->cfg->webhook_concurrency - d->held;
    if (d->claiming || (room <= 0 && d->to_record.head == NULL))
        return;
    if (room < 0)
        room = 0;
    store_webhook_outcome_t o[STORE_WEBHOOK_RESULTS_MAX];
    d->nbatch = 0;
    gf_due_t *n;
    while (d->nbatch < STORE_WEBHOOK_RESULTS_MAX && (n = gf_dueq_pop_due(&d->to_record, 0))) {
        item_t *it = (item_t *)((char *)n - offsetof(item_t, rec));
        o[d->nbatch] = (store_webhook_outcome_t){.id = it->w.id,
                                                 .lease_token = it->w.lease_token,
                                                 .outcome = it->outcome,
                                                 .status_code = it->status_code,
                                                 .error = it->error,
                                                 .next_ms = it->next_ms};
        d->batch[d->nbatch++] = it;
    }
    d->claim_limit = room;
    size_t nbusy = 0;
    for (host_t *h = d->hosts; h; h = h->next)
        nbusy += h->inflight + h->waiting > 0;
    store_webhook_host_t *busy = gf_xcalloc(nbusy ? nbusy : 1, sizeof(*busy));
    nbusy = 0;
    for (host_t *h = d->hosts; h; h = h->next)
        if (h->inflight + h->waiting > 0)
            busy[nbusy++] =
                (store_webhook_host_t){.host = h->name, .held = h->inflight + h->waiting};
    store_webhook_claim_req_t q = {.limit = (int)room,
                                   .lease_s = (int)d->cfg->webhook_lease_s,
                                   .per_host = (int)d->cfg->webhook_per_host,
                                   .busy = busy,
                                   .nbusy = nbusy,
                                   .results = o,
                                   .nresults = d->nbatch};
    int rc = store_call_webhook_claim_after(&d->claim, &q);
    free(busy);
    if (rc == 0 && store_exec(d->store, &d->claim, on_claimed, d) == 0) {
        d->claiming = 1;
        return;
    }
    if (rc != 0)
        gf_err_set(&d->claim.err, rc, "webhooks", "an attempt's outcome could not be encoded");
    if (d->nbatch > 0) {
        gf_log_ctx ctx = log_ctx;
        ctx.action = "recording webhook attempts";
        gf_log_err(GF_LOG_WARN, &ctx, &d->claim.err);
    }
    store_call_dispose(&d->claim);
    batch_done(d, NULL); /* their leases run out: they are claimed again */
}

static void on_tick(uv_timer_t *t)
{
    webhook_deliverer_t *d = t->data;
    pump(d); /* a delivery waiting behind its host may have gone stale */
    if (d->claiming)
        d->tick_missed = 1;
    claim(d);
}

/* --- public ---------------------------------------------------------------------------- */

int webhook_config_check(const gf_config_t *cfg, gf_err_t *err)
{
    unsigned char key[WEBHOOK_KEY_MAX];
    size_t len;
    int bad = cfg->webhook_secret && cfg->webhook_secret[0] &&
              webhook_key_decode(cfg->webhook_secret, key, &len, err) < 0;
    OPENSSL_cleanse(key, sizeof(key)); /* decoded in part or whole: not left on the stack */
    if (bad)
        return GF_EINVAL;
    if (cfg->webhook_lease_s * 1000 <=
        cfg->webhook_timeout_s * 1000 + LEASE_MARGIN_MS + cfg->webhook_poll_ms)
        return gf_err_set(err, GF_EINVAL, "webhooks",
                          "FARM_WEBHOOK_LEASE_S=%lld must exceed FARM_WEBHOOK_TIMEOUT_S=%lld plus "
                          "FARM_WEBHOOK_POLL_MS=%lld plus 5 s (an attempt is recorded at the next "
                          "poll, inside its lease)",
                          cfg->webhook_lease_s, cfg->webhook_timeout_s, cfg->webhook_poll_ms);
    return 0;
}

webhook_deliverer_t *webhook_deliverer_new(uv_loop_t *loop, const gf_config_t *cfg, store_t *store,
                                           gf_metrics_t *metrics, gf_err_t *err)
{
    webhook_deliverer_t *d = gf_xcalloc(1, sizeof(*d));
    d->loop = loop;
    d->cfg = cfg;
    d->store = store;
    int has_secret = cfg->webhook_secret && cfg->webhook_secret[0];
    if (webhook_config_check(cfg, err) < 0 ||
        (has_secret && webhook_key_decode(cfg->webhook_secret, d->key, &d->key_len, err) < 0))
        goto fail;
    d->net = net_new(loop, err);
    if (d->net == NULL)
        goto fail;
    d->handles_open = 1;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->handles_open++;
    d->enabled = has_secret && cfg->webhook_concurrency > 0;
    if (metrics) {
        d->m_outcomes = gf_metrics_counter(
            metrics, "farm_webhook_deliveries_total",
            "webhook attempts by outcome: delivered (2xx), retried (scheduled again), failed "
            "(for good: 410, a refused address, 24 h of retries)",
            "outcome");
        static const double lag_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,     2.5,  5,
                                             10,   30,    60,   300, 1800, 7200, 36000, 86400};
        d->m_lag = gf_metric_with(
            gf_metrics_histogram(
                metrics, "farm_webhook_delivery_lag_seconds",
                "from a generation's terminal status to its webhook's delivery, as recorded (at "
                "the poll after the receiver's answer)",
                NULL, lag_buckets, sizeof(lag_buckets) / sizeof(lag_buckets[0])),
            NULL, NULL, NULL);
    }
    if (!d->enabled)
        GF_LOG(GF_LOG_INFO, &log_ctx, "this process delivers no webhooks (%s)",
               has_secret ? "FARM_WEBHOOK_CONCURRENCY=0" : "no FARM_WEBHOOK_SECRET");
    return d;
fail:
    free(d);
    return NULL;
}

void webhook_deliverer_start(webhook_deliverer_t *d)
{
    if (d->enabled)
        uv_timer_start(&d->timer, on_tick, 0, (uint64_t)d->cfg->webhook_poll_ms);
}

int webhook_deliverer_reserve(webhook_deliverer_t *d)
{
    /* The claim in flight may bring as many rows as it asked for (claim_limit). */
    if (d == NULL || !d->enabled || d->closing ||
        d->held + (d->claiming ? d->claim_limit : 0) >= d->cfg->webhook_concurrency)
        return 0;
    d->held++; /* the reservation: claims leave room for it, and it keeps `d` alive */
    return (int)d->cfg->webhook_lease_s;
}

void webhook_deliverer_adopt(webhook_deliverer_t *d, store_webhook_claim_result_t *r)
{
    d->held--;
    if (r != NULL && r->n > 0) {
        take_items(d, r);
        pump(d); /* sends it now (or, closing, releases it) */
    }
    if (d->closing)
        maybe_close_handles(d);
    maybe_free(d);
}

void webhook_deliverer_close(webhook_deliverer_t *d, void (*cb)(void *data), void *data)
{
    d->closing = 1;
    d->closed_cb = cb;
    d->closed_data = data;
    uv_timer_stop(&d->timer);
    pump(d);  /* releases what waits; what is in flight ends and is recorded */
    claim(d); /* records what waited for the next poll */
    maybe_close_handles(d);
}
