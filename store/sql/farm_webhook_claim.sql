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
--
-- Per host (webhook_deliveries.host): the deliverer holds p_busy's count of
-- a host's deliveries unsent or in flight ({"host": n}, hosts with none
-- left out), and after the claim holds at most p_per_host of one host. A
-- host it holds p_per_host of is passed over, so a receiver that hangs,
-- however long its backlog, takes that many of the deliverer's slots and
-- never holds up another host's deliveries for longer than a poll. The scan
-- reads (and locks, for the statement) at most 4 * p_limit due rows of the
-- other hosts, oldest first.
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int, p_results jsonb,
                                              p_per_host int, p_busy jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_results jsonb := '[]'::jsonb;
    v_recorded uuid[] := '{}';
    v_full text[];
BEGIN
    IF p_results IS NOT NULL THEN
        v_results := farm_webhook_results(p_results);
        v_recorded := ARRAY(SELECT (x->>'id')::uuid FROM jsonb_array_elements(p_results) x);
    END IF;
    v_full := ARRAY(SELECT b.key FROM jsonb_each_text(coalesce(p_busy, '{}')) b
                    WHERE b.value::int >= p_per_host);
    -- Locked as scanned (SKIP LOCKED: a concurrent claim's rows are passed
    -- over, and the scan goes on to others), so what is ranked is this
    -- claim's to take.
    WITH scan AS (
        SELECT d.id, d.host, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.next_attempt_at <= now()
              AND (d.lease_until IS NULL OR d.lease_until < now())
              AND d.id <> ALL (v_recorded)
              AND (d.host IS NULL OR d.host <> ALL (v_full))
            ORDER BY d.next_attempt_at
            LIMIT 4 * greatest(p_limit, 0)
            FOR UPDATE SKIP LOCKED),
    ranked AS (
        SELECT s.id, s.next_attempt_at,
               row_number() OVER (PARTITION BY s.host ORDER BY s.next_attempt_at) AS nth,
               p_per_host - coalesce((p_busy ->> s.host)::int, 0) AS room
            FROM scan s),
    due AS (
        SELECT r.id FROM ranked r WHERE r.nth <= r.room
            ORDER BY r.next_attempt_at LIMIT p_limit),
    c AS (
        UPDATE webhook_deliveries d SET lease_token = nextval('webhook_lease_seq'),
                lease_until = now() + make_interval(secs => p_lease_s)
            FROM due WHERE d.id = due.id
            RETURNING d)
    SELECT jsonb_build_object('now_ms', (extract(epoch FROM now()) * 1000)::bigint,
        'items', coalesce(jsonb_agg(farm__webhook_item(c.d) ORDER BY (c.d).next_attempt_at),
                          '[]'::jsonb),
        'results', v_results)
        INTO v FROM c;
    RETURN v;
END $$;
-- The calls of the versions before, without a per-host bound (p_limit per
-- host) or, the oldest, recording nothing: the processes of those versions
-- prepare them until a rolling deploy has replaced them all (they read
-- `now_ms` and `items`, and the oldest passes over `results`).
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int, p_results jsonb)
RETURNS jsonb
LANGUAGE sql AS $$ SELECT farm_webhook_claim(p_limit, p_lease_s, p_results, greatest(p_limit, 1), NULL::jsonb) $$;
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int) RETURNS jsonb
LANGUAGE sql AS $$ SELECT farm_webhook_claim(p_limit, p_lease_s, NULL::jsonb) $$;
