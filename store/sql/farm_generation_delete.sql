-- DELETE /v1/generations/{id}: hides a finished generation of the user and
-- marks its outputs deleted, in one transaction, and lists their objects in
-- storage_deletions. Returns {"outcome": "deleted" | "not_found" |
-- "not_deletable", "keys": [...]}: the keys the caller may delete at once
-- (none while an open generation takes one of its outputs as identity; the
-- sweeper deletes them later). A generation already deleted is not_found.
CREATE OR REPLACE FUNCTION farm_generation_delete(p_id uuid, p_user uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_keys text[];
BEGIN
    SELECT status INTO v_status FROM generations
        WHERE id = p_id AND user_id = p_user AND deleted_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'not_found', 'keys', '[]'::jsonb)::text;
    END IF;
    IF v_status IN ('queued', 'running') THEN
        RETURN jsonb_build_object('outcome', 'not_deletable', 'keys', '[]'::jsonb)::text;
    END IF;
    UPDATE generations SET deleted_at = now() WHERE id = p_id;
    WITH gone AS (
        UPDATE generation_outputs SET deleted_at = now()
        WHERE generation_id = p_id AND deleted_at IS NULL
        RETURNING storage_key)
    INSERT INTO storage_deletions (storage_key, user_id, generation_id, reason)
        SELECT storage_key, p_user, p_id, 'deleted' FROM gone
        ON CONFLICT (storage_key) DO NOTHING;
    IF NOT farm__storage_waits(p_user, NULL, p_id) THEN
        SELECT coalesce(array_agg(d.storage_key ORDER BY d.storage_key), '{}') INTO v_keys
            FROM storage_deletions d WHERE d.generation_id = p_id;
    END IF;
    RETURN jsonb_build_object('outcome', 'deleted',
                              'keys', to_jsonb(coalesce(v_keys, '{}'::text[])))::text;
END $$;
