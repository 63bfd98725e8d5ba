-- `farm webhooks list`: deliveries, newest first, failed ones only with
-- p_failed, one generation's with p_gen; at most p_limit.
--
-- One branch per kind of listing, each gated by its parameters alone: a
-- SQL function's statement is planned for any parameter values, and one
-- WHERE with (p_gen IS NULL OR ...) in it read every delivery whatever it
-- was given. Gated this way, one generation's come by its unique index
-- and the failed ones by webhook_deliveries_failed; the unfiltered listing
-- still reads them all (no index by age of every delivery).
CREATE OR REPLACE FUNCTION farm_webhooks_list(p_failed boolean, p_gen uuid, p_limit int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH pick AS (
        (SELECT d.* FROM webhook_deliveries d
         WHERE p_gen IS NOT NULL AND d.generation_id = p_gen
           AND (p_failed IS FALSE OR d.status = 'failed')
         ORDER BY d.created_at DESC LIMIT p_limit)
        UNION ALL
        (SELECT d.* FROM webhook_deliveries d
         WHERE p_gen IS NULL AND p_failed IS NOT FALSE AND d.status = 'failed'
         ORDER BY d.created_at DESC LIMIT p_limit)
        UNION ALL
        (SELECT d.* FROM webhook_deliveries d
         WHERE p_gen IS NULL AND p_failed IS FALSE
         ORDER BY d.created_at DESC LIMIT p_limit))
    SELECT coalesce(jsonb_agg(jsonb_build_object(
            'id', d.id, 'generation_id', d.generation_id, 'event', d.event, 'url', d.url,
            'status', d.status, 'attempts', d.attempts, 'last_status_code', d.last_status_code,
            'last_error', d.last_error, 'created_at', farm_ts(d.created_at),
            'next_attempt_at', farm_ts(d.next_attempt_at),
            'delivered_at', farm_ts(d.delivered_at)) ORDER BY d.created_at DESC), '[]'::jsonb)
    FROM pick d
$$;
