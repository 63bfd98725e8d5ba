-- The one JSON shape of a generation: GET /v1/generations/{id} and the list
-- share it. An output whose object was deleted (retention; migrations/0019)
-- has no storage key and says `deleted`. `params` are the request's as
-- accepted (API.md): the stored parameters, and the webhook_url and
-- webhook_events kept in columns of their own (the queue's payload has
-- no use for them).
-- plpgsql, not sql: its query is planned once per session and kept, where a
-- LANGUAGE sql function that cannot be inlined (this one has sub-selects) is
-- parsed and planned again on every call (5 to 7 times the cost, measured).
CREATE OR REPLACE FUNCTION farm_generation_json(g generations) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'id', g.id, 'kind', g.kind, 'status', g.status, 'progress', g.progress,
            'stage', g.stage, 'queue_position', NULL, 'images', g.images,
            'images_done', g.images_done, 'images_failed', g.images_failed,
            'params', CASE WHEN g.webhook_url IS NULL THEN g.params
                           ELSE g.params || jsonb_build_object('webhook_url', g.webhook_url)
                                || CASE WHEN cardinality(g.webhook_events) > 0
                                        THEN jsonb_build_object('webhook_events',
                                                                to_jsonb(g.webhook_events))
                                        ELSE '{}' END END,
            'cost', g.cost, 'charged', g.charged, 'released', g.released,
            'attempts', g.attempts, 'provider', g.provider, 'error', g.error,
            'failures', g.failures, 'metadata', g.metadata, 'webhook', farm_webhook_json(g),
            'created_at', farm_ts(g.created_at), 'started_at', farm_ts(g.started_at),
            'finished_at', farm_ts(g.finished_at),
            'outputs', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'index', o.image_index, 'pose', o.pose, 'variant', o.variant,
                    'format', o.format, 'width', o.width, 'height', o.height, 'bytes', o.bytes,
                    'sha256', o.sha256, 'seed', o.seed,
                    'storage_key', CASE WHEN o.deleted_at IS NULL THEN o.storage_key END,
                    'deleted', o.deleted_at IS NOT NULL)
                    ORDER BY o.image_index, o.variant)
                FROM generation_outputs o WHERE o.generation_id = g.id), '[]'::jsonb)));
END $$;
