-- The worker that started a generation under its current fence (farm_start):
-- a start under the same token by another worker is stale. Redis, losing its
-- last writes in a crash (AOF everysec) or failing over to a replica that was
-- behind, can hand one token to two workers: the claim that gave it out is
-- lost, and the next claim counts from the same place. Postgres, which kept
-- the first start, tells the two apart, so only one of them runs the job.
ALTER TABLE generations ADD COLUMN fence_worker text;
-- farm_start takes the worker now (store/sql/farm_start.sql, p_worker with a
-- default): the three-argument version goes, so a call without the worker
-- (a worker of the previous release, during a rolling update) finds the new
-- one, unchecked as before.
DROP FUNCTION IF EXISTS farm_start(uuid, bigint, text);
-- The sweeper's list of cancels to tell the queue again (farm_sweep): running
-- generations the user asked to cancel, a handful at most, found each tick
-- without reading every open generation.
CREATE INDEX generations_canceling ON generations (created_at)
    WHERE status = 'running' AND cancel_requested;
