-- The deliveries leased right now (a claim's or a finishing worker's, not
-- yet recorded), by host: farm_webhook_claim and farm__webhook_lease_terminal
-- count them per host across the whole farm, so FARM_WEBHOOK_PER_HOST bounds
-- what one receiver gets from all the workers at once
-- (store/sql/farm_webhook_claim.sql). Recording an attempt clears
-- lease_until; a lease that ran out (its worker killed) stays until its row
-- is claimed again, below now() where the counts pass over it. A lease now
-- writes this index (its update is no longer HOT). (A plain CREATE INDEX:
-- writes to the table wait for it, so on a large outbox migrate in a quiet
-- minute.)
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (host, lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
