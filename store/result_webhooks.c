/*
 * store/result_webhooks.c - the results about webhook deliveries: a
 * claimed batch and a generation's list, read from their JSON and freed.
 */
#include "result_int.h"

#include <stdlib.h>
#include <string.h>

static void read_claimed(store_rd_t *r, json_t *e, void *item)
{
    store_webhook_claimed_t *d = item;
    int null_first;
    store__rd_word(r, e, "id", d->id, sizeof(d->id));
    store__rd_word(r, e, "generation_id", d->generation_id, sizeof(d->generation_id));
    d->url = store__rd_str(r, e, "url", 0);
    d->host = store__rd_str(r, e, "host", 1);
    d->event = store__rd_str(r, e, "event", 0);
    d->data = store__rd_json(r, e, "data", 0);
    d->attempts = (int)store__rd_int(r, e, "attempts", NULL);
    d->window_attempts = (int)store__rd_int(r, e, "window_attempts", NULL);
    d->lease_token = store__rd_int(r, e, "lease_token", NULL);
    d->created_ms = store__rd_int(r, e, "created_ms", NULL);
    d->first_attempt_ms = store__rd_int(r, e, "first_attempt_ms", &null_first);
}

/* One attempt recorded by the claim (farm_webhook_result's outcome and lag). */
static void read_result(store_rd_t *r, json_t *e, void *item)
{
    store_webhook_result_t *res = item;
    char outcome[16] = "";
    store__rd_word(r, e, "outcome", outcome, sizeof(outcome));
    json_t *lag = store__rd_get(r, e, "lag_s");
    if (r->bad)
        return;
    if (strcmp(outcome, "recorded") != 0 && strcmp(outcome, "stale") != 0)
        r->bad = "outcome";
    else if (!json_is_null(lag) && !json_is_number(lag))
        r->bad = "lag_s";
    res->recorded = strcmp(outcome, "recorded") == 0;
    res->lag_s = json_is_number(lag) ? json_number_value(lag) : -1;
}

/* farm_webhook_claim (store/sql/farm_webhook_claim.sql); farm_image_done_finish's lease has
 * its shape, without results. */
void store__read_webhook_claim(store_rd_t *r, json_t *o, size_t results,
                               store_webhook_claim_result_t *w)
{
    w->now_ms = store__rd_int(r, o, "now_ms", NULL);
    w->items = store__rd_items(r, o, "items", sizeof(*w->items), &w->n, read_claimed, NULL);
    if (results == 0 || r->bad)
        return;
    w->results = store__rd_items(r, o, "results", sizeof(*w->results), &w->n_results, read_result,
                                 "(a result is not an object)");
    if (!r->bad && w->n_results != results)
        r->bad = "(not one result per attempt)";
}

static void read_webhook(store_rd_t *r, json_t *e, void *item)
{
    store_webhook_t *w = item;
    int null_code;
    store__rd_word(r, e, "id", w->id, sizeof(w->id));
    store__rd_word(r, e, "generation_id", w->generation_id, sizeof(w->generation_id));
    w->event = store__rd_str(r, e, "event", 0);
    w->url = store__rd_str(r, e, "url", 0);
    w->status = store__rd_str(r, e, "status", 0);
    w->attempts = (int)store__rd_int(r, e, "attempts", NULL);
    w->last_status_code = (int)store__rd_int(r, e, "last_status_code", &null_code);
    w->last_error = store__rd_str(r, e, "last_error", 1);
    w->created_at = store__rd_str(r, e, "created_at", 0);
    w->next_attempt_at = store__rd_str(r, e, "next_attempt_at", 1);
    w->delivered_at = store__rd_str(r, e, "delivered_at", 1);
}

/* farm_webhooks_list (store/sql/farm_webhooks_list.sql): a bare array. */
void store__read_webhook_list(store_rd_t *r, json_t *a, store_webhook_list_result_t *l)
{
    l->items = store__rd_each(r, a, sizeof(*l->items), &l->n, read_webhook, NULL);
}

void store__webhook_claim_dispose(store_webhook_claim_result_t *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->items[i].url);
        free(w->items[i].host);
        free(w->items[i].event);
        free(w->items[i].data);
    }
    free(w->items);
    free(w->results);
}

void store__webhook_list_dispose(store_webhook_list_result_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        store_webhook_t *w = &l->items[i];
        free(w->event);
        free(w->url);
        free(w->status);
        free(w->last_error);
        free(w->created_at);
        free(w->next_attempt_at);
        free(w->delivered_at);
    }
    free(l->items);
}
