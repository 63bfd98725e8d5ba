/*
 * tests/fake/fake.c - farm-fake-provider's main, its control endpoints
 * (/__fake/faults, /__fake/log, /__fake/reset, /__fake/clock, /__fake/config),
 * the request log and the jobs. What the routes share to answer (faults,
 * delayed and raw answers) is in fake_answers.c.
 *
 * Usage: farm-fake-provider [--port N] [--port-file PATH] [--latency-ms N]
 *        [--polls N] [--retry-after S] [--cdn-ttl S]
 *        [--tls-port-file PATH --tls-cert PATH]
 * It prints its port on stdout once listening (port 0 by default: any free).
 * The port serves HTTP/1.1 and, to a client that opens with HTTP/2's preface
 * (prior knowledge, h2c), HTTP/2 (fake_h2.c). With --tls-port-file it also
 * serves h2 over TLS on a second port, its certificate written to --tls-cert.
 */
#include "fake.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t fake_now(const fake_t *f)
{
    return (int64_t)time(NULL) + f->clock_offset;
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
    json_object_set_new(e, "protocol", json_string(fake_protocol(r)));
    json_array_append_new(f->log, e);
    return e;
}

fake_job_t *fake_job_new(fake_t *f, gf_http_req_t *r, const char *provider, const char *prompt,
                         int64_t seed, int width, int height, fake_format_t format)
{
    fake_job_t *j = gf_xcalloc(1, sizeof(*j));
    gf_uuid4(j->id);
    snprintf(j->provider, sizeof(j->provider), "%s", provider);
    j->prompt = gf_xstrdup(prompt);
    const char *hdr = gf_http_req_header(r, "x-fake-fault");
    j->faults = gf_xstrdup(hdr ? hdr : "");
    j->seed = seed;
    j->width = width;
    j->height = height;
    j->format = format;
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
    fake_json(r, 200,
              json_pack("{s:O,s:O,s:o}", "requests", f->log, "counts", f->counts, "h2",
                        fake_h2_counts()));
}

static void on_reset(gf_http_req_t *r, void *data)
{
    state_clear(data);
    fake_h2_reset_counts();
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
    if ((v = json_object_get(root, "hf_format")) &&
        fake_format_parse(json_is_string(v) ? json_string_value(v) : "", &f->hf_format) < 0) {
        json_decref(root);
        fake_json(r, 400, json_pack("{s:s}", "error", "hf_format: jpeg, png or webp"));
        return;
    }
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
    fake_answers_end(f); /* so the server can drain */
    fake_h2_stop();
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
        (fake_h2_start(&f), 0) || gf_httpd_listen(f.httpd, &err) < 0) {
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
    const char *tls_pf = arg_str(argc, argv, "--tls-port-file");
    if (tls_pf) {
        const char *cert = arg_str(argc, argv, "--tls-cert");
        int tls_port = 0;
        FILE *fp = NULL;
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s.tmp", tls_pf);
        if (cert == NULL || fake_h2_tls_listen(&f, cert, &tls_port) < 0 ||
            (fp = fopen(tmp, "w")) == NULL || fprintf(fp, "%d\n", tls_port) < 0 ||
            fclose(fp) != 0 || rename(tmp, tls_pf)) {
            fprintf(stderr, "farm-fake-provider: --tls-port-file needs --tls-cert and a port\n");
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
    fake_images_end();
    json_decref(f.log);
    json_decref(f.counts);
    json_decref(f.bodies);
    int rc = uv_loop_close(loop);
    return rc == 0 ? 0 : 2;
}
