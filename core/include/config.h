/*
 * core/include/config.h - typed configuration from FARM_* environment variables.
 *
 * Every setting is one row of the table in config.c (name, type, default,
 * bounds, secret flag, help), as Redis does in config.c. The loader validates
 * everything at start and fails naming the variable, the bad value (unless it
 * is secret) and what is accepted. The result is immutable and passed around
 * explicitly; nothing reads the environment after the load.
 */
#ifndef GF_CONFIG_H
#define GF_CONFIG_H

#include <stdio.h>

#include "err.h"

#define GF_TIERS_MAX       8
#define GF_TIER_NAME_MAX   32
#define GF_QUEUE_NAME_MAX  64
#define GF_RATE_LIMITS_MAX 32

#define GF_UPLOAD_QUOTAS_MAX 32 /* FARM_UPLOAD_QUOTAS entries */

/* The shortest secret farm-api and farm-worker accept: a guessable one signs tokens and file
 * URLs for anyone. */
#define GF_SECRET_MIN 16

typedef struct gf_config {
    /* api */
    char *api_host;
    long long api_port;
    long long api_processes;
    long long readyz_timeout_ms;
    long long sse_heartbeat_s;
    long long rate_limit_per_min;
    char *cors_origins;
    long long rate_limit_burst;
    char *rate_limits; /* FARM_RATE_LIMITS, parsed into rl[] */
    long long upload_max_inflight_bytes;
    long long upload_max_inflight;
    long long sse_max_per_user;
    long long file_url_ttl_s;
    /* dependencies */
    char *redis_url;
    long long redis_connect_timeout_ms;
    /* queue (queue/, docs/queue.md) */
    char *queue_name;
    char *queue_tiers;
    long long queue_lease_s;
    long long queue_max_reclaims;
    long long queue_retry_base_ms;
    long long queue_dead_retention_s;
    long long queue_dead_max;
    long long queue_op_timeout_ms;
    long long events_retention_s;
    long long events_max_per_gen;
    long long events_user_maxlen;
    long long events_user_max_age_s;
    char *database_url;
    char *migrations_dir;
    long long db_pool_size;
    long long sweep_interval_s;
    long long sweep_stale_s;
    long long sweep_batch;
    /* providers (providers/, docs/providers.md) */
    long long provider;      /* index in "auto|hf|fal|bfl|local|fake|replicate" */
    char *provider_fallback; /* "hf,fal,bfl,replicate,local" */
    char *hf_base_url, *hf_model, *hf_pose_model, *hf_token;
    char *fal_base_url, *fal_model, *fal_pose_model, *fal_key;
    char *bfl_base_url, *bfl_model, *bfl_pose_model, *bfl_key;
    char *replicate_base_url, *replicate_model, *replicate_pose_model, *replicate_token;
    long long replicate_wait_s;
    char *fake_provider_url;
    long long provider_concurrency;
    long long provider_deadline_s;
    long long provider_connect_timeout_ms;
    long long provider_http2; /* index in "auto|prior-knowledge|off" */
    char *provider_ca_file;   /* "": the system's CAs */
    long long provider_submit_timeout_s;
    long long provider_sync_timeout_s;
    long long provider_download_timeout_s;
    long long provider_low_speed_time_s;
    long long provider_loading_wait_cap_ms;
    long long provider_backoff_base_ms;
    long long provider_backoff_cap_ms;
    long long provider_poll_min_ms;
    long long provider_poll_max_ms;
    long long provider_max_retries;
    long long provider_breaker_failures;
    long long provider_breaker_cooldown_s;
    long long provider_breaker_credits_cooldown_s;
    long long provider_max_image_bytes;
    long long db_statement_timeout_ms;
    long long db_call_timeout_ms;
    /* credits */
    long long welcome_credits;
    long long cost_avatar;
    long long cost_pose;
    /* imaging (imaging/, docs/imaging.md) */
    char *storage_dir;
    char *presets_dir;
    long long upload_max_bytes;
    long long upload_max_pixels;
    long long vips_concurrency;
    long long vips_cache_mb;
    /* core/http */
    long long http_max_header_bytes;
    long long http_max_body_bytes;
    long long http_max_connections;
    long long http_idle_timeout_s;
    long long http_header_timeout_s;
    long long http_body_timeout_s;
    long long http_linger_ms;
    long long http_stream_max_queued_bytes;
    long long http_linger_max_bytes;
    long long http_max_queued_bytes;
    long long http_max_queued_total_bytes;
    long long shutdown_s;
    /* worker */
    char *worker_metrics_host;
    long long worker_concurrency;
    long long worker_images_parallel;
    long long worker_image_attempts;
    long long worker_drain_s;
    long long worker_claim_poll_ms;
    long long worker_metrics_port;
    /* auth */
    char *jwt_secret;  /* at least GF_SECRET_MIN characters (farm-api) */
    char *file_secret; /* at least GF_SECRET_MIN characters (farm-api, farm-worker) */
    /* Accepted too while a secret is rotated (farm-api): "" none, else GF_SECRET_MIN
     * characters at least and not the current one. */
    char *jwt_secret_previous, *file_secret_previous;
    char *webhook_secret;
    /* logging */
    long long log_level; /* a gf_log_level */
    /* frontend kit */
    long long demo; /* FARM_DEMO: serve web/ at / */
    /* storage (storage/, docs/storage.md) */
    long long storage; /* 0 local, 1 s3 */
    char *s3_endpoint, *s3_region, *s3_bucket, *s3_prefix, *s3_access_key_id, *s3_secret_access_key;
    long long s3_path_style;
    long long s3_serve; /* 0 redirect, 1 proxy */
    long long storage_timeout_ms;
    long long storage_attempts;
    long long storage_backoff_ms;
    long long storage_max_object_bytes;
    /* webhooks (webhooks/, docs/webhooks.md) */
    long long webhook_allow_private;
    long long webhook_concurrency;
    long long webhook_per_host;
    long long webhook_timeout_s;
    long long webhook_lease_s;
    long long webhook_poll_ms;
    long long webhook_max_response_bytes;
    /* lifecycle (docs/storage.md, "Lifecycle") */
    long long output_retention_days;
    long long upload_retention_days;
    /* edge: upload quotas (api/gate.c, api/files.c, docs/api.md) */
    char *upload_quotas; /* FARM_UPLOAD_QUOTAS, parsed into uq[] */
    /* operations: farm-api's access log */
    long long access_log; /* 0 off, 1 on */
    long long access_log_sample_pct;
    long long reconcile_interval_s; /* the sweeper's reconcile check; 0 off */
    /* faults (issue #17: hand-backs that are not attempts) */
    long long queue_handback_cap_ms;
    long long queue_handback_max;
    /* faults (issue #17: the sweeper's cleanup of leftover files) */
    long long sweep_leftover_grace_s;
    /* claim (issue #22): 0 by measured capacity, 1 up to FARM_WORKER_CONCURRENCY */
    long long worker_claim;
    /* accept (issue #22): group commit of POST /v1/generations */
    long long api_accept_batch_max;
    /* sse (issue #22) */
    long long sse_write_threads;
    /* Derived by the loader from the rows above (already validated). */
    struct gf_tier {
        char name[GF_TIER_NAME_MAX + 1];
        long long weight, cap;
    } tiers[GF_TIERS_MAX]; /* FARM_QUEUE_TIERS, in order */
    int n_tiers;
    int redis_db; /* FARM_REDIS_URL's /N */
    struct gf_rate_limit {
        char plan[GF_TIER_NAME_MAX + 1]; /* "" for every plan */
        int action;                      /* a gf_rl_action */
        long long per_min, burst;
    } rl[GF_RATE_LIMITS_MAX]; /* FARM_RATE_LIMITS, in order */
    int n_rl;
    struct gf_upload_quota {
        char plan[GF_TIER_NAME_MAX + 1]; /* "" for every plan */
        int bytes;                       /* 0: the count of uploads; 1: their bytes */
        long long max;                   /* 0: no quota */
    } uq[GF_UPLOAD_QUOTAS_MAX];          /* FARM_UPLOAD_QUOTAS, in order */
    int n_uq;
} gf_config_t;

/* What a rate limit counts (FARM_RATE_LIMITS); names in gf_rl_action_names. */
typedef enum {
    GF_RL_GENERATIONS,
    GF_RL_UPLOADS,
    GF_RL_READS,
    GF_RL_ANONYMOUS,
    GF_RL_N
} gf_rl_action;
extern const char *const gf_rl_action_names[GF_RL_N];

/*
 * The bucket of `plan` for `action`: the first FARM_RATE_LIMITS entry naming
 * the plan, else the one for every plan; generations fall back to
 * FARM_RATE_LIMIT_PER_MIN / FARM_RATE_LIMIT_BURST. Returns 0 when the action
 * is not limited.
 */
int gf_cfg_rate_limit(const gf_config_t *cfg, const char *plan, gf_rl_action action,
                      long long *per_min, long long *burst);

/*
 * The upload quota of `plan` (FARM_UPLOAD_QUOTAS): the most uploads a user
 * keeps and their most bytes, each from the entry naming the plan, else the
 * one for every plan; 0 when that axis has no quota.
 */
void gf_cfg_upload_quota(const gf_config_t *cfg, const char *plan, long long *count,
                         long long *bytes);

/*
 * Loads the configuration from `envp` (NULL-terminated "NAME=value" strings,
 * usually `environ`). Returns a new config (free with gf_cfg_free()) or NULL
 * with `err` holding one line: "FARM_X=value: reason; accepted: ...".
 * Secret values are registered with the log's redactor.
 */
gf_config_t *gf_cfg_load(char *const *envp, gf_err_t *err);

/* Frees a config; NULL is a no-op. */
void gf_cfg_free(gf_config_t *cfg);

/*
 * Prints the effective configuration, one "NAME=value" line each, secrets
 * shown as "[set]" or "[unset]" and URL passwords masked.
 */
void gf_cfg_print(const gf_config_t *cfg, FILE *out);

/* Prints the table as Markdown (name, default, accepted, help) for the README. */
void gf_cfg_print_markdown(FILE *out);

/* The default of variable `name` as the table writes it ("" for none), or NULL for a name
 * the table does not have. */
const char *gf_cfg_default(const char *name);

/* Logs the effective configuration once, secrets redacted. */
void gf_cfg_log(const gf_config_t *cfg, const char *component);

/* FARM_PROVIDER's value: "auto", "hf", "fal", "bfl", "local" or "fake". */
const char *gf_cfg_provider_mode(const gf_config_t *cfg);

#endif
