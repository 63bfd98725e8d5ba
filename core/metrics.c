/*
 * core/metrics.c - the metrics registry and its Prometheus rendering.
 *
 * Families keep registration order and series keep creation order, so the
 * rendered text is stable (tests compare it byte for byte).
 */
#include "metrics.h"
#include "err.h"
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype;

struct gf_metric {
    gf_metric_t *next;
    gf_mfamily_t *family;
    char *values[GF_METRICS_MAX_LABELS];
    double value;   /* counter, gauge; histogram sum */
    double count;   /* histogram */
    double *counts; /* histogram, per bucket, not cumulative */
};

struct gf_mfamily {
    gf_mfamily_t *next;
    mtype type;
    char *name, *help;
    char *labels[GF_METRICS_MAX_LABELS];
    size_t nlabels;
    double *buckets;
    size_t nbuckets;
    gf_metric_t *series, *last;
};

struct gf_metrics {
    gf_mfamily_t *families, *last;
};

const double gf_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60};
const size_t gf_metrics_latency_nbuckets =
    sizeof(gf_metrics_latency_buckets) / sizeof(gf_metrics_latency_buckets[0]);

gf_metrics_t *gf_metrics_new(void)
{
    return gf_xcalloc(1, sizeof(gf_metrics_t));
}

static void series_free(gf_metric_t *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->counts);
    free(s);
}

void gf_metrics_free(gf_metrics_t *m)
{
    if (m == NULL)
        return;
    gf_mfamily_t *f = m->families;
    while (f != NULL) {
        gf_mfamily_t *fn = f->next;
        gf_metric_t *s = f->series;
        while (s != NULL) {
            gf_metric_t *sn = s->next;
            series_free(s, f->nlabels);
            s = sn;
        }
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        free(f->name);
        free(f->help);
        free(f->buckets);
        free(f);
        f = fn;
    }
    free(m);
}

static gf_mfamily_t *family_add(gf_metrics_t *m, mtype type, const char *name, const char *help,
                                const char *labels)
{
    for (gf_mfamily_t *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    gf_mfamily_t *f = gf_xcalloc(1, sizeof(*f));
    f->type = type;
    f->name = gf_xstrdup(name);
    f->help = gf_xstrdup(help);
    for (const char *p = labels; p && *p && f->nlabels < GF_METRICS_MAX_LABELS;) {
        size_t n = strcspn(p, ",");
        f->labels[f->nlabels++] = gf_xstrndup(p, n);
        p += n + (p[n] == ',');
    }
    if (m->last)
        m->last->next = f;
    else
        m->families = f;
    m->last = f;
    return f;
}

gf_mfamily_t *gf_metrics_counter(gf_metrics_t *m, const char *name, const char *help,
                                 const char *labels)
{
    return family_add(m, M_COUNTER, name, help, labels);
}

gf_mfamily_t *gf_metrics_gauge(gf_metrics_t *m, const char *name, const char *help,
                               const char *labels)
{
    return family_add(m, M_GAUGE, name, help, labels);
}

gf_mfamily_t *gf_metrics_histogram(gf_metrics_t *m, const char *name, const char *help,
                                   const char *labels, const double *buckets, size_t nbuckets)
{
    gf_mfamily_t *f = family_add(m, M_HISTOGRAM, name, help, labels);
    if (f->buckets == NULL) {
        f->buckets = gf_xmalloc(nbuckets * sizeof(double));
        memcpy(f->buckets, buckets, nbuckets * sizeof(double));
        f->nbuckets = nbuckets;
    }
    return f;
}

gf_metric_t *gf_metric_get(gf_mfamily_t *f, const char *const *values)
{
    for (gf_metric_t *s = f->series; s; s = s->next) {
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->values[i], values[i] ? values[i] : "") == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    gf_metric_t *s = gf_xcalloc(1, sizeof(*s));
    s->family = f;
    for (size_t i = 0; i < f->nlabels; i++)
        s->values[i] = gf_xstrdup(values[i] ? values[i] : "");
    if (f->type == M_HISTOGRAM)
        s->counts = gf_xcalloc(f->nbuckets ? f->nbuckets : 1, sizeof(double));
    if (f->last)
        f->last->next = s;
    else
        f->series = s;
    f->last = s;
    return s;
}

gf_metric_t *gf_metric_with(gf_mfamily_t *f, const char *v1, const char *v2, const char *v3)
{
    const char *values[GF_METRICS_MAX_LABELS] = {v1, v2, v3, NULL};
    return gf_metric_get(f, values);
}

void gf_metric_inc(gf_metric_t *s)
{
    s->value += 1;
}

void gf_metric_add(gf_metric_t *s, double v)
{
    s->value += v;
}

void gf_metric_set(gf_metric_t *s, double v)
{
    s->value = v;
}

void gf_metric_observe(gf_metric_t *s, double v)
{
    gf_mfamily_t *f = s->family;
    s->value += v;
    s->count += 1;
    /* Find the first bucket whose bound holds v; larger values land only in +Inf. */
    size_t lo = 0, hi = f->nbuckets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= f->buckets[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < f->nbuckets)
        s->counts[lo] += 1;
}

double gf_metric_value(const gf_metric_t *s)
{
    return s->family->type == M_HISTOGRAM ? s->count : s->value;
}

/* Shortest text that reads back as the same double. */
static void put_number(gf_buf_t *b, double v)
{
    char tmp[40];
    if (isnan(v)) {
        gf_buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        gf_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(tmp, sizeof(tmp), "%.0f", v); /* counts and round bounds: no exponent */
        gf_buf_puts(b, tmp);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    gf_buf_puts(b, tmp);
}

static void put_escaped(gf_buf_t *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            gf_buf_puts(b, "\\\\");
        else if (*s == '\n')
            gf_buf_puts(b, "\\n");
        else if (quote && *s == '"')
            gf_buf_puts(b, "\\\"");
        else
            gf_buf_append(b, s, 1);
    }
}

/* Writes {a="x",b="y"[,le="..."]}; nothing when there are no labels. */
static void put_labels(gf_buf_t *b, const gf_mfamily_t *f, const gf_metric_t *s, const char *le)
{
    if (f->nlabels == 0 && le == NULL)
        return;
    gf_buf_puts(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        gf_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(b, s->values[i], 1);
        gf_buf_puts(b, "\"");
    }
    if (le != NULL)
        gf_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    gf_buf_puts(b, "}");
}

static void render_histogram(gf_buf_t *b, const gf_mfamily_t *f, const gf_metric_t *s)
{
    double cumulative = 0;
    for (size_t i = 0; i <= f->nbuckets; i++) {
        gf_buf_t le = {0};
        if (i < f->nbuckets) {
            cumulative += s->counts[i];
            put_number(&le, f->buckets[i]);
        } else {
            cumulative = s->count;
            gf_buf_puts(&le, "+Inf");
        }
        gf_buf_printf(b, "%s_bucket", f->name);
        put_labels(b, f, s, le.p);
        gf_buf_puts(b, " ");
        put_number(b, cumulative);
        gf_buf_puts(b, "\n");
        gf_buf_dispose(&le);
    }
    gf_buf_printf(b, "%s_sum", f->name);
    put_labels(b, f, s, NULL);
    gf_buf_puts(b, " ");
    put_number(b, s->value);
    gf_buf_printf(b, "\n%s_count", f->name);
    put_labels(b, f, s, NULL);
    gf_buf_puts(b, " ");
    put_number(b, s->count);
    gf_buf_puts(b, "\n");
}

char *gf_metrics_render(const gf_metrics_t *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    gf_buf_t b = {0};
    gf_buf_puts(&b, "");
    for (const gf_mfamily_t *f = m->families; f; f = f->next) {
        gf_buf_printf(&b, "# HELP %s ", f->name);
        put_escaped(&b, f->help, 0);
        gf_buf_printf(&b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const gf_metric_t *s = f->series; s; s = s->next) {
            if (f->type == M_HISTOGRAM) {
                render_histogram(&b, f, s);
                continue;
            }
            gf_buf_puts(&b, f->name);
            put_labels(&b, f, s, NULL);
            gf_buf_puts(&b, " ");
            put_number(&b, s->value);
            gf_buf_puts(&b, "\n");
        }
    }
    return b.p;
}
