/*
 * tests/integration/providers/http2.c - provider calls over HTTP/2
 * (FARM_PROVIDER_HTTP2, net/'s wait to multiplex) against farm-fake-provider,
 * and the fake's own HTTP/2 checked with clients that are not the farm's.
 *
 * The farm's calls go to the fake's TLS port (h2 by ALPN, its certificate as
 * FARM_PROVIDER_CA_FILE), as they go to the real providers: the fake's log
 * says each request's protocol and how many h2 connections it accepted, so
 * the test sees that the calls really were h2 and shared a few connections,
 * and that their images and faults end as over HTTP/1.1. h2c (prior
 * knowledge) from the farm is refused where libcurl is older than 8.0.0
 * (it fails every reused h2c connection there); the fake's h2c is checked
 * with curl's command line and node's http2 module.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "providers_util.h"
#include "support.h"

#define NCALLS 300

static pt_fake_t fk;
static uv_loop_t lp;
static char tls_dir[64], cert[128], tls_base[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/farm-h2-XXXXXX");
    assert_non_null(mkdtemp(tls_dir));
    char tls_port[128];
    snprintf(tls_port, sizeof(tls_port), "%s/tls_port", tls_dir);
    snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
    const char *args[] = {"--tls-port-file", tls_port, "--tls-cert", cert, NULL};
    pt_fake_start(&fk, args);
    int port = ts_wait_port_file(tls_port, 20);
    assert_true(port > 0);
    snprintf(tls_base, sizeof(tls_base), "https://127.0.0.1:%d", port);
    uv_loop_init(&lp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pt_fake_stop(&fk);
    ts_sh("rm -rf '%s'", tls_dir);
    assert_int_equal(uv_loop_close(&lp), 0);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    pt_fake_post(&fk, "reset", "{}");
    /* PNGs, whose size the test reads without a codec (hf answers JPEG by default). */
    pt_fake_post(&fk, "config", "{\"latency_ms\":200,\"hf_format\":\"png\"}");
    return 0;
}

/* hf pointed at the fake over `proto` ("h2": the TLS port; "h1": plain http, HTTP/1.1). */
static gf_config_t *config(const char *proto)
{
    static char base[128], ca[200];
    snprintf(ca, sizeof(ca), "FARM_PROVIDER_CA_FILE=%s", cert);
    if (strcmp(proto, "h2") == 0) {
        snprintf(base, sizeof(base), "FARM_HF_BASE_URL=%s/hf", tls_base);
        const char *extra[] = {base, ca, "FARM_PROVIDER_HTTP2=auto",
                               "FARM_PROVIDER_CONCURRENCY=300", NULL};
        return pt_config(&fk, "hf", extra);
    }
    const char *extra[] = {"FARM_PROVIDER_HTTP2=off", "FARM_PROVIDER_CONCURRENCY=300", NULL};
    return pt_config(&fk, "hf", extra);
}

/* Runs `n` calls at once (prompt i: "a fox <i><suffix>") to their ends. */
static void run_all(provider_t *p, pt_result_t *res, int n, const char *suffix)
{
    static char prompts[NCALLS][96];
    for (int i = 0; i < n; i++) {
        snprintf(prompts[i], sizeof(prompts[i]), "a fox %d%s", i, suffix);
        provider_req_t q = pt_req(prompts[i], 64, 64 + 8 * (i % 4));
        pt_submit(p, &q, &res[i]);
    }
    double until = ts_now() + 120;
    for (int i = 0; i < n; i++)
        while (!res[i].done && ts_now() < until)
            uv_run(&lp, UV_RUN_ONCE);
}

/* The fake's log: how many hf.submit entries came over `proto`, and its h2 connections. */
static void log_counts(const char *proto, long *submits, long *h2_conns)
{
    char *s = pt_fake_log(&fk);
    json_t *root = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(root);
    size_t i;
    json_t *e;
    *submits = 0;
    json_array_foreach(json_object_get(root, "requests"), i, e)
    {
        const char *ep = json_string_value(json_object_get(e, "endpoint"));
        const char *pr = json_string_value(json_object_get(e, "protocol"));
        if (ep && strcmp(ep, "hf.submit") == 0 && pr && strcmp(pr, proto) == 0)
            (*submits)++;
    }
    *h2_conns =
        (long)json_integer_value(json_object_get(json_object_get(root, "h2"), "connections"));
    json_decref(root);
}

static void test_calls_over_h2_share_connections_and_match_http1(void **state)
{
    (void)state;
    static pt_result_t h2[NCALLS], h1[NCALLS];
    gf_err_t err = {0};
    gf_config_t *cfg = config("h2");
    provider_t *p = provider_new(&lp, cfg, NULL, &err);
    assert_non_null(p);
    run_all(p, h2, NCALLS, "");
    pt_close(&lp, p, cfg);
    long submits, conns;
    log_counts("h2", &submits, &conns);
    assert_int_equal(submits, NCALLS); /* every call was an h2 stream */
    /* 300 calls at once on the few connections they need (100 streams each, one spare):
     * the cap of connections per host, without which curl opens more. */
    if (conns < 3 || conns > 4)
        fail_msg("%d calls on %ld connections, not 3 or 4", NCALLS, conns);

    reset(NULL);
    cfg = config("h1");
    p = provider_new(&lp, cfg, NULL, &err);
    assert_non_null(p);
    run_all(p, h1, NCALLS, "");
    pt_close(&lp, p, cfg);
    log_counts("http/1.1", &submits, &conns);
    assert_int_equal(submits, NCALLS);
    assert_int_equal(conns, 0);

    for (int i = 0; i < NCALLS; i++) {
        assert_int_equal(h2[i].done, 1);
        assert_int_equal(h2[i].status, 0);
        assert_int_equal(h1[i].status, 0);
        assert_string_equal(h2[i].mime, "image/png");
        int w, h;
        pt_png_size(h2[i].img, h2[i].len, &w, &h);
        assert_int_equal(w, 64);
        assert_int_equal(h, 64 + 8 * (i % 4));
        assert_int_equal(h2[i].len, h1[i].len);
        assert_memory_equal(h2[i].img, h1[i].img, h1[i].len);
        pt_result_dispose(&h2[i]);
        pt_result_dispose(&h1[i]);
    }
}

/* Faults (prompt markers) end the same over h2 as over HTTP/1.1. */
static void test_faults_end_the_same_over_h2(void **state)
{
    (void)state;
    static const char *const markers[] = {
        " [[rate_limit:0*1]]", /* 429 once, then the image */
        " [[server_500*1]]",   /* 500 once, retried */
        " [[auth_401]]",       /* fails, not retryable */
        " [[credits_402]]",      " [[validation_422]]",
        " [[reset*1]]", /* the connection (h1) or the stream (h2) cut: retried */
        " [[b64_json:garbage]]",
    };
    size_t n = sizeof(markers) / sizeof(markers[0]);
    for (size_t m = 0; m < n; m++) {
        pt_result_t r[2];
        memset(r, 0, sizeof(r));
        for (int k = 0; k < 2; k++) {
            reset(NULL);
            pt_fake_post(&fk, "config", "{\"latency_ms\":0}");
            gf_err_t err = {0};
            gf_config_t *cfg = config(k == 0 ? "h2" : "h1");
            provider_t *p = provider_new(&lp, cfg, NULL, &err);
            assert_non_null(p);
            run_all(p, &r[k], 1, markers[m]);
            pt_close(&lp, p, cfg);
            long submits, conns;
            log_counts(k == 0 ? "h2" : "http/1.1", &submits, &conns);
            assert_true(submits >= 1);
        }
        if (r[0].status != r[1].status || r[0].err.code != r[1].err.code ||
            r[0].err.fault != r[1].err.fault || r[0].err.retryable != r[1].err.retryable ||
            r[0].err.http_status != r[1].err.http_status)
            fail_msg("%s: h2 status %d code %d fault %d http %ld; h1 status %d code %d fault %d "
                     "http %ld",
                     markers[m], r[0].status, r[0].err.code, r[0].err.fault, r[0].err.http_status,
                     r[1].status, r[1].err.code, r[1].err.fault, r[1].err.http_status);
        assert_int_equal(r[0].len, r[1].len);
        pt_result_dispose(&r[0]);
        pt_result_dispose(&r[1]);
    }
}

/* prior-knowledge: refused where libcurl fails h2c on reuse; else the calls go h2c. */
static void test_prior_knowledge_is_refused_or_goes_h2c(void **state)
{
    (void)state;
    const char *extra[] = {"FARM_PROVIDER_HTTP2=prior-knowledge", NULL};
    gf_config_t *cfg = pt_config(&fk, "hf", extra);
    gf_err_t err = {0};
    provider_t *p = provider_new(&lp, cfg, NULL, &err);
    if (curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        assert_null(p);
        assert_int_equal(err.code, GF_EINVAL);
        assert_non_null(strstr(err.msg, "FARM_PROVIDER_HTTP2=prior-knowledge"));
        assert_non_null(strstr(err.msg, "10634"));
        gf_cfg_free(cfg);
        return;
    }
    assert_non_null(p);
    static pt_result_t r[20];
    run_all(p, r, 20, "");
    pt_close(&lp, p, cfg);
    long submits, conns;
    log_counts("h2", &submits, &conns);
    assert_int_equal(submits, 20);
    assert_true(conns >= 1 && conns <= 2);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(r[i].status, 0);
        pt_result_dispose(&r[i]);
    }
}

static void test_an_unreadable_ca_file_is_refused(void **state)
{
    (void)state;
    const char *extra[] = {"FARM_PROVIDER_CA_FILE=/nonexistent/ca.pem", NULL};
    gf_config_t *cfg = pt_config(&fk, "hf", extra);
    gf_err_t err = {0};
    provider_t *p = provider_new(&lp, cfg, NULL, &err);
    assert_null(p);
    assert_non_null(strstr(err.msg, "FARM_PROVIDER_CA_FILE=/nonexistent/ca.pem"));
    gf_cfg_free(cfg);
}

/* The fake's h2c and its TLS port to curl's command line: the same answers as HTTP/1.1. */
static void test_the_fake_speaks_h2_to_curls_command_line(void **state)
{
    (void)state;
    char out[3][300];
    const char *mode[3] = {"--http1.1", "--http2-prior-knowledge", "--http2"};
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof(out[k]), "%s/out%d", tls_dir, k);
        char url[200];
        snprintf(url, sizeof(url), "%s/hf/models/black-forest-labs/FLUX.1-dev",
                 k == 2 ? tls_base : fk.base);
        int rc = ts_sh("curl -sS -f %s --cacert '%s' -o '%s' -w '%%{http_version}' "
                       "-H 'Authorization: Bearer hf_x' -H 'Content-Type: application/json' "
                       "-d '{\"inputs\":\"an owl\",\"parameters\":{\"width\":48,\"height\":40}}' "
                       "'%s' > '%s.v'",
                       mode[k], cert, out[k], url, out[k]);
        assert_int_equal(rc, 0);
        char v[16] = "", vpath[sizeof(out) + 8]; /* gcc bounds out[k] by the whole array */
        snprintf(vpath, sizeof(vpath), "%s.v", out[k]);
        FILE *fp = fopen(vpath, "r");
        assert_non_null(fp);
        assert_non_null(fgets(v, sizeof(v), fp));
        fclose(fp);
        assert_string_equal(v, k == 0 ? "1.1" : "2");
    }
    assert_int_equal(ts_sh("cmp -s '%s' '%s' && cmp -s '%s' '%s'", out[0], out[1], out[0], out[2]),
                     0);
    long submits, conns;
    log_counts("h2", &submits, &conns);
    assert_int_equal(submits, 2);
    /* A 404 over h2c is the JSON error shape, as over HTTP/1.1. */
    assert_int_equal(ts_sh("curl -sS --http2-prior-knowledge '%s/nowhere' | grep -q "
                           "'\"code\":\"not_found\"'",
                           fk.base),
                     0);
}

/* node's http2 module: 40 streams at once on one h2c session, each answered. */
static void test_the_fake_multiplexes_h2c_for_nodes_client(void **state)
{
    (void)state;
    /* node is a test dependency (scripts/install-deps): missing, it is a failure. */
    if (ts_sh("command -v node >/dev/null") != 0)
        fail_msg("node is not installed: run scripts/install-deps");
    char script[320];
    snprintf(script, sizeof(script), "%s/client.js", tls_dir);
    FILE *fp = fopen(script, "w");
    assert_non_null(fp);
    fprintf(fp, "const http2 = require('http2');\n"
                "const s = http2.connect(process.argv[2]);\n"
                "let left = 40, bad = 0;\n"
                "for (let i = 0; i < 40; i++) {\n"
                "  const body = JSON.stringify({inputs: 'a cat ' + i, parameters: {width: 32, "
                "height: 32}});\n"
                "  const r = s.request({':method': 'POST', ':path': '/hf/models/a/b',\n"
                "    'authorization': 'Bearer hf_x', 'content-type': 'application/json'});\n"
                "  let n = 0, status = 0;\n"
                "  r.on('response', (h) => { status = h[':status']; });\n"
                "  r.on('data', (d) => { n += d.length; });\n"
                "  r.on('end', () => { if (status !== 200 || n < 100) bad++;\n"
                "    if (--left === 0) { s.close(); console.log(bad ? 'bad ' + bad : 'ok'); } });\n"
                "  r.end(body);\n"
                "}\n");
    fclose(fp);
    assert_int_equal(ts_sh("node '%s' '%s' | grep -qx ok", script, fk.base), 0);
    long submits, conns;
    log_counts("h2", &submits, &conns);
    assert_int_equal(submits, 40);
    assert_int_equal(conns, 1); /* all 40 on one connection */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_calls_over_h2_share_connections_and_match_http1, reset),
        cmocka_unit_test_setup(test_faults_end_the_same_over_h2, reset),
        cmocka_unit_test_setup(test_prior_knowledge_is_refused_or_goes_h2c, reset),
        cmocka_unit_test_setup(test_an_unreadable_ca_file_is_refused, reset),
        cmocka_unit_test_setup(test_the_fake_speaks_h2_to_curls_command_line, reset),
        cmocka_unit_test_setup(test_the_fake_multiplexes_h2c_for_nodes_client, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
