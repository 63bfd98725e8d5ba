/*
 * tests/fake/fake.c - farm-fake-provider's main, its control endpoints
 * (/__fake/faults, /__fake/log, /__fake/reset, /__fake/clock, /__fake/config)
 * and the machinery the protocol routes share: fault lookup, the request log,
 * jobs, delayed answers and raw (broken) answers.
 *
 * Usage: farm-fake-provider [--port N] [--port-file PATH] [--latency-ms N]
 *        [--polls N] [--retry-after S] [--cdn-ttl S]
 * It prints its port on stdout once listening (port 0 by default: any free).
 * Raw answers reach into core/httpd's internals (httpd_int.h) on purpose:
 * a well-behaved server cannot otherwise send a truncated body or reset.
 */
#include "fake.h"
#include "httpd_int.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fake_delay {
    fake_delay_t *prev, *next;
    fake_t *f;
    uv_timer_t timer;
    gf_http_req_t *r;
    void (*fn)(fake_t *f, gf_http_req_t *r, void *arg);
    void *arg;
    int stall; /* a stalled answer: finished when the client leaves */
};

static void on_delay_closed(uv_handle_t *h)
{
    free(h->data); /* the fake_delay_t that embeds the timer */
}

int64_t fake_now(const fake_t *f)
{
    return (int64_t)time(NULL) + f->clock_offset;
}

/* --- faults ----------------------------------------------------------------------- */

/* Where a mode applies when a marker does not say. */
static const char *natural_endpoint(const char *mode, const char *provider, char *buf, size_t n)
{
    static const struct {
        const char *mode, *ep;
    } tab[] = {
        {"content_moderated", "bfl.poll"},   {"request_moderated", "bfl.poll"},
        {"bfl_error", "bfl.poll"},           {"task_not_found", "bfl.poll"},
        {"poll_422_with_task", "bfl.poll"},  {"fal_failed_result", "fal.result"},
        {"nsfw_flag", "fal.result"},         {"cancel_already_completed", "fal.cancel"},
        {"sse_drop", "fal.stream"},          {"expired_url", "cdn"},
        {"regional_404", "bfl.poll_global"},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcmp(tab[i].mode, mode) == 0)
            return tab[i].ep;
    if (strcmp(mode, "pending_forever") == 0)
        snprintf(buf, n, "%s.%s", provider, strcmp(provider, "fal") == 0 ? "status" : "poll");
    else if (strcmp(provider, "hf") != 0 &&
             (strcmp(mode, "corrupt_image") == 0 || strcmp(mode, "truncated") == 0 ||
              strcmp(mode, "stall_body") == 0 || strcmp(mode, "chunked_abort") == 0 ||
              strcmp(mode, "content_type_mismatch") == 0 || strcmp(mode, "json_on_200") == 0))
        snprintf(buf, n, "cdn");
    else
        snprintf(buf, n, "%s.submit", provider);
    return buf;
}

static int counter_take(fake_t *f, const char *key, int times)
{
    fake_counter_t *c;
    for (c = f->counters; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            break;
    if (c == NULL) {
        c = gf_xcalloc(1, sizeof(*c));
        c->key = gf_xstrdup(key);
        c->next = f->counters;
        f->counters = c;
    }
    if (times > 0 && c->used >= times)
        return 0;
    c->used++;
    return 1;
}

/* Scans "mode[:arg][@endpoint][*times]" specs separated by `sep` in `s`. */
static int scan_specs(fake_t *f, const char *s, const char *open, const char *close,
                      const char *provider, const char *endpoint, const char *key,
                      fake_fault_t *out)
{
    const char *p = s;
    while (p && (p = strstr(p, open)) != NULL) {
        p += strlen(open);
        size_t n = close ? (size_t)(strstr(p, close) ? strstr(p, close) - p : 0) : strcspn(p, ",");
        if (n == 0 || n > 120) {
            if (!close && *p == ',')
                continue;
            if (!close)
                break;
            continue;
        }
        char spec[128], mode[128] = "", arg[128] = "", ep[128] = "", buf[32];
        snprintf(spec, sizeof(spec), "%.*s", (int)n, p);
        int times = 0;
        char *star = strchr(spec, '*');
        if (star)
            times = atoi(star + 1), *star = '\0';
        char *at = strchr(spec, '@');
        if (at)
            snprintf(ep, sizeof(ep), "%s", at + 1), *at = '\0';
        char *colon = strchr(spec, ':');
        if (colon)
            snprintf(arg, sizeof(arg), "%s", colon + 1), *colon = '\0';
        snprintf(mode, sizeof(mode), "%s", spec);
        while (mode[0] == ' ')
            memmove(mode, mode + 1, strlen(mode));
        const char *want = ep[0] ? ep : natural_endpoint(mode, provider, buf, sizeof(buf));
        p += n;
        if (strcmp(want, endpoint) != 0)
            continue;
        char ckey[512];
        snprintf(ckey, sizeof(ckey), "%s|%s|%s", key, spec, endpoint);
        if (!counter_take(f, ckey, times))
            continue;
        snprintf(out->mode, sizeof(out->mode), "%.31s", mode);
        snprintf(out->arg, sizeof(out->arg), "%.31s", arg);
        return 1;
    }
    return 0;
}

int fake_fault(fake_t *f, gf_http_req_t *r, const char *provider, const char *endpoint,
               const char *prompt, const fake_job_t *job, fake_fault_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *hdr = gf_http_req_header(r, "x-fake-fault");
    if (hdr) {
        gf_buf_t b = {0};
        gf_buf_printf(&b, ",%s", hdr);
        int hit = scan_specs(f, b.p, ",", NULL, provider, endpoint, gf_http_req_id(r), out);
        gf_buf_dispose(&b);
        if (hit)
            return 1;
    }
    for (fake_script_t **pp = &f->script; *pp; pp = &(*pp)->next) {
        fake_script_t *s = *pp;
        if (strcmp(s->match, endpoint) != 0)
            continue;
        snprintf(out->mode, sizeof(out->mode), "%s", s->mode);
        snprintf(out->arg, sizeof(out->arg), "%s", s->arg);
        if (--s->times <= 0) {
            *pp = s->next;
            free(s);
        }
        return 1;
    }
    const char *key = job ? job->id : prompt ? prompt : "";
    if (job && job->faults && job->faults[0]) {
        gf_buf_t b = {0};
        gf_buf_printf(&b, ",%s", job->faults);
        int hit = scan_specs(f, b.p, ",", NULL, provider, endpoint, key, out);
        gf_buf_dispose(&b);
        if (hit)
            return 1;
    }
    return prompt ? scan_specs(f, prompt, "[[", "]]", provider, endpoint, key, out) : 0;
}

/* --- answers ----------------------------------------------------------------------- */

void fake_json(gf_http_req_t *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    gf_http_respond(r, status, "application/json", s, strlen(s));
    free(s);
}

static void on_raw_closed(gf_http_req_t *r, void *data)
{
    fake_delay_t *d = data;
    if (d) { /* a stall: forget the delay record */
        fake_t *f = d->f;
        if (d->prev)
            d->prev->next = d->next;
        else
            f->delays = d->next;
        if (d->next)
            d->next->prev = d->prev;
        uv_close((uv_handle_t *)&d->timer, on_delay_closed);
    }
    gf_http_respond(r, 500, "text/plain", "", 0); /* the client is gone: frees `r` */
}

void fake_raw_close(gf_http_req_t *r, const char *bytes, size_t n)
{
    httpd_conn_t *c = r->conn;
    if (c == NULL) {
        gf_http_respond(r, 500, "text/plain", "", 0);
        return;
    }
    gf_http_req_on_close(r, on_raw_closed, NULL);
    if (n)
        httpd__conn_write(c, bytes, n, NULL, 0);
    c->close_after_write = 1;
    if (c->writes_pending == 0)
        httpd__conn_close(c, 1);
}

void fake_raw_stall(fake_t *f, gf_http_req_t *r, const char *bytes, size_t n)
{
    httpd_conn_t *c = r->conn;
    if (c == NULL) {
        gf_http_respond(r, 500, "text/plain", "", 0);
        return;
    }
    fake_delay_t *d = gf_xcalloc(1, sizeof(*d));
    d->f = f;
    d->r = r;
    d->stall = 1;
    uv_timer_init(f->loop, &d->timer);
    d->timer.data = d;
    d->next = f->delays;
    if (f->delays)
        f->delays->prev = d;
    f->delays = d;
    gf_http_req_on_close(r, on_raw_closed, d);
    httpd__conn_write(c, bytes, n, NULL, 0);
}

static void delay_unlink(fake_delay_t *d)
{
    fake_t *f = d->f;
    if (d->prev)
        d->prev->next = d->next;
    else
        f->delays = d->next;
    if (d->next)
        d->next->prev = d->prev;
}

static void on_delay(uv_timer_t *t)
{
    fake_delay_t *d = t->data;
    delay_unlink(d);
    d->fn(d->f, d->r, d->arg);
    uv_close((uv_handle_t *)&d->timer, on_delay_closed);
}

void fake_later(fake_t *f, gf_http_req_t *r, uint64_t ms,
                void (*fn)(fake_t *f, gf_http_req_t *r, void *arg), void *arg)
{
    fake_delay_t *d = gf_xcalloc(1, sizeof(*d));
    d->f = f;
    d->r = r;
    d->fn = fn;
    d->arg = arg;
    uv_timer_init(f->loop, &d->timer);
    d->timer.data = d;
    d->next = f->delays;
    if (f->delays)
        f->delays->prev = d;
    f->delays = d;
    uv_timer_start(&d->timer, on_delay, ms, 0);
}

static void answer_text(gf_http_req_t *r, int status, const char *ctype, const char *body)
{
    gf_http_respond(r, status, ctype, body, strlen(body));
}

static void after_slow(fake_t *f, gf_http_req_t *r, void *arg)
{
    (void)f;
    (void)arg;
    answer_text(r, 504, "text/html", "<h1>504</h1> slow_headers ended");
}

int fake_generic(fake_t *f, gf_http_req_t *r, const char *provider, const fake_fault_t *ft)
{
    const char *m = ft->mode;
    int hf = strcmp(provider, "hf") == 0, bfl = strcmp(provider, "bfl") == 0;
    const char *key = hf ? "error" : "detail";
    if (strcmp(m, "rate_limit") == 0) {
        gf_http_set_header(r, "Retry-After", ft->arg[0] ? ft->arg : "1");
        if (hf)
            gf_http_set_header(r, "RateLimit", "\"api\";r=0;t=1");
        if (bfl) {
            gf_http_set_header(r, "x-ratelimit-limit", "24");
            gf_http_set_header(r, "x-ratelimit-remaining", "0");
        }
        fake_json(r, 429, json_pack("{s:s}", key, "Rate limit reached"));
    } else if (strcmp(m, "auth_401") == 0) {
        fake_json(r, 401, json_pack("{s:s}", key, "Invalid credentials in Authorization header"));
    } else if (strcmp(m, "forbidden_403") == 0) {
        fake_json(r, 403,
                  json_pack("{s:s}", key,
                            "This authentication method does not have "
                            "sufficient permissions"));
    } else if (strcmp(m, "credits_402") == 0) {
        fake_json(r, 402,
                  json_pack("{s:s}", key,
                            "You have depleted your monthly included "
                            "credits."));
    } else if (strcmp(m, "not_found_404") == 0) {
        answer_text(r, 404, "text/plain", "Not Found");
    } else if (strcmp(m, "gone_410") == 0) {
        fake_json(r, 410,
                  json_pack("{s:s}", "error",
                            "https://api-inference.huggingface.co/ is no longer "
                            "supported. Please use https://router.huggingface.co/ "
                            "instead."));
    } else if (strcmp(m, "validation_400") == 0) {
        fake_json(r, 400, json_pack("{s:s}", key, "Bad request: width must be a multiple of 8"));
    } else if (strcmp(m, "validation_422") == 0) {
        fake_json(r, 422,
                  json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "body", "width", "msg",
                            "ensure this value is less than 1440", "type", "value_error"));
    } else if (strcmp(m, "server_500") == 0) {
        fake_json(r, 500, json_pack("{s:s}", key, "Internal Server Error"));
    } else if (strcmp(m, "bad_gateway_502") == 0) {
        answer_text(r, 502, "text/html", "<html><h1>502 Bad Gateway</h1></html>");
    } else if (strcmp(m, "unavailable_503") == 0) {
        fake_json(r, 503, json_pack("{s:s}", key, "Service Unavailable"));
    } else if (strcmp(m, "gateway_timeout_504") == 0) {
        answer_text(r, 504, "text/html", "<html><h1>504</h1></html>");
    } else if (strcmp(m, "reset") == 0) {
        fake_raw_close(r, NULL, 0);
    } else if (strcmp(m, "slow_headers") == 0) {
        fake_later(f, r, (uint64_t)(atof(ft->arg[0] ? ft->arg : "60") * 1000), after_slow, NULL);
    } else {
        return 0;
    }
    return 1;
}

/* --- log and jobs ---------------------------------------------------------------------- */

static char *mask_secret(const char *v)
{
    if (v == NULL)
        return NULL;
    const char *sp = strchr(v, ' ');
    gf_buf_t b = {0};
    if (sp)
        gf_buf_printf(&b, "%.*s %.3s***", (int)(sp - v), v, sp + 1);
    else
        gf_buf_printf(&b, "%.3s***", v);
    return b.p;
}

json_t *fake_log(fake_t *f, gf_http_req_t *r, const char *endpoint, const char *job_id)
{
    size_t blen = 0;
    const char *body = gf_http_req_body(r, &blen);
    char hash[17] = "";
    if (blen)
        snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)fake_hash(body, blen));
    char *auth = mask_secret(gf_http_req_header(r, "authorization"));
    char *key = mask_secret(gf_http_req_header(r, "x-key"));
    json_t *e = json_pack("{s:i,s:s,s:s,s:s,s:s?,s:s?,s:s?,s:b,s:s?}", "seq", (json_int_t)++f->seq,
                          "method", gf_http_req_method(r), "path", gf_http_req_path(r), "endpoint",
                          endpoint, "job", job_id, "authorization", auth, "x_key", key,
                          "wait_for_model", gf_http_req_header(r, "x-wait-for-model") != NULL,
                          "body_hash", blen ? hash : NULL);
    free(auth);
    free(key);
    if (blen && strcmp(gf_http_req_method(r), "POST") == 0) {
        json_int_t n = json_integer_value(json_object_get(f->bodies, hash)) + 1;
        json_object_set_new(f->bodies, hash, json_integer(n));
        json_object_set_new(e, "submits_same_body", json_integer(n));
    }
    json_int_t c = json_integer_value(json_object_get(f->counts, endpoint)) + 1;
    json_object_set_new(f->counts, endpoint, json_integer(c));
    json_array_append_new(f->log, e);
    return e;
}

fake_job_t *fake_job_new(fake_t *f, const char *provider)
{
    fake_job_t *j = gf_xcalloc(1, sizeof(*j));
    gf_uuid4(j->id);
    snprintf(j->provider, sizeof(j->provider), "%s", provider);
    j->next = f->jobs;
    f->jobs = j;
    return j;
}

fake_job_t *fake_job_find(fake_t *f, const char *id)
{
    for (fake_job_t *j = f->jobs; j && id; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void state_clear(fake_t *f)
{
    while (f->script) {
        fake_script_t *s = f->script;
        f->script = s->next;
        free(s);
    }
    while (f->counters) {
        fake_counter_t *c = f->counters;
        f->counters = c->next;
        free(c->key);
        free(c);
    }
    while (f->jobs) {
        fake_job_t *j = f->jobs;
        f->jobs = j->next;
        free(j->prompt);
        free(j->faults);
        free(j);
    }
    json_array_clear(f->log);
    json_object_clear(f->counts);
    json_object_clear(f->bodies);
    f->seq = 0;
}

/* --- control --------------------------------------------------------------------------- */

static json_t *body_json(gf_http_req_t *r)
{
    size_t n;
    const char *b = gf_http_req_body(r, &n);
    return json_loadb(b ? b : "", n, 0, NULL);
}

static void on_faults(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *root = body_json(r);
    if (!json_is_array(root)) {
        json_decref(root);
        gf_http_respond_error(r, 400, "invalid_request", "an array of {match,mode,times}", NULL);
        return;
    }
    fake_script_t **tail = &f->script;
    while (*tail)
        tail = &(*tail)->next;
    size_t i;
    json_t *e;
    json_array_foreach(root, i, e)
    {
        fake_script_t *s = gf_xcalloc(1, sizeof(*s));
        const char *m = json_string_value(json_object_get(e, "match"));
        const char *mode = json_string_value(json_object_get(e, "mode"));
        const char *arg = json_string_value(json_object_get(e, "arg"));
        json_t *t = json_object_get(e, "times");
        snprintf(s->match, sizeof(s->match), "%s", m ? m : "");
        snprintf(s->mode, sizeof(s->mode), "%s", mode ? mode : "");
        snprintf(s->arg, sizeof(s->arg), "%s", arg ? arg : "");
        s->times = json_is_integer(t) ? (int)json_integer_value(t) : 1;
        *tail = s;
        tail = &s->next;
    }
    json_decref(root);
    fake_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void on_log(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    fake_json(r, 200, json_pack("{s:O,s:O}", "requests", f->log, "counts", f->counts));
}

static void on_reset(gf_http_req_t *r, void *data)
{
    state_clear(data);
    fake_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void on_clock(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *root = body_json(r);
    f->clock_offset += (int64_t)json_integer_value(json_object_get(root, "advance_s"));
    json_decref(root);
    fake_json(r, 200, json_pack("{s:I}", "now", (json_int_t)fake_now(f)));
}

static void on_config(gf_http_req_t *r, void *data)
{
    fake_t *f = data;
    json_t *root = body_json(r), *v;
    if ((v = json_object_get(root, "latency_ms")))
        f->latency_ms = (int)json_integer_value(v);
    if ((v = json_object_get(root, "polls")))
        f->polls = (int)json_integer_value(v);
    if ((v = json_object_get(root, "retry_after")))
        f->retry_after = (int)json_integer_value(v);
    if ((v = json_object_get(root, "cdn_ttl_s")))
        f->cdn_ttl_s = (int)json_integer_value(v);
    json_decref(root);
    fake_json(r, 200, json_pack("{s:b}", "ok", 1));
}

/* --- main ------------------------------------------------------------------------------ */

static uv_signal_t sig_term, sig_int;

static void on_stopped(gf_httpd_t *h, void *data)
{
    (void)h;
    (void)data;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    fake_t *f = s->data;
    /* Pending delayed and stalled answers end now, so the server can drain. */
    while (f->delays) {
        fake_delay_t *d = f->delays;
        delay_unlink(d);
        uv_timer_stop(&d->timer);
        if (d->stall)
            gf_http_req_on_close(d->r, NULL, NULL);
        gf_http_respond(d->r, 503, "text/plain", "shutting down", 13);
        free(d->arg);
        uv_close((uv_handle_t *)&d->timer, on_delay_closed);
    }
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_int);
    gf_httpd_stop(f->httpd, on_stopped, f);
}

static int arg_int(int argc, char **argv, const char *name, int def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return atoi(argv[i + 1]);
    return def;
}

static const char *arg_str(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    fake_t f = {.loop = loop,
                .latency_ms = arg_int(argc, argv, "--latency-ms", 0),
                .polls = arg_int(argc, argv, "--polls", 2),
                .retry_after = arg_int(argc, argv, "--retry-after", 1),
                .cdn_ttl_s = arg_int(argc, argv, "--cdn-ttl", 600),
                .log = json_array(),
                .counts = json_object(),
                .bodies = json_object()};
    gf_httpd_opts_t o;
    gf_httpd_opts_default(&o);
    o.host = "127.0.0.1";
    o.port = arg_int(argc, argv, "--port", 0);
    o.name = "fake";
    o.max_connections = 100000;
    o.idle_timeout_ms = 600000;
    o.max_body_bytes = 32 * 1024 * 1024;
    o.stream_max_queued_bytes = 64 * 1024 * 1024;
    o.shutdown_timeout_ms = 2000;
    gf_log_min_level = GF_LOG_WARN;
    gf_err_t err = {0};
    f.httpd = gf_httpd_new(loop, &o, &err);
    if (f.httpd == NULL || (fake_routes(&f), 0) ||
        gf_httpd_route(f.httpd, "POST", "/__fake/faults", 0, on_faults, &f) < 0 ||
        gf_httpd_route(f.httpd, "GET", "/__fake/log", 0, on_log, &f) < 0 ||
        gf_httpd_route(f.httpd, "POST", "/__fake/reset", 0, on_reset, &f) < 0 ||
        gf_httpd_route(f.httpd, "POST", "/__fake/clock", 0, on_clock, &f) < 0 ||
        gf_httpd_route(f.httpd, "POST", "/__fake/config", 0, on_config, &f) < 0 ||
        gf_httpd_listen(f.httpd, &err) < 0) {
        fprintf(stderr, "farm-fake-provider: %s\n", err.msg);
        return 1;
    }
    int port = gf_httpd_port(f.httpd);
    snprintf(f.base, sizeof(f.base), "http://127.0.0.1:%d", port);
    const char *pf = arg_str(argc, argv, "--port-file");
    if (pf) {
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s.tmp", pf);
        FILE *fp = fopen(tmp, "w");
        if (fp == NULL || fprintf(fp, "%d\n", port) < 0 || fclose(fp) != 0 || rename(tmp, pf)) {
            perror("farm-fake-provider: --port-file");
            return 1;
        }
    }
    printf("%d\n", port);
    fflush(stdout);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    sig_term.data = sig_int.data = &f;
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    gf_httpd_free(f.httpd);
    state_clear(&f);
    json_decref(f.log);
    json_decref(f.counts);
    json_decref(f.bodies);
    int rc = uv_loop_close(loop);
    return rc == 0 ? 0 : 2;
}
