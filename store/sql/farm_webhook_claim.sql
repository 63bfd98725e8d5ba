-- A deliverer's claim of due webhook deliveries (docs/webhooks.md): at most
-- p_limit pending rows whose time has come and whose lease (if any) ran
-- out, each given a new lease token and a lease of p_lease_s. SKIP LOCKED:
-- concurrent claims never take the same row. Each item is
-- farm__webhook_item's. `now_ms`: the database's clock, which every retry
-- decision is measured on. First it records the attempts of p_results that
-- ended since the deliverer's last claim (farm_webhook_results; NULL: none),
-- so a deliverer's poll and its attempts are one statement and one
-- transaction; `results` answers them, in their order. A delivery those
-- attempts name is not claimed again by the same statement: one this
-- deliverer released (it waited too long behind its host) goes to another
-- deliverer's claim, or to this one's next.
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int, p_results jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_results jsonb := '[]'::jsonb;
    v_recorded uuid[] := '{}';
BEGIN
    IF p_results IS NOT NULL THEN
        v_results := farm_webhook_results(p_results);
        v_recorded := ARRAY(SELECT (x->>'id')::uuid FROM jsonb_array_elements(p_results) x);
    END IF;
    WITH due AS (
        SELECT d.id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.next_attempt_at <= now()
              AND (d.lease_until IS NULL OR d.lease_until < now())
              AND d.id <> ALL (v_recorded)
            ORDER BY d.next_attempt_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED),
    c AS (
        UPDATE webhook_deliveries d SET lease_token = nextval('webhook_lease_seq'),
                lease_until = now() + make_interval(secs => p_lease_s)
            FROM due WHERE d.id = due.id
            RETURNING d)
    SELECT jsonb_build_object('now_ms', (extract(epoch FROM now()) * 1000)::bigint,
        'items', coalesce(jsonb_agg(farm__webhook_item(c.d)), '[]'::jsonb),
        'results', v_results)
        INTO v FROM c;
    RETURN v;
END $$;
-- The call of the version before, recording nothing: the processes of that
-- version prepare it until a rolling deploy has replaced them all (they
-- read `now_ms` and `items` and pass over `results`).
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int) RETURNS jsonb
LANGUAGE sql AS $$ SELECT farm_webhook_claim(p_limit, p_lease_s, NULL::jsonb) $$;
