-- A worker starts a generation, or takes it over: running, stage starting,
-- one attempt more when its fencing token is newer than the last one seen.
-- Worker calls carry the queue's fencing token; an older token is refused.
-- The `started` webhook (when asked for) is recorded once, on the first start.
-- A generation the user asked to cancel is not started again: it is finished
-- canceled here (what was captured stays, the rest is released), so a cancel
-- the queue never heard of (Redis failed over) or a job handed back while its
-- worker was canceling it is not run on, and charged for, by the next worker.
-- p_worker names the starting worker: a start under the fence another worker
-- started with is stale (Redis lost the claim that gave the token out and gave
-- it again: migrations/0027_fence_worker_and_cancels.sql). NULL: not checked
-- (an earlier release's call).
-- started | stale | canceled | expired | terminal | not_found
CREATE OR REPLACE FUNCTION farm_start(p_id uuid, p_fence bigint, p_provider text,
                                      p_worker text DEFAULT NULL, OUT outcome text,
                                      OUT attempts int)
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN outcome := 'not_found'; RETURN; END IF;
    IF g.status NOT IN ('queued', 'running') THEN outcome := 'terminal'; attempts := g.attempts; RETURN; END IF;
    IF p_fence < g.fence OR (p_fence = g.fence AND p_worker <> g.fence_worker) THEN
        outcome := 'stale'; attempts := g.attempts; RETURN;
    END IF;
    IF g.cancel_requested THEN
        PERFORM farm_finish(p_id, NULL, 'canceled', NULL);
        outcome := 'canceled'; attempts := g.attempts; RETURN;
    END IF;
    -- Never started, and past its start deadline (API.md: expired is "not started
    -- within" it): a claim leased the job, its start failed, and the job came back
    -- after the deadline. Expired here, not started now.
    IF g.status = 'queued' AND g.deadline_at <= now() THEN
        PERFORM farm_expire(p_id);
        outcome := 'expired'; attempts := g.attempts; RETURN;
    END IF;
    UPDATE generations SET status = 'running', stage = 'starting',
            started_at = coalesce(started_at, now()),
            attempts = CASE WHEN p_fence > g.fence THEN g.attempts + 1 ELSE g.attempts END,
            fence = p_fence, provider = coalesce(p_provider, provider), updated_at = now(),
            fence_worker = CASE WHEN p_fence > g.fence THEN p_worker
                                ELSE coalesce(g.fence_worker, p_worker) END
        WHERE id = p_id RETURNING generations.attempts INTO attempts;
    -- Guarded here as farm_image_done guards its `image` event: a start that
    -- asked for no `started` event runs no statement for it.
    IF g.webhook_url IS NOT NULL AND 'started' = ANY (g.webhook_events) THEN
        PERFORM farm__webhook_add(p_id, g.webhook_url, g.webhook_events, 'started', 0, 'started',
                                  jsonb_build_object('id', p_id, 'status', 'running',
                                                     'stage', 'starting',
                                                     'progress', g.progress));
    END IF;
    outcome := 'started';
END $$;
