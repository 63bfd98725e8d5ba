-- The ledger is append-only: its triggers (0001) call this on every UPDATE,
-- DELETE and TRUNCATE of credit_ledger, which it refuses.
CREATE OR REPLACE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only: % refused', TG_OP;
END $$;
