/*
 * api/include/api.h - the HTTP API of farm-api (the routes of API.md, with
 * its Redis and Postgres clients) and the token helpers the CLI shares with
 * it. api/main.c runs it in the process shell of core/include/proc.h.
 */
#ifndef API_H
#define API_H

#include <uv.h>

#include "core.h"

typedef struct api api_t;
typedef void (*api_stopped_cb)(api_t *api, void *data);

/*
 * Returns a new api with its routes, listening on nothing yet, or NULL with
 * `err`; `cfg` is borrowed and must outlive it.
 */
api_t *api_new(uv_loop_t *loop, const gf_config_t *cfg, gf_err_t *err);

/*
 * The settings farm-api refuses at start that need no server to check: the
 * secrets, FARM_DATABASE_URL's parameters, the storage backend's variables,
 * the presets of FARM_PRESETS_DIR. 0, or GF_EINVAL with `err`. (The webhook
 * settings are webhooks/'s: webhook_config_check.)
 */
int api_config_check(const gf_config_t *cfg, gf_err_t *err);

/*
 * Starts libvips, loads the presets, creates the Redis and Postgres clients
 * (they connect in the background), listens and starts the /metrics gauges.
 * 0, or a negative status with `err` (GF_EINVAL: a bad setting); an api
 * whose start failed is stopped and freed like one that started.
 */
int api_start(api_t *api, gf_err_t *err);

/* The port listened on. */
int api_port(const api_t *api);

/*
 * Graceful stop: stop accepting, finish in-flight requests, end streams,
 * close the Redis and Postgres clients; `cb` runs when every handle is closed.
 */
void api_stop(api_t *api, api_stopped_cb cb, void *data);

/* Frees a stopped api; NULL is a no-op. */
void api_free(api_t *api);

/* The claims of a bearer token (API.md, Authentication). */
#define API_TOKEN_TTL_MAX_S (366L * 86400)
/* Clock skew allowed between the token's issuer and farm-api for nbf and iat. */
#define API_TOKEN_SKEW_S 60L

typedef struct {
    const char *sub;  /* user UUID, required */
    const char *role; /* "user" or "admin"; NULL: user */
    const char *plan; /* NULL: free */
    long ttl_s;       /* exp = now + ttl_s; 1 .. API_TOKEN_TTL_MAX_S */
} api_claims_t;

/*
 * Issues an HS256 JWT signed with `secret`. Returns a new string (free with
 * free()) or NULL with `err` (a secret shorter than GF_SECRET_MIN, which
 * farm-api refuses to start with; a sub that is not a lowercase UUID, a
 * ttl_s out of range, a role other than user or admin, a plan farm-api
 * refuses: see api_plan_ok).
 */
char *api_token_issue(const char *secret, const api_claims_t *claims, gf_err_t *err);

/* Whether `s` is a lowercase UUID string (API.md: IDs are lowercase UUIDs). */
int api_is_uuid(const char *s);

/* Whether `plan` is a plan claim farm-api accepts: 1 to API_PLAN_MAX of [a-z0-9_-]. */
#define API_PLAN_MAX 32
int api_plan_ok(const char *plan);

#endif
