-- `farm webhooks list`: deliveries, newest first, failed ones only with
-- p_failed, one generation's with p_gen; at most p_limit.
CREATE OR REPLACE FUNCTION farm_webhooks_list(p_failed boolean, p_gen uuid, p_limit int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(x.j ORDER BY x.created_at DESC), '[]'::jsonb) FROM (
        SELECT d.created_at, jsonb_build_object(
            'id', d.id, 'generation_id', d.generation_id, 'event', d.event, 'url', d.url,
            'status', d.status, 'attempts', d.attempts, 'last_status_code', d.last_status_code,
            'last_error', d.last_error, 'created_at', farm_ts(d.created_at),
            'next_attempt_at', farm_ts(d.next_attempt_at),
            'delivered_at', farm_ts(d.delivered_at)) AS j
        FROM webhook_deliveries d
        WHERE (NOT p_failed OR d.status = 'failed')
          AND (p_gen IS NULL OR d.generation_id = p_gen)
        ORDER BY d.created_at DESC
        LIMIT p_limit) x
$$;
