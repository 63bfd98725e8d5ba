-- The last check of the ledger's invariants over the whole farm
-- (farm_reconcile_check): one row. Every worker's sweeper asks for the
-- check each FARM_RECONCILE_INTERVAL_S; the ledger is read again only when
-- this row is older than that, so N workers read it about once an
-- interval, not N times, and each worker's gauge shows the farm's last
-- result.
CREATE TABLE reconcile_state (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    checked_at timestamptz NOT NULL,
    violations bigint NOT NULL CHECK (violations >= 0)
);
