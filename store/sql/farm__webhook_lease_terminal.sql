-- The finishing worker's own claim of a generation's terminal delivery, in
-- the transaction of the finish that wrote it (farm_image_done_finish), so
-- it is not left for the next poll of farm_webhook_claim. Leased exactly as
-- that claim leases (docs/webhooks.md): only while pending, due and not
-- leased, with a new lease token from webhook_lease_seq and a lease of
-- p_lease_s; the attempt is then recorded under that token alone. With
-- p_per_host (NULL: no bound, the callers of the version before), only
-- while its host has room under the farm's bound (farm__webhook_host_room,
-- as a claim counts it; a host another transaction is counting, or a full
-- one, leaves the delivery to the claims). Not while a started or image
-- delivery of the generation is pending and not yet attempted (the last
-- image's, written in this same transaction, when the generation asked for
-- `image` events): the claims send those first, and the terminal one after
-- their first attempts, as farm_webhook_claim orders them. Answers in
-- farm_webhook_claim's shape: {now_ms, items} (no item: nothing leased).
CREATE OR REPLACE FUNCTION farm__webhook_lease_terminal(p_gen uuid, p_lease_s int,
                                                        p_per_host int)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_host text;
    v_room boolean := true;
BEGIN
    IF p_per_host IS NOT NULL THEN
        SELECT d.host INTO v_host FROM webhook_deliveries d
            WHERE d.generation_id = p_gen AND d.kind = 'terminal' AND d.seq = 0;
        v_room := v_host IS NULL OR coalesce(farm__webhook_host_room(v_host, p_per_host), 0) > 0;
    END IF;
    WITH c AS (
        UPDATE webhook_deliveries d SET lease_token = nextval('webhook_lease_seq'),
                lease_until = now() + make_interval(secs => p_lease_s)
            WHERE d.generation_id = p_gen AND d.kind = 'terminal' AND d.seq = 0
              AND d.status = 'pending' AND d.next_attempt_at <= now()
              AND (d.lease_until IS NULL OR d.lease_until < now()) AND v_room
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                              WHERE e.generation_id = p_gen AND e.kind <> 'terminal'
                                AND e.status = 'pending' AND e.attempts = 0)
            RETURNING d)
    SELECT jsonb_build_object('now_ms', (extract(epoch FROM now()) * 1000)::bigint,
        'items', coalesce(jsonb_agg(farm__webhook_item(c.d)), '[]'::jsonb))
        INTO v FROM c;
    RETURN v;
END $$;
-- The version before, unbounded (the farm_image_done_finish of that version
-- calls it until `farm migrate` has replaced that too).
CREATE OR REPLACE FUNCTION farm__webhook_lease_terminal(p_gen uuid, p_lease_s int) RETURNS jsonb
LANGUAGE sql AS $$ SELECT farm__webhook_lease_terminal(p_gen, p_lease_s, NULL::int) $$;
