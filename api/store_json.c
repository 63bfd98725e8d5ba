/*
 * api/store_json.c - the store's typed results as the API's JSON: a
 * generation (GET, the list, the terminal event of a stream) and a page of
 * the ledger.
 *
 * Invariant: keys come in the order clients have always seen, the order in
 * which Postgres's jsonb printed them when the store handed back JSON text
 * (by key length, then bytewise); `queue_position` is null here and filled
 * in by the route that knows it. The user's own JSON (params, metadata,
 * error, failures) is embedded as the store kept it.
 */
#include "api_int.h"

/* A JSON value from text the store kept; null when NULL (or, never expected, not JSON). */
static json_t *embedded(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *output_json(const store_output_t *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "pose", json_integer(o->pose));
    json_object_set_new(j, "seed", o->has_seed ? json_integer(o->seed) : json_null());
    json_object_set_new(j, "bytes", json_integer(o->bytes));
    json_object_set_new(j, "index", json_integer(o->index));
    json_object_set_new(j, "width", json_integer(o->width));
    json_object_set_new(j, "format", str_or_null(o->format));
    json_object_set_new(j, "height", json_integer(o->height));
    json_object_set_new(j, "sha256", str_or_null(o->sha256));
    if (o->deleted) /* API.md: a deleted output keeps its entry, url null */
        json_object_set_new(j, "deleted", json_true());
    json_object_set_new(j, "variant", str_or_null(o->variant));
    json_object_set_new(j, "storage_key", str_or_null(o->storage_key));
    return j;
}

json_t *api__generation_json(const store_generation_t *g)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(g->id));
    json_object_set_new(j, "cost", json_integer(g->cost));
    json_object_set_new(j, "kind", str_or_null(g->kind));
    json_object_set_new(j, "error", embedded(g->error));
    json_object_set_new(j, "stage", str_or_null(g->stage));
    json_object_set_new(j, "images", json_integer(g->images));
    json_object_set_new(j, "params", embedded(g->params));
    json_object_set_new(j, "status", str_or_null(g->status));
    json_object_set_new(j, "charged", json_integer(g->charged));
    json_t *outputs = json_array();
    for (size_t i = 0; i < g->n_outputs; i++)
        json_array_append_new(outputs, output_json(&g->outputs[i]));
    json_object_set_new(j, "outputs", outputs);
    json_object_set_new(j, "webhook", embedded(g->webhook));
    json_object_set_new(j, "attempts", json_integer(g->attempts));
    json_object_set_new(j, "failures", embedded(g->failures));
    json_object_set_new(j, "metadata", embedded(g->metadata));
    json_object_set_new(j, "progress", json_integer(g->progress));
    json_object_set_new(j, "provider", str_or_null(g->provider));
    json_object_set_new(j, "released", json_integer(g->released));
    json_object_set_new(j, "created_at", str_or_null(g->created_at));
    json_object_set_new(j, "started_at", str_or_null(g->started_at));
    json_object_set_new(j, "finished_at", str_or_null(g->finished_at));
    json_object_set_new(j, "images_done", json_integer(g->images_done));
    json_object_set_new(j, "images_failed", json_integer(g->images_failed));
    json_object_set_new(j, "queue_position", json_null());
    return j;
}

json_t *api__generation_page_json(const store_list_result_t *l)
{
    json_t *items = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(items, api__generation_json(&l->items[i]));
    return json_pack("{s:o, s:o}", "items", items, "next_cursor", str_or_null(l->next_cursor));
}

json_t *api__ledger_page_json(const store_ledger_result_t *l)
{
    json_t *items = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const store_ledger_entry_t *e = &l->items[i];
        json_t *j = json_object();
        json_object_set_new(j, "kind", str_or_null(e->kind));
        json_object_set_new(j, "amount", json_integer(e->amount));
        json_object_set_new(j, "reason", str_or_null(e->reason));
        json_object_set_new(j, "created_at", str_or_null(e->created_at));
        json_object_set_new(j, "image_index",
                            e->image_index >= 0 ? json_integer(e->image_index) : json_null());
        json_object_set_new(j, "generation_id", str_or_null(e->generation_id));
        json_array_append_new(items, j);
    }
    return json_pack("{s:o, s:o}", "items", items, "next_cursor", str_or_null(l->next_cursor));
}
