-- The outcome of a delete (farm_generation_delete, farm_upload_delete) whose
-- answer was lost (api/resolve.c): it may have committed, and a retry of
-- the delete would then answer not_found. First farm_accept_resolve's fence
-- (p_pid, p_app: the backend the delete ran on), so the lost call has
-- committed or rolled back for good; then the row, locked (a resolution
-- whose own answer was lost and that is still running is waited for). If
-- the user's generation or upload (p_what: 'generation' | 'upload') is
-- deleted, the answer is the delete's 'deleted' with the keys the caller
-- may delete now, as farm_generation_delete and farm_upload_delete give
-- them; the deletion may also be an earlier request's, which answers the
-- same (the client asked for it to be gone, and it is). Otherwise the lost
-- call rolled back, and the delete runs now and answers for itself.
CREATE OR REPLACE FUNCTION farm_delete_resolve(p_id uuid, p_user uuid, p_what text, p_pid int,
                                               p_app text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_deleted timestamptz;
    v_key text;
    v_keys text[];
BEGIN
    PERFORM farm_accept_resolve(p_pid, p_app, '{}'::uuid[]);
    IF p_what = 'generation' THEN
        SELECT deleted_at INTO v_deleted FROM generations
            WHERE id = p_id AND user_id = p_user FOR UPDATE;
        IF v_deleted IS NULL THEN
            RETURN farm_generation_delete(p_id, p_user);
        END IF;
        IF NOT farm__storage_waits(p_user, NULL, p_id) THEN
            SELECT array_agg(d.storage_key ORDER BY d.storage_key) INTO v_keys
                FROM storage_deletions d WHERE d.generation_id = p_id;
        END IF;
    ELSE
        SELECT deleted_at, storage_key INTO v_deleted, v_key FROM uploads
            WHERE id = p_id AND user_id = p_user FOR UPDATE;
        IF v_deleted IS NULL THEN
            RETURN farm_upload_delete(p_id, p_user);
        END IF;
        IF NOT farm__storage_waits(p_user, p_id, NULL) THEN
            SELECT array_agg(d.storage_key ORDER BY d.storage_key) INTO v_keys
                FROM storage_deletions d WHERE d.storage_key = v_key;
        END IF;
    END IF;
    -- 'resolved': the deletion was there already, and so is its audit row (the
    -- lost call's, committed with it, or an earlier request's): the audited
    -- statement writes none for this one (store/call.c).
    RETURN jsonb_build_object('outcome', 'deleted',
                              'keys', to_jsonb(coalesce(v_keys, '{}'::text[])),
                              'resolved', 'already')::text;
END $$;
