-- The audit trail is append-only: its triggers (0021) call this on every
-- UPDATE, DELETE and TRUNCATE of audit_log, which it refuses.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END $$;
