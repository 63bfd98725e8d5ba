-- What a worker that takes a generation over needs to know, and the API must
-- not show: which images are settled, and the provider requests an earlier
-- attempt persisted (so it resumes them instead of paying for them again).
CREATE FUNCTION farm_worker_resume(p_id uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'settled', coalesce((SELECT jsonb_agg(l.image_index) FROM credit_ledger l
                             WHERE l.generation_id = g.id AND l.kind IN ('capture', 'release')),
                            '[]'::jsonb),
        'provider_requests', g.provider_requests)::text
    FROM generations g WHERE g.id = p_id
$$;
