-- DELETE /v1/uploads/{id}: the upload is deleted for its user at once (it
-- can no longer be referenced nor listed) and its object is listed in
-- storage_deletions. Returns {"outcome": "deleted" | "not_found", "keys":
-- [...]}: the key when the caller may delete it at once, none while a
-- queued or running generation references the upload (the sweeper deletes
-- it once they have finished).
CREATE OR REPLACE FUNCTION farm_upload_delete(p_id uuid, p_user uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
BEGIN
    UPDATE uploads SET deleted_at = now()
        WHERE id = p_id AND user_id = p_user AND deleted_at IS NULL
        RETURNING storage_key INTO v_key;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'not_found', 'keys', '[]'::jsonb)::text;
    END IF;
    INSERT INTO storage_deletions (storage_key, user_id, upload_id, reason)
        VALUES (v_key, p_user, p_id, 'deleted')
        ON CONFLICT (storage_key) DO NOTHING;
    RETURN jsonb_build_object('outcome', 'deleted', 'keys',
        CASE WHEN farm__storage_waits(p_user, p_id, NULL) THEN '[]'::jsonb
             ELSE jsonb_build_array(v_key) END)::text;
END $$;
