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
-- Per host (webhook_deliveries.host), across the whole farm: after the
-- claim at most p_per_host of a host's deliveries are leased at once, by
-- every deliverer together (its lease taken and not yet recorded:
-- webhook_deliveries_leased), and never more than p_per_host less what
-- this deliverer holds of it, unsent or in flight (p_busy, {"host": n},
-- hosts with none left out). A full host is passed over, so a receiver
-- that hangs, however long its backlog and however many workers run, takes
-- that many slots of the farm and never holds up another host's deliveries
-- for longer than a poll. The scan reads (and locks, for the statement) at
-- most 4 * p_limit due rows of the other hosts, oldest first. A host's room
-- is counted under a transaction-level advisory lock of that host, taken
-- with pg_try_: two claims at once never both fill the same room (the
-- second passes the host over until its next poll), and none waits.
-- (The finishing worker's own terminal delivery, leased in the finish's
-- transaction, is not held back by the bound; it counts against later
-- claims like any lease.)
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int, p_results jsonb,
                                              p_per_host int, p_busy jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_results jsonb := '[]'::jsonb;
    v_recorded uuid[] := '{}';
    v_full text[];
    v_ids uuid[];
    v_hosts text[];
    v_due timestamptz[];
    v_room jsonb := '{}';
    v_host text;
    v_leased int;
BEGIN
    IF p_results IS NOT NULL THEN
        v_results := farm_webhook_results(p_results);
        v_recorded := ARRAY(SELECT (x->>'id')::uuid FROM jsonb_array_elements(p_results) x);
    END IF;
    -- Full already (by this deliverer's count, or the farm's as committed
    -- now): not scanned, so the scan reaches past their backlogs.
    v_full := ARRAY(SELECT b.key FROM jsonb_each_text(coalesce(p_busy, '{}')) b
                    WHERE b.value::int >= p_per_host
                    UNION
                    SELECT d.host FROM webhook_deliveries d
                    WHERE d.status = 'pending' AND d.lease_until IS NOT NULL
                      AND d.lease_until >= now() AND d.host IS NOT NULL
                    GROUP BY d.host HAVING count(*) >= p_per_host);
    -- Locked as scanned (SKIP LOCKED: a concurrent claim's rows are passed
    -- over, and the scan goes on to others), so what is ranked is this
    -- claim's to take.
    SELECT array_agg(s.id ORDER BY s.next_attempt_at), array_agg(s.host ORDER BY s.next_attempt_at),
           array_agg(s.next_attempt_at ORDER BY s.next_attempt_at)
        INTO v_ids, v_hosts, v_due
        FROM (SELECT d.id, d.host, d.next_attempt_at FROM webhook_deliveries d
                  WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                    AND (d.lease_until IS NULL OR d.lease_until < now())
                    AND d.id <> ALL (v_recorded)
                    AND (d.host IS NULL OR d.host <> ALL (v_full))
                  ORDER BY d.next_attempt_at
                  LIMIT 4 * greatest(p_limit, 0)
                  FOR UPDATE SKIP LOCKED) s;
    -- Each scanned host's room, counted once its lock is this claim's: a
    -- claim that held it has committed, and its leases are counted.
    FOR v_host IN SELECT DISTINCT h FROM unnest(v_hosts) h WHERE h IS NOT NULL LOOP
        IF pg_try_advisory_xact_lock(1734831471, hashtext(v_host)) THEN
            SELECT count(*) INTO v_leased FROM webhook_deliveries d
                WHERE d.status = 'pending' AND d.lease_until IS NOT NULL
                  AND d.lease_until >= now() AND d.host = v_host;
            v_room := v_room || jsonb_build_object(v_host,
                p_per_host - greatest(v_leased, coalesce((p_busy ->> v_host)::int, 0)));
        END IF;
    END LOOP;
    WITH scan AS (
        SELECT * FROM unnest(v_ids, v_hosts, v_due) AS s(id, host, next_attempt_at)),
    ranked AS (
        SELECT s.id, s.next_attempt_at,
               row_number() OVER (PARTITION BY s.host ORDER BY s.next_attempt_at) AS nth,
               CASE WHEN s.host IS NULL THEN p_per_host
                    ELSE coalesce((v_room ->> s.host)::int, 0) END AS room
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
