-- Operations (issue 20). The audit trail (docs/operations.md, "Audit
-- trail"): who did what to what,
-- for the operations a person decides on (an admin's credit grant, a
-- dead-letter re-drive or purge, a webhook retry, a deletion).
--
-- actor is the admin's JWT `sub`, or 'cli' for the `farm` command line;
-- request_id the API's X-Request-Id (the CLI makes one per command);
-- detail what the action was given and, when the row was written with the
-- action itself (store_call_set_audit), what it answered ("result").
--
-- Append-only like credit_ledger: UPDATE, DELETE and TRUNCATE are refused by
-- a trigger (the farm connects as one role, so there is no role to revoke
-- them from).
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    actor text NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    action text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$' AND length(action) <= 64),
    target text CHECK (length(target) <= 128),
    request_id text CHECK (length(request_id) <= 128),
    detail jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
    at timestamptz NOT NULL DEFAULT now()
);

-- The current definition is store/sql/audit_log_append_only.sql.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END $$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- What each account has had captured and released, ever, kept with held
-- by the two functions that settle (farm_image_settle, farm__release_rest),
-- so the farm's totals (farm_credits_captured_total and
-- farm_credits_released_total on the api's /metrics) are a sum over the
-- accounts, like balance and held, not over the ledger.
ALTER TABLE credit_accounts
    ADD COLUMN captured bigint NOT NULL DEFAULT 0 CHECK (captured >= 0),
    ADD COLUMN released bigint NOT NULL DEFAULT 0 CHECK (released >= 0);

UPDATE credit_accounts a SET
    captured = coalesce((SELECT sum(l.amount) FROM credit_ledger l
                         WHERE l.user_id = a.user_id AND l.kind = 'capture'), 0),
    released = coalesce((SELECT sum(l.amount) FROM credit_ledger l
                         WHERE l.user_id = a.user_id AND l.kind = 'release'), 0);
