-- Uploads: recorded once their normalized bytes are stored. The user is
-- provisioned on first sight, as on every other route. The user's quota
-- (p_max_count uploads, p_max_bytes bytes; 0: none) is checked and the row
-- inserted under a lock on the user's row, so two uploads at once cannot
-- both take the last place: 'over_count' or 'over_bytes' inserts nothing.
-- FOR NO KEY UPDATE, not FOR UPDATE: the foreign keys to users take KEY
-- SHARE locks, which this one leaves free (generations are not held up).
DROP FUNCTION IF EXISTS farm_upload_add(uuid, uuid, bigint, text, int, int, bigint, text, text);
CREATE OR REPLACE FUNCTION farm_upload_add(p_id uuid, p_user uuid, p_welcome bigint, p_format text,
                                           p_width int, p_height int, p_bytes bigint, p_sha256 text,
                                           p_key text, p_max_count bigint, p_max_bytes bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_uploads bigint;
    v_bytes bigint;
BEGIN
    PERFORM farm_user_ensure(p_user, NULL, p_welcome);
    PERFORM 1 FROM users WHERE id = p_user FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM uploads WHERE id = p_id) THEN
        RETURN 'added'; -- recorded before (the same call again)
    END IF;
    SELECT uploads, bytes INTO v_uploads, v_bytes FROM farm_upload_usage(p_user);
    IF p_max_count > 0 AND v_uploads + 1 > p_max_count THEN
        RETURN 'over_count';
    END IF;
    IF p_max_bytes > 0 AND v_bytes + p_bytes > p_max_bytes THEN
        RETURN 'over_bytes';
    END IF;
    INSERT INTO uploads (id, user_id, format, width, height, bytes, sha256, storage_key)
        VALUES (p_id, p_user, p_format, p_width, p_height, p_bytes, p_sha256, p_key);
    RETURN 'added';
END $$;
