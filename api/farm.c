/*
 * api/farm.c - the `farm` command line: operator tasks that run once and exit.
 *
 *   farm config [--markdown]   the effective configuration, secrets masked; exits 2
 *                              on a setting farm-api or farm-worker refuses at start
 *   farm migrate               apply migrations/NNNN_*.sql, then store/sql/, to FARM_DATABASE_URL
 *   farm token --sub UUID [--role user|admin] [--plan NAME] [--ttl SECONDS]
 *   farm grant --user UUID --amount N [--reason TEXT]
 *   farm reconcile             check the ledger's invariants; exit 1 naming each violation
 *   farm dead-letter list [--max N] | retry ID|--all | purge ID|--all
 *   farm queue-libraries [--prune]
 *   farm stats [--watch [SECONDS]]  the farm at a glance, from Redis and Postgres
 *   farm webhooks list [--failed] [--generation ID] | retry ID|--failed [--host HOST]
 *
 * Exit status: 0 done, 1 the task failed, 2 bad usage or configuration.
 */
#include "api.h"
#include "provider.h"
#include "store.h"
#include "webhooks.h"
#include "queue.h"

#include <jansson.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int usage(FILE *out)
{
    fprintf(out,
            "usage: farm <command> [options]\n"
            "  config [--markdown]   print the effective configuration (secrets masked)\n"
            "  migrate               apply FARM_MIGRATIONS_DIR, then store/sql beside it\n"
            "  token --sub UUID [--role user|admin] [--plan NAME] [--ttl SECONDS]\n"
            "                        print a signed bearer token (FARM_JWT_SECRET)\n"
            "  grant --user UUID --amount N [--reason TEXT]\n"
            "                        grant (N > 0) or take back (N < 0) credits\n"
            "  reconcile             check every ledger invariant\n"
            "  dead-letter list [--max N] | retry ID|--all | purge ID|--all\n"
            "                        inspect, re-queue or drop dead-lettered jobs (a job\n"
            "                        whose generation Postgres has finished is closed\n"
            "                        by the worker at once: nothing runs again)\n"
            "  queue-libraries [--prune]\n"
            "                        list (or delete) the queue's Redis function libraries\n"
            "                        of other code versions or settings\n"
            "  stats [--watch [SECONDS]]\n"
            "                        the farm at a glance (queue, workers, credits held);\n"
            "                        --watch redraws it every SECONDS (2) until interrupted\n"
            "  webhooks list [--failed] [--generation ID] | retry ID|--failed [--host HOST]\n"
            "                        webhook deliveries (newest 100); put failed ones back\n"
            "                        (--host: only those to HOST, the receiver that is back)\n");
    return out == stdout ? 0 : 2;
}

/*
 * An option's value as an integer in [min, max]: digits, with a leading '-'
 * only where min < 0; no space, '+', exponent or trailing text. Else a
 * message naming the option, and -1.
 */
static int option_ll(const char *opt, const char *v, long long min, long long max, long long *out)
{
    const char *d = v + (*v == '-' && min < 0);
    char *end;
    errno = 0;
    long long x = *d >= '0' && *d <= '9' ? strtoll(v, &end, 10) : 0;
    if (*d < '0' || *d > '9' || errno != 0 || *end != '\0' || x < min || x > max) {
        fprintf(stderr, "farm: %s %s: expected an integer %lld..%lld\n", opt, v, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

static gf_config_t *load_config(void)
{
    gf_err_t err = {0};
    gf_log_min_level = GF_LOG_WARN;
    gf_config_t *cfg = gf_cfg_load(environ, &err);
    if (cfg == NULL) {
        fprintf(stderr, "farm: configuration error: %s\n", err.msg);
        exit(2);
    }
    return cfg;
}

static int cmd_config(int argc, char **argv)
{
    if (argc > 3 || (argc == 3 && strcmp(argv[2], "--markdown") != 0))
        return usage(stderr);
    if (argc == 3) {
        gf_cfg_print_markdown(stdout);
        return 0;
    }
    gf_config_t *cfg = load_config();
    /* What farm-api and farm-worker would refuse at start, short of reaching a server:
     * a configuration this passes is one they start with (tests/deploy/k8s-validate.mjs). */
    gf_err_t err = {0};
    if (api_config_check(cfg, &err) < 0 || webhook_config_check(cfg, &err) < 0 ||
        provider_config_check(cfg, &err) < 0) {
        fprintf(stderr, "farm config: %s\n", err.msg);
        gf_cfg_free(cfg);
        return 2;
    }
    gf_cfg_print(cfg, stdout);
    gf_cfg_free(cfg);
    return 0;
}

static int cmd_migrate(void)
{
    gf_config_t *cfg = load_config();
    gf_err_t err = {0};
    int rc = store_migrate(cfg->database_url, cfg->migrations_dir, stdout, &err);
    if (rc >= 0)
        rc = store_migrate_sql(cfg->database_url, cfg->migrations_dir, stdout, &err);
    if (rc < 0)
        fprintf(stderr, "farm migrate: %s\n", err.msg);
    gf_cfg_free(cfg);
    return rc < 0 ? 1 : 0;
}

static int cmd_token(int argc, char **argv)
{
    api_claims_t claims = {.ttl_s = 86400};
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage(stderr);
        if (strcmp(argv[i], "--sub") == 0)
            claims.sub = v;
        else if (strcmp(argv[i], "--role") == 0)
            claims.role = v;
        else if (strcmp(argv[i], "--plan") == 0)
            claims.plan = v;
        else if (strcmp(argv[i], "--ttl") == 0) {
            long long ttl;
            if (option_ll("--ttl", v, 1, API_TOKEN_TTL_MAX_S, &ttl) < 0)
                return 2;
            claims.ttl_s = (long)ttl;
        } else
            return usage(stderr);
        i++;
    }
    gf_config_t *cfg = load_config();
    gf_err_t err = {0};
    char *token = api_token_issue(cfg->jwt_secret, &claims, &err);
    gf_cfg_free(cfg);
    if (token == NULL) {
        fprintf(stderr, "farm token: %s\n", err.msg);
        return 2;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

static store_conn_t *connect_store(const gf_config_t *cfg)
{
    gf_err_t err = {0};
    store_conn_t *sc = store_conn_new(cfg->database_url, &err);
    if (sc == NULL)
        fprintf(stderr, "farm: %s\n", err.msg);
    return sc;
}

/* A command's work on the configured database: its exit code. */
typedef int (*store_cmd_fn)(const gf_config_t *cfg, store_conn_t *sc, const void *args);

/* Runs `fn` with a connection to the configured database: its exit code, 1 when the
 * database could not be reached (said on stderr). */
static int with_store(store_cmd_fn fn, const void *args)
{
    gf_config_t *cfg = load_config();
    store_conn_t *sc = connect_store(cfg);
    int rc = sc != NULL ? fn(cfg, sc, args) : 1;
    store_conn_free(sc);
    gf_cfg_free(cfg);
    return rc;
}

/*
 * The CLI's audit rows (docs/operations.md, "Audit trail"): actor "cli" and
 * a request id made for the command. cli_audit_set makes a built call write
 * its row in its own transaction.
 */
static void cli_audit_set(store_call_t *c, const char *action, const char *target,
                          const char *detail_json)
{
    char req_id[37];
    gf_uuid4(req_id);
    store_call_set_audit(c, &(store_audit_t){.actor = "cli",
                                             .action = action,
                                             .target = target,
                                             .request_id = req_id,
                                             .detail_json = detail_json});
}

/* Writes a row of its own for an action already taken (dead letters, in Redis).
 * Returns 0, or -1 having said why on stderr. */
static int cli_audit_write(store_conn_t *sc, const char *action, const char *target,
                           const char *detail_json)
{
    char req_id[37];
    gf_uuid4(req_id);
    store_call_t c;
    store_call_audit(&c, &(store_audit_t){.actor = "cli",
                                          .action = action,
                                          .target = target,
                                          .request_id = req_id,
                                          .detail_json = detail_json});
    int rc = store_conn_exec(sc, &c);
    if (rc < 0)
        fprintf(stderr, "farm: the audit row of %s was not written: %s\n", action, c.err.msg);
    store_call_dispose(&c);
    return rc < 0 ? -1 : 0;
}

static int reconcile_run(const gf_config_t *cfg, store_conn_t *sc, const void *args)
{
    (void)cfg;
    (void)args;
    gf_err_t err = {0};
    int n = store_reconcile(sc, stdout, &err);
    if (n < 0)
        fprintf(stderr, "farm reconcile: %s\n", err.msg);
    else if (n > 0)
        printf("reconcile: %d violation%s\n", n, n == 1 ? "" : "s");
    else
        printf("reconcile: ledger consistent (balances, holds and settlements match)\n");
    return n == 0 ? 0 : 1;
}

static int cmd_reconcile(void)
{
    return with_store(reconcile_run, NULL);
}

typedef struct {
    const char *user, *reason;
    long long amount;
} grant_args_t;

static int grant_run(const gf_config_t *cfg, store_conn_t *sc, const void *args)
{
    const grant_args_t *g = args;
    int rc = 1;
    store_call_t c;
    store_call_credit(&c, g->user, g->amount, g->reason, cfg->welcome_credits);
    json_t *detail = json_pack("{s:I, s:s}", "amount", (json_int_t)g->amount, "reason", g->reason);
    char *detail_text = json_dumps(detail, JSON_COMPACT);
    cli_audit_set(&c, "credits.grant", g->user, detail_text);
    free(detail_text);
    json_decref(detail);
    if (store_conn_exec(sc, &c) < 0 && c.outcome_unknown) {
        /* It may have committed: running the command again could grant twice. */
        fprintf(stderr,
                "farm grant: the outcome is unknown (%s): look for it in audit_log "
                "(GET /v1/admin/audit) before granting again\n",
                c.err.msg);
    } else if (c.err.code < 0) {
        fprintf(stderr, "farm grant: %s\n", c.err.msg);
    } else { /* the account after the grant, read in its transaction */
        const store_balance_result_t *b = &c.res.balance;
        printf("user %s: balance %lld, held %lld, available %lld\n", g->user, b->balance, b->held,
               b->balance - b->held);
        rc = 0;
    }
    store_call_dispose(&c);
    return rc;
}

static int cmd_grant(int argc, char **argv)
{
    const char *user = NULL, *reason = "farm grant";
    long long amount = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--user") == 0)
            user = argv[i + 1];
        else if (strcmp(argv[i], "--amount") == 0) {
            if (option_ll("--amount", argv[i + 1], -1000000000, 1000000000, &amount) < 0)
                return 2;
        } else if (strcmp(argv[i], "--reason") == 0)
            reason = argv[i + 1];
        else
            return usage(stderr);
    }
    if (!api_is_uuid(user) || amount == 0 || (argc % 2) != 0)
        return usage(stderr);
    grant_args_t g = {.user = user, .reason = reason, .amount = amount};
    return with_store(grant_run, &g);
}

/*
 * farm dead-letter: the queue's dead letters through the blocking client.
 * A re-driven job is queued again in Redis only: it runs again only while
 * Postgres still has its generation open; one Postgres has finished (the
 * usual dead letter) is closed by the worker at its start, nothing called
 * or charged (docs/operations.md, "Dead letters").
 */
static int cmd_dead_letter(int argc, char **argv)
{
    const char *action = argc > 2 ? argv[2] : "";
    const char *arg = argc > 3 ? argv[3] : NULL;
    long long max = 100;
    if (strcmp(action, "list") == 0 && arg != NULL) {
        if (strcmp(arg, "--max") != 0 || argc != 5)
            return usage(stderr);
        if (option_ll("--max", argv[4], 1, 10000, &max) < 0)
            return 2;
    } else if (strcmp(action, "retry") == 0 || strcmp(action, "purge") == 0) {
        /* Every job is --all, never an id that happens to be the queue's own wildcard. */
        if (arg == NULL || argc != 4 || arg[0] == '\0' || strcmp(arg, "*") == 0)
            return usage(stderr);
        if (strcmp(arg, "--all") == 0)
            arg = "*";
    } else if (strcmp(action, "list") != 0) {
        return usage(stderr);
    }
    gf_config_t *cfg = load_config();
    gf_err_t err = {0};
    int rc = 0;
    /* A re-drive or purge is audited: without Postgres to record it, it is not done. */
    store_conn_t *sc = strcmp(action, "list") != 0 ? connect_store(cfg) : NULL;
    queue_sync_t *qs = strcmp(action, "list") == 0 || sc != NULL ? queue_sync_new(cfg, &err) : NULL;
    if (qs == NULL) {
        rc = -1;
    } else if (strcmp(action, "list") == 0) {
        queue_dead_list_t d;
        rc = queue_sync_dead_list(qs, (int)max, &d, &err);
        for (size_t i = 0; rc == 0 && i < d.n; i++)
            printf("%s\tuser=%s\ttier=%s\tattempts=%d\tdead_at_ms=%lld\t%s\n", d.items[i].gen_id,
                   d.items[i].user_id, d.items[i].tier, d.items[i].attempts,
                   (long long)d.items[i].dead_at_ms, d.items[i].reason);
        if (rc == 0)
            queue_dead_list_dispose(&d);
    } else {
        rc = strcmp(action, "retry") == 0 ? queue_sync_dead_retry(qs, arg, &err)
                                          : queue_sync_dead_purge(qs, arg, &err);
        if (rc >= 0)
            printf("%s: %d job(s)\n", strcmp(action, "retry") == 0 ? "re-driven" : "purged", rc);
        if (rc == 0 && strcmp(arg, "*") != 0) {
            fprintf(stderr, "farm dead-letter: %s is not dead-lettered\n", arg);
            rc = -1;
        }
        if (rc >= 0) {
            char detail[48];
            snprintf(detail, sizeof(detail), "{\"jobs\": %d}", rc);
            rc = cli_audit_write(
                sc, strcmp(action, "retry") == 0 ? "dead_letter.retry" : "dead_letter.purge", arg,
                detail);
        }
    }
    if (rc < 0 && err.msg[0])
        fprintf(stderr, "farm dead-letter: %s\n", err.msg);
    store_conn_free(sc);
    queue_sync_free(qs);
    gf_cfg_free(cfg);
    return rc < 0 ? 1 : 0;
}

/* farm queue-libraries [--prune]: the queue's function libraries of other versions. */
static int cmd_queue_libraries(int argc, char **argv)
{
    int drop = argc == 3 && strcmp(argv[2], "--prune") == 0;
    if (argc > 3 || (argc == 3 && !drop))
        return usage(stderr);
    gf_config_t *cfg = load_config();
    gf_err_t err = {0};
    char **names = NULL;
    int rc = -1;
    queue_sync_t *qs = queue_sync_new(cfg, &err);
    if (qs != NULL)
        rc = queue_sync_old_libraries(qs, drop, &names, &err);
    if (rc >= 0) {
        printf("current\t%s\n", queue_sync_library(qs));
        for (int i = 0; i < rc; i++) {
            printf("%s\t%s\n", drop ? "deleted" : "old", names[i]);
            free(names[i]);
        }
        free(names);
    } else {
        fprintf(stderr, "farm queue-libraries: %s\n", err.msg);
    }
    queue_sync_free(qs);
    gf_cfg_free(cfg);
    return rc < 0 ? 1 : 0;
}

/*
 * One table of the farm's state: the queue's stats (one Redis call) and the credits held
 * (one Postgres call). Either source that cannot be read is shown as unavailable, not as
 * zeros. Returns 0 when both were read, else STATS_QUEUE_DOWN and/or STATS_STORE_DOWN.
 */
#define STATS_QUEUE_DOWN 1
#define STATS_STORE_DOWN 2
static int stats_print(queue_sync_t *qs, store_conn_t *sc)
{
    gf_err_t err = {0};
    queue_stats_t st;
    int rc = 0;
    int64_t now = gf_clock_unix_ms();
    if (qs == NULL || queue_sync_stats(qs, &st, &err) < 0) {
        printf("queue        unavailable: %s\n", qs ? err.msg : "no connection to Redis");
        rc = STATS_QUEUE_DOWN;
    } else {
        printf("%-24s %12s\n", "QUEUE", "JOBS");
        for (size_t i = 0; i < st.n_tiers; i++)
            printf("  ready %-16s %12lld\n", st.tiers[i].name, (long long)st.tiers[i].depth);
        printf("  %-22s %12lld\n", "delayed (backoff)", (long long)st.delayed);
        printf("  %-22s %12lld\n", "in flight", (long long)st.in_flight);
        printf("  %-22s %12lld\n", "dead letters", (long long)st.dead);
        printf("  %-22s %12lld\n", "completed, last minute", (long long)st.done_last_min);
        printf("  %-22s %12lld\n", "dead-lettered, last minute", (long long)st.failed_last_min);
        printf("%-24s %12lld\n", "WORKERS", (long long)st.workers);
        for (size_t i = 0; i < st.n_live; i++) {
            const queue_worker_t *w = &st.live[i];
            double ago = (double)(now - w->last_seen_ms) / 1000.0;
            printf("  %-40s %4lld running, seen %.1f s ago\n", w->id, (long long)w->in_flight,
                   ago < 0 ? 0 : ago);
        }
        queue_stats_dispose(&st);
    }
    store_call_t c;
    store_call_totals(&c);
    if (sc == NULL || store_conn_exec(sc, &c) < 0)
        printf("credits      unavailable: %s\n", sc ? c.err.msg : "no connection to Postgres");
    else
        printf("%-24s %12lld\n", "CREDITS HELD", c.res.balance.held);
    if (sc == NULL || c.err.code < 0)
        rc |= STATS_STORE_DOWN;
    store_call_dispose(&c);
    return rc;
}

static volatile sig_atomic_t stats_stop;

static void on_stats_signal(int sig)
{
    (void)sig;
    stats_stop = 1;
}

/* farm stats [--watch [SECONDS]]: once, or redrawn until SIGINT/SIGTERM (then exit 0).
 * A watch connects again, before the next frame, to a source it could not read: Redis
 * or Postgres restarted, or down when the watch began, shows again once it is back. */
static int cmd_stats(int argc, char **argv)
{
    long long every = 0;
    if (argc >= 3) {
        if (strcmp(argv[2], "--watch") != 0 || argc > 4)
            return usage(stderr);
        every = 2;
        if (argc == 4 && option_ll("--watch", argv[3], 1, 3600, &every) < 0)
            return 2;
    }
    if (every > 0) {
        /* Before the connections, which may take seconds: a signal then is the stop too (and
         * a SIGINT the parent left ignored is not lost while the handler is not yet set). */
        struct sigaction sa = {.sa_handler = on_stats_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    gf_config_t *cfg = load_config();
    gf_err_t err = {0};
    queue_sync_t *qs = queue_sync_new(cfg, &err);
    if (qs == NULL)
        fprintf(stderr, "farm stats: %s\n", err.msg);
    store_conn_t *sc = connect_store(cfg);
    int rc;
    if (every == 0) {
        rc = stats_print(qs, sc) ? 1 : 0;
    } else {
        while (!stats_stop) {
            printf("\033[H\033[2J"); /* home, clear the screen */
            int down = stats_print(qs, sc);
            fflush(stdout);
            for (long long t = 0; t < every * 10 && !stats_stop; t++)
                usleep(100 * 1000);
            if ((down & STATS_QUEUE_DOWN) && !stats_stop) {
                queue_sync_free(qs);
                qs = queue_sync_new(cfg, &err); /* NULL again: the next frame says so */
            }
            if ((down & STATS_STORE_DOWN) && !stats_stop) {
                store_conn_free(sc);
                gf_err_t serr = {0};
                sc = store_conn_new(cfg->database_url, &serr);
            }
        }
        rc = 0;
    }
    queue_sync_free(qs);
    store_conn_free(sc);
    gf_cfg_free(cfg);
    return rc;
}

static void print_webhook(const store_webhook_t *w)
{
    printf("%s gen=%s event=%s status=%s attempts=%d", w->id, w->generation_id, w->event, w->status,
           w->attempts);
    if (w->last_status_code > 0)
        printf(" last_status=%d", w->last_status_code);
    printf(" created=%s", w->created_at);
    if (w->next_attempt_at)
        printf(" next=%s", w->next_attempt_at);
    if (w->delivered_at)
        printf(" delivered=%s", w->delivered_at);
    /* The URL's scheme, host and path only: userinfo, a query or a fragment may carry the
     * receiver's credentials. */
    size_t end = strcspn(w->url, "?#");
    const char *auth = strstr(w->url, "://");
    if (auth != NULL && (size_t)(auth - w->url) < end) {
        auth += 3;
        size_t alen = strcspn(auth, "/?#");
        const char *host = auth;
        for (size_t i = 0; i < alen; i++)
            if (auth[i] == '@')
                host = auth + i + 1;
        printf(" url=%.*s%.*s", (int)(auth - w->url), w->url, (int)(w->url + end - host), host);
    } else {
        printf(" url=%.*s", (int)end, w->url);
    }
    if (w->last_error)
        printf(" error=\"%s\"", w->last_error);
    printf("\n");
}

typedef struct {
    const char *action, *gen, *id, *host;
    int failed;
} webhooks_args_t;

static int webhooks_run(const gf_config_t *cfg, store_conn_t *sc, const void *args)
{
    (void)cfg;
    const webhooks_args_t *w = args;
    int rc = 1;
    store_call_t c;
    if (strcmp(w->action, "list") == 0)
        store_call_webhook_list(&c, w->failed, w->gen, 100);
    else {
        char target[300];
        snprintf(target, sizeof(target), "%s%s", w->host ? "host:" : "",
                 w->id     ? w->id
                 : w->host ? w->host
                           : "*");
        store_call_webhook_retry(&c, w->id, w->host);
        cli_audit_set(&c, "webhooks.retry", target, NULL);
    }
    if (store_conn_exec(sc, &c) < 0) {
        fprintf(stderr, "farm webhooks %s: %s\n", w->action, c.err.msg);
    } else if (strcmp(w->action, "list") == 0) {
        for (size_t i = 0; i < c.res.webhook_list.n; i++)
            print_webhook(&c.res.webhook_list.items[i]);
        printf("%zu deliver%s\n", c.res.webhook_list.n, c.res.webhook_list.n == 1 ? "y" : "ies");
        rc = 0;
    } else {
        printf("%zu failed deliver%s pending again\n", c.res.webhook_list.n,
               c.res.webhook_list.n == 1 ? "y" : "ies");
        rc = w->id != NULL && c.res.webhook_list.n == 0 ? 1 : 0;
        if (rc)
            fprintf(stderr, "farm webhooks retry: no failed delivery %s\n", w->id);
    }
    store_call_dispose(&c);
    return rc;
}

/* farm webhooks: the outbox for on-call (docs/operations.md, a receiver is down for a day). */
static int cmd_webhooks(int argc, char **argv)
{
    const char *action = argc > 2 ? argv[2] : "";
    int failed = 0;
    const char *gen = NULL, *id = NULL, *host = NULL;
    if (strcmp(action, "list") == 0) {
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--failed") == 0)
                failed = 1;
            else if (strcmp(argv[i], "--generation") == 0 && i + 1 < argc &&
                     api_is_uuid(argv[i + 1]))
                gen = argv[++i];
            else
                return usage(stderr);
        }
    } else if (strcmp(action, "retry") == 0 && argc == 4 && api_is_uuid(argv[3])) {
        id = argv[3];
    } else if (strcmp(action, "retry") == 0 && (argc == 4 || argc == 6) &&
               strcmp(argv[3], "--failed") == 0) {
        if (argc == 6 && strcmp(argv[4], "--host") != 0)
            return usage(stderr);
        /* The receiver that is back, as the outbox keeps it: a name or an address, no port. */
        host = argc == 6 ? argv[5] : NULL;
        if (host && (host[0] == '\0' || strlen(host) > 253 || strpbrk(host, "/?#@ ") ||
                     (host[0] != '[' && strchr(host, ':')))) {
            fprintf(stderr, "farm webhooks retry: --host takes a host name or address "
                            "(an IPv6 one in brackets), without a port or path\n");
            return 2;
        }
    } else {
        return usage(stderr);
    }
    webhooks_args_t w = {.action = action, .gen = gen, .id = id, .host = host, .failed = failed};
    return with_store(webhooks_run, &w);
}

int main(int argc, char **argv)
{
    int rc;
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "config") == 0)
        rc = cmd_config(argc, argv);
    else if (strcmp(argv[1], "migrate") == 0)
        rc = argc == 2 ? cmd_migrate() : usage(stderr);
    else if (strcmp(argv[1], "token") == 0)
        rc = cmd_token(argc, argv);
    else if (strcmp(argv[1], "reconcile") == 0)
        rc = argc == 2 ? cmd_reconcile() : usage(stderr);
    else if (strcmp(argv[1], "grant") == 0)
        rc = cmd_grant(argc, argv);
    else if (strcmp(argv[1], "dead-letter") == 0)
        rc = cmd_dead_letter(argc, argv);
    else if (strcmp(argv[1], "queue-libraries") == 0)
        rc = cmd_queue_libraries(argc, argv);
    else if (strcmp(argv[1], "stats") == 0)
        rc = cmd_stats(argc, argv);
    else if (strcmp(argv[1], "webhooks") == 0)
        rc = cmd_webhooks(argc, argv);
    else if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)
        rc = usage(stdout);
    else
        rc = usage(stderr);
    gf_log_clear_secrets();
    return rc;
}
