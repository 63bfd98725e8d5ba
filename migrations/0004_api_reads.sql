-- Reads for the API: one JSON shape of a generation (GET /v1/generations/{id}
-- and the list share it), a page of generations and a page of the ledger.

CREATE FUNCTION farm_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION farm_generation_json(g generations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', g.id, 'kind', g.kind, 'status', g.status, 'progress', g.progress,
        'stage', g.stage, 'queue_position', NULL, 'images', g.images,
        'images_done', g.images_done, 'images_failed', g.images_failed,
        'params', g.params, 'cost', g.cost, 'charged', g.charged, 'released', g.released,
        'attempts', g.attempts, 'provider', g.provider, 'error', g.error,
        'failures', g.failures, 'metadata', g.metadata,
        'created_at', farm_ts(g.created_at), 'started_at', farm_ts(g.started_at),
        'finished_at', farm_ts(g.finished_at),
        'outputs', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'index', o.image_index, 'pose', o.pose, 'variant', o.variant,
                'format', o.format, 'width', o.width, 'height', o.height, 'bytes', o.bytes,
                'sha256', o.sha256, 'seed', o.seed, 'storage_key', o.storage_key)
                ORDER BY o.image_index, o.variant)
            FROM generation_outputs o WHERE o.generation_id = g.id), '[]'::jsonb))
$$;

-- A page of a user's generations, newest first. The cursor is the last
-- item's (created_at, id), passed back as microseconds since the epoch and id.
CREATE FUNCTION farm_generations_page(p_user uuid, p_status text, p_kind text, p_limit int,
                                      p_cursor_us bigint, p_cursor_id uuid)
RETURNS text LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT g AS gen, g.created_at, g.id,
               (extract(epoch FROM g.created_at) * 1000000)::bigint AS us
        FROM generations g
        WHERE g.user_id = p_user
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

-- A page of a user's ledger, newest first; the cursor is the last entry's id.
CREATE FUNCTION farm_ledger_page(p_user uuid, p_limit int, p_cursor bigint) RETURNS text
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

-- The account of a user, provisioned on first sight. (A plain SELECT could
-- not see the account its own subquery inserted: one statement, one snapshot.)
CREATE FUNCTION farm_balance(p_user uuid, p_welcome bigint, OUT balance bigint, OUT held bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM farm_user_ensure(p_user, NULL, p_welcome);
    SELECT a.balance, a.held INTO balance, held FROM credit_accounts a WHERE a.user_id = p_user;
END $$;
