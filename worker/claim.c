/*
 * worker/claim.c - the capacity controller of the runner: Little's law on
 * measured stage times, its growth bounded as TCP's slow start, and a token
 * bucket pacing the claims (the model is in claim.h).
 */
#include "claim.h"

#include <math.h>

static double ewma(double mean, double sample)
{
    return mean <= 0 ? sample : mean + CLAIM_EWMA * (sample - mean);
}

static double per_job_images(const claim_ctl_t *c)
{
    return c->images >= 1 ? c->images : 1;
}

/* Jobs the bucket holds at most: one pool's width of images. */
static double burst(const claim_ctl_t *c)
{
    double b = ceil((double)c->pool / per_job_images(c));
    return b < 1 ? 1 : b;
}

static int start_limit(const claim_ctl_t *c)
{
    return c->ceiling < c->pool ? c->ceiling : c->pool;
}

/* Jobs ended per second as of `now_ns`: the decayed rate, with the hold as its time constant. */
static double ended_rate(const claim_ctl_t *c, uint64_t now_ns)
{
    if (c->ended_rate <= 0 || c->hold_s <= 0)
        return 0;
    double age = now_ns > c->ended_ns ? (double)(now_ns - c->ended_ns) / 1e9 : 0;
    return c->ended_rate * exp(-age / c->hold_s);
}

/* The least the window goes down to: half of Little's, at least the start (within the model). */
static double window_floor(const claim_ctl_t *c)
{
    double half = ceil((double)c->model / 2);
    double start = start_limit(c) < c->model ? start_limit(c) : c->model;
    return half > start ? half : start;
}

/*
 * The limit: Little's, at most CLAIM_GROWTH times the jobs that ended within one hold,
 * and at most the congestion window once it is set.
 */
static void bound(claim_ctl_t *c, uint64_t now_ns)
{
    if (!c->by_capacity || c->rate <= 0) {
        c->limit = c->model;
        return;
    }
    double grown = ceil(CLAIM_GROWTH * ended_rate(c, now_ns) * c->hold_s - 1e-9);
    int most = grown > (double)c->model ? c->model : (int)grown;
    if (c->window > 0 && c->window < (double)most)
        most = (int)c->window;
    int least = start_limit(c) < c->model ? start_limit(c) : c->model;
    c->limit = most > least ? most : least;
}

/* Little's limit and the rate from the measures. */
static void recompute(claim_ctl_t *c, uint64_t now_ns)
{
    if (!c->by_capacity) {
        c->model = c->limit = c->ceiling;
        c->rate = 0;
        return;
    }
    if (c->post_s <= 0 || c->hold_s <= 0) {
        c->model = c->limit = start_limit(c);
        c->rate = 0;
        return;
    }
    double images = per_job_images(c);
    double was = c->rate;
    c->rate = (double)c->pool / (c->post_s * images);
    double l = ceil(c->rate * c->hold_s - 1e-9); /* 16.000000000000004 is 16 */
    double cap = ceil((double)(c->provider_max + c->pool) / images);
    if (l > cap)
        l = cap;
    if (l < 1)
        l = 1;
    if (l > (double)c->ceiling)
        l = (double)c->ceiling;
    c->model = (int)l;
    if (was <= 0) { /* pacing starts with a full bucket */
        c->tokens = burst(c);
        c->refill_ns = 0;
    }
    bound(c, now_ns);
}

void claim_ctl_init(claim_ctl_t *c, int ceiling, int by_capacity, int pool, int provider_max)
{
    *c = (claim_ctl_t){.ceiling = ceiling < 0 ? 0 : ceiling,
                       .by_capacity = by_capacity,
                       .pool = pool < 1 ? 1 : pool,
                       .provider_max = provider_max < 1 ? 1 : provider_max};
    recompute(c, 0);
}

void claim_ctl_post(claim_ctl_t *c, double post_s, uint64_t now_ns)
{
    if (post_s <= 0)
        return;
    /* Up as fast as the other means, down slowly (claim.h). */
    c->post_s = c->post_s <= 0       ? post_s
                : post_s > c->post_s ? c->post_s + CLAIM_EWMA * (post_s - c->post_s)
                                     : c->post_s + CLAIM_EWMA_DOWN * (post_s - c->post_s);
    recompute(c, now_ns);
}

void claim_ctl_job(claim_ctl_t *c, double hold_s, int images, uint64_t now_ns)
{
    if (hold_s <= 0 || images < 1)
        return;
    c->hold_s = ewma(c->hold_s, hold_s);
    c->images = ewma(c->images, (double)images);
    /* Each end adds 1 / hold to a rate that decays with the hold as its time constant. */
    c->ended_rate = ended_rate(c, now_ns) + 1 / c->hold_s;
    c->ended_ns = now_ns;
    recompute(c, now_ns);
}

/* The least claim-to-end of this base period and the last (0: none yet). */
static double base_of(const claim_ctl_t *c)
{
    if (c->base_prev_s > 0 && (c->base_s <= 0 || c->base_prev_s < c->base_s))
        return c->base_prev_s;
    return c->base_s;
}

void claim_ctl_delay(claim_ctl_t *c, double total_s, uint64_t now_ns)
{
    if (total_s <= 0 || !c->by_capacity)
        return;
    if (c->base_ns == 0 || now_ns - c->base_ns >= (uint64_t)CLAIM_BASE_S * 1000000000ULL) {
        c->base_prev_s = c->base_s;
        c->base_s = 0;
        c->base_ns = now_ns;
    }
    if (c->base_s <= 0 || total_s < c->base_s)
        c->base_s = total_s;
    double base = base_of(c);
    /* A job claimed before the window's last cut says what the window before it did. */
    uint64_t took = (uint64_t)(total_s * 1e9);
    if (c->cut_ns != 0 && (took > now_ns || now_ns - took < c->cut_ns))
        return;
    /* A mean of 0 is a mean here: the first sample starts it, not every zero. */
    c->excess_s = c->delays++ == 0 ? total_s - base
                                   : c->excess_s + CLAIM_EWMA * (total_s - base - c->excess_s);
    /* One decision per hold: what a decision changes shows only in the jobs claimed after it. */
    if (c->hold_s <= 0 || c->model < 1 ||
        (c->round_ns != 0 && now_ns - c->round_ns < (uint64_t)(c->hold_s * 1e9)))
        return;
    c->round_ns = now_ns;
    if (c->excess_s > CLAIM_TARGET_S) {
        /* Down in proportion to the delay over its target (as Vegas), at most by half. */
        double from = c->window > 0 ? c->window : (double)c->limit;
        double f = (base + CLAIM_TARGET_S) / (base + c->excess_s);
        c->window = floor(from * (f < 0.5 ? 0.5 : f));
        if (c->window < window_floor(c))
            c->window = window_floor(c);
        c->cut_ns = now_ns;
        c->delays = 0; /* the mean starts again on the jobs claimed from now on */
    } else if (c->window > 0) {
        c->window += 1; /* up by one a hold */
        if (c->window > (double)c->model)
            c->window = (double)c->model;
    }
    bound(c, now_ns);
}

int claim_ctl_limit(const claim_ctl_t *c)
{
    return c->limit;
}

/*
 * Claims per second: what keeps the limit held over a hold (Little's again, L / W), at
 * most what post-processing finishes. Claims at the pace jobs end, not in bursts, so
 * their provider answers do not come back together.
 */
static double pace(const claim_ctl_t *c)
{
    double sustain = c->hold_s > 0 ? (double)c->limit / c->hold_s : c->rate;
    return sustain > 0 && sustain < c->rate ? sustain : c->rate;
}

int claim_ctl_room(claim_ctl_t *c, size_t held, uint64_t now_ns, uint64_t *retry_ms)
{
    bound(c, now_ns);
    if (held >= (size_t)c->limit)
        return 0;
    int n = c->limit - (int)held;
    if (c->rate <= 0)
        return n;
    double rate = pace(c);
    if (c->refill_ns != 0 && now_ns > c->refill_ns) {
        c->tokens += rate * (double)(now_ns - c->refill_ns) / 1e9;
        if (c->tokens > burst(c))
            c->tokens = burst(c);
    }
    c->refill_ns = now_ns;
    if (c->tokens < 1) {
        if (retry_ms) {
            double ms = ceil((1 - c->tokens) / rate * 1000);
            *retry_ms = ms < 1 ? 1 : (uint64_t)ms;
        }
        return 0;
    }
    int t = (int)c->tokens;
    return n < t ? n : t;
}

void claim_ctl_took(claim_ctl_t *c, int n)
{
    if (c->rate > 0 && n > 0)
        c->tokens -= n;
}
