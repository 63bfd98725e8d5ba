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
-- for longer than a poll.
--
-- What a claim reads is bounded by what it may take and the number of
-- hosts, never by a backlog. It walks the window first: the oldest due
-- deliveries, whatever their host (webhook_deliveries_due), 4 * p_limit and
-- as many more as the farm has leased now (those are due too). Only when
-- due deliveries are left past the window and the claim is not filled (the
-- window is a full host's backlog, or of hosts this claim filled) does it
-- go on host by host (webhook_deliveries_due_by_host): one index step for
-- each host with a pending delivery, and of each due host with room left,
-- the oldest deliveries it may take (p_limit, and p_per_host less p_busy).
-- Each pass locks (for the statement) what it may take as it meets it, at
-- most 4 * p_limit rows, and takes them oldest first. A host's room is
-- counted when the walk first meets it (farm__webhook_host_room, under the
-- host's advisory lock, as farm__webhook_lease_terminal counts it): two
-- claims at once never both fill the same room (the second passes the host
-- over until its next poll), and none waits. At most 64 hosts are counted,
-- so locked, by one claim (the others' rows wait for the next poll), so a
-- claim never fills Postgres's lock table.
--
-- A generation's terminal delivery waits while one of its started or image
-- deliveries is pending and not yet attempted (due, or leased and in
-- flight): those events happened first, and a receiver gets each one's
-- first attempt answered before the terminal event, so it does not see
-- `succeeded` before the last `image`. (Retries of a failing one do not
-- hold the terminal event back.) farm__webhook_lease_terminal waits the
-- same way. It is asked of each terminal row read, by a scalar subquery on
-- the generation's own rows: never the hash of every pending delivery the
-- planner may make of a NOT EXISTS.
CREATE OR REPLACE FUNCTION farm_webhook_claim(p_limit int, p_lease_s int, p_results jsonb,
                                              p_per_host int, p_busy jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_limit int := greatest(p_limit, 0);
    v_results jsonb := '[]'::jsonb;
    v_recorded uuid[] := '{}';
    v_full text[] := '{}';
    v_leased bigint := 0;     -- the farm's deliveries leased now
    v_window bigint := 0;     -- the rows of the window
    v_hosted uuid[];          -- what the walk host by host reads
    v_pass int;
    v_scan refcursor;
    r record;
    v_hosts text[] := '{}';   -- the hosts met so far, with
    v_rooms int[] := '{}';    -- what is left of each one's room
    v_at int;
    v_locked int := 0;
    v_no_host int := p_per_host; -- the room of rows without a host
    v_taken uuid[] := '{}';
BEGIN
    IF p_results IS NOT NULL THEN
        v_results := farm_webhook_results(p_results);
        v_recorded := ARRAY(SELECT (x->>'id')::uuid FROM jsonb_array_elements(p_results) x);
    END IF;
    IF v_limit > 0 THEN
        -- Full already (by this deliverer's count, or the farm's as
        -- committed now): passed over.
        SELECT coalesce(array_agg(l.host) FILTER (WHERE l.host IS NOT NULL AND l.n >= p_per_host),
                        '{}'), coalesce(sum(l.n), 0)
            INTO v_full, v_leased
            FROM (SELECT d.host, count(*) AS n FROM webhook_deliveries d
                  WHERE d.status = 'pending' AND d.lease_until IS NOT NULL
                    AND d.lease_until >= now()
                  GROUP BY d.host) l;
        v_full := v_full || ARRAY(SELECT b.key FROM jsonb_each_text(coalesce(p_busy, '{}')) b
                                  WHERE b.value::int >= p_per_host);
        v_window := 4 * v_limit + v_leased;
    END IF;
    FOR v_pass IN 1 .. 2 LOOP
        EXIT WHEN cardinality(v_taken) >= v_limit;
        -- Locked as scanned (SKIP LOCKED: a concurrent claim's rows are
        -- passed over, and the scan goes on to others), so what is walked
        -- is this claim's to take; each row is read again once locked.
        IF v_pass = 1 THEN
            -- The window, read no further than the walk goes. Each row is
            -- locked by its ctid, the version the window read (one changed
            -- since is locked as it is now, and checked again).
            OPEN v_scan FOR
                SELECT d.id, d.host FROM (
                        SELECT e.ctid, e.host, e.lease_until, e.next_attempt_at
                        FROM webhook_deliveries e
                        WHERE e.status = 'pending' AND e.next_attempt_at <= now()
                        ORDER BY e.next_attempt_at LIMIT v_window) w
                    JOIN webhook_deliveries d ON d.ctid = w.ctid
                WHERE (w.host IS NULL OR w.host <> ALL (v_full))
                  AND (w.lease_until IS NULL OR w.lease_until < now())
                  AND d.status = 'pending' AND d.next_attempt_at <= now()
                  AND (d.lease_until IS NULL OR d.lease_until < now())
                  AND d.id <> ALL (v_recorded)
                  AND (d.kind <> 'terminal' OR (SELECT 1 FROM webhook_deliveries t
                                                WHERE t.generation_id = d.generation_id
                                                  AND t.kind <> 'terminal' AND t.status = 'pending'
                                                  AND t.attempts = 0 LIMIT 1) IS NULL)
                ORDER BY w.next_attempt_at
                LIMIT 4 * v_limit
                FOR UPDATE OF d SKIP LOCKED;
        ELSE
            -- Due deliveries left past the window, or nothing to walk.
            EXIT WHEN (SELECT count(*) FROM (
                           SELECT 1 FROM webhook_deliveries e
                           WHERE e.status = 'pending' AND e.next_attempt_at <= now()
                           ORDER BY e.next_attempt_at LIMIT v_window + 1) x) <= v_window;
            -- Host by host: every host with a pending delivery, one index
            -- step each (h); of each due one not full, and not filled by
            -- the window, the oldest deliveries it may take, read as a range
            -- of the index's keys (no plan can read them off another index,
            -- through other hosts' rows).
            v_full := v_full || ARRAY(SELECT m.host FROM unnest(v_hosts, v_rooms) m(host, room)
                                      WHERE m.room <= 0);
            v_hosted := ARRAY(
                WITH RECURSIVE h AS (
                    (SELECT d.host, d.next_attempt_at FROM webhook_deliveries d
                     WHERE d.status = 'pending' AND d.host IS NOT NULL
                     ORDER BY d.host, d.next_attempt_at LIMIT 1)
                    UNION ALL
                    SELECT n.host, n.next_attempt_at FROM h CROSS JOIN LATERAL (
                        SELECT d.host, d.next_attempt_at FROM webhook_deliveries d
                        WHERE d.status = 'pending' AND d.host > h.host
                        ORDER BY d.host, d.next_attempt_at LIMIT 1) n)
                SELECT c.id FROM (
                    SELECT c.id, c.next_attempt_at FROM h CROSS JOIN LATERAL (
                        SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                        WHERE (d.host, d.next_attempt_at) >= (h.host, '-infinity'::timestamptz)
                          AND (d.host, d.next_attempt_at) <= (h.host, now())
                          AND d.status = 'pending'
                          AND (d.lease_until IS NULL OR d.lease_until < now())
                          AND d.id <> ALL (v_recorded) AND d.id <> ALL (v_taken)
                          -- a held-back terminal row is no candidate: it would take
                          -- the place of a row the host may have
                          AND (d.kind <> 'terminal' OR (SELECT 1 FROM webhook_deliveries t
                                                        WHERE t.generation_id = d.generation_id
                                                          AND t.kind <> 'terminal'
                                                          AND t.status = 'pending'
                                                          AND t.attempts = 0 LIMIT 1) IS NULL)
                        ORDER BY d.host, d.next_attempt_at
                        LIMIT greatest(least(v_limit, p_per_host
                                             - coalesce((p_busy ->> h.host)::int, 0)), 0)) c
                    WHERE h.next_attempt_at <= now() AND h.host <> ALL (v_full)
                    UNION ALL
                    (SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                     WHERE d.host IS NULL AND d.status = 'pending' AND d.next_attempt_at <= now()
                       AND (d.lease_until IS NULL OR d.lease_until < now())
                       AND d.id <> ALL (v_recorded) AND d.id <> ALL (v_taken)
                     ORDER BY d.host, d.next_attempt_at LIMIT greatest(v_no_host, 0))) c
                ORDER BY c.next_attempt_at LIMIT 4 * v_limit);
            OPEN v_scan FOR
                SELECT d.id, d.host FROM unnest(v_hosted) WITH ORDINALITY c(id, n)
                    JOIN webhook_deliveries d ON d.id = c.id
                WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                  AND (d.lease_until IS NULL OR d.lease_until < now())
                  AND (d.kind <> 'terminal' OR (SELECT 1 FROM webhook_deliveries t
                                                WHERE t.generation_id = d.generation_id
                                                  AND t.kind <> 'terminal' AND t.status = 'pending'
                                                  AND t.attempts = 0 LIMIT 1) IS NULL)
                ORDER BY c.n
                FOR UPDATE OF d SKIP LOCKED;
        END IF;
        LOOP
            EXIT WHEN cardinality(v_taken) >= v_limit;
            FETCH v_scan INTO r;
            EXIT WHEN NOT FOUND;
            IF r.host IS NULL THEN
                CONTINUE WHEN v_no_host <= 0;
                v_no_host := v_no_host - 1;
            ELSE
                v_at := array_position(v_hosts, r.host);
                IF v_at IS NULL THEN
                    v_hosts := v_hosts || r.host;
                    v_at := cardinality(v_hosts);
                    v_rooms := v_rooms || 0;
                    IF v_locked < 64 THEN
                        v_locked := v_locked + 1;
                        v_rooms[v_at] := least(coalesce(farm__webhook_host_room(r.host, p_per_host), 0),
                            p_per_host - coalesce((p_busy ->> r.host)::int, 0));
                    END IF;
                END IF;
                CONTINUE WHEN v_rooms[v_at] <= 0;
                v_rooms[v_at] := v_rooms[v_at] - 1;
            END IF;
            v_taken := v_taken || r.id;
        END LOOP;
        CLOSE v_scan;
    END LOOP;
    WITH c AS (
        UPDATE webhook_deliveries d SET lease_token = nextval('webhook_lease_seq'),
                lease_until = now() + make_interval(secs => p_lease_s)
            WHERE d.id = ANY (v_taken)
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
