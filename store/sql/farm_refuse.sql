-- A generation the queue refused (the user's cap of active generations is
-- checked atomically when the job is enqueued, after the hold) is canceled
-- and released, and its idempotency key is freed.
--
-- Why: the key stayed bound to the refused generation for 24 hours, so a
-- client that retried the same request with the same key after the 429's
-- Retry-After got 200 and that canceled generation back, never a new
-- attempt, although the key exists precisely to make retries safe.
CREATE OR REPLACE FUNCTION farm_refuse(p_id uuid, p_user uuid, p_key text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    IF p_key IS NOT NULL THEN
        DELETE FROM idempotency_keys k
            WHERE k.user_id = p_user AND k.key = p_key AND k.generation_id = p_id;
    END IF;
    -- The client was answered 429 for it: no webhook for a generation it never had.
    UPDATE generations SET webhook_url = NULL WHERE id = p_id AND status = 'queued';
    SELECT f.status INTO v_status FROM farm_finish(p_id, NULL, 'canceled',
        '{"code":"too_many_active","message":"refused by the active generations cap","retryable":true}') f;
    RETURN v_status;
END $$;
