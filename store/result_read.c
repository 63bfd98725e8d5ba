/*
 * store/result_read.c - reading one field of a SQL function's JSON result
 * into a C value, for the readers of result_generations.c, result_ledger.c,
 * result_storage.c and result_webhooks.c (result_int.h says what each does).
 */
#include "result_int.h"

#include <stdlib.h>
#include <string.h>

json_t *store__rd_get(store_rd_t *r, json_t *o, const char *k)
{
    if (r->bad)
        return NULL;
    json_t *v = json_object_get(o, k);
    if (v == NULL)
        r->bad = k;
    return v;
}

char *store__rd_str(store_rd_t *r, json_t *o, const char *k, int nullable)
{
    json_t *v = store__rd_get(r, o, k);
    if (v == NULL || (nullable && json_is_null(v)))
        return NULL;
    if (!json_is_string(v)) {
        r->bad = k;
        return NULL;
    }
    return gf_xstrdup(json_string_value(v));
}

void store__rd_word(store_rd_t *r, json_t *o, const char *k, char *out, size_t n)
{
    json_t *v = store__rd_get(r, o, k);
    if (v == NULL)
        return;
    if (!json_is_string(v) || json_string_length(v) >= n) {
        r->bad = k;
        return;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
}

long long store__rd_int(store_rd_t *r, json_t *o, const char *k, int *is_null)
{
    json_t *v = store__rd_get(r, o, k);
    if (is_null)
        *is_null = v != NULL && json_is_null(v);
    if (v == NULL || (is_null && *is_null))
        return 0;
    if (!json_is_integer(v)) {
        r->bad = k;
        return 0;
    }
    return json_integer_value(v);
}

int store__rd_bool(store_rd_t *r, json_t *o, const char *k)
{
    json_t *v = store__rd_get(r, o, k);
    if (v != NULL && !json_is_boolean(v))
        r->bad = k;
    return json_is_true(v);
}

char *store__rd_json(store_rd_t *r, json_t *o, const char *k, int nullable)
{
    json_t *v = store__rd_get(r, o, k);
    if (v == NULL || (nullable && json_is_null(v)))
        return NULL;
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Field `k` of `o` when it is an array; NULL (a bad shape when present) otherwise. */
static json_t *array_field(store_rd_t *r, json_t *o, const char *k)
{
    json_t *v = store__rd_get(r, o, k);
    if (v != NULL && !json_is_array(v)) {
        r->bad = k;
        return NULL;
    }
    return v;
}

json_t *store__rd_array(store_rd_t *r, json_t *o, const char *k, size_t size, void **items,
                        size_t *n)
{
    json_t *v = array_field(r, o, k);
    *items = NULL;
    *n = 0;
    if (v == NULL)
        return NULL;
    *n = json_array_size(v);
    *items = *n ? gf_xcalloc(*n, size) : NULL;
    return v;
}

void *store__rd_each(store_rd_t *r, json_t *a, size_t size, size_t *n, store_rd_item_fn each,
                     const char *not_object)
{
    *n = json_array_size(a);
    char *items = *n ? gf_xcalloc(*n, size) : NULL;
    for (size_t i = 0; i < *n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (not_object && !json_is_object(e))
            r->bad = not_object;
        else
            each(r, e, items + i * size);
    }
    return items;
}

void *store__rd_items(store_rd_t *r, json_t *o, const char *k, size_t size, size_t *n,
                      store_rd_item_fn each, const char *not_object)
{
    json_t *a = array_field(r, o, k);
    *n = 0;
    return a ? store__rd_each(r, a, size, n, each, not_object) : NULL;
}

int store__key_index(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 9 || strspn(key, "0123456789") != n)
        return -1;
    return atoi(key);
}
