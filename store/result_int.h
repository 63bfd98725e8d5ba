/*
 * store/result_int.h - what the files that read the SQL functions' JSON
 * share: result.c (rows, outcomes, which reader an operation takes),
 * result_read.c (reading JSON fields into C values) and one file an area
 * (result_generations.c, result_ledger.c, result_storage.c,
 * result_webhooks.c) holding the readers and disposers of its results.
 * Private to store/.
 */
#ifndef STORE_RESULT_INT_H
#define STORE_RESULT_INT_H

#include <jansson.h>

#include "store.h"

/*
 * A reader of one JSON result: the first field that does not match is
 * remembered (`bad`), and every later read is skipped, so a parser reads its
 * fields straight through and checks once at the end.
 */
typedef struct {
    const char *bad;
} store_rd_t;

/* result_read.c: one field of object `o` each; a missing or mistyped one sets r->bad. */
json_t *store__rd_get(store_rd_t *r, json_t *o, const char *k);
/* A string (new, free()); NULL for JSON null when `nullable`. */
char *store__rd_str(store_rd_t *r, json_t *o, const char *k, int nullable);
/* A string into a fixed buffer (ids and status words); too long is a bad shape. */
void store__rd_word(store_rd_t *r, json_t *o, const char *k, char *out, size_t n);
/* An integer; `*is_null` (when not NULL) tells a JSON null, otherwise refused. */
long long store__rd_int(store_rd_t *r, json_t *o, const char *k, int *is_null);
int store__rd_bool(store_rd_t *r, json_t *o, const char *k);
/* Any JSON value as compact text (new, free()); NULL for null when `nullable`. */
char *store__rd_json(store_rd_t *r, json_t *o, const char *k, int nullable);
/* An array: its size, and a zeroed vector of `size` bytes per element (NULL when empty). */
json_t *store__rd_array(store_rd_t *r, json_t *o, const char *k, size_t size, void **items,
                        size_t *n);
/* Reads one element of an array into `item`, a zeroed element of the vector. */
typedef void (*store_rd_item_fn)(store_rd_t *r, json_t *e, void *item);
/* The elements of array `a` read with `each` into a new zeroed vector of `size` bytes an
 * element (NULL when empty), stopping at the first bad shape; *n is the array's size.
 * `not_object` (when not NULL) is the field named bad when an element is not an object. */
void *store__rd_each(store_rd_t *r, json_t *a, size_t size, size_t *n, store_rd_item_fn each,
                     const char *not_object);
/* Array field `k` of `o` read as store__rd_each does; not an array is a bad shape. */
void *store__rd_items(store_rd_t *r, json_t *o, const char *k, size_t size, size_t *n,
                      store_rd_item_fn each, const char *not_object);
/* A JSON object's key that is a decimal index ("0", "12"); -1 when it is not one. */
int store__key_index(const char *key);

/* result_generations.c */
void store__read_generation(store_rd_t *r, json_t *o, store_generation_t *g);
void store__read_list(store_rd_t *r, json_t *o, store_list_result_t *l);
void store__read_sweep(store_rd_t *r, json_t *o, store_sweep_result_t *s);
void store__read_resume(store_rd_t *r, json_t *o, store_resume_result_t *s);
void store__read_accept_batch(store_rd_t *r, json_t *a, size_t want,
                              store_accept_batch_result_t *b);
void store__read_accept_resolve(store_rd_t *r, json_t *a, size_t want,
                                store_accept_resolve_result_t *s);
void store__generation_dispose(store_generation_t *g);
void store__list_dispose(store_list_result_t *l);
void store__sweep_dispose(store_sweep_result_t *s);
void store__resume_dispose(store_resume_result_t *s);

/* result_ledger.c */
void store__read_ledger(store_rd_t *r, json_t *o, store_ledger_result_t *l);
void store__read_audit_page(store_rd_t *r, json_t *o, store_audit_result_t *l);
void store__ledger_dispose(store_ledger_result_t *l);
void store__audit_dispose(store_audit_result_t *l);

/* result_storage.c */
void store__read_keys(store_rd_t *r, json_t *o, store_keys_result_t *k);
void store__read_uploads(store_rd_t *r, json_t *o, store_uploads_result_t *l);
void store__keys_dispose(store_keys_result_t *k);
void store__uploads_dispose(store_uploads_result_t *l);

/* result_webhooks.c */
/* `results`: how many attempts the claim recorded first (its `results` array). */
void store__read_webhook_claim(store_rd_t *r, json_t *o, size_t results,
                               store_webhook_claim_result_t *w);
void store__read_webhook_list(store_rd_t *r, json_t *a, store_webhook_list_result_t *l);
void store__webhook_claim_dispose(store_webhook_claim_result_t *w);
void store__webhook_list_dispose(store_webhook_list_result_t *l);

#endif
