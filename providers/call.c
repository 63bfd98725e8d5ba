/*
 * providers/call.c - the life of a provider call.
 *
 * provider_submit() copies the request and arms the call's one timer at 0 ms
 * (so `done` never runs inside provider_submit); the timer picks the first
 * adapter of the chain whose breaker allows it, takes a slot (or queues for
 * one) and starts the adapter. The adapter ends with
 * provider__call_succeed() or provider__call_fail(); a failure that the fault
 * table marks `failover` moves the call to the next adapter, anything else
 * runs `done`. The call then closes its timer and is freed from the close
 * callback. The same timer serves every wait of the adapter (backoff, polls),
 * bounded by the call's deadline.
 */
#include "provider_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { CALL_NEW, CALL_WAIT_SLOT, CALL_RUNNING, CALL_FINISHING, CALL_CLOSING };

static void call_start(provider_call_t *c);
static void call_finish(provider_call_t *c);
static void set_error(provider_call_t *c, provider_fault f, long http_status, const char *msg);

static void on_call_timer(uv_timer_t *t);

static void adapter_run(provider_call_t *c)
{
    c->a->ops->submit(c);
}

/* --- slots ---------------------------------------------------------------------- */

static void slot_release(provider_call_t *c)
{
    provider_adapter_t *a = c->a;
    if (!c->has_slot)
        return;
    c->has_slot = 0;
    a->inflight--;
    provider_call_t *w = a->wait_head;
    if (w == NULL)
        return;
    a->wait_head = w->wait_next;
    if (a->wait_head == NULL)
        a->wait_tail = NULL;
    w->wait_next = NULL;
    a->inflight++;
    w->has_slot = 1;
    w->state = CALL_RUNNING;
    /* From the loop, not from inside the call that freed the slot. */
    w->on_timer = adapter_run;
    uv_timer_start(&w->timer, on_call_timer, 0, 0);
}

static void wait_remove(provider_call_t *c)
{
    provider_adapter_t *a = c->a;
    provider_call_t **pp = &a->wait_head, *prev = NULL;
    while (*pp && *pp != c)
        prev = *pp, pp = &(*pp)->wait_next;
    if (*pp == NULL)
        return;
    *pp = c->wait_next;
    if (a->wait_tail == c)
        a->wait_tail = prev;
    c->wait_next = NULL;
}

/*
 * The call's deadline passed while it waited for a slot (a slot frees only when
 * a call in flight ends, which may take minutes): it ends here, never sent.
 * Not the provider's failure, so the breaker does not count it.
 */
static void slot_wait_expired(provider_call_t *c)
{
    char msg[160];
    wait_remove(c);
    snprintf(msg, sizeof(msg),
             "the call's deadline passed while it waited for one of %s's %d slots "
             "(FARM_PROVIDER_CONCURRENCY)",
             c->a->name, c->a->max_inflight);
    set_error(c, PROVIDER_F_DEADLINE, 0, msg);
    if (c->probing) /* no verdict: the next call probes */
        provider__breaker_release(&c->a->breaker);
    call_finish(c);
}

/* --- the call --------------------------------------------------------------------- */

static void on_call_timer(uv_timer_t *t)
{
    provider_call_t *c = t->data;
    void (*fn)(provider_call_t *) = c->on_timer;
    c->on_timer = NULL;
    if (fn)
        fn(c);
}

static void protocol_reset(provider_call_t *c)
{
    GF_FREE(c->status_url);
    GF_FREE(c->result_url);
    GF_FREE(c->cancel_url);
    GF_FREE(c->image_url);
    c->phase = c->submits = c->get_failures = c->waits = c->wait_for_model = 0;
    c->poll_ms = 0;
    c->request_id[0] = '\0';
    c->accepted = 0;
    c->last_status = 0;
}

static char *dup_or_null(const char *s)
{
    return s ? gf_xstrdup(s) : NULL;
}

static unsigned char *dup_bytes(const unsigned char *b, size_t n)
{
    if (b == NULL || n == 0)
        return NULL;
    unsigned char *d = gf_xmalloc(n);
    memcpy(d, b, n);
    return d;
}

int provider_submit(provider_t *p, const provider_req_t *req, const provider_cbs_t *cbs,
                    provider_call_t **out, gf_err_t *err)
{
    if (p->closing)
        return gf_err_set(err, GF_ECANCELED, "provider", "the provider is closing");
    if (cbs == NULL || cbs->done == NULL || req == NULL || req->prompt == NULL ||
        req->prompt[0] == '\0')
        return gf_err_set(err, GF_EINVAL, "provider", "a call needs a prompt and a done callback");
    if (req->width < 64 || req->width > 2048 || req->height < 64 || req->height > 2048)
        return gf_err_set(err, GF_EINVAL, "provider", "size %dx%d is outside 64..2048", req->width,
                          req->height);
    if (req->only_provider && strcmp(req->only_provider, "auto") != 0) {
        int found = 0;
        for (int i = 0; i < p->nchain; i++)
            found |= strcmp(p->chain[i]->name, req->only_provider) == 0;
        if (!found)
            return gf_err_set(err, GF_EINVAL, "provider",
                              "provider %.20s is not configured here (the chain is %s)",
                              req->only_provider, p->chain_names);
    }
    provider_needs_t n = {.identity = req->identity_image != NULL,
                          .pose = req->pose_image != NULL,
                          .width = req->width,
                          .height = req->height,
                          /* A resume only polls: the prompt is not sent again. */
                          .negative =
                              !req->resume && req->negative_prompt && req->negative_prompt[0]};
    int fits = 0;
    const char *field = "provider";
    for (int i = 0; i < p->nchain && !fits; i++) {
        provider_adapter_t *a = p->chain[i];
        if (req->only_provider && strcmp(req->only_provider, "auto") != 0 &&
            strcmp(a->name, req->only_provider) != 0)
            continue;
        fits = provider_caps_fit(n.identity || n.pose ? &a->pose_caps : &a->caps, &n, &field);
    }
    if (!fits)
        return gf_err_set(err, GF_EINVAL, "provider",
                          "no model of %s can take this call's %s (see FARM_<P>_POSE_MODEL)",
                          req->only_provider ? req->only_provider : p->chain_names, field);
    provider_call_t *c = gf_xcalloc(1, sizeof(*c));
    c->p = p;
    c->req = *req;
    c->prompt = gf_xstrdup(req->prompt);
    c->negative = dup_or_null(req->negative_prompt);
    c->resume = dup_or_null(req->resume);
    c->resume_provider = dup_or_null(req->resume_provider);
    if (req->only_provider && strcmp(req->only_provider, "auto") != 0)
        c->only = gf_xstrdup(req->only_provider);
    c->log_id = dup_or_null(req->log_id);
    c->identity = dup_bytes(req->identity_image, req->identity_len);
    c->pose = dup_bytes(req->pose_image, req->pose_len);
    c->req.prompt = c->prompt;
    c->req.negative_prompt = c->negative;
    c->req.resume = c->resume;
    c->req.resume_provider = c->resume_provider;
    c->req.only_provider = c->only;
    c->req.log_id = c->log_id;
    c->req.identity_image = c->identity;
    c->req.identity_len = c->identity ? req->identity_len : 0;
    c->req.pose_image = c->pose;
    c->req.pose_len = c->pose ? req->pose_len : 0;
    c->cbs = *cbs;
    uint64_t dl =
        req->deadline_ms ? req->deadline_ms : (uint64_t)p->cfg->provider_deadline_s * 1000;
    c->deadline_at = uv_now(p->loop) + dl;
    c->chain_pos = -1;
    uv_timer_init(p->loop, &c->timer);
    c->timer.data = c;
    c->next = p->calls;
    if (p->calls)
        p->calls->prev = c;
    p->calls = c;
    p->ncalls++;
    c->on_timer = call_start;
    uv_timer_start(&c->timer, on_call_timer, 0, 0);
    if (out)
        *out = c;
    return 0;
}

const char *provider__call_model(const provider_call_t *c)
{
    return c->req.identity_image || c->req.pose_image ? c->a->pose_model : c->a->model;
}

const provider_caps_t *provider__call_caps(const provider_call_t *c)
{
    return c->req.identity_image || c->req.pose_image ? &c->a->pose_caps : &c->a->caps;
}

void provider__call_needs(const provider_call_t *c, provider_needs_t *n)
{
    *n = (provider_needs_t){.identity = c->req.identity_image != NULL,
                            .pose = c->req.pose_image != NULL,
                            .width = c->req.width,
                            .height = c->req.height,
                            .negative = !c->req.resume && c->req.negative_prompt &&
                                        c->req.negative_prompt[0]};
}

/* Whether adapter `a` can take everything the request of `c` carries. */
static int adapter_fits(const provider_adapter_t *a, const provider_call_t *c)
{
    provider_needs_t n;
    provider__call_needs(c, &n);
    return provider_caps_fit(n.identity || n.pose ? &a->pose_caps : &a->caps, &n, NULL);
}

/* Picks the adapter to try after chain position `from`: a resume names its own. */
static provider_adapter_t *next_adapter(provider_call_t *c, int *pos)
{
    provider_t *p = c->p;
    uint64_t now = uv_now(p->loop);
    for (int i = c->chain_pos + 1; i < p->nchain; i++) {
        provider_adapter_t *a = p->chain[i];
        if (c->resume && c->resume_provider && strcmp(a->name, c->resume_provider) != 0)
            continue;
        if (c->only && strcmp(a->name, c->only) != 0)
            continue;
        if (!adapter_fits(a, c))
            continue; /* its model cannot take what the call carries */
        /* A resume polls a job that is paid for already: an open breaker (this
         * provider's new submits failing, or its credits gone) does not stop it,
         * since the alternative is buying the image again. It is no probe. */
        if (c->resume) {
            c->probing = 0;
            *pos = i;
            return a;
        }
        if (!provider__breaker_allow(&a->breaker, now))
            continue;
        c->probing = a->breaker.state == BREAKER_HALF_OPEN;
        *pos = i;
        return a;
    }
    return NULL;
}

static void call_start(provider_call_t *c)
{
    int pos;
    provider_adapter_t *a = next_adapter(c, &pos);
    if (a == NULL) {
        /* Attribute the failure to the last adapter tried, or the first of the chain. */
        if (c->a == NULL)
            c->a = c->p->chain[c->chain_pos >= 0 ? c->chain_pos : 0];
        if (c->perr.code == PROVIDER_E_NONE)
            provider__call_fail(c, PROVIDER_F_BREAKER_OPEN, 0,
                                "no provider can take the call: circuit breakers open (%s)",
                                c->p->chain_names);
        else
            call_finish(c);
        return;
    }
    c->a = a;
    c->chain_pos = pos;
    protocol_reset(c);
    c->accepted = c->resume != NULL;
    memset(&c->perr, 0, sizeof(c->perr));
    if (a->inflight >= a->max_inflight) {
        c->state = CALL_WAIT_SLOT;
        if (a->wait_tail)
            a->wait_tail->wait_next = c;
        else
            a->wait_head = c;
        a->wait_tail = c;
        /* Its deadline holds while it waits; a slot's hand-over restarts the timer. */
        c->on_timer = slot_wait_expired;
        uv_timer_start(&c->timer, on_call_timer, provider__call_remaining(c), 0);
        return;
    }
    a->inflight++;
    c->has_slot = 1;
    c->state = CALL_RUNNING;
    a->ops->submit(c);
}

uint64_t provider__call_remaining(const provider_call_t *c)
{
    uint64_t now = uv_now(c->p->loop);
    return c->deadline_at > now ? c->deadline_at - now : 0;
}

void provider__call_wait(provider_call_t *c, uint64_t ms, void (*cb)(provider_call_t *c))
{
    if (c->canceled)
        return; /* canceled from a callback: the cancel's own timer ends the call */
    if (ms >= provider__call_remaining(c)) {
        provider__call_fail(c, PROVIDER_F_DEADLINE, c->last_status,
                            "the call's deadline passes before the next attempt (wait %llu ms)",
                            (unsigned long long)ms);
        return;
    }
    c->on_timer = cb;
    uv_timer_start(&c->timer, on_call_timer, ms, 0);
}

void provider__http_defaults(const provider_call_t *c, net_req_t *req, uint64_t phase_ms)
{
    const gf_config_t *cfg = c->p->cfg;
    req->timeout_ms = phase_ms;
    req->connect_timeout_ms = (uint64_t)cfg->provider_connect_timeout_ms;
    req->low_speed_time_s = (long)cfg->provider_low_speed_time_s;
    req->max_bytes = (size_t)cfg->provider_max_image_bytes;
}

void provider__http_silent(net_req_t *req, long silent_s)
{
    if (req->low_speed_time_s > 0)
        req->low_speed_time_s += silent_s;
}

void provider__call_http(provider_call_t *c, net_req_t *req, net_done_cb cb)
{
    if (c->canceled)
        return; /* as in provider__call_wait */
    uint64_t left = provider__call_remaining(c);
    if (left == 0) {
        provider__call_fail(c, PROVIDER_F_DEADLINE, c->last_status, "the call's deadline passed");
        return;
    }
    if (req->timeout_ms == 0 || req->timeout_ms > left)
        req->timeout_ms = left;
    if (req->connect_timeout_ms > req->timeout_ms)
        req->connect_timeout_ms = req->timeout_ms;
    c->xfer = net_start(c->p->http, req, cb, c);
}

static void on_cancel_sent(net_resp_t *resp, void *data)
{
    (void)resp;
    provider_t *p = data;
    p->ncancels--;
    provider__close_when_idle(p);
}

void provider__send_cancel(provider_call_t *c, const net_req_t *req)
{
    provider_t *p = c->p;
    p->ncancels++;
    net_start(p->http, req, on_cancel_sent, p);
}

net_t *provider__call_engine(provider_call_t *c)
{
    return c->p->http;
}

uv_loop_t *provider__call_loop(provider_call_t *c)
{
    return c->p->loop;
}

uint32_t provider__rand(void)
{
    static uint32_t x = 2463534242u;
    if (x == 2463534242u)
        x ^= (uint32_t)uv_hrtime();
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* --- outcomes ------------------------------------------------------------------- */

static void breaker_verdict(provider_call_t *c, int ok)
{
    provider_adapter_t *a = c->a;
    const gf_config_t *cfg = c->p->cfg;
    uint64_t now = uv_now(c->p->loop);
    if (ok) {
        provider__breaker_success(&a->breaker);
        return;
    }
    const provider_fault_info_t *fi = provider__fault_info(c->perr.fault);
    if (!fi->breaker) {
        if (c->probing)
            provider__breaker_release(&a->breaker);
        return;
    }
    uint64_t cool = c->perr.fault == PROVIDER_F_CREDITS
                        ? (uint64_t)cfg->provider_breaker_credits_cooldown_s * 1000
                        : 0;
    provider__breaker_failure(&a->breaker, now, cool);
}

static void log_failure(provider_call_t *c)
{
    gf_log_ctx ctx = {.component = "provider",
                      .provider = c->a ? c->a->name : NULL,
                      .generation_id = c->log_id,
                      .action = "calling provider"};
    GF_LOG(c->perr.fault == PROVIDER_F_CANCELED ? GF_LOG_DEBUG : GF_LOG_WARN, &ctx,
           "provider call failed: %s/%s (http %ld, retryable %d, request %s): %s",
           provider_error_code_name(c->perr.code), provider_fault_name(c->perr.fault),
           c->perr.http_status, c->perr.retryable, c->perr.request_id[0] ? c->perr.request_id : "-",
           c->perr.err.msg);
}

static void on_call_closed(uv_handle_t *h)
{
    provider_call_t *c = h->data;
    provider_t *p = c->p;
    protocol_reset(c);
    free(c->prompt);
    free(c->negative);
    free(c->resume);
    free(c->resume_provider);
    free(c->only);
    free(c->log_id);
    free(c->identity);
    free(c->pose);
    free(c->img);
    free(c);
    p->ncalls--;
    provider__close_when_idle(p);
}

/* Runs `done` and frees the call. */
static void call_finish(provider_call_t *c)
{
    provider_t *p = c->p;
    if (c->state == CALL_CLOSING)
        return;
    c->state = CALL_CLOSING;
    uv_timer_stop(&c->timer);
    if (c->xfer) {
        net_abort(c->xfer);
        c->xfer = NULL;
    }
    static const gf_err_t ok = {.code = GF_OK, .domain = "provider"};
    provider_result_t res = {.image = c->status == 0 && c->img ? &c->image : NULL,
                             .error = c->status < 0 ? &c->perr : NULL};
    if (c->status < 0)
        log_failure(c);
    c->cbs.done(c, c->status < 0 ? &c->perr.err : &ok, &res, c->cbs.data);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->a)
        wait_remove(c);
    if (c->a)
        slot_release(c);
    uv_close((uv_handle_t *)&c->timer, on_call_closed);
}

void provider__call_succeed(provider_call_t *c, unsigned char *img, size_t len)
{
    c->xfer = NULL;
    if (c->canceled) {
        free(img);
        provider__call_fail(c, PROVIDER_F_CANCELED, 0, "canceled");
        return;
    }
    const char *mime = provider__sniff_image(img, len);
    if (mime == NULL) {
        free(img);
        provider__call_fail(c, PROVIDER_F_BAD_BODY, 200, "the image has no PNG/JPEG/WEBP magic");
        return;
    }
    c->img = img;
    c->img_len = len;
    c->image = (provider_image_t){.bytes = img,
                                  .len = len,
                                  .mime = mime,
                                  .provider = c->a->name,
                                  .request_id = c->request_id};
    c->status = 0;
    breaker_verdict(c, 1);
    call_finish(c);
}

/* The call's error and status (what `done` gets) for fault `f`. */
static void set_error(provider_call_t *c, provider_fault f, long http_status, const char *msg)
{
    const provider_fault_info_t *fi = provider__fault_info(f);
    provider_error_t *e = &c->perr;
    memset(e, 0, sizeof(*e));
    e->code = fi->code;
    e->fault = f;
    e->retryable = fi->retryable;
    e->new_seed = f == PROVIDER_F_MODERATION_OUTPUT;
    /* A transient failure of the polls or the download of a job the provider
     * holds: the job is still there, and a run again collects it. */
    e->resumable = c->accepted && fi->retryable &&
                   (f == PROVIDER_F_SERVER || f == PROVIDER_F_NETWORK || f == PROVIDER_F_STALLED ||
                    f == PROVIDER_F_BAD_BODY || f == PROVIDER_F_RATE_LIMIT);
    e->http_status = http_status;
    snprintf(e->provider, sizeof(e->provider), "%s", c->a ? c->a->name : "");
    snprintf(e->request_id, sizeof(e->request_id), "%s", c->request_id);
    gf_err_setd(&e->err, fi->status, "provider", http_status, "%s: %s", e->provider, msg);
    c->status = fi->status;
}

void provider__call_fail(provider_call_t *c, provider_fault f, long http_status, const char *fmt,
                         ...)
{
    c->xfer = NULL;
    if (c->canceled)
        f = PROVIDER_F_CANCELED;
    else if ((f == PROVIDER_F_STALLED || f == PROVIDER_F_NETWORK) &&
             provider__call_remaining(c) == 0)
        f = PROVIDER_F_DEADLINE; /* the transfer was cut by the call's deadline */
    /* A job abandoned at its deadline is canceled where the protocol allows it. */
    if (f == PROVIDER_F_DEADLINE && c->a && c->a->ops->cancel && c->accepted)
        c->a->ops->cancel(c);
    const provider_fault_info_t *fi = provider__fault_info(f);
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_error(c, f, http_status, msg);
    if (c->a && f != PROVIDER_F_BREAKER_OPEN)
        breaker_verdict(c, 0);
    /* auto: a provider-side failure moves the call to the next healthy adapter. */
    if (fi->failover && !c->canceled && !c->p->closing && c->a && !c->accepted &&
        f != PROVIDER_F_BREAKER_OPEN && c->chain_pos + 1 < c->p->nchain) {
        gf_log_ctx ctx = {
            .component = "provider", .provider = c->a->name, .generation_id = c->log_id};
        GF_LOG(GF_LOG_INFO, &ctx, "falling back from %s after %s", c->a->name, fi->name);
        wait_remove(c);
        slot_release(c);
        uv_timer_stop(&c->timer);
        c->on_timer = call_start;
        uv_timer_start(&c->timer, on_call_timer, 0, 0);
        return;
    }
    call_finish(c);
}

void provider__call_accepted(provider_call_t *c, const char *request_id, const char *resume)
{
    snprintf(c->request_id, sizeof(c->request_id), "%s", request_id ? request_id : "");
    c->accepted = 1;
    if (c->cbs.accepted)
        c->cbs.accepted(c, c->a->name, c->request_id, resume, c->cbs.data);
}

void provider__call_progress(provider_call_t *c, double progress, const char *stage)
{
    if (c->cbs.progress)
        c->cbs.progress(c, progress, stage, c->cbs.data);
}

static void cancel_now(provider_call_t *c)
{
    provider__call_fail(c, PROVIDER_F_CANCELED, 0, "canceled by the caller");
}

/* Ends a call on a later turn; `tell`: the provider too, where its protocol can. */
static void call_stop(provider_call_t *c, int tell)
{
    if (c == NULL || c->canceled || c->state == CALL_CLOSING)
        return;
    c->canceled = 1;
    if (c->xfer) {
        net_abort(c->xfer);
        c->xfer = NULL;
    }
    /* Tell the provider, where its protocol has a cancel (fal PUT, Replicate POST). */
    if (tell && c->state == CALL_RUNNING && c->a && c->a->ops->cancel)
        c->a->ops->cancel(c);
    if (c->busy)
        return; /* the adapter's work finishes and sees `canceled` */
    if (c->state == CALL_WAIT_SLOT)
        wait_remove(c);
    c->on_timer = cancel_now;
    uv_timer_start(&c->timer, on_call_timer, 0, 0);
}

void provider_cancel(provider_call_t *c)
{
    call_stop(c, 1);
}

void provider_abandon(provider_call_t *c)
{
    call_stop(c, 0);
}
