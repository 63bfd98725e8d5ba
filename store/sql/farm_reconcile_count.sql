-- Kept for the builds before farm_reconcile_check, whose sweepers call it
-- while they still run beside newer ones. How many of farm_reconcile's
-- violations there are now, for the sweeper's periodic check; -1
-- when another sweeper is checking (a transaction advisory lock: one check
-- at a time over the farm, the whole ledger read once).
CREATE OR REPLACE FUNCTION farm_reconcile_count() RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(7100202621) THEN
        RETURN -1;
    END IF;
    RETURN (SELECT count(*) FROM farm_reconcile());
END $$;
