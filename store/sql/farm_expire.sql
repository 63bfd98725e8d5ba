-- A queued generation past its deadline: expired and released. One expired
-- already answers 'expired' too: the sweeper and a claim may both expire it
-- (the sweeper could not tell the queue, Redis being away), and that is no
-- disagreement between them.
-- expired | not_expired | not_found
CREATE OR REPLACE FUNCTION farm_expire(p_id uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF g.status = 'expired' THEN RETURN 'expired'; END IF;
    IF g.status <> 'queued' OR g.deadline_at IS NULL OR g.deadline_at > now() THEN
        RETURN 'not_expired';
    END IF;
    PERFORM farm_finish(p_id, NULL, 'expired',
        jsonb_build_object('code', 'expired', 'message', 'not started before its deadline',
                           'retryable', false));
    RETURN 'expired';
END $$;
