/*
 * tests/unit/core/test_metrics.c - core/metrics.c: series identity and the
 * Prometheus text exposition (0.0.4) compared byte for byte, since a scraper
 * rejects the whole page on one malformed line.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

/* Renders `m`, compares with `want`, frees the text. */
static void assert_render(const gf_metrics_t *m, const char *want)
{
    char *got = gf_metrics_render(m);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_empty_registry_renders_nothing(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    assert_render(m, "");
    gf_metrics_free(m);
    gf_metrics_free(NULL);
}

static void test_counter_with_labels_renders_each_series_in_creation_order(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_mfamily_t *f = gf_metrics_counter(
        m, "farm_jobs_total", "jobs finished, by provider and status", "provider,status");
    gf_metric_t *ok = gf_metric_with(f, "hf", "ok", NULL);
    gf_metric_inc(ok);
    gf_metric_inc(ok);
    gf_metric_inc(ok);
    gf_metric_add(gf_metric_with(f, "bfl", "failed", NULL), 2.5);
    assert_render(m, "# HELP farm_jobs_total jobs finished, by provider and status\n"
                     "# TYPE farm_jobs_total counter\n"
                     "farm_jobs_total{provider=\"hf\",status=\"ok\"} 3\n"
                     "farm_jobs_total{provider=\"bfl\",status=\"failed\"} 2.5\n");
    assert_true(gf_metric_value(ok) == 3.0);
    gf_metrics_free(m);
}

static void test_family_without_series_renders_only_help_and_type(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_metrics_counter(m, "farm_a_total", "a", "x");
    gf_metrics_gauge(m, "farm_b", "b", NULL);
    assert_render(m, "# HELP farm_a_total a\n# TYPE farm_a_total counter\n"
                     "# HELP farm_b b\n# TYPE farm_b gauge\n");
    gf_metrics_free(m);
}

static void test_gauge_without_labels_keeps_the_last_value(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_metric_t *g = gf_metric_with(gf_metrics_gauge(m, "farm_queue_depth", "jobs waiting", NULL),
                                    NULL, NULL, NULL);
    assert_render(m, "# HELP farm_queue_depth jobs waiting\n# TYPE farm_queue_depth gauge\n"
                     "farm_queue_depth 0\n");
    gf_metric_set(g, 42);
    gf_metric_add(g, 1);
    gf_metric_set(g, -1.5);
    assert_render(m, "# HELP farm_queue_depth jobs waiting\n# TYPE farm_queue_depth gauge\n"
                     "farm_queue_depth -1.5\n");
    gf_metric_set(g, 0.1);
    assert_render(m, "# HELP farm_queue_depth jobs waiting\n# TYPE farm_queue_depth gauge\n"
                     "farm_queue_depth 0.1\n");
    gf_metric_set(g, INFINITY);
    assert_render(m, "# HELP farm_queue_depth jobs waiting\n# TYPE farm_queue_depth gauge\n"
                     "farm_queue_depth +Inf\n");
    gf_metric_set(g, NAN);
    assert_render(m, "# HELP farm_queue_depth jobs waiting\n# TYPE farm_queue_depth gauge\n"
                     "farm_queue_depth NaN\n");
    gf_metrics_free(m);
}

static void test_histogram_buckets_are_cumulative_with_inf_sum_and_count(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    static const double buckets[] = {0.25, 1, 2.5};
    gf_mfamily_t *f =
        gf_metrics_histogram(m, "farm_latency_seconds", "request latency", "route", buckets, 3);
    gf_metric_t *s = gf_metric_with(f, "/v1/x", NULL, NULL);
    gf_metric_observe(s, 0.125);
    gf_metric_observe(s, 0.25); /* on a bound: counted in that bucket (le) */
    gf_metric_observe(s, 0.75);
    gf_metric_observe(s, 4);                /* above every bound: only in +Inf */
    gf_metric_with(f, "/v1/y", NULL, NULL); /* an untouched series renders zeros */
    assert_render(m, "# HELP farm_latency_seconds request latency\n"
                     "# TYPE farm_latency_seconds histogram\n"
                     "farm_latency_seconds_bucket{route=\"/v1/x\",le=\"0.25\"} 2\n"
                     "farm_latency_seconds_bucket{route=\"/v1/x\",le=\"1\"} 3\n"
                     "farm_latency_seconds_bucket{route=\"/v1/x\",le=\"2.5\"} 3\n"
                     "farm_latency_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 4\n"
                     "farm_latency_seconds_sum{route=\"/v1/x\"} 5.125\n"
                     "farm_latency_seconds_count{route=\"/v1/x\"} 4\n"
                     "farm_latency_seconds_bucket{route=\"/v1/y\",le=\"0.25\"} 0\n"
                     "farm_latency_seconds_bucket{route=\"/v1/y\",le=\"1\"} 0\n"
                     "farm_latency_seconds_bucket{route=\"/v1/y\",le=\"2.5\"} 0\n"
                     "farm_latency_seconds_bucket{route=\"/v1/y\",le=\"+Inf\"} 0\n"
                     "farm_latency_seconds_sum{route=\"/v1/y\"} 0\n"
                     "farm_latency_seconds_count{route=\"/v1/y\"} 0\n");
    assert_true(gf_metric_value(s) == 4.0); /* a histogram's value is its count */
    gf_metrics_free(m);
}

static void test_histogram_without_labels_has_only_le(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    static const double buckets[] = {0.125, 0.5};
    gf_metric_t *s =
        gf_metric_with(gf_metrics_histogram(m, "farm_d", "d", NULL, buckets, 2), NULL, NULL, NULL);
    gf_metric_observe(s, 0.5);
    gf_metric_observe(s, 0.0625);
    assert_render(m, "# HELP farm_d d\n# TYPE farm_d histogram\n"
                     "farm_d_bucket{le=\"0.125\"} 1\n"
                     "farm_d_bucket{le=\"0.5\"} 2\n"
                     "farm_d_bucket{le=\"+Inf\"} 2\n"
                     "farm_d_sum 0.5625\n"
                     "farm_d_count 2\n");
    gf_metrics_free(m);
}

static void test_label_values_escape_backslash_quote_and_newline(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_mfamily_t *f = gf_metrics_counter(m, "farm_e_total", "e", "path,reason");
    gf_metric_inc(gf_metric_with(f, "C:\\dir\\\"x\"", "line1\nline2", NULL));
    assert_render(m, "# HELP farm_e_total e\n# TYPE farm_e_total counter\n"
                     "farm_e_total{path=\"C:\\\\dir\\\\\\\"x\\\"\",reason=\"line1\\nline2\"} 1\n");
    gf_metrics_free(m);
}

static void test_help_escapes_backslash_and_newline_but_not_quotes(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_metrics_gauge(m, "farm_h", "first line\nsecond \\ \"quoted\"", NULL);
    assert_render(m, "# HELP farm_h first line\\nsecond \\\\ \"quoted\"\n# TYPE farm_h gauge\n");
    gf_metrics_free(m);
}

static void test_same_labels_return_the_same_series(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_mfamily_t *f = gf_metrics_counter(m, "farm_r_total", "r", "route,method,status");
    gf_metric_t *a = gf_metric_with(f, "/x", "GET", "200");
    const char *values[] = {"/x", "GET", "200"};
    assert_ptr_equal(gf_metric_get(f, values), a);
    assert_ptr_equal(gf_metric_with(f, "/x", "GET", "200"), a);
    gf_metric_t *b = gf_metric_with(f, "/x", "GET", "404");
    assert_ptr_not_equal(a, b);
    gf_metric_inc(a);
    gf_metric_inc(gf_metric_with(f, "/x", "GET", "200"));
    assert_true(gf_metric_value(a) == 2.0);
    assert_true(gf_metric_value(b) == 0.0);
    /* Label values are copied: the caller's buffer may change afterwards. */
    char buf[8] = "/y";
    gf_metric_t *c = gf_metric_with(f, buf, "GET", "200");
    strcpy(buf, "/z");
    assert_ptr_equal(gf_metric_with(f, "/y", "GET", "200"), c);
    /* A missing value counts as empty. */
    assert_ptr_equal(gf_metric_with(f, "/x", "GET", NULL), gf_metric_with(f, "/x", "GET", ""));
    gf_metrics_free(m);
}

static void test_registering_a_name_twice_returns_the_first_family(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_mfamily_t *f = gf_metrics_counter(m, "farm_x_total", "x", "a");
    assert_ptr_equal(gf_metrics_counter(m, "farm_x_total", "other help", "a"), f);
    gf_metric_inc(gf_metric_with(f, "1", NULL, NULL));
    assert_render(m, "# HELP farm_x_total x\n# TYPE farm_x_total counter\n"
                     "farm_x_total{a=\"1\"} 1\n");
    gf_metrics_free(m);
}

static void test_families_render_in_registration_order(void **state)
{
    (void)state;
    gf_metrics_t *m = gf_metrics_new();
    gf_metric_inc(
        gf_metric_with(gf_metrics_counter(m, "farm_z_total", "z", NULL), NULL, NULL, NULL));
    gf_metric_set(gf_metric_with(gf_metrics_gauge(m, "farm_a", "a", NULL), NULL, NULL, NULL), 7);
    assert_render(m, "# HELP farm_z_total z\n# TYPE farm_z_total counter\nfarm_z_total 1\n"
                     "# HELP farm_a a\n# TYPE farm_a gauge\nfarm_a 7\n");
    gf_metrics_free(m);
}

static void test_default_latency_buckets_increase_from_1ms_to_60s(void **state)
{
    (void)state;
    assert_true(gf_metrics_latency_nbuckets > 2);
    assert_true(gf_metrics_latency_buckets[0] == 0.001);
    assert_true(gf_metrics_latency_buckets[gf_metrics_latency_nbuckets - 1] == 60.0);
    for (size_t i = 1; i < gf_metrics_latency_nbuckets; i++)
        assert_true(gf_metrics_latency_buckets[i] > gf_metrics_latency_buckets[i - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_registry_renders_nothing),
        cmocka_unit_test(test_counter_with_labels_renders_each_series_in_creation_order),
        cmocka_unit_test(test_family_without_series_renders_only_help_and_type),
        cmocka_unit_test(test_gauge_without_labels_keeps_the_last_value),
        cmocka_unit_test(test_histogram_buckets_are_cumulative_with_inf_sum_and_count),
        cmocka_unit_test(test_histogram_without_labels_has_only_le),
        cmocka_unit_test(test_label_values_escape_backslash_quote_and_newline),
        cmocka_unit_test(test_help_escapes_backslash_and_newline_but_not_quotes),
        cmocka_unit_test(test_same_labels_return_the_same_series),
        cmocka_unit_test(test_registering_a_name_twice_returns_the_first_family),
        cmocka_unit_test(test_families_render_in_registration_order),
        cmocka_unit_test(test_default_latency_buckets_increase_from_1ms_to_60s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
