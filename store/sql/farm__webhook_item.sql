-- One leased delivery as a deliverer reads it (store/result_webhooks.c): the
-- items of farm_webhook_claim and the finishing worker's own lease
-- (farm__webhook_lease_terminal). The terminal event's data is the
-- generation as GET shows it, read now. PL/pgSQL, not SQL: a session plans
-- its query once, where an SQL function called per row is planned per call.
CREATE OR REPLACE FUNCTION farm__webhook_item(d webhook_deliveries) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN jsonb_build_object('id', d.id, 'generation_id', d.generation_id, 'url', d.url,
        'host', d.host, 'event', d.event,
        'data', coalesce(d.data, (SELECT farm_generation_json(g) FROM generations g
                                  WHERE g.id = d.generation_id)),
        'attempts', d.attempts, 'window_attempts', d.attempts - d.retried_attempts,
        'lease_token', d.lease_token,
        'created_ms', (extract(epoch FROM d.created_at) * 1000)::bigint,
        'first_attempt_ms', (extract(epoch FROM d.first_attempt_at) * 1000)::bigint);
END $$;
