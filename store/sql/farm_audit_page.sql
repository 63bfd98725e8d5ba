-- A page of the audit trail, newest first; the cursor is the last row's id.
CREATE OR REPLACE FUNCTION farm_audit_page(p_limit int, p_cursor bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT a.* FROM audit_log a
        WHERE p_cursor IS NULL OR a.id < p_cursor
        ORDER BY a.id DESC LIMIT p_limit)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                              'id', p.id, 'actor', p.actor, 'action', p.action,
                              'target', p.target, 'request_id', p.request_id,
                              'detail', p.detail, 'at', farm_ts(p.at)) ORDER BY p.id DESC)
                           FROM page p), '[]'::jsonb),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) = p_limit THEN
            (SELECT min(p.id)::text FROM page p) END)::text
$$;
