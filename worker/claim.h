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
 *   rate  = pool / (post x images)   jobs post-processing finishes per second
 *   hold  = a job's time from its claim to its end, less the time its images
 *           waited to be post-processed (what it holds a claim for when it
 *           never waits inside the worker: start, provider, post-processing,
 *           storing, finish)
 *   model = ceil(rate x hold), at most ceil((provider_max + pool) / images)
 *           (more would wait in the provider's own queue), within
 *           [1, ceiling]
 *
 * `post` is one image's post-processing on its thread (wall time: when the
 * images share the cores, each takes longer, so pool / post is what
 * post-processing finishes, not what it could finish alone), `images` the
 * images post-processed per job, `pool` the images post-processed at once
 * (the runner gives the thread pool's width, at most the cores the process
 * may use: more images at once than cores only makes each slower; and it
 * post-processes no more than that at once, job_image.c). `hold` and
 * `images` are exponentially weighted means of their samples (weight
 * CLAIM_EWMA); `post` goes up with each longer sample as fast, but down
 * with each shorter one slowly (CLAIM_EWMA_DOWN): images measured while the
 * cores were idle (a worker's first ones) are not what they take once what
 * it claimed on them comes back.
 *
 * Growth is bounded as TCP's slow start: the limit is the model, at most
 * CLAIM_GROWTH times the jobs that ended within the last hold (a rate of
 * ended jobs that decays with the hold as its time constant, times the
 * hold), and never below min(ceiling, pool); after an idle spell it starts
 * small again. The provider's latency is the loop's delay: what a claim
 * does to post-processing shows only a hold later.
 *
 * Little's model sees only post-processing; the cores are shared by
 * everything else (the loop reading the provider's answers, storage,
 * Postgres, Redis, other workers on the box), so the model alone claims more
 * than the box finishes, and the surplus waits inside the worker wherever
 * the CPU is short, the provider stage included. A congestion window bounds
 * the limit on what that does to the jobs (AIMD on the delay, as TCP Vegas):
 *
 *   base   = the shortest claim-to-end of the current and the last
 *            CLAIM_BASE_S period (a provider slower for good becomes the base
 *            within two periods)
 *   excess = mean (weight CLAIM_EWMA) of claim-to-end less the base, over the
 *            jobs claimed since the window's last cut
 *   once a hold: excess > CLAIM_TARGET_S cuts the window to
 *            window x (base + target) / (base + excess), by half at most and
 *            never below max(half of Little's, the start); otherwise a window
 *            that was cut grows by one, up to Little's.
 *
 * The window is unset (no bound) until the first cut: the slow start above
 * ramps up, and the first delay over the target ends it. The jobs claimed
 * before a cut still end late a hold after it; they are not samples, so one
 * congestion cuts once.
 *
 * Claims are also paced: a token bucket at what keeps the limit held (limit
 * / hold), at most `rate`, holding at most one pool's width of jobs, so
 * claims follow the jobs' ends instead of going out in bursts whose provider
 * answers and images would all come back at once.
 *
 * Before its first samples (a worker that has not finished a job yet) the
 * limit is min(ceiling, pool), so no image of the first claims waits to be
 * post-processed, and claims are not paced. With FARM_WORKER_CLAIM=ceiling
 * the limit is the ceiling, always.
 */
#ifndef WORKER_CLAIM_H
#define WORKER_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#define CLAIM_EWMA      0.2  /* weight of a new sample in each mean */
#define CLAIM_EWMA_DOWN 0.02 /* ... of a shorter post-processing time than the mean */
#define CLAIM_GROWTH    4    /* the limit: at most this many times the jobs ended in one hold */
#define CLAIM_TARGET_S  0.2  /* the window: the excess over the base a job may take, seconds */
#define CLAIM_BASE_S    30   /* the base: the least claim-to-end of this and the last 30 s */

typedef struct {
    /* settings */
    int ceiling;      /* FARM_WORKER_CONCURRENCY */
    int by_capacity;  /* 0: always the ceiling (FARM_WORKER_CLAIM=ceiling) */
    int pool;         /* images post-processed at once */
    int provider_max; /* provider calls at once (FARM_PROVIDER_CONCURRENCY) */
    /* measured (0 until the first sample) */
    double post_s;     /* one image's post-processing on its thread */
    double hold_s;     /* a job's claim to end, less its waits to be post-processed */
    double images;     /* images post-processed per job */
    double ended_rate; /* jobs ended per second, decayed from ended_ns */
    uint64_t ended_ns;
    /* the congestion window (AIMD on the claim-to-end delay) */
    double base_s, base_prev_s; /* least claim-to-end of this base period, of the last */
    uint64_t base_ns;           /* when this base period began */
    double excess_s;            /* mean claim-to-end less the base */
    uint64_t delays;            /* samples of claim_ctl_delay */
    double window;              /* 0: not set yet (no congestion seen) */
    uint64_t round_ns;          /* the window's last decision */
    uint64_t cut_ns;            /* its last cut: jobs claimed before it are not samples */
    /* the pacing bucket */
    double tokens;
    uint64_t refill_ns;
    /* derived from the above by every sample (and the time, for `limit`) */
    int model;   /* Little's */
    int limit;   /* Little's, within the growth bound */
    double rate; /* jobs per second; 0: not paced */
} claim_ctl_t;

/* Sets the controller up; `pool`, `provider_max` at least 1 (smaller values count as 1). */
void claim_ctl_init(claim_ctl_t *c, int ceiling, int by_capacity, int pool, int provider_max);

/* One image post-processed: `post_s` on its thread; `now_ns` a monotonic clock. */
void claim_ctl_post(claim_ctl_t *c, double post_s, uint64_t now_ns);

/*
 * One job ended at `now_ns` after `hold_s` (claim to end, its waits to be
 * post-processed taken out) having post-processed `images` images. Jobs
 * that post-processed none (canceled, failed at the provider, taken over
 * finished) are not samples.
 */
void claim_ctl_job(claim_ctl_t *c, double hold_s, int images, uint64_t now_ns);

/*
 * One job ended at `now_ns`, `total_s` after its claim (everything: its
 * waits inside the worker and its provider calls included). Feeds the
 * congestion window; any job that post-processed an image is a sample.
 */
void claim_ctl_delay(claim_ctl_t *c, double total_s, uint64_t now_ns);

/* Generations the worker may hold now (as of the last sample or room). */
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
