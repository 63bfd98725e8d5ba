-- When the sweeper last listed an open generation as a candidate to check
-- against the queue (farm_sweep): it takes the least recently checked stale
-- ones first, so a backlog of healthy old jobs (a burst waiting in the queue,
-- each checked and left alone) no longer hides a newer one the queue lost.
ALTER TABLE generations ADD COLUMN swept_at timestamptz;
CREATE INDEX generations_sweep ON generations (swept_at NULLS FIRST, created_at)
    WHERE status IN ('queued', 'running');
-- When the user asked to cancel a running generation (farm_cancel): the
-- sweeper tells the queue again from that time, whatever the worker writes
-- (each capture refreshes updated_at, which hid the cancel from it).
ALTER TABLE generations ADD COLUMN cancel_requested_at timestamptz;
UPDATE generations SET cancel_requested_at = updated_at
    WHERE cancel_requested AND status = 'running';
