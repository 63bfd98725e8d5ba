/*
 * tests/fake/fake_answers.c - what the protocol routes share to answer: the
 * fault lookup (header, script, prompt markers), JSON answers, delayed and
 * stalled answers, and raw (broken) answers.
 *
 * Raw answers reach into core/httpd's internals (httpd_int.h) on purpose:
 * a well-behaved server cannot otherwise send a truncated body or reset.
 */
#include "fake.h"
#include "httpd_int.h"

#include <stdlib.h>
#include <string.h>

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

/* A delay record for request `r`, its timer initialised, first in the fake's list. */
static fake_delay_t *delay_new(fake_t *f, gf_http_req_t *r)
{
    fake_delay_t *d = gf_xcalloc(1, sizeof(*d));
    d->f = f;
    d->r = r;
    uv_timer_init(f->loop, &d->timer);
    d->timer.data = d;
    d->next = f->delays;
    if (f->delays)
        f->delays->prev = d;
    f->delays = d;
    return d;
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

static void on_raw_closed(gf_http_req_t *r, void *data)
{
    fake_delay_t *d = data;
    if (d) { /* a stall: forget the delay record */
        delay_unlink(d);
        uv_close((uv_handle_t *)&d->timer, on_delay_closed);
    }
    gf_http_respond(r, 500, "text/plain", "", 0); /* the client is gone: frees `r` */
}

void fake_raw_close(gf_http_req_t *r, const char *bytes, size_t n)
{
    httpd_conn_t *c = r->conn;
    if (c == NULL) {
        if (!fake_h2_reset(r)) /* HTTP/2 has no broken bytes: the stream is reset */
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
    if (c == NULL && !fake_h2_owns(r)) {
        gf_http_respond(r, 500, "text/plain", "", 0);
        return;
    }
    fake_delay_t *d = delay_new(f, r);
    d->stall = 1;
    gf_http_req_on_close(r, on_raw_closed, d);
    if (c) /* over HTTP/2 nothing is sent until the client resets the stream */
        httpd__conn_write(c, bytes, n, NULL, 0);
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
    fake_delay_t *d = delay_new(f, r);
    d->fn = fn;
    d->arg = arg;
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
    if (strcmp(provider, "replicate") == 0 && fake_replicate_problem(r, ft))
        return 1;
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
    } else if (strcmp(m, "moved_301") == 0) {
        /* An endpoint that moved (a retired host, a login proxy in front of it). */
        gf_http_set_header(r, "Location", "https://moved.example.invalid/v2/");
        answer_text(r, 301, "text/html", "<html><h1>301 Moved Permanently</h1></html>");
    } else if (strcmp(m, "gone_410") == 0) {
        fake_json(r, 410,
                  json_pack("{s:s}", "error",
                            "https://api-inference.huggingface.co/ is no longer "
                            "supported. Please use https://router.huggingface.co/ "
                            "instead."));
    } else if (strcmp(m, "not_supported_400") == 0) {
        /* The HF router's answer for a model no provider serves on the route. */
        fake_json(r, 400,
                  json_pack("{s:s}", key,
                            "Model black-forest-labs/FLUX.1-dev is not supported by "
                            "provider hf-inference"));
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
    } else if (strcmp(m, "huge_json_201") == 0) {
        /* A 201 whose JSON passes the farm's 256 KiB bound (a prediction that
         * echoes its input images as data URLs): arg KiB of padding, 300. */
        size_t n = (size_t)(atof(ft->arg[0] ? ft->arg : "300") * 1024);
        char *body = gf_xmalloc(n + 16);
        memcpy(body, "{\"pad\":\"", 8);
        memset(body + 8, 'x', n);
        memcpy(body + 8 + n, "\"}", 3);
        gf_http_respond(r, 201, "application/json", body, n + 10);
        free(body);
    } else if (strcmp(m, "reset") == 0) {
        fake_raw_close(r, NULL, 0);
    } else if (strcmp(m, "slow_headers") == 0) {
        fake_later(f, r, (uint64_t)(atof(ft->arg[0] ? ft->arg : "60") * 1000), after_slow, NULL);
    } else {
        return 0;
    }
    return 1;
}

void fake_answers_end(fake_t *f)
{
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
}
