-- References a generation makes to earlier files of its user: an identity
-- (an upload, or an output of an earlier generation) and uploaded pose maps.
-- Whether every reference belongs to the user: 'ok', or what is missing
-- ('identity' or 'poses'; a deleted upload, output or generation is
-- missing), which the API answers as 404 (never revealing whether another
-- user's file exists).
CREATE OR REPLACE FUNCTION farm_refs_check(p_user uuid, p_identity_upload uuid, p_identity_gen uuid,
                                           p_identity_index int, p_pose_uploads uuid[])
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_identity_upload IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM uploads u WHERE u.id = p_identity_upload AND u.user_id = p_user
                  AND u.deleted_at IS NULL)
            THEN 'identity'
        WHEN p_identity_gen IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM generation_outputs o JOIN generations g ON g.id = o.generation_id
                WHERE o.generation_id = p_identity_gen AND g.user_id = p_user
                  AND g.deleted_at IS NULL AND o.deleted_at IS NULL
                  AND o.image_index = p_identity_index AND o.variant = 'full')
            THEN 'identity'
        WHEN EXISTS (SELECT 1 FROM unnest(coalesce(p_pose_uploads, '{}'::uuid[])) AS p(id)
                     WHERE NOT EXISTS (SELECT 1 FROM uploads u
                                       WHERE u.id = p.id AND u.user_id = p_user
                                         AND u.deleted_at IS NULL))
            THEN 'poses'
        ELSE 'ok' END
$$;
