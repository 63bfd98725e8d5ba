-- References a generation makes to earlier files of its user: an identity
-- (an upload, or an output of an earlier generation) and uploaded pose maps.

-- Whether every reference belongs to the user: 'ok', or what is missing
-- ('identity' or 'poses'), which the API answers as 404 (never revealing
-- whether another user's file exists).
CREATE FUNCTION farm_refs_check(p_user uuid, p_identity_upload uuid, p_identity_gen uuid,
                                p_identity_index int, p_pose_uploads uuid[])
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_identity_upload IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM uploads u WHERE u.id = p_identity_upload AND u.user_id = p_user)
            THEN 'identity'
        WHEN p_identity_gen IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM generation_outputs o JOIN generations g ON g.id = o.generation_id
                WHERE o.generation_id = p_identity_gen AND g.user_id = p_user
                  AND o.image_index = p_identity_index AND o.variant = 'full')
            THEN 'identity'
        WHEN EXISTS (SELECT 1 FROM unnest(coalesce(p_pose_uploads, '{}'::uuid[])) AS p(id)
                     WHERE NOT EXISTS (SELECT 1 FROM uploads u
                                       WHERE u.id = p.id AND u.user_id = p_user))
            THEN 'poses'
        ELSE 'ok' END
$$;

-- The worker's view grows the storage keys of those references.
CREATE OR REPLACE FUNCTION farm_worker_resume(p_id uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'settled', coalesce((SELECT jsonb_agg(l.image_index) FROM credit_ledger l
                             WHERE l.generation_id = g.id AND l.kind IN ('capture', 'release')),
                            '[]'::jsonb),
        'provider_requests', g.provider_requests,
        'identity_key', coalesce(
            (SELECT u.storage_key FROM uploads u
             WHERE u.id = (g.params -> 'identity' ->> 'upload_id')::uuid AND u.user_id = g.user_id),
            (SELECT o.storage_key FROM generation_outputs o JOIN generations e ON e.id = o.generation_id
             WHERE o.generation_id = (g.params -> 'identity' ->> 'generation_id')::uuid
               AND e.user_id = g.user_id
               AND o.image_index = (g.params -> 'identity' ->> 'index')::int
               AND o.variant = 'full')),
        'pose_keys', coalesce((
            SELECT jsonb_object_agg(p.ord - 1, u.storage_key)
            FROM jsonb_array_elements(coalesce(g.params -> 'poses', '[]'::jsonb))
                 WITH ORDINALITY AS p(pose, ord)
            JOIN uploads u ON u.id = (p.pose ->> 'upload_id')::uuid AND u.user_id = g.user_id),
            '{}'::jsonb))::text
    FROM generations g WHERE g.id = p_id
$$;
