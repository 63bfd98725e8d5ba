/*
 * worker/claim.c - the capacity controller of the runner: Little's law on
 * measured stage times, an additive-increase/multiplicative-decrease scale,
 * and a token bucket pacing the claims (the model is in claim.h).
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

/* The limit and the rate from the measures. */
static void recompute(claim_ctl_t *c)
{
    if (!c->by_capacity) {
        c->limit = c->ceiling;
        c->rate = 0;
        return;
    }
    if (c->post_s <= 0 || c->hold_s <= 0) {
        c->limit = c->ceiling < c->pool ? c->ceiling : c->pool;
        c->rate = 0;
        return;
    }
    double images = per_job_images(c);
    double was = c->rate;
    c->rate = c->scale * (double)c->pool / (c->post_s * images);
    double l = ceil(c->rate * c->hold_s - 1e-9); /* 16.000000000000004 is 16 */
    double cap = ceil((double)(c->provider_max + c->pool) / images);
    if (l > cap)
        l = cap;
    if (l < 1)
        l = 1;
    if (l > (double)c->ceiling)
        l = (double)c->ceiling;
    c->limit = (int)l;
    if (was <= 0) { /* pacing starts with a full bucket */
        c->tokens = burst(c);
        c->refill_ns = 0;
    }
}

void claim_ctl_init(claim_ctl_t *c, int ceiling, int by_capacity, int pool, int provider_max)
{
    *c = (claim_ctl_t){.ceiling = ceiling < 0 ? 0 : ceiling,
                       .by_capacity = by_capacity,
                       .pool = pool < 1 ? 1 : pool,
                       .provider_max = provider_max < 1 ? 1 : provider_max,
                       .scale = 1};
    recompute(c);
}

void claim_ctl_post(claim_ctl_t *c, double post_s, double wait_s, uint64_t now_ns)
{
    if (post_s <= 0)
        return;
    c->post_s = ewma(c->post_s, post_s);
    if (c->hold_s > 0 && c->limit > 0) {
        if (wait_s > c->post_s) {
            /* Waited longer for a thread than one image takes on it: cut, once per hold. */
            if (c->cut_ns == 0 || (double)(now_ns - c->cut_ns) >= c->hold_s * 1e9) {
                c->scale *= 0.8;
                if (c->scale < CLAIM_SCALE_MIN)
                    c->scale = CLAIM_SCALE_MIN;
                c->cut_ns = now_ns;
            }
        } else {
            /* The limit grows by about one job per `limit` images. */
            c->scale *= 1 + 1.0 / ((double)c->limit * (double)c->limit);
            if (c->scale > 1)
                c->scale = 1;
        }
    }
    recompute(c);
}

void claim_ctl_job(claim_ctl_t *c, double hold_s, int images)
{
    if (hold_s <= 0 || images < 1)
        return;
    c->hold_s = ewma(c->hold_s, hold_s);
    c->images = ewma(c->images, (double)images);
    recompute(c);
}

int claim_ctl_limit(const claim_ctl_t *c)
{
    return c->limit;
}

int claim_ctl_room(claim_ctl_t *c, size_t held, uint64_t now_ns, uint64_t *retry_ms)
{
    if (held >= (size_t)c->limit)
        return 0;
    int n = c->limit - (int)held;
    if (c->rate <= 0)
        return n;
    if (c->refill_ns != 0 && now_ns > c->refill_ns) {
        c->tokens += c->rate * (double)(now_ns - c->refill_ns) / 1e9;
        if (c->tokens > burst(c))
            c->tokens = burst(c);
    }
    c->refill_ns = now_ns;
    if (c->tokens < 1) {
        if (retry_ms) {
            double ms = ceil((1 - c->tokens) / c->rate * 1000);
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
