-- The sweepers' periodic check of the ledger (farm_reconcile_violations
-- and farm_reconcile_last_run_timestamp_seconds on a worker's /metrics):
-- farm_reconcile's violations, read again only when the farm's last check
-- (reconcile_state) is older than p_interval_s, else that check's result,
-- so N workers read the whole ledger about once an interval between them.
-- One check at a time (a transaction advisory lock); one that finds it
-- taken answers the last result. checked_at: unix seconds of the check
-- answered; violations -1 (checked_at NULL) when none was ever finished.
CREATE OR REPLACE FUNCTION farm_reconcile_check(p_interval_s int, OUT violations bigint,
                                                OUT checked_at double precision)
LANGUAGE plpgsql AS $$
DECLARE
    s reconcile_state;
BEGIN
    violations := -1;
    IF pg_try_advisory_xact_lock(7100202621) THEN
        -- Read after the lock: a check that committed as the lock was taken is seen.
        SELECT * INTO s FROM reconcile_state;
        IF s.checked_at IS NULL OR s.checked_at <= now() - make_interval(secs => p_interval_s) THEN
            s := farm__reconcile_record((SELECT count(*) FROM farm_reconcile()));
        END IF;
    ELSE
        SELECT * INTO s FROM reconcile_state;
    END IF;
    IF s.checked_at IS NOT NULL THEN
        violations := s.violations;
        checked_at := extract(epoch FROM s.checked_at);
    END IF;
END $$;
