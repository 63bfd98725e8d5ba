-- Records a count of farm_reconcile's violations as the farm's last check
-- (reconcile_state, migration 0030), now: farm_reconcile_check's own count, and
-- `farm reconcile`'s (store/conn.c), whose clean run after a fix the workers'
-- gauges then show. Returns the row as recorded.
CREATE OR REPLACE FUNCTION farm__reconcile_record(p_violations bigint) RETURNS reconcile_state
LANGUAGE sql AS $$
    INSERT INTO reconcile_state (checked_at, violations) VALUES (now(), p_violations)
        ON CONFLICT (one) DO UPDATE SET checked_at = EXCLUDED.checked_at,
                                        violations = EXCLUDED.violations
        RETURNING *
$$;
