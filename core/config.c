/*
 * core/config.c - the configuration table and its loader. The settings with a
 * structure of their own (tiers, rate limits, quotas...) are parsed further in
 * config_parse.c.
 *
 * Invariant: every FARM_* setting the code reads is a row here, with its bounds;
 * no module hard-codes a limit or calls getenv() for one. (providers/http.c
 * looks whether libcurl's own proxy variables are set.)
 */
#include "config.h"
#include "config_int.h"
#include "log.h"
#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CFG_INT, CFG_STR, CFG_URL, CFG_ENUM } cfg_type;

typedef struct {
    const char *name;
    cfg_type type;
    size_t offset;
    const char *def;    /* default, as it would be written in the environment */
    long long min, max; /* CFG_INT bounds; CFG_STR, CFG_URL: max = longest length (0: any) */
    const char *accept; /* CFG_ENUM: "a|b|c"; CFG_URL: allowed schemes "redis";
                           CFG_STR: a character class of str_in_class(), or NULL */
    int secret;
    const char *help;
} cfg_row;

#define OFF(f) offsetof(gf_config_t, f)
#define KIB    1024LL
#define MIB    (1024LL * 1024LL)

static const cfg_row cfg_table[] = {
    {"FARM_API_HOST", CFG_STR, OFF(api_host), "127.0.0.1", 0, 253, "host", 0,
     "address farm-api listens on"},
    {"FARM_API_PORT", CFG_INT, OFF(api_port), "8080", 0, 65535, NULL, 0,
     "port farm-api listens on (0: any free port)"},
    {"FARM_CORS_ORIGINS", CFG_STR, OFF(cors_origins), "", 0, 0, NULL, 0,
     "origins allowed to call the API from a browser, comma-separated, each as browsers send "
     "it (scheme://host[:port] in lowercase, no path; or null); * alone for any"},
    {"FARM_RATE_LIMIT_PER_MIN", CFG_INT, OFF(rate_limit_per_min), "60", 1, 1000000, NULL, 0,
     "generations a user may create per minute, on average"},
    {"FARM_RATE_LIMIT_BURST", CFG_INT, OFF(rate_limit_burst), "20", 1, 1000000, NULL, 0,
     "generations a user may create at once before the per-minute rate applies"},
    {"FARM_RATE_LIMITS", CFG_STR, OFF(rate_limits), "uploads=30/10,reads=1200/200,anonymous=60/30",
     0, 2048, NULL, 0,
     "token buckets per user and action, [plan.]action=per_min/burst comma-separated; actions: "
     "generations (else FARM_RATE_LIMIT_PER_MIN/BURST), uploads, reads, anonymous (per IP, "
     "requests without a token of ours; an expired one is 401 without it); an action not "
     "listed is not limited"},
    {"FARM_UPLOAD_MAX_INFLIGHT_BYTES", CFG_INT, OFF(upload_max_inflight_bytes), "268435456", MIB,
     64LL * 1024 * MIB, NULL, 0,
     "upload bodies a process holds at once, by their Content-Length (more get 503); also the "
     "memory of the uploads it decodes whole at once (WebP, EXIF-turned), beyond which they wait"},
    {"FARM_UPLOAD_MAX_INFLIGHT", CFG_INT, OFF(upload_max_inflight), "64", 1, 100000, NULL, 0,
     "uploads a process receives or decodes at once (bounds the queue of decodes); more get 503"},
    {"FARM_SSE_HEARTBEAT_S", CFG_INT, OFF(sse_heartbeat_s), "15", 1, 3600, NULL, 0,
     "an idle event stream gets a `: ping` comment this often"},
    {"FARM_SSE_MAX_PER_USER", CFG_INT, OFF(sse_max_per_user), "20", 1, 100000, NULL, 0,
     "open event streams per user and api process; more get 429"},
    {"FARM_FILE_URL_TTL_S", CFG_INT, OFF(file_url_ttl_s), "3600", 10, 604800, NULL, 0,
     "how long a signed output URL stays valid"},
    {"FARM_API_PROCESSES", CFG_INT, OFF(api_processes), "0", 0, 256, NULL, 0,
     "farm-api processes sharing the port (SO_REUSEPORT); 0: one per core"},
    {"FARM_READYZ_TIMEOUT_MS", CFG_INT, OFF(readyz_timeout_ms), "1000", 10, 60000, NULL, 0,
     "how long /readyz waits for Redis and Postgres to answer"},
    {"FARM_REDIS_URL", CFG_URL, OFF(redis_url), "redis://127.0.0.1:6379/0", 0, 2048, "redis", 0,
     "Redis holding the queue and event streams"},
    {"FARM_REDIS_CONNECT_TIMEOUT_MS", CFG_INT, OFF(redis_connect_timeout_ms), "1000", 50, 60000,
     NULL, 0, "a Redis connect that takes longer is abandoned and retried"},
    {"FARM_QUEUE_NAME", CFG_STR, OFF(queue_name), "farm", 0, 64, "name", 0,
     "the queue's Redis hash tag: every key is {NAME}:... (one Cluster slot)"},
    {"FARM_QUEUE_TIERS", CFG_STR, OFF(queue_tiers), "pro:4:10,free:1:3", 0, 0, NULL, 0,
     "plan tiers as name:weight:active_cap,...; weights share claims, caps bound queued+running; "
     "a plan not listed goes to free, or to the last tier without one"},
    {"FARM_QUEUE_LEASE_S", CFG_INT, OFF(queue_lease_s), "30", 1, 3600, NULL, 0,
     "a claimed job not heartbeat for this long is handed to another worker"},
    {"FARM_QUEUE_MAX_RECLAIMS", CFG_INT, OFF(queue_max_reclaims), "3", 0, 1000, NULL, 0,
     "a job whose lease expires more often than this is dead-lettered as poison"},
    {"FARM_QUEUE_RETRY_BASE_MS", CFG_INT, OFF(queue_retry_base_ms), "1000", 1, 3600000, NULL, 0,
     "hand-back backoff: the n-th waits [w/2, w), w = min(FARM_QUEUE_HANDBACK_CAP_MS, "
     "base * 2^(n-1))"},
    {"FARM_QUEUE_DEAD_RETENTION_S", CFG_INT, OFF(queue_dead_retention_s), "604800", 1, 31536000,
     NULL, 0, "how long dead-lettered jobs are kept for farm dead-letter"},
    {"FARM_QUEUE_DEAD_MAX", CFG_INT, OFF(queue_dead_max), "10000", 1, 10000000, NULL, 0,
     "dead-lettered jobs kept at most (the oldest are dropped)"},
    {"FARM_QUEUE_OP_TIMEOUT_MS", CFG_INT, OFF(queue_op_timeout_ms), "5000", 10, 600000, NULL, 0,
     "a queue operation Redis has not answered by then fails with a timeout"},
    {"FARM_EVENTS_RETENTION_S", CFG_INT, OFF(events_retention_s), "3600", 1, 2592000, NULL, 0,
     "a generation's events and job record live this long after its terminal event"},
    {"FARM_EVENTS_MAX_PER_GEN", CFG_INT, OFF(events_max_per_gen), "1000", 4, 1000000, NULL, 0,
     "events one generation may have; more are refused"},
    {"FARM_EVENTS_USER_MAXLEN", CFG_INT, OFF(events_user_maxlen), "1000", 10, 1000000, NULL, 0,
     "events kept per user stream (approximate trim)"},
    {"FARM_EVENTS_USER_MAX_AGE_S", CFG_INT, OFF(events_user_max_age_s), "86400", 1, 2592000, NULL,
     0, "user stream events older than this are trimmed; an idle stream expires"},
    {"FARM_DATABASE_URL", CFG_URL, OFF(database_url), "postgresql://farm@127.0.0.1:5432/farm", 0,
     2048, "postgresql|postgres", 0, "Postgres holding users, generations and the ledger"},
    {"FARM_MIGRATIONS_DIR", CFG_STR, OFF(migrations_dir), "migrations", 0, 0, NULL, 0,
     "folder of NNNN_name.sql files applied by farm migrate, then the functions in ../store/sql"},
    {"FARM_DB_POOL_SIZE", CFG_INT, OFF(db_pool_size), "4", 1, 64, NULL, 0,
     "Postgres connections per process"},
    {"FARM_SWEEP_INTERVAL_S", CFG_INT, OFF(sweep_interval_s), "10", 1, 3600, NULL, 0,
     "how often a worker runs the sweeper (one sweeper works at a time farm-wide)"},
    {"FARM_SWEEP_STALE_S", CFG_INT, OFF(sweep_stale_s), "60", 1, 86400, NULL, 0,
     "an open generation untouched this long is checked against the queue"},
    {"FARM_SWEEP_BATCH", CFG_INT, OFF(sweep_batch), "100", 1, 10000, NULL, 0,
     "generations the sweeper handles per tick"},
    {"FARM_PROVIDER", CFG_ENUM, OFF(provider), "auto", 0, 0, "auto|hf|fal|bfl|local|fake|replicate",
     0, "image provider; auto tries FARM_PROVIDER_FALLBACK (local alone when no token is set)"},
    {"FARM_PROVIDER_FALLBACK", CFG_STR, OFF(provider_fallback), "hf,fal,bfl,replicate", 0, 0, NULL,
     0,
     "auto's (and fake's) ordered providers; those without a token are left out (local: only if "
     "listed); refused beside another FARM_PROVIDER"},
    {"FARM_HF_BASE_URL", CFG_URL, OFF(hf_base_url), "https://router.huggingface.co/hf-inference", 0,
     512, "http|https", 0, "Hugging Face router base; requests go to {base}/models/{model}"},
    {"FARM_HF_MODEL", CFG_STR, OFF(hf_model), "black-forest-labs/FLUX.1-dev", 0, 200, "path", 0,
     "Hugging Face model of text-only calls (avatars without an identity)"},
    {"FARM_HF_POSE_MODEL", CFG_STR, OFF(hf_pose_model), "black-forest-labs/FLUX.2-dev", 0, 200,
     "path", 0,
     "Hugging Face model of calls with reference images (pose generations, identities); "
     "FLUX.2 takes several, Kontext one"},
    {"FARM_HF_TOKEN", CFG_STR, OFF(hf_token), "", 0, 400, "token", 1,
     "Hugging Face token (hf_...) with Inference Providers permission"},
    {"FARM_FAL_BASE_URL", CFG_URL, OFF(fal_base_url), "https://queue.fal.run", 0, 512, "http|https",
     0, "fal queue base; submit goes to {base}/{model}"},
    {"FARM_FAL_MODEL", CFG_STR, OFF(fal_model), "fal-ai/flux/dev", 0, 200, "path", 0,
     "fal app of text-only calls (avatars without an identity)"},
    {"FARM_FAL_POSE_MODEL", CFG_STR, OFF(fal_pose_model), "fal-ai/flux-2/edit", 0, 200, "path", 0,
     "fal app of calls with reference images (FLUX.2 edit: image_urls[]; Kontext: one)"},
    {"FARM_FAL_KEY", CFG_STR, OFF(fal_key), "", 0, 400, "token", 1,
     "fal key (Authorization: Key ...)"},
    {"FARM_BFL_BASE_URL", CFG_URL, OFF(bfl_base_url), "https://api.bfl.ai", 0, 512, "http|https", 0,
     "Black Forest Labs API base; submit goes to {base}/v1/{model}"},
    {"FARM_BFL_MODEL", CFG_STR, OFF(bfl_model), "flux-dev", 0, 200, "path", 0,
     "BFL endpoint of text-only calls (avatars without an identity)"},
    {"FARM_BFL_POSE_MODEL", CFG_STR, OFF(bfl_pose_model), "flux-2-pro", 0, 200, "path", 0,
     "BFL endpoint of calls with reference images (flux-2-pro: input_image..input_image_8; "
     "flux-kontext-pro: one; canny/depth: control_image)"},
    {"FARM_BFL_KEY", CFG_STR, OFF(bfl_key), "", 0, 400, "token", 1, "BFL key (x-key header)"},
    {"FARM_FAKE_PROVIDER_URL", CFG_URL, OFF(fake_provider_url), "http://127.0.0.1:8090", 0, 512,
     "http", 0, "farm-fake-provider's address, used by FARM_PROVIDER=fake"},
    {"FARM_PROVIDER_CONCURRENCY", CFG_INT, OFF(provider_concurrency), "32", 1, 100000, NULL, 0,
     "calls in flight per provider (a semaphore); more wait for a slot"},
    {"FARM_PROVIDER_DEADLINE_S", CFG_INT, OFF(provider_deadline_s), "600", 1, 86400, NULL, 0,
     "a provider call (polls and retries included) fails after this"},
    {"FARM_PROVIDER_CONNECT_TIMEOUT_MS", CFG_INT, OFF(provider_connect_timeout_ms), "10000", 10,
     600000, NULL, 0, "TCP+TLS connect timeout of provider requests"},
    {"FARM_PROVIDER_HTTP2", CFG_ENUM, OFF(provider_http2), "auto", 0, 0, "auto|prior-knowledge|off",
     0,
     "HTTP/2 of provider requests: auto (h2 when TLS's ALPN agrees, calls wait to share a "
     "connection), prior-knowledge (h2 without asking, on http too: h2c; libcurl 8.0.0 or "
     "later), off (HTTP/1.1)"},
    {"FARM_PROVIDER_CA_FILE", CFG_STR, OFF(provider_ca_file), "", 0, 4096, NULL, 0,
     "PEM file of the CA certificates provider requests trust instead of the system's "
     "(a private CA; empty: the system's)"},
    {"FARM_PROVIDER_SUBMIT_TIMEOUT_S", CFG_INT, OFF(provider_submit_timeout_s), "30", 1, 3600, NULL,
     0, "time allowed for a submit, status or cancel request"},
    {"FARM_PROVIDER_SYNC_TIMEOUT_S", CFG_INT, OFF(provider_sync_timeout_s), "300", 1, 3600, NULL, 0,
     "time allowed for a synchronous generation request (HF)"},
    {"FARM_PROVIDER_DOWNLOAD_TIMEOUT_S", CFG_INT, OFF(provider_download_timeout_s), "60", 1, 3600,
     NULL, 0, "time allowed for a result image download"},
    {"FARM_PROVIDER_LOW_SPEED_TIME_S", CFG_INT, OFF(provider_low_speed_time_s), "30", 1, 3600, NULL,
     0, "a transfer under 1 byte/s for this long is aborted"},
    {"FARM_PROVIDER_LOADING_WAIT_CAP_MS", CFG_INT, OFF(provider_loading_wait_cap_ms), "30000", 0,
     3600000, NULL, 0, "HF model loading: wait min(estimated_time, this) plus jitter, then resend"},
    {"FARM_PROVIDER_BACKOFF_BASE_MS", CFG_INT, OFF(provider_backoff_base_ms), "1000", 1, 600000,
     NULL, 0, "first retry backoff (doubles, +-25% jitter)"},
    {"FARM_PROVIDER_BACKOFF_CAP_MS", CFG_INT, OFF(provider_backoff_cap_ms), "60000", 1, 3600000,
     NULL, 0, "longest retry backoff"},
    {"FARM_PROVIDER_POLL_MIN_MS", CFG_INT, OFF(provider_poll_min_ms), "500", 1, 60000, NULL, 0,
     "first poll interval when the provider gives no hint (and the smallest honoured)"},
    {"FARM_PROVIDER_POLL_MAX_MS", CFG_INT, OFF(provider_poll_max_ms), "5000", 1, 600000, NULL, 0,
     "poll interval grows x1.5 up to this"},
    {"FARM_PROVIDER_MAX_RETRIES", CFG_INT, OFF(provider_max_retries), "5", 0, 100, NULL, 0,
     "consecutive failed polls/downloads before a call fails"},
    {"FARM_PROVIDER_BREAKER_FAILURES", CFG_INT, OFF(provider_breaker_failures), "5", 1, 1000, NULL,
     0, "consecutive failures that open a provider's circuit breaker"},
    {"FARM_PROVIDER_BREAKER_COOLDOWN_S", CFG_INT, OFF(provider_breaker_cooldown_s), "30", 0, 86400,
     NULL, 0, "an open breaker lets one probe through after this"},
    {"FARM_PROVIDER_BREAKER_CREDITS_COOLDOWN_S", CFG_INT, OFF(provider_breaker_credits_cooldown_s),
     "1800", 0, 604800, NULL, 0, "breaker cool-down after a 402 (credits exhausted)"},
    {"FARM_PROVIDER_MAX_IMAGE_BYTES", CFG_INT, OFF(provider_max_image_bytes), "33554432", KIB,
     1024 * MIB, NULL, 0, "largest provider reply accepted"},
    {"FARM_DB_STATEMENT_TIMEOUT_MS", CFG_INT, OFF(db_statement_timeout_ms), "5000", 100, 600000,
     NULL, 0, "Postgres cancels a statement running longer than this"},
    {"FARM_DB_CALL_TIMEOUT_MS", CFG_INT, OFF(db_call_timeout_ms), "10000", 100, 600000, NULL, 0,
     "a store call (waiting for a connection included) fails after this"},
    {"FARM_WELCOME_CREDITS", CFG_INT, OFF(welcome_credits), "100", 0, 1000000000, NULL, 0,
     "credits granted to a user on first sight"},
    {"FARM_COST_AVATAR", CFG_INT, OFF(cost_avatar), "10", 0, 1000000, NULL, 0,
     "credits per avatar image"},
    {"FARM_COST_POSE", CFG_INT, OFF(cost_pose), "30", 0, 1000000, NULL, 0,
     "credits per pose image"},
    {"FARM_STORAGE_DIR", CFG_STR, OFF(storage_dir), "var/storage", 0, 0, NULL, 0,
     "root of stored images: {user}/{generation}/{index}-{variant}.{ext}"},
    {"FARM_PRESETS_DIR", CFG_STR, OFF(presets_dir), "imaging/presets", 0, 0, NULL, 0,
     "folder of poses.json, styles.json and exports.json (GET /v1/presets)"},
    {"FARM_UPLOAD_MAX_BYTES", CFG_INT, OFF(upload_max_bytes), "10485760", KIB, 256 * MIB, NULL, 0,
     "largest accepted upload body; larger gets 413"},
    {"FARM_UPLOAD_MAX_PIXELS", CFG_INT, OFF(upload_max_pixels), "40000000", 1, 268402689, NULL, 0,
     "width x height an upload may declare, checked on the header before decoding; more gets 422"},
    {"FARM_VIPS_CONCURRENCY", CFG_INT, OFF(vips_concurrency), "1", 1, 64, NULL, 0,
     "libvips threads per pipeline; the libuv pool already runs one pipeline per thread"},
    {"FARM_VIPS_CACHE_MB", CFG_INT, OFF(vips_cache_mb), "0", 0, 65536, NULL, 0,
     "libvips operation cache; 0 disables it (a farm rarely sees the same image twice)"},
    {"FARM_HTTP_MAX_HEADER_BYTES", CFG_INT, OFF(http_max_header_bytes), "16384", 1024, MIB, NULL, 0,
     "request line plus headers; larger requests get 431"},
    {"FARM_HTTP_MAX_BODY_BYTES", CFG_INT, OFF(http_max_body_bytes), "65536", KIB, 64 * MIB, NULL, 0,
     "request body limit for JSON routes; larger bodies get 413"},
    {"FARM_HTTP_MAX_CONNECTIONS", CFG_INT, OFF(http_max_connections), "10000", 1, 1000000, NULL, 0,
     "open connections per process; more are answered 503 and closed"},
    {"FARM_HTTP_IDLE_TIMEOUT_S", CFG_INT, OFF(http_idle_timeout_s), "60", 1, 3600, NULL, 0,
     "a keep-alive connection with no request is closed after this"},
    {"FARM_HTTP_HEADER_TIMEOUT_S", CFG_INT, OFF(http_header_timeout_s), "10", 1, 600, NULL, 0,
     "time allowed for a request's headers (slowloris bound); then 408"},
    {"FARM_HTTP_BODY_TIMEOUT_S", CFG_INT, OFF(http_body_timeout_s), "30", 1, 3600, NULL, 0,
     "time allowed for a request's body; then 408"},
    {"FARM_HTTP_LINGER_MS", CFG_INT, OFF(http_linger_ms), "2000", 0, 60000, NULL, 0,
     "after an answer that closes the connection, input is read and dropped this long so the "
     "client, still sending, reads the answer (lingering close); 0: close at once"},
    {"FARM_HTTP_LINGER_MAX_BYTES", CFG_INT, OFF(http_linger_max_bytes), "16777216", 0, 1024 * MIB,
     NULL, 0, "bytes read and dropped in a lingering close before the connection closes anyway"},
    {"FARM_HTTP_MAX_QUEUED_BYTES", CFG_INT, OFF(http_max_queued_bytes), "262144", 4 * KIB,
     256 * MIB, NULL, 0,
     "answers queued to one client that does not read them before its next request waits "
     "(pipelining back-pressure)"},
    {"FARM_HTTP_MAX_QUEUED_TOTAL_BYTES", CFG_INT, OFF(http_max_queued_total_bytes), "67108864",
     64 * KIB, 64LL * 1024 * MIB, NULL, 0,
     "answers queued over all connections of a process past which requests wait and reads get 503"},
    {"FARM_HTTP_STREAM_MAX_QUEUED_BYTES", CFG_INT, OFF(http_stream_max_queued_bytes), "1048576",
     4 * KIB, 256 * MIB, NULL, 0,
     "bytes queued to a streaming client that stopped reading before it is dropped"},
    {"FARM_SHUTDOWN_S", CFG_INT, OFF(shutdown_s), "10", 0, 3600, NULL, 0,
     "on SIGTERM, time allowed for in-flight requests before connections are cut"},
    {"FARM_WORKER_CONCURRENCY", CFG_INT, OFF(worker_concurrency), "64", 0, 5000, NULL, 0,
     "generations one worker process runs at once (0: sweeper and metrics only)"},
    {"FARM_WORKER_IMAGES_PARALLEL", CFG_INT, OFF(worker_images_parallel), "4", 1, 40, NULL, 0,
     "images of one generation generated at once"},
    {"FARM_WORKER_IMAGE_ATTEMPTS", CFG_INT, OFF(worker_image_attempts), "3", 1, 20, NULL, 0,
     "provider calls per image before it fails for good (retryable errors only)"},
    {"FARM_WORKER_DRAIN_S", CFG_INT, OFF(worker_drain_s), "30", 0, 3600, NULL, 0,
     "on SIGTERM, time for running generations to finish before they are handed back"},
    {"FARM_WORKER_CLAIM_POLL_MS", CFG_INT, OFF(worker_claim_poll_ms), "200", 10, 60000, NULL, 0,
     "how often an idle worker asks the queue for work"},
    {"FARM_WORKER_METRICS_HOST", CFG_STR, OFF(worker_metrics_host), "127.0.0.1", 0, 253, "host", 0,
     "address of a worker's /healthz and /metrics"},
    {"FARM_WORKER_METRICS_PORT", CFG_INT, OFF(worker_metrics_port), "9100", 0, 65535, NULL, 0,
     "port of a worker's /healthz and /metrics (0: any free port)"},
    {"FARM_JWT_SECRET", CFG_STR, OFF(jwt_secret), "", 0, 0, NULL, 1,
     "HS256 secret of the API's bearer tokens; 16 characters at least in farm-api and farm token"},
    {"FARM_FILE_SECRET", CFG_STR, OFF(file_secret), "", 0, 0, NULL, 1,
     "HMAC-SHA256 secret of signed file URLs (API.md, files), the same in every api and worker; "
     "16 characters at least in farm-api and farm-worker"},
    {"FARM_JWT_SECRET_PREVIOUS", CFG_STR, OFF(jwt_secret_previous), "", 0, 0, NULL, 1,
     "a second secret farm-api accepts bearer tokens signed with, while they are rotated "
     "(docs/operations.md, \"Rotating secrets\"); empty: none; else 16 characters at least, "
     "not FARM_JWT_SECRET"},
    {"FARM_FILE_SECRET_PREVIOUS", CFG_STR, OFF(file_secret_previous), "", 0, 0, NULL, 1,
     "a second secret farm-api accepts signed file URLs with, while they are rotated (URLs are "
     "signed with FARM_FILE_SECRET only); empty: none; else 16 characters at least, not "
     "FARM_FILE_SECRET"},
    {"FARM_WEBHOOK_SECRET", CFG_STR, OFF(webhook_secret), "", 0, 0, NULL, 1,
     "HMAC-SHA256 secret of webhook signatures (API.md, webhooks)"},
    {"FARM_LOG_LEVEL", CFG_ENUM, OFF(log_level), "info", 0, 0, "debug|info|warn|error", 0,
     "lowest level logged"},
    /* providers: Replicate (providers/replicate.c, docs/providers.md) */
    {"FARM_REPLICATE_BASE_URL", CFG_URL, OFF(replicate_base_url), "https://api.replicate.com", 0,
     512, "http|https", 0,
     "Replicate API base; submit goes to {base}/v1/models/{model}/predictions"},
    {"FARM_REPLICATE_MODEL", CFG_STR, OFF(replicate_model), "black-forest-labs/flux-schnell", 0,
     200, "path", 0, "Replicate model of text-only calls (owner/name, or owner/name:version)"},
    {"FARM_REPLICATE_POSE_MODEL", CFG_STR, OFF(replicate_pose_model),
     "black-forest-labs/flux-2-dev", 0, 200, "path", 0,
     "Replicate model of calls with reference images (FLUX.2: input_images[]; Kontext: "
     "input_image)"},
    {"FARM_REPLICATE_TOKEN", CFG_STR, OFF(replicate_token), "", 0, 400, "token", 1,
     "Replicate API token (Authorization: Bearer ...)"},
    {"FARM_REPLICATE_WAIT_S", CFG_INT, OFF(replicate_wait_s), "60", 1, 60, NULL, 0,
     "Prefer: wait=N on a Replicate submit: it answers within N s, done or not (then polled)"},
    /* frontend kit (api/web.c) */
    {"FARM_DEMO", CFG_INT, OFF(demo), "0", 0, 1, NULL, 0,
     "1: farm-api serves the demo page (web/) at / with a strict Content-Security-Policy"},
    /* storage (storage/, docs/storage.md) */
    {"FARM_STORAGE", CFG_ENUM, OFF(storage), "local", 0, 0, "local|s3", 0,
     "where images live: local (FARM_STORAGE_DIR) or s3 (FARM_S3_*, any S3-compatible service)"},
    {"FARM_S3_ENDPOINT", CFG_URL, OFF(s3_endpoint), "", 0, 512, "http|https", 0,
     "S3 endpoint, scheme://host[:port] only: no credentials, no path "
     "(https://s3.eu-west-1.amazonaws.com); required with s3"},
    {"FARM_S3_REGION", CFG_STR, OFF(s3_region), "us-east-1", 0, 64, "name", 0,
     "region the requests are signed for (SigV4)"},
    {"FARM_S3_BUCKET", CFG_STR, OFF(s3_bucket), "", 0, 63, "name", 0,
     "bucket holding the images; required with s3"},
    {"FARM_S3_PREFIX", CFG_STR, OFF(s3_prefix), "", 0, 200, "path", 0,
     "put before every key (\"farm/\" gives farm/{user}/{generation}/...); empty: none"},
    {"FARM_S3_ACCESS_KEY_ID", CFG_STR, OFF(s3_access_key_id), "", 0, 128, "token", 0,
     "access key id of the requests' signature; required with s3"},
    {"FARM_S3_SECRET_ACCESS_KEY", CFG_STR, OFF(s3_secret_access_key), "", 0, 128, NULL, 1,
     "secret access key of the requests' signature; required with s3"},
    {"FARM_S3_PATH_STYLE", CFG_INT, OFF(s3_path_style), "1", 0, 1, NULL, 0,
     "1: {endpoint}/{bucket}/{key}; 0: virtual-hosted {bucket}.{endpoint host}/{key}"},
    {"FARM_S3_SERVE", CFG_ENUM, OFF(s3_serve), "redirect", 0, 0, "redirect|proxy", 0,
     "GET /v1/files with s3: redirect (302 to a presigned GET) or proxy (the api streams it)"},
    {"FARM_STORAGE_TIMEOUT_MS", CFG_INT, OFF(storage_timeout_ms), "30000", 100, 600000, NULL, 0,
     "one storage request (connect, send, answer) longer than this fails and is retried"},
    {"FARM_STORAGE_ATTEMPTS", CFG_INT, OFF(storage_attempts), "4", 1, 20, NULL, 0,
     "tries of one storage request on 5xx, 429, timeouts and broken connections"},
    {"FARM_STORAGE_BACKOFF_MS", CFG_INT, OFF(storage_backoff_ms), "200", 1, 60000, NULL, 0,
     "first storage retry backoff (doubles each retry, +-25% jitter)"},
    {"FARM_STORAGE_MAX_OBJECT_BYTES", CFG_INT, OFF(storage_max_object_bytes), "67108864", KIB,
     1024 * MIB, NULL, 0,
     "largest object stored or read back (a larger normalised upload gets 413; a larger output "
     "fails its image)"},
    /* webhooks (webhooks/, docs/webhooks.md) */
    {"FARM_WEBHOOK_ALLOW_PRIVATE", CFG_INT, OFF(webhook_allow_private), "0", 0, 1, NULL, 0,
     "1: webhooks may go to loopback, private and link-local addresses, and over http:// (test "
     "receivers only)"},
    {"FARM_WEBHOOK_CONCURRENCY", CFG_INT, OFF(webhook_concurrency), "64", 0, 5000, NULL, 0,
     "webhook deliveries one worker process has claimed at once (0: it delivers none)"},
    {"FARM_WEBHOOK_PER_HOST", CFG_INT, OFF(webhook_per_host), "8", 1, 5000, NULL, 0,
     "webhook deliveries to one destination host the farm has leased at once, all workers "
     "together"},
    {"FARM_WEBHOOK_TIMEOUT_S", CFG_INT, OFF(webhook_timeout_s), "15", 1, 60, NULL, 0,
     "a webhook request unanswered this long is a failed attempt (retried)"},
    {"FARM_WEBHOOK_LEASE_S", CFG_INT, OFF(webhook_lease_s), "60", 10, 3600, NULL, 0,
     "a claimed delivery is another worker's to send after this long; more than "
     "FARM_WEBHOOK_TIMEOUT_S + FARM_WEBHOOK_POLL_MS + 5 s"},
    {"FARM_WEBHOOK_POLL_MS", CFG_INT, OFF(webhook_poll_ms), "50", 10, 60000, NULL, 0,
     "how often a worker looks for due webhook deliveries and records the attempts that "
     "ended"},
    {"FARM_WEBHOOK_MAX_RESPONSE_BYTES", CFG_INT, OFF(webhook_max_response_bytes), "65536", 1024,
     16 * MIB, NULL, 0, "a receiver's answer body is read up to this size, then cut"},
    /* lifecycle: retention enforced by the sweeper (worker/sweeper.c, docs/storage.md) */
    {"FARM_OUTPUT_RETENTION_DAYS", CFG_INT, OFF(output_retention_days), "0", 0, 36500, NULL, 0,
     "outputs older than this many days are deleted by the sweeper and shown with url null, "
     "deleted true (0: kept)"},
    {"FARM_UPLOAD_RETENTION_DAYS", CFG_INT, OFF(upload_retention_days), "0", 0, 36500, NULL, 0,
     "uploads older than this many days are deleted by the sweeper (0: kept)"},
    /* edge: upload quotas per user (api/gate.c, api/files.c, docs/api.md) */
    {"FARM_UPLOAD_QUOTAS", CFG_STR, OFF(upload_quotas), "count=500,bytes=1073741824", 0, 2048, NULL,
     0,
     "uploads a user keeps, [plan.]count=N and [plan.]bytes=N comma-separated; a plan without "
     "its own entry has the one for every plan; 0 or an axis not listed: no quota on it"},
    /* operations (docs/operations.md): farm-api's access log */
    {"FARM_ACCESS_LOG", CFG_ENUM, OFF(access_log), "on", 0, 0, "off|on", 0,
     "farm-api logs one JSON line per request (method, route pattern, status, bytes, duration, "
     "user, request id) at info; 5xx at warn"},
    {"FARM_ACCESS_LOG_SAMPLE_PCT", CFG_INT, OFF(access_log_sample_pct), "100", 0, 100, NULL, 0,
     "percent of the requests answered below 500 that the access log writes (5xx: every one)"},
    {"FARM_RECONCILE_INTERVAL_S", CFG_INT, OFF(reconcile_interval_s), "900", 0, 86400, NULL, 0,
     "how often the workers' sweepers run `farm reconcile`'s check for "
     "farm_reconcile_violations (once an interval over the farm: each asks at every sweep "
     "and takes a younger check's result); 0: never"},
    /* faults (issue #17, docs/queue.md "finish"): a job handed back because Redis, Postgres or
     * storage was unavailable, or its worker stopped, does not spend an attempt */
    {"FARM_QUEUE_HANDBACK_CAP_MS", CFG_INT, OFF(queue_handback_cap_ms), "10000", 100, 3600000, NULL,
     0,
     "upper bound of one hand-back's wait: between half and all of min(cap, retry base * "
     "2^(hand-backs-1))"},
    {"FARM_QUEUE_HANDBACK_MAX", CFG_INT, OFF(queue_handback_max), "100", 1, 100000, NULL, 0,
     "hand-backs of one job before it is dead-lettered (with the defaults, at least 8 minutes of "
     "waiting)"},
    /* faults (issue #17, docs/storage.md "Leftover files"): the sweeper's cleanup */
    {"FARM_SWEEP_LEFTOVER_GRACE_S", CFG_INT, OFF(sweep_leftover_grace_s), "3600", 1, 604800, NULL,
     0,
     "age after which the sweeper deletes a put's leftover temporary file, or a file of a finished "
     "generation that no output records (a stale attempt's); longer than any put"},
    /* claim (issue #22, docs/queue.md "Claiming by capacity"): how many generations a worker
     * claims; FARM_WORKER_CONCURRENCY stays the ceiling */
    {"FARM_WORKER_CLAIM", CFG_ENUM, OFF(worker_claim), "capacity", 0, 0, "capacity|ceiling", 0,
     "capacity: a worker claims as many generations as its measured post-processing can "
     "finish behind its provider calls (farm_worker_claim_limit); ceiling: always up to "
     "FARM_WORKER_CONCURRENCY"},
    /* accept (issue #22, docs/api.md "Group-committed accepts"): POST /v1/generations */
    {"FARM_API_ACCEPT_BATCH_MAX", CFG_INT, OFF(api_accept_batch_max), "32", 1, 256, NULL, 0,
     "most accepts of one loop turn sent to Postgres as one statement (one transaction); 1: "
     "one statement per accept"},
    /* sse (issue #22, docs/api.md "Event streams"): a large fan-out's sends */
    {"FARM_SSE_WRITE_THREADS", CFG_INT, OFF(sse_write_threads), "1", 0, 16, NULL, 0,
     "threads of each farm-api process that share with its loop the writes of one event to "
     "128 or more streams (0: the loop writes every event alone)"},
};

#define CFG_ROWS (sizeof(cfg_table) / sizeof(cfg_table[0]))

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

static const cfg_row *row_find(const char *name, size_t n)
{
    for (size_t i = 0; i < CFG_ROWS; i++)
        if (strlen(cfg_table[i].name) == n && strncmp(cfg_table[i].name, name, n) == 0)
            return &cfg_table[i];
    return NULL;
}

static int enum_index(const char *choices, const char *v)
{
    size_t vn = strlen(v);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vn && strncmp(p, v, n) == 0)
            return idx;
        p += n + (bar ? 1 : 0);
    }
    return -1;
}

static int scheme_allowed(const char *choices, const char *scheme)
{
    return scheme != NULL && enum_index(choices, scheme) >= 0;
}

/*
 * Character classes of string rows (a value that is not empty must match):
 *   name   [A-Za-z0-9_.-]          (it becomes part of Redis keys and channels)
 *   host   [A-Za-z0-9_.:%-]        (a name or an address, IPv6 included)
 *   path   [A-Za-z0-9_.:/-], no "..", no leading '/'   (a model, in a URL path)
 *   token  printable ASCII, no space (it goes into an HTTP header)
 */
static int str_in_class(const char *cls, const char *v)
{
    const char *extra = strcmp(cls, "name") == 0   ? "_.-"
                        : strcmp(cls, "host") == 0 ? "_.:%-"
                        : strcmp(cls, "path") == 0 ? "_.:/-"
                                                   : NULL;
    if (*v == '\0')
        return 1;
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (extra == NULL ? (*c <= 0x20 || *c >= 0x7f) : !(isalnum(*c) || strchr(extra, *c)))
            return 0;
    }
    return strcmp(cls, "path") != 0 || (v[0] != '/' && strstr(v, "..") == NULL);
}

static const char *str_class_help(const char *cls)
{
    if (strcmp(cls, "name") == 0)
        return "only letters, digits, '_', '.' and '-'";
    if (strcmp(cls, "host") == 0)
        return "only letters, digits, '_', '.', ':', '%' and '-' (a host name or an address)";
    if (strcmp(cls, "path") == 0)
        return "only letters, digits, '_', '.', ':', '/' and '-', no \"..\" and no leading '/'";
    return "printable ASCII without spaces";
}

/* Describes what a row accepts, for error messages and the README table. */
static void row_accepts(const cfg_row *r, char *buf, size_t n)
{
    switch (r->type) {
    case CFG_INT:
        snprintf(buf, n, "an integer %lld..%lld", r->min, r->max);
        break;
    case CFG_ENUM:
        snprintf(buf, n, "one of %s", r->accept);
        break;
    case CFG_URL:
        snprintf(buf, n, "a URL %s://[user[:password]@]host[:port][/path]", r->accept);
        break;
    case CFG_STR:
        if (r->accept != NULL && r->max > 0)
            snprintf(buf, n, "a string of %s, at most %lld", str_class_help(r->accept), r->max);
        else
            snprintf(buf, n, "a string");
        break;
    }
}

/* Control characters (a newline from a secret file, say) go into headers and log lines. */
static int has_control(const char *v)
{
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 1;
    return 0;
}

static int row_store(gf_config_t *cfg, const cfg_row *r, const char *v, const char *shown,
                     gf_err_t *err);

static int row_set(gf_config_t *cfg, const cfg_row *r, const char *v, gf_err_t *err)
{
    /* A URL with an '@' is not echoed when it is refused: in a malformed one,
     * where the password ends is anyone's guess. */
    char *clean = r->type == CFG_URL && strchr(v, '@') == NULL ? gf_log_redact(v) : NULL;
    const char *shown = r->secret            ? "[secret]"
                        : r->type != CFG_URL ? v
                        : clean              ? clean
                                             : "[redacted]";
    int rc = row_store(cfg, r, v, shown, err);
    free(clean);
    return rc;
}

static int row_store(gf_config_t *cfg, const cfg_row *r, const char *v, const char *shown,
                     gf_err_t *err)
{
    char accepts[256];
    char *field = (char *)cfg + r->offset;
    gf_err_t why = {0};
    row_accepts(r, accepts, sizeof(accepts));
    if (has_control(v))
        return gf_err_set(err, GF_EINVAL, "config",
                          "%s: contains a control character (a trailing newline?); accepted: %s",
                          r->name, accepts);
    if ((r->type == CFG_STR || r->type == CFG_URL) && r->max > 0 && (long long)strlen(v) > r->max)
        return gf_err_set(err, GF_EINVAL, "config", "%s: longer than %lld characters", r->name,
                          r->max);
    if (r->type == CFG_STR && r->accept != NULL && !str_in_class(r->accept, v))
        return gf_err_set(err, GF_EINVAL, "config", "%s=%s: %s", r->name, shown,
                          str_class_help(r->accept));
    switch (r->type) {
    case CFG_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno == ERANGE || isspace((unsigned char)*v))
            return gf_err_set(err, GF_EINVAL, "config", "%s=%s: not an integer; accepted: %s",
                              r->name, shown, accepts);
        if (x < r->min || x > r->max)
            return gf_err_set(err, GF_EINVAL, "config", "%s=%s: out of range; accepted: %s",
                              r->name, shown, accepts);
        *(long long *)field = x;
        return 0;
    }
    case CFG_ENUM: {
        int idx = enum_index(r->accept, v);
        if (idx < 0)
            return gf_err_set(err, GF_EINVAL, "config", "%s=%s: unknown value; accepted: %s",
                              r->name, shown, accepts);
        *(long long *)field = idx;
        return 0;
    }
    case CFG_URL: {
        gf_url_t u;
        if (*v == '\0' && r->def[0] == '\0') /* unset, where that means "not used" */
            goto store;
        if (gf_url_parse(v, &u, &why) < 0)
            return gf_err_set(err, GF_EINVAL, "config", "%s=%s: %s; accepted: %s", r->name, shown,
                              why.msg, accepts);
        int ok = scheme_allowed(r->accept, u.scheme);
        gf_url_dispose(&u);
        if (!ok)
            return gf_err_set(err, GF_EINVAL, "config", "%s=%s: unsupported scheme; accepted: %s",
                              r->name, shown, accepts);
        __attribute__((fallthrough)); /* a valid URL is stored as a string */
    }
    case CFG_STR:
    store : {
        char **s = (char **)field;
        free(*s);
        *s = gf_xstrdup(v);
        if (r->secret)
            gf_log_add_secret(v);
        else if (r->type == CFG_URL) {
            gf_url_t u;
            if (gf_url_parse(v, &u, NULL) == 0 && u.password && u.password[0]) {
                gf_log_add_secret(u.password);     /* as sent to Redis's AUTH */
                gf_log_add_secret(u.password_raw); /* as written in the URL */
            }
            gf_url_dispose(&u);
        }
        return 0;
    }
    }
    return GF_EINVAL;
}

gf_config_t *gf_cfg_load(char *const *envp, gf_err_t *err)
{
    gf_config_t *cfg = gf_xcalloc(1, sizeof(*cfg));
    for (size_t i = 0; i < CFG_ROWS; i++) {
        const cfg_row *r = &cfg_table[i];
        const char *v = env_lookup(envp, r->name);
        if (row_set(cfg, r, v ? v : r->def, err) < 0) {
            gf_cfg_free(cfg);
            return NULL;
        }
    }
    if (gf_cfg__derive(cfg, err) < 0) {
        gf_cfg_free(cfg);
        return NULL;
    }
    /* FARM_RATE_LIMITS's generations entry for every plan wins over the two variables
     * of the generations limit: set with it, they would be read and never applied. */
    const char *rl_var = env_lookup(envp, "FARM_RATE_LIMIT_PER_MIN") ? "FARM_RATE_LIMIT_PER_MIN"
                         : env_lookup(envp, "FARM_RATE_LIMIT_BURST") ? "FARM_RATE_LIMIT_BURST"
                                                                     : NULL;
    for (int i = 0; rl_var && i < cfg->n_rl; i++) {
        if (cfg->rl[i].action == GF_RL_GENERATIONS && cfg->rl[i].plan[0] == '\0') {
            gf_err_set(err, GF_EINVAL, "config",
                       "%s and FARM_RATE_LIMITS's generations= both set the generations limit of "
                       "every plan: set one of them",
                       rl_var);
            gf_cfg_free(cfg);
            return NULL;
        }
    }
    /* A single provider is a chain of one: the fallback list would be read and never used. */
    const char *mode = gf_cfg_provider_mode(cfg);
    if (env_lookup(envp, "FARM_PROVIDER_FALLBACK") && strcmp(mode, "auto") != 0 &&
        strcmp(mode, "fake") != 0) {
        gf_err_set(err, GF_EINVAL, "config",
                   "FARM_PROVIDER_FALLBACK is read only with FARM_PROVIDER=auto (or fake); "
                   "FARM_PROVIDER=%s calls %s alone: unset one of them",
                   mode, mode);
        gf_cfg_free(cfg);
        return NULL;
    }
    /* A misspelt variable would otherwise be ignored in silence. */
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, "FARM_", 5) != 0 || strncmp(*e, "FARM_TEST_", 10) == 0)
            continue;
        size_t n = strcspn(*e, "=");
        if (row_find(*e, n) == NULL)
            GF_LOG(GF_LOG_WARN, &(gf_log_ctx){.component = "config"},
                   "unknown variable %.*s is ignored", (int)n, *e);
    }
    return cfg;
}

void gf_cfg_free(gf_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < CFG_ROWS; i++) {
        const cfg_row *r = &cfg_table[i];
        if (r->type == CFG_STR || r->type == CFG_URL)
            free(*(char **)((char *)cfg + r->offset));
    }
    free(cfg);
}

/* The value of a row as shown to people: secrets masked, URL passwords redacted. */
static char *row_show(const gf_config_t *cfg, const cfg_row *r)
{
    const char *field = (const char *)cfg + r->offset;
    char buf[64];
    switch (r->type) {
    case CFG_INT:
        snprintf(buf, sizeof(buf), "%lld", *(const long long *)field);
        return gf_xstrdup(buf);
    case CFG_ENUM: {
        long long idx = *(const long long *)field;
        const char *p = r->accept;
        for (long long k = 0; k < idx; k++)
            p = strchr(p, '|') + 1;
        return gf_xstrndup(p, strcspn(p, "|"));
    }
    case CFG_STR:
    case CFG_URL: {
        const char *s = *(char *const *)field;
        if (r->secret)
            return gf_xstrdup(s && *s ? "[set]" : "[unset]");
        return gf_log_redact(s ? s : "");
    }
    }
    return gf_xstrdup("");
}

void gf_cfg_print(const gf_config_t *cfg, FILE *out)
{
    for (size_t i = 0; i < CFG_ROWS; i++) {
        char *v = row_show(cfg, &cfg_table[i]);
        fprintf(out, "%s=%s\n", cfg_table[i].name, v);
        free(v);
    }
}

const char *gf_cfg_default(const char *name)
{
    for (size_t i = 0; i < CFG_ROWS; i++)
        if (strcmp(cfg_table[i].name, name) == 0)
            return cfg_table[i].def;
    return NULL;
}

void gf_cfg_print_markdown(FILE *out)
{
    fprintf(out, "| variable | default | accepted | what it sets |\n|---|---|---|---|\n");
    for (size_t i = 0; i < CFG_ROWS; i++) {
        const cfg_row *r = &cfg_table[i];
        char accepts[256];
        row_accepts(r, accepts, sizeof(accepts));
        /* A bare '|' would split the cell: "debug|info" is written "debug\|info". */
        gf_buf_t cell = {0};
        for (const char *p = accepts; *p; p++)
            gf_buf_puts(&cell, *p == '|' ? "\\|" : (char[]){*p, '\0'});
        fprintf(out, "| `%s` | %s%s%s | %s%s | %s |\n", r->name, r->def[0] ? "`" : "",
                r->def[0] ? r->def : "(empty)", r->def[0] ? "`" : "", cell.p,
                r->secret ? " (secret)" : "", r->help);
        gf_buf_dispose(&cell);
    }
}

void gf_cfg_log(const gf_config_t *cfg, const char *component)
{
    gf_buf_t b = {0};
    for (size_t i = 0; i < CFG_ROWS; i++) {
        char *v = row_show(cfg, &cfg_table[i]);
        gf_buf_printf(&b, "%s%s=%s", i ? " " : "", cfg_table[i].name, v);
        free(v);
    }
    GF_LOG(GF_LOG_INFO, &(gf_log_ctx){.component = component}, "configuration: %s", b.p);
    gf_buf_dispose(&b);
}

const char *gf_cfg_provider_mode(const gf_config_t *cfg)
{
    static const char *const modes[] = {"auto", "hf", "fal", "bfl", "local", "fake", "replicate"};
    return cfg->provider >= 0 && cfg->provider < 7 ? modes[cfg->provider] : "auto";
}
