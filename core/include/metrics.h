/*
 * core/include/metrics.h - counters, gauges and histograms with labels, rendered in
 * the Prometheus text exposition format (version 0.0.4).
 *
 * A registry belongs to one process and is touched from its loop thread only
 * (work on the thread pool reports its timings from the after-work callback).
 * Hot paths look a series up once with gf_metric_get() and keep the pointer;
 * an update is then one add on a double.
 */
#ifndef GF_METRICS_H
#define GF_METRICS_H

#include <stddef.h>

typedef struct gf_metrics gf_metrics_t;
typedef struct gf_mfamily gf_mfamily_t;
typedef struct gf_metric gf_metric_t;

#define GF_METRICS_MAX_LABELS 4

/* Returns a new, empty registry; free with gf_metrics_free(). */
gf_metrics_t *gf_metrics_new(void);
void gf_metrics_free(gf_metrics_t *m);

/*
 * Registers a family. `labels` is a comma-separated list of label names
 * ("route,method,status") or NULL; at most GF_METRICS_MAX_LABELS. The registry
 * owns the family; registering the same name twice returns the first one.
 * `buckets` (histograms) are upper bounds in increasing order, copied.
 */
gf_mfamily_t *gf_metrics_counter(gf_metrics_t *m, const char *name, const char *help,
                                 const char *labels);
gf_mfamily_t *gf_metrics_gauge(gf_metrics_t *m, const char *name, const char *help,
                               const char *labels);
gf_mfamily_t *gf_metrics_histogram(gf_metrics_t *m, const char *name, const char *help,
                                   const char *labels, const double *buckets, size_t nbuckets);

/* Default latency buckets in seconds, 1 ms .. 60 s. */
extern const double gf_metrics_latency_buckets[];
extern const size_t gf_metrics_latency_nbuckets;

/*
 * Returns the series of `f` with these label values (as many as the family
 * has labels, in order), creating it at zero. Borrowed: valid as long as the
 * registry. Values are copied.
 */
gf_metric_t *gf_metric_get(gf_mfamily_t *f, const char *const *values);

/* Convenience for families with up to 3 labels; pass NULL for unused ones. */
gf_metric_t *gf_metric_with(gf_mfamily_t *f, const char *v1, const char *v2, const char *v3);

void gf_metric_inc(gf_metric_t *s);
void gf_metric_add(gf_metric_t *s, double v);
void gf_metric_set(gf_metric_t *s, double v);
void gf_metric_observe(gf_metric_t *s, double v);
double gf_metric_value(const gf_metric_t *s);

/* Renders every family; returns a new string (free with free()). */
char *gf_metrics_render(const gf_metrics_t *m);

#endif
