-- The finishing worker's own claim of a generation's terminal delivery, in
-- the transaction of the finish that wrote it (farm_image_done_finish), so
-- it is not left for the next poll of farm_webhook_claim. Leased exactly as
-- that claim leases (docs/webhooks.md): only while pending, due and not
-- leased, with a new lease token from webhook_lease_seq and a lease of
-- p_lease_s; the attempt is then recorded under that token alone. Answers
-- in farm_webhook_claim's shape: {now_ms, items} (no item: nothing to lease).
CREATE OR REPLACE FUNCTION farm__webhook_lease_terminal(p_gen uuid, p_lease_s int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    WITH c AS (
        UPDATE webhook_deliveries d SET lease_token = nextval('webhook_lease_seq'),
                lease_until = now() + make_interval(secs => p_lease_s)
            WHERE d.generation_id = p_gen AND d.kind = 'terminal' AND d.seq = 0
              AND d.status = 'pending' AND d.next_attempt_at <= now()
              AND (d.lease_until IS NULL OR d.lease_until < now())
            RETURNING d)
    SELECT jsonb_build_object('now_ms', (extract(epoch FROM now()) * 1000)::bigint,
        'items', coalesce(jsonb_agg(farm__webhook_item(c.d)), '[]'::jsonb))
        INTO v FROM c;
    RETURN v;
END $$;
