-- A deliverer's claim of due webhook deliveries (docs/webhooks.md): at most
-- p_limit pending rows whose time has come and whose lease (if any) ran
-- out, each given a new lease token and a lease of p_lease_s. SKIP LOCKED:
-- concurrent claims never take the same row. The terminal event's data is
-- the generation as GET shows it, read now. `now_ms`: the database's clock,
-- which every retry decision is measured on.
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    WITH due AS (
        SELECT d.id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.next_attempt_at <= now()
              AND (d.lease_until IS NULL OR d.lease_until < now())
            ORDER BY d.next_attempt_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED),
    c AS (
        UPDATE webhook_deliveries d SET lease_token = nextval('webhook_lease_seq'),
                lease_until = now() + make_interval(secs => p_lease_s)
            FROM due WHERE d.id = due.id
            RETURNING d.*)
    SELECT jsonb_build_object('now_ms', (extract(epoch FROM now()) * 1000)::bigint,
        'items', coalesce(jsonb_agg(jsonb_build_object(
            'id', c.id, 'generation_id', c.generation_id, 'url', c.url, 'event', c.event,
            'data', coalesce(c.data, (SELECT farm_generation_json(g) FROM generations g
                                      WHERE g.id = c.generation_id)),
            'attempts', c.attempts, 'lease_token', c.lease_token,
            'created_ms', (extract(epoch FROM c.created_at) * 1000)::bigint,
            'first_attempt_ms', (extract(epoch FROM c.first_attempt_at) * 1000)::bigint)),
            '[]'::jsonb))
        INTO v FROM c;
    RETURN v;
END $$;
