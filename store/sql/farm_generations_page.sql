-- A page of a user's generations, newest first. The cursor is the last
-- item's (created_at, id), passed back as microseconds since the epoch and id.
CREATE OR REPLACE FUNCTION farm_generations_page(p_user uuid, p_status text, p_kind text, p_limit int,
                                                 p_cursor_us bigint, p_cursor_id uuid)
RETURNS text LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT g AS gen, g.created_at, g.id,
               (extract(epoch FROM g.created_at) * 1000000)::bigint AS us
        FROM generations g
        WHERE g.user_id = p_user AND g.deleted_at IS NULL
          AND (p_status IS NULL OR g.status = p_status)
          AND (p_kind IS NULL OR g.kind = p_kind)
          AND (p_cursor_us IS NULL
               OR (g.created_at, g.id) < (to_timestamp(p_cursor_us / 1000000.0), p_cursor_id))
        ORDER BY g.created_at DESC, g.id DESC
        LIMIT p_limit)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(farm_generation_json(p.gen)
                                            ORDER BY p.created_at DESC, p.id DESC)
                           FROM page p), '[]'::jsonb),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) = p_limit THEN
            (SELECT p.us::text || '.' || p.id::text FROM page p
             ORDER BY p.created_at ASC, p.id ASC LIMIT 1) END)::text
$$;
