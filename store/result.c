/*
 * store/result.c - the results of the operations: the `outcome` words of
 * the SQL functions translated into gf_status, and their rows (and the JSON
 * that some functions return) read once into the typed results of store.h.
 * The JSON readers live in one file per area (result_int.h lists them);
 * this file picks an operation's reader and disposer.
 *
 * Invariants:
 * - Pure: a row arrives as text (store_row_t); no connection, no libpq call.
 * - A result is either whole or empty: a shape that does not match fails
 *   the call with GF_EUNAVAIL ("malformed <function> result: <field>") and
 *   frees whatever was read, so callers never see half a result.
 * - jansson stays in store/ (the result files, and call.c's accept batch): callers get
 *   C structs, and the user's own JSON (params, metadata, an error) as
 *   compact JSON text.
 */
#include "result_int.h"
#include "store_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int fail(store_call_t *c, int code, const char *fmt, const char *arg)
{
    return gf_err_set(&c->err, code, "store", fmt, arg);
}

/* Maps the outcome words the worker-side functions share. */
static int worker_outcome(store_call_t *c, const char *o)
{
    if (strcmp(o, "stale") == 0)
        return fail(c, GF_ECONFLICT, "stale fencing token for generation %s", c->_params[0]);
    if (strcmp(o, "terminal") == 0)
        return fail(c, GF_ECANCELED, "generation %s is already finished", c->_params[0]);
    if (strcmp(o, "not_found") == 0)
        return fail(c, GF_ENOTFOUND, "no generation %s", c->_params[0]);
    if (strcmp(o, "released") == 0)
        return fail(c, GF_ECONFLICT, "the image of generation %s was released or it ended",
                    c->_params[0]);
    if (strcmp(o, "invalid") == 0)
        return fail(c, GF_EINVAL, "image index out of range for generation %s", c->_params[0]);
    return 0;
}

/* The function whose JSON an operation reads (for error messages). */
static const char *json_source(store_op_t op)
{
    switch (op) {
    case STORE_OP_GENERATION:
        return "farm_generation_json";
    case STORE_OP_CANCEL:
        return "farm_cancel_json";
    case STORE_OP_LIST:
        return "farm_generations_page";
    case STORE_OP_LEDGER:
        return "farm_ledger_page";
    case STORE_OP_SWEEP:
        return "farm_sweep";
    case STORE_OP_RESUME:
        return "farm_worker_resume";
    case STORE_OP_WEBHOOK_CLAIM:
        return "farm_webhook_claim";
    case STORE_OP_WEBHOOK_LIST:
        return "farm_webhooks_list";
    case STORE_OP_GENERATION_DELETE:
        return "farm_generation_delete";
    case STORE_OP_UPLOAD_DELETE:
        return "farm_upload_delete";
    case STORE_OP_DELETE_RESOLVE:
        return "farm_delete_resolve";
    case STORE_OP_CREDIT_RESOLVE:
        return "farm_credit_resolve";
    case STORE_OP_UPLOADS:
        return "farm_uploads_page";
    case STORE_OP_LIFECYCLE:
        return "farm_lifecycle";
    case STORE_OP_UNREFERENCED:
        return "farm_storage_unreferenced";
    case STORE_OP_AUDIT_PAGE:
        return "farm_audit_page";
    case STORE_OP_ACCEPT_BATCH:
        return "farm_accept_generations";
    case STORE_OP_ACCEPT_RESOLVE:
        return "farm_accept_resolve_at";
    case STORE_OP_IMAGE_DONE_FINISH:
        return "farm_image_done_finish";

    default:
        return "store";
    }
}

/* Reads the JSON result of an operation (json_source() names the function that made it). */
static void parse_json(store_call_t *c, const char *text)
{
    const char *what = json_source(c->_op);
    json_error_t jerr;
    json_t *root = text ? json_loads(text, 0, &jerr) : NULL;
    if (root == NULL) {
        gf_err_set(&c->err, GF_EUNAVAIL, "store", "malformed %s result: %s", what,
                   text ? jerr.text : "NULL");
        return;
    }
    store_rd_t r = {0};
    if (c->_op == STORE_OP_WEBHOOK_LIST) {
        if (json_is_array(root))
            store__read_webhook_list(&r, root, &c->res.webhook_list);
        else
            r.bad = "(not an array)";
    } else if (c->_op == STORE_OP_ACCEPT_BATCH) {
        if (json_is_array(root))
            store__read_accept_batch(&r, root, c->_batch, &c->res.accept_batch);
        else
            r.bad = "(not an array)";
    } else if (c->_op == STORE_OP_ACCEPT_RESOLVE) {
        if (json_is_array(root))
            store__read_accept_resolve(&r, root, c->_batch, &c->res.accept_resolve);
        else
            r.bad = "(not an array)";
    } else if (!json_is_object(root))
        r.bad = "(not an object)";
    else if (c->_op == STORE_OP_WEBHOOK_CLAIM)
        store__read_webhook_claim(&r, root, c->_batch, &c->res.webhook_claim);
    else if (c->_op == STORE_OP_IMAGE_DONE_FINISH)
        store__read_webhook_claim(&r, root, 0, &c->res.image.webhook);
    else if (c->_op == STORE_OP_GENERATION)
        store__read_generation(&r, root, &c->res.generation);
    else if (c->_op == STORE_OP_CANCEL)
        store__read_generation(&r, root, &c->res.cancel.generation);
    else if (c->_op == STORE_OP_LIST)
        store__read_list(&r, root, &c->res.list);
    else if (c->_op == STORE_OP_LEDGER)
        store__read_ledger(&r, root, &c->res.ledger);
    else if (c->_op == STORE_OP_SWEEP)
        store__read_sweep(&r, root, &c->res.sweep);
    else if (c->_op == STORE_OP_UPLOADS)
        store__read_uploads(&r, root, &c->res.uploads);
    else if (c->_op == STORE_OP_GENERATION_DELETE || c->_op == STORE_OP_UPLOAD_DELETE ||
             c->_op == STORE_OP_DELETE_RESOLVE || c->_op == STORE_OP_LIFECYCLE ||
             c->_op == STORE_OP_UNREFERENCED)
        store__read_keys(&r, root, &c->res.keys);
    else if (c->_op == STORE_OP_AUDIT_PAGE)
        store__read_audit_page(&r, root, &c->res.audit);
    else
        store__read_resume(&r, root, &c->res.resume);
    /* A delete's outcome (farm_generation_delete, farm_upload_delete, farm_delete_resolve). */
    const char *outcome = json_string_value(json_object_get(root, "outcome"));
    if (r.bad == NULL && outcome != NULL && strcmp(outcome, "not_found") == 0)
        fail(c, GF_ENOTFOUND, "nothing %s to delete for this user", c->_params[0]);
    else if (r.bad == NULL && outcome != NULL && strcmp(outcome, "not_deletable") == 0)
        fail(c, GF_ECONFLICT, "generation %s is still queued or running", c->_params[0]);
    json_decref(root);
    if (r.bad) {
        store__result_dispose(c);
        gf_err_set(&c->err, GF_EUNAVAIL, "store", "malformed %s result: %s", what, r.bad);
    }
}

/* --- rows ---------------------------------------------------------------------- */

/* A column as a string ("" for SQL NULL, as libpq gives it). */
static const char *col(const store_row_t *row, int i)
{
    return row->v[i] ? row->v[i] : "";
}

static void word(char *out, size_t n, const char *s)
{
    snprintf(out, n, "%s", s);
}

void store__parse_row(store_call_t *c, const store_row_t *row)
{
    if (row == NULL) {
        if (c->_op == STORE_OP_GENERATION)
            fail(c, GF_ENOTFOUND, "no generation %s for this user", c->_params[0]);
        else
            fail(c, GF_EUNAVAIL, "no row from %s", store__stmt_name(c->_op));
        return;
    }
    const char *v0 = col(row, 0);
    switch (c->_op) {
    case STORE_OP_ACCEPT:
        word(c->res.accept.generation_id, sizeof(c->res.accept.generation_id), col(row, 1));
        c->res.accept.available = atoll(col(row, 2));
        if (strcmp(v0, "existing") == 0)
            c->res.accept.existing = 1;
        else if (strcmp(v0, "conflict") == 0)
            fail(c, GF_ECONFLICT, "idempotency key reused with another body (%s)", c->_params[10]);
        else if (strcmp(v0, "insufficient") == 0)
            fail(c, GF_ECREDITS, "not enough credits for generation %s", c->_params[0]);
        return;
    case STORE_OP_START:
        c->res.start.attempts = atoi(col(row, 1));
        word(c->res.start.status, sizeof(c->res.start.status), col(row, 2));
        /* Ended by farm_start itself, after the statement's snapshot read the status. */
        if (strcmp(v0, "canceled") == 0 || strcmp(v0, "expired") == 0) {
            word(c->res.start.status, sizeof(c->res.start.status), v0);
            fail(c, GF_ECANCELED,
                 strcmp(v0, "canceled") == 0 ? "generation %s was canceled"
                                             : "generation %s expired before it started",
                 c->_params[0]);
            return;
        }
        worker_outcome(c, v0);
        return;
    case STORE_OP_PROVIDER_REQUEST:
        worker_outcome(c, v0);
        return;
    case STORE_OP_IMAGE:
    case STORE_OP_IMAGE_DONE:
        c->res.image.applied = strcmp(v0, "settled") == 0;
        if (strcmp(v0, "duplicate") != 0)
            worker_outcome(c, v0);
        return;
    case STORE_OP_IMAGE_DONE_FINISH:
        c->res.image.applied = strcmp(v0, "settled") == 0;
        if (strcmp(v0, "duplicate") != 0 && worker_outcome(c, v0) < 0)
            return;
        /* Settled: the finish ran (farm_finish's outcome and status). */
        word(c->res.image.status, sizeof(c->res.image.status), col(row, 2));
        c->res.image.finished = strcmp(col(row, 1), "finished") == 0;
        if (strcmp(col(row, 1), "already") != 0)
            worker_outcome(c, col(row, 1));
        if (c->err.code == 0 && c->res.image.status[0] == '\0')
            fail(c, GF_EUNAVAIL, "no status from farm_image_done_finish for %s", c->_params[0]);
        else if (c->err.code == 0 && row->v[3] != NULL)
            parse_json(c, row->v[3]); /* the terminal delivery it leased */
        return;
    case STORE_OP_FINISH:
        word(c->res.finish.status, sizeof(c->res.finish.status), col(row, 1));
        word(c->res.finish.kind, sizeof(c->res.finish.kind), col(row, 2));
        c->res.finish.applied = strcmp(v0, "finished") == 0;
        if (strcmp(v0, "already") != 0)
            worker_outcome(c, v0);
        return;
    case STORE_OP_CANCEL:
        c->res.cancel.applied = strcmp(v0, "canceled") == 0;
        if (strcmp(v0, "not_cancelable") == 0)
            fail(c, GF_ECONFLICT, "generation %s is finished", c->_params[0]);
        else if (strcmp(v0, "not_found") == 0)
            fail(c, GF_ENOTFOUND, "no generation %s for this user", c->_params[0]);
        else
            parse_json(c, row->v[1]); /* the generation after the cancel */
        return;
    case STORE_OP_EXPIRE:
        c->res.expire.applied = strcmp(v0, "expired") == 0;
        word(c->res.expire.kind, sizeof(c->res.expire.kind), col(row, 1));
        worker_outcome(c, v0);
        return;
    case STORE_OP_UPLOAD_ADD:
        if (strncmp(v0, "over_", 5) == 0) {
            word(c->res.upload.over, sizeof(c->res.upload.over), v0 + 5);
            fail(c, GF_ETOOBIG, "the upload is over the user's quota of %s", v0 + 5);
        }
        return;
    case STORE_OP_UPLOAD_USAGE:
        c->res.upload.uploads = atoll(v0);
        c->res.upload.bytes = atoll(col(row, 1));
        return;
    case STORE_OP_REFUSE:
        word(c->res.refuse.status, sizeof(c->res.refuse.status), v0);
        return;
    case STORE_OP_REFS:
        word(c->res.refs.missing, sizeof(c->res.refs.missing), v0);
        if (strcmp(v0, "ok") != 0)
            fail(c, GF_ENOTFOUND, "a reference is not the user's (%s)", v0);
        return;
    case STORE_OP_CREDIT:
    case STORE_OP_CREDIT_RESOLVE:
        if (strcmp(v0, "insufficient") == 0)
            fail(c, GF_ECREDITS, "user %s would hold more than they have", c->_params[0]);
        else if (strcmp(v0, "granted") != 0 || row->v[1] == NULL || row->v[2] == NULL)
            fail(c, GF_EUNAVAIL, "farm_credit_balance answered %s without an account", v0);
        else {
            c->res.balance.balance = atoll(row->v[1]);
            c->res.balance.held = atoll(row->v[2]);
        }
        return;
    case STORE_OP_BALANCE:
    case STORE_OP_TOTALS:
        c->res.balance.balance = atoll(v0);
        c->res.balance.held = atoll(col(row, 1));
        c->res.balance.captured = atoll(col(row, 2));
        c->res.balance.released = atoll(col(row, 3));
        c->res.balance.oldest_queued_s = atoll(col(row, 4));
        return;
    case STORE_OP_RESUME:
        if (row->v[0] == NULL) {
            fail(c, GF_ENOTFOUND, "no generation %s", c->_params[0]);
            return;
        }
        parse_json(c, row->v[0]);
        return;
    case STORE_OP_GENERATION:
    case STORE_OP_SWEEP:
    case STORE_OP_LIST:
    case STORE_OP_LEDGER:
    case STORE_OP_WEBHOOK_CLAIM:
    case STORE_OP_WEBHOOK_LIST:
    case STORE_OP_GENERATION_DELETE:
    case STORE_OP_UPLOAD_DELETE:
    case STORE_OP_DELETE_RESOLVE:
    case STORE_OP_UPLOADS:
    case STORE_OP_LIFECYCLE:
    case STORE_OP_UNREFERENCED:
    case STORE_OP_AUDIT_PAGE:
    case STORE_OP_ACCEPT_BATCH:
    case STORE_OP_ACCEPT_RESOLVE:
        parse_json(c, row->v[0]);
        return;
    case STORE_OP_AUDIT:
        c->res.audit.id = atoll(v0);
        return;
    case STORE_OP_RECONCILE_CHECK:
        c->res.reconcile.violations = atoll(v0);
        c->res.reconcile.checked_at = row->v[1] ? atof(row->v[1]) : 0;
        return;
    case STORE_OP_STORAGE_DELETED:
        return;
    case STORE_OP_WEBHOOK_RESULT:
        c->res.webhook_result.recorded = strcmp(v0, "recorded") == 0;
        c->res.webhook_result.lag_s = row->v[1] ? atof(row->v[1]) : -1;
        return;
    case STORE_OP_WEBHOOK_RETRY:
        c->res.webhook_list.n = (size_t)atol(v0);
        return;
    case STORE_OP_COUNT_:
        return;
    }
}

void store__result_dispose(store_call_t *c)
{
    switch (c->_op) {
    case STORE_OP_GENERATION:
        store__generation_dispose(&c->res.generation);
        break;
    case STORE_OP_CANCEL:
        store__generation_dispose(&c->res.cancel.generation);
        break;
    case STORE_OP_LIST:
        store__list_dispose(&c->res.list);
        break;
    case STORE_OP_LEDGER:
        store__ledger_dispose(&c->res.ledger);
        break;
    case STORE_OP_SWEEP:
        store__sweep_dispose(&c->res.sweep);
        break;
    case STORE_OP_WEBHOOK_CLAIM:
        store__webhook_claim_dispose(&c->res.webhook_claim);
        break;
    case STORE_OP_IMAGE_DONE_FINISH:
        store__webhook_claim_dispose(&c->res.image.webhook);
        break;
    case STORE_OP_WEBHOOK_LIST:
        store__webhook_list_dispose(&c->res.webhook_list);
        break;
    case STORE_OP_GENERATION_DELETE:
    case STORE_OP_UPLOAD_DELETE:
    case STORE_OP_DELETE_RESOLVE:
    case STORE_OP_LIFECYCLE:
    case STORE_OP_UNREFERENCED:
        store__keys_dispose(&c->res.keys);
        break;
    case STORE_OP_UPLOADS:
        store__uploads_dispose(&c->res.uploads);
        break;
    case STORE_OP_AUDIT_PAGE:
        store__audit_dispose(&c->res.audit);
        break;
    case STORE_OP_ACCEPT_BATCH:
        free(c->res.accept_batch.items);
        break;
    case STORE_OP_ACCEPT_RESOLVE:
        free(c->res.accept_resolve.created_at);
        break;

    case STORE_OP_RESUME:
        store__resume_dispose(&c->res.resume);
        break;
    default:
        break;
    }
    memset(&c->res, 0, sizeof(c->res));
}

int store__sqlstate_code(const char *state)
{
    /*
     * GF409: a fencing token went stale during the call (store/sql/farm_image_settle.sql).
     * Class 22 (data) and 23 (constraints) are bad input; the rest is the database.
     */
    if (state && strcmp(state, "GF409") == 0)
        return GF_ECONFLICT;
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return GF_EINVAL;
    return GF_EUNAVAIL;
}
