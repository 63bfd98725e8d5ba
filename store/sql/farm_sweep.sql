-- The sweeper's side in Postgres (docs/credits.md, "Nothing stays held").
-- One call per tick: under a transaction advisory lock (so only one sweeper
-- in the whole farm works at a time), expire what missed its deadline and
-- list what the queue should hold, for the caller to enqueue again
-- (idempotent in the queue) or, when the queue has given up on it, to fail;
-- and what the queue should be told again: what this expired, and the
-- cancels of running generations (`canceling`).
CREATE OR REPLACE FUNCTION farm_sweep(p_stale_s int, p_limit int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_expired jsonb;
    v_candidates jsonb;
    v_canceling jsonb;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7100202612) THEN
        RETURN jsonb_build_object('locked', false)::text;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', e.id, 'user_id', e.user_id)), '[]')
        INTO v_expired
        FROM (SELECT g.id, g.user_id, farm_expire(g.id) AS outcome
              FROM generations g
              WHERE g.status = 'queued' AND g.deadline_at < now()
              ORDER BY g.created_at LIMIT p_limit) e
        WHERE e.outcome = 'expired';
    -- Open generations untouched for a while: the queue should have them. The
    -- least recently checked first (swept_at), stamped now, so the ticks go
    -- round all of them rather than the same oldest p_limit every time. A row
    -- a worker holds locked is being written: not stale, skipped.
    WITH picked AS (
        SELECT id FROM generations
        WHERE status IN ('queued', 'running') AND updated_at < now() - make_interval(secs => p_stale_s)
        ORDER BY swept_at NULLS FIRST, created_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED),
    stamped AS (
        UPDATE generations g SET swept_at = now() FROM picked WHERE g.id = picked.id
        RETURNING g.*)
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', g.id, 'user_id', g.user_id, 'plan', g.plan, 'status', g.status,
               'params', g.params, 'fence', g.fence,
               'deadline_ms', (extract(epoch FROM g.deadline_at) * 1000)::bigint)
               ORDER BY g.created_at), '[]')
        INTO v_candidates
        FROM stamped g;
    -- Running generations the user asked to cancel, a moment ago or more: the
    -- api's word to the queue may have been lost (Redis failing over), so the
    -- caller says it again each tick until the generation ends.
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', g.id, 'user_id', g.user_id)), '[]')
        INTO v_canceling
        FROM (SELECT id, user_id FROM generations
              WHERE status = 'running' AND cancel_requested
                AND cancel_requested_at < now() - interval '2 seconds'
              ORDER BY created_at LIMIT p_limit) g;
    RETURN jsonb_build_object('locked', true, 'expired', v_expired, 'candidates', v_candidates,
                              'canceling', v_canceling)::text;
END $$;
