-- The api's cancel. A queued generation is canceled at once and released;
-- a running one is flagged for its worker, which finishes it.
-- canceled | cancel_requested | not_cancelable | not_found
CREATE OR REPLACE FUNCTION farm_cancel(p_id uuid, p_user uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id AND user_id = p_user AND deleted_at IS NULL
        FOR UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF g.status = 'queued' THEN
        PERFORM farm_finish(p_id, NULL, 'canceled', NULL);
        RETURN 'canceled';
    ELSIF g.status = 'running' THEN
        UPDATE generations SET cancel_requested = true, updated_at = now(),
                cancel_requested_at = coalesce(cancel_requested_at, now())
            WHERE id = p_id;
        RETURN 'cancel_requested';
    END IF;
    RETURN 'not_cancelable';
END $$;
