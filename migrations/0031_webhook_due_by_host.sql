-- The claim's walk host by host (store/sql/farm_webhook_claim.sql): each
-- host's pending deliveries in due order, so a claim that has to look past
-- a full host's backlog reads one entry for each host and what it may take
-- of each, never that backlog. (A plain CREATE INDEX: writes to the table
-- wait for it, so on a large outbox migrate in a quiet minute.)
CREATE INDEX webhook_deliveries_due_by_host ON webhook_deliveries (host, next_attempt_at)
    WHERE status = 'pending';
