-- Uploads: recorded once their normalized bytes are stored. The user is
-- provisioned on first sight, as on every other route.
CREATE OR REPLACE FUNCTION farm_upload_add(p_id uuid, p_user uuid, p_welcome bigint, p_format text,
                                           p_width int, p_height int, p_bytes bigint, p_sha256 text,
                                           p_key text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM farm_user_ensure(p_user, NULL, p_welcome);
    INSERT INTO uploads (id, user_id, format, width, height, bytes, sha256, storage_key)
        VALUES (p_id, p_user, p_format, p_width, p_height, p_bytes, p_sha256, p_key)
        ON CONFLICT (id) DO NOTHING;
    RETURN 'added';
END $$;
