-- A page of a user's ledger, newest first; the cursor is the last entry's id.
CREATE OR REPLACE FUNCTION farm_ledger_page(p_user uuid, p_limit int, p_cursor bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT l.* FROM credit_ledger l
        WHERE l.user_id = p_user AND (p_cursor IS NULL OR l.id < p_cursor)
        ORDER BY l.id DESC LIMIT p_limit)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'kind', p.kind, 'amount', p.amount, 'generation_id', p.generation_id,
                              'image_index', p.image_index, 'reason', p.reason,
                              'created_at', farm_ts(p.created_at)) ORDER BY p.id DESC)
                           FROM page p), '[]'::jsonb),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) = p_limit THEN
            (SELECT min(p.id)::text FROM page p) END)::text
$$;
