/*
 * store/result_storage.c - the results about stored objects: the storage
 * keys a delete, the lifecycle or the unreferenced scan hands back, and a
 * page of uploads, read from their JSON and freed.
 */
#include "result_int.h"

#include <stdlib.h>
#include <string.h>

/* farm_generation_delete, farm_upload_delete and farm_lifecycle (migrations/0019). */
void store__read_keys(store_rd_t *r, json_t *o, store_keys_result_t *k)
{
    void *items;
    json_t *a = store__rd_array(r, o, "keys", sizeof(char *), &items, &k->n);
    k->keys = items;
    for (size_t i = 0; a && i < k->n && !r->bad; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e))
            r->bad = "keys";
        else
            k->keys[i] = gf_xstrdup(json_string_value(e));
    }
    if (json_object_get(o, "outputs_expired") == NULL)
        return;
    k->outputs_expired = store__rd_int(r, o, "outputs_expired", NULL);
    k->uploads_expired = store__rd_int(r, o, "uploads_expired", NULL);
    k->idempotency_purged = store__rd_int(r, o, "idempotency_purged", NULL);
}

static void read_upload(store_rd_t *r, json_t *e, void *item)
{
    store_upload_t *u = item;
    store__rd_word(r, e, "id", u->id, sizeof(u->id));
    store__rd_word(r, e, "format", u->format, sizeof(u->format));
    u->width = (int)store__rd_int(r, e, "width", NULL);
    u->height = (int)store__rd_int(r, e, "height", NULL);
    u->bytes = store__rd_int(r, e, "bytes", NULL);
    u->created_at = store__rd_str(r, e, "created_at", 0);
}

/* farm_uploads_page (migrations/0019). */
void store__read_uploads(store_rd_t *r, json_t *o, store_uploads_result_t *l)
{
    l->items = store__rd_items(r, o, "items", sizeof(*l->items), &l->n, read_upload, NULL);
    l->next_cursor = store__rd_str(r, o, "next_cursor", 1);
}

void store__keys_dispose(store_keys_result_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
}

void store__uploads_dispose(store_uploads_result_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].created_at);
    free(l->items);
    free(l->next_cursor);
}
