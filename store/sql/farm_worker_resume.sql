-- What a worker that takes a generation over needs to know, and the API must
-- not show: which images are settled, the provider requests an earlier
-- attempt persisted (so it resumes them instead of paying for them again),
-- and the storage keys of the files the generation references.
-- plpgsql, not sql: its query is planned once per session and kept, where a
-- LANGUAGE sql function that cannot be inlined (this one has sub-selects) is
-- parsed and planned again on every call (5 to 7 times the cost, measured).
CREATE OR REPLACE FUNCTION farm_worker_resume(p_id uuid) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
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
        FROM generations g WHERE g.id = p_id);
END $$;
