-- GET /v1/uploads: a page of a user's live uploads, newest first. The
-- cursor is the last item's (created_at, id), passed back as microseconds
-- since the epoch and id, as for generations.
CREATE OR REPLACE FUNCTION farm_uploads_page(p_user uuid, p_limit int, p_cursor_us bigint,
                                             p_cursor_id uuid)
RETURNS text LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT u.*, (extract(epoch FROM u.created_at) * 1000000)::bigint AS us
        FROM uploads u
        WHERE u.user_id = p_user AND u.deleted_at IS NULL
          AND (p_cursor_us IS NULL
               OR (u.created_at, u.id) < (to_timestamp(p_cursor_us / 1000000.0), p_cursor_id))
        ORDER BY u.created_at DESC, u.id DESC
        LIMIT p_limit)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'id', p.id, 'format', p.format, 'width', p.width,
                              'height', p.height, 'bytes', p.bytes,
                              'created_at', farm_ts(p.created_at))
                              ORDER BY p.created_at DESC, p.id DESC)
                           FROM page p), '[]'::jsonb),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) = p_limit THEN
            (SELECT p.us::text || '.' || p.id::text FROM page p
             ORDER BY p.created_at ASC, p.id ASC LIMIT 1) END)::text
$$;
