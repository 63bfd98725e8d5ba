/*
 * store/result_ledger.c - the results about a user's account: a page of the
 * credit ledger and a page of the audit log, read from their JSON and freed.
 */
#include "result_int.h"

#include <stdlib.h>
#include <string.h>

static void read_ledger_entry(store_rd_t *r, json_t *e, void *item)
{
    store_ledger_entry_t *le = item;
    int null_index;
    le->kind = store__rd_str(r, e, "kind", 0);
    le->amount = store__rd_int(r, e, "amount", NULL);
    le->generation_id = store__rd_str(r, e, "generation_id", 1);
    le->image_index = (int)store__rd_int(r, e, "image_index", &null_index);
    if (null_index)
        le->image_index = -1;
    le->reason = store__rd_str(r, e, "reason", 1);
    le->created_at = store__rd_str(r, e, "created_at", 0);
}

/* farm_ledger_page (migrations/0004). */
void store__read_ledger(store_rd_t *r, json_t *o, store_ledger_result_t *l)
{
    l->items = store__rd_items(r, o, "items", sizeof(*l->items), &l->n, read_ledger_entry, "items");
    l->next_cursor = store__rd_str(r, o, "next_cursor", 1);
}

static void read_audit_entry(store_rd_t *r, json_t *e, void *item)
{
    store_audit_entry_t *ae = item;
    ae->id = store__rd_int(r, e, "id", NULL);
    ae->actor = store__rd_str(r, e, "actor", 0);
    ae->action = store__rd_str(r, e, "action", 0);
    ae->target = store__rd_str(r, e, "target", 1);
    ae->request_id = store__rd_str(r, e, "request_id", 1);
    ae->detail = store__rd_json(r, e, "detail", 0);
    ae->at = store__rd_str(r, e, "at", 0);
}

/* farm_audit_page (store/sql/farm_audit_page.sql). */
void store__read_audit_page(store_rd_t *r, json_t *o, store_audit_result_t *l)
{
    l->items = store__rd_items(r, o, "items", sizeof(*l->items), &l->n, read_audit_entry, "items");
    l->next_cursor = store__rd_str(r, o, "next_cursor", 1);
}

void store__ledger_dispose(store_ledger_result_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        store_ledger_entry_t *e = &l->items[i];
        free(e->kind);
        free(e->generation_id);
        free(e->reason);
        free(e->created_at);
    }
    free(l->items);
    free(l->next_cursor);
}

void store__audit_dispose(store_audit_result_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        store_audit_entry_t *e = &l->items[i];
        free(e->actor);
        free(e->action);
        free(e->target);
        free(e->request_id);
        free(e->detail);
        free(e->at);
    }
    free(l->items);
    free(l->next_cursor);
}
