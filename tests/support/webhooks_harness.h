/*
 * tests/support/webhooks_harness.h - the farm the webhook tests run against
 * (webhooks_harness.c): the fake provider, a farm-api and a farm-worker that
 * may reach loopback, the test receiver (tests/webhooks/receiver.js, which
 * checks every signature with the standardwebhooks package), and what the
 * tests ask of them: generations with a webhook_url, what the receiver got,
 * the delivery rows in Postgres. Its setup and teardown are a cmocka group's.
 */
#ifndef WEBHOOKS_HARNESS_H
#define WEBHOOKS_HARNESS_H

#include <jansson.h>
#include <sys/types.h>

#define SECRET     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define AVATAR     "{\"kind\":\"avatar\",\"prompt\":\"a fox\",\"width\":256,\"height\":256,"
#define LATENCY_MS 100

#define ALLOW_PRIVATE "FARM_WEBHOOK_ALLOW_PRIVATE=1"

/* The settings every farm process here shares (NULL-terminated). */
#define FARM_ENV                                                                                   \
    wh_storage_env, "FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=hf,fal,bfl",                     \
        "FARM_WEBHOOK_SECRET=" SECRET, "FARM_FILE_SECRET=test-file-secret",                        \
        "FARM_RATE_LIMIT_BURST=100000", "FARM_RATE_LIMIT_PER_MIN=1000000",                         \
        "FARM_QUEUE_TIERS=pro:4:100000,free:1:3", "FARM_QUEUE_LEASE_S=2"

extern char wh_fake_env[128], wh_storage_env[600], wh_hook_base[64];
extern pid_t wh_api_pid, wh_fake_pid, wh_receiver_pid, wh_worker_pid, wh_lenient_api_pid;
extern char *wh_tok;

/* A worker with the settings every one here has (2 s timeouts, 10 s leases), then `more`
 * (NULL-terminated; a setting there overrides the same one before it). */
pid_t wh_start_worker_env(const char *name, const char *const more[]);

/* A worker with `allow_private` (NULL: none): strict, or lenient as
 * FARM_WEBHOOK_ALLOW_PRIVATE=1. */
pid_t wh_start_worker(const char *name, const char *allow_private);

/* The group's setup: the fake, the receiver, a lenient farm-api and farm-worker, and a pro
 * user with credits (wh_tok); the teardown stops them. */
int wh_setup(void **state);
int wh_teardown(void **state);

/* The last lines of every log of the run, to stderr. */
void wh_dump_logs(void);

/* POSTs an avatar generation whose webhook goes to the receiver's /hook/<script>?t=<tag>. */
void wh_create(const char *script, const char *tag, const char *more, char id[37]);

json_t *wh_get_generation(const char *id);

/* Polls GET until its webhook's status is `want` with at least `attempts`; the generation. */
json_t *wh_wait_webhook(const char *id, const char *want, int attempts, double timeout_s);

/* What the receiver got for `tag` (every request whose path ends in ?t=<tag>), oldest first. */
json_t *wh_received(const char *tag);

/* wh_received once it holds at least `n` requests (fails the test after `timeout_s`). */
json_t *wh_wait_received(const char *tag, size_t n, double timeout_s);

/* Runs SQL against the fixture's Postgres; 0 on success. */
int wh_sql(const char *statement);

const char *wh_str(json_t *o, const char *k);

/* Fails unless the delivery row of generation `id` satisfies `cond` (an SQL condition). */
void wh_assert_delivery(const char *id, const char *cond);

/* Sets `set` (an SQL SET list) on the delivery row of generation `id`. */
void wh_update_delivery(const char *id, const char *set);

/* Asserts the webhook GET shows in `g`: `attempts` made, the last answered `status`. */
void wh_assert_webhook(json_t *g, long attempts, long status);

/* The receiver's verdicts on a request: its signature verified, a tampered copy did not. */
void wh_assert_signed(json_t *req);

#endif
