/*
 * worker/claim.h - how many generations a worker claims: the capacity
 * controller of the runner (claim.c; pure: no clock, no libuv, times are
 * given). Private to worker/.
 *
 * A worker claims only what it can finish without its jobs waiting inside
 * it: enough provider calls in flight to keep post-processing busy, and no
 * more. A burst then waits in the Redis queue, where tiers, per-user
 * fairness, cancel-before-start and the autoscaler's depth see it.
 *
 * Little's law, L = rate x hold, on measured stage times:
 *
 *   rate  = scale x pool / (post x images)   jobs post-processing can finish per second
 *   hold  = a job's time from its claim to its end, less the time its images
 *           waited for a thread of the pool (what it holds a claim for when it
 *           never waits inside the worker: start, provider, post-processing,
 *           storing, finish)
 *   limit = ceil(rate x hold), at most ceil((provider_max + pool) / images)
 *           (more would wait in the provider's own queue), within
 *           [1, ceiling]
 *
 * `post` is one image's post-processing on its thread (wall time: when the
 * pool's threads share the cores, each image takes longer, so pool / post is
 * what the pool finishes, not what it could finish alone), `images` the
 * images post-processed per job, `pool` the thread pool's width. Each is an
 * exponentially weighted mean of its samples.
 *
 * `scale` (in [CLAIM_SCALE_MIN, 1]) corrects the model from what happens:
 * an image that waited longer for a thread than one image takes on it says
 * the pool is busier than the model thinks (it also runs storage writes and
 * reference drawing): the scale is cut by a fifth, at most once per `hold`
 * (the cut's effect shows only a hold later); every image that did not
 * wait that long adds 1 / limit, about one job per round of the limit
 * (additive increase, multiplicative decrease, as TCP's congestion window).
 *
 * Claims are also paced: a token bucket of `rate` jobs per second, holding
 * at most one pool's width of jobs, so a limit that grows does not send a
 * burst of provider calls whose images would all come back at once.
 *
 * Before its first samples (a worker that has not finished a job yet) the
 * limit is min(ceiling, pool), so no image of the first claims waits for a
 * thread, and claims are not paced. With
 * FARM_WORKER_CLAIM=ceiling the limit is the ceiling, always.
 */
#ifndef WORKER_CLAIM_H
#define WORKER_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#define CLAIM_SCALE_MIN 0.25
#define CLAIM_EWMA      0.2 /* weight of a new sample in each mean */

typedef struct {
    /* settings */
    int ceiling;      /* FARM_WORKER_CONCURRENCY */
    int by_capacity;  /* 0: always the ceiling (FARM_WORKER_CLAIM=ceiling) */
    int pool;         /* images post-processed at once: the thread pool's width */
    int provider_max; /* provider calls at once (FARM_PROVIDER_CONCURRENCY) */
    /* measured (0 until the first sample) */
    double post_s; /* one image's post-processing on its thread */
    double hold_s; /* a job's claim to end, less its waits for a thread */
    double images; /* images post-processed per job */
    double scale;
    uint64_t cut_ns; /* when the scale was last cut (0: never) */
    /* the pacing bucket */
    double tokens;
    uint64_t refill_ns;
    /* derived from the above by every sample */
    int limit;
    double rate; /* jobs per second; 0: not paced */
} claim_ctl_t;

/* Sets the controller up; `pool`, `provider_max` at least 1 (smaller values count as 1). */
void claim_ctl_init(claim_ctl_t *c, int ceiling, int by_capacity, int pool, int provider_max);

/*
 * One image post-processed: `post_s` on its thread, after `wait_s` waiting
 * for one; `now_ns` a monotonic clock.
 */
void claim_ctl_post(claim_ctl_t *c, double post_s, double wait_s, uint64_t now_ns);

/*
 * One job ended after `hold_s` (claim to end, its waits for a thread taken
 * out) having post-processed `images` images. Jobs that post-processed none
 * (canceled, failed at the provider, taken over finished) are not samples.
 */
void claim_ctl_job(claim_ctl_t *c, double hold_s, int images);

/* Generations the worker may hold now. */
int claim_ctl_limit(const claim_ctl_t *c);

/*
 * How many jobs to claim now with `held` held: 0 when at the limit or out
 * of tokens; then `*retry_ms` (when not NULL) is when a token is due, or
 * left as it is when the limit is what stops (a job's end is the next
 * chance).
 */
int claim_ctl_room(claim_ctl_t *c, size_t held, uint64_t now_ns, uint64_t *retry_ms);

/* `n` jobs were claimed: they spend their tokens. */
void claim_ctl_took(claim_ctl_t *c, int n);

#endif
