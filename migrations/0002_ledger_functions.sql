-- The credit operations, one function each, so every operation is one
-- round trip and one transaction. Each answers an `outcome` word that
-- store/ translates; none reads a balance and then writes it (the hold is a
-- conditional UPDATE; settlements rely on the unique indexes of 0001).

-- Provisions the user on first sight with the welcome grant.
CREATE FUNCTION farm_user_ensure(p_user uuid, p_plan text, p_welcome bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM users WHERE id = p_user) THEN
        RETURN; -- the common case: a known user, no insert attempted
    END IF;
    INSERT INTO users (id, plan) VALUES (p_user, coalesce(p_plan, 'free'))
        ON CONFLICT (id) DO NOTHING;
    IF FOUND THEN
        INSERT INTO credit_accounts (user_id, balance) VALUES (p_user, p_welcome);
        IF p_welcome > 0 THEN
            INSERT INTO credit_ledger (user_id, kind, amount, reason)
                VALUES (p_user, 'grant', p_welcome, 'welcome');
        END IF;
    END IF;
END $$;

-- accepted | existing | conflict | insufficient
CREATE FUNCTION farm_accept_generation(
    p_id uuid, p_user uuid, p_plan text, p_welcome bigint, p_kind text, p_images int,
    p_unit_cost bigint, p_params jsonb, p_metadata jsonb, p_deadline_at timestamptz,
    p_idem_key text, p_idem_hash text,
    OUT outcome text, OUT generation_id uuid, OUT available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_cost bigint := p_images * p_unit_cost;
    v_key record;
    v_inserted_key boolean := false;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user) THEN
        PERFORM farm_user_ensure(p_user, p_plan, p_welcome);
    END IF;
    IF p_idem_key IS NOT NULL THEN
        -- A concurrent request with the same key waits here for the first to commit.
        INSERT INTO idempotency_keys (user_id, key, request_hash, generation_id)
            VALUES (p_user, p_idem_key, p_idem_hash, p_id)
            ON CONFLICT (user_id, key) DO NOTHING;
        v_inserted_key := FOUND;
        IF NOT v_inserted_key THEN
            SELECT * INTO v_key FROM idempotency_keys k
                WHERE k.user_id = p_user AND k.key = p_idem_key FOR UPDATE;
            IF v_key.created_at > now() - interval '24 hours' THEN
                outcome := CASE WHEN v_key.request_hash = p_idem_hash THEN 'existing' ELSE 'conflict' END;
                generation_id := v_key.generation_id;
                RETURN;
            END IF;
            UPDATE idempotency_keys k SET request_hash = p_idem_hash, generation_id = p_id, created_at = now()
                WHERE k.user_id = p_user AND k.key = p_idem_key;
            v_inserted_key := true;
        END IF;
    END IF;
    -- The hold: one conditional UPDATE, so two requests can never both pass a check.
    UPDATE credit_accounts a SET held = a.held + v_cost, updated_at = now()
        WHERE a.user_id = p_user AND a.balance - a.held >= v_cost
        RETURNING a.balance - a.held INTO available;
    IF NOT FOUND THEN
        SELECT a.balance - a.held INTO available FROM credit_accounts a WHERE a.user_id = p_user;
        IF v_inserted_key THEN
            DELETE FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_idem_key;
        END IF;
        outcome := 'insufficient';
        RETURN;
    END IF;
    INSERT INTO generations (id, user_id, kind, plan, params, metadata, images, unit_cost, cost, deadline_at)
        VALUES (p_id, p_user, p_kind, coalesce(p_plan, 'free'), p_params, p_metadata, p_images,
                p_unit_cost, v_cost, p_deadline_at);
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id)
        VALUES (p_user, 'hold', v_cost, p_id);
    outcome := 'accepted';
    generation_id := p_id;
END $$;

-- Releases every image of `g` not settled yet; returns the amount released.
CREATE FUNCTION farm__release_rest(g generations) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index)
        SELECT g.user_id, 'release', g.unit_cost, g.id, i
        FROM generate_series(0, g.images - 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM credit_ledger l
                          WHERE l.generation_id = g.id AND l.image_index = i
                            AND l.kind IN ('capture', 'release'))
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        UPDATE credit_accounts SET held = held - v_n * g.unit_cost, updated_at = now()
            WHERE user_id = g.user_id;
    END IF;
    RETURN v_n * g.unit_cost;
END $$;

-- Worker calls carry the queue's fencing token; an older token is refused.
-- started | stale | terminal | not_found
CREATE FUNCTION farm_start(p_id uuid, p_fence bigint, p_provider text, OUT outcome text, OUT attempts int)
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN outcome := 'not_found'; RETURN; END IF;
    IF g.status NOT IN ('queued', 'running') THEN outcome := 'terminal'; attempts := g.attempts; RETURN; END IF;
    IF p_fence < g.fence THEN outcome := 'stale'; attempts := g.attempts; RETURN; END IF;
    UPDATE generations SET status = 'running', stage = 'starting',
            started_at = coalesce(started_at, now()),
            attempts = CASE WHEN p_fence > g.fence THEN g.attempts + 1 ELSE g.attempts END,
            fence = p_fence, provider = coalesce(p_provider, provider), updated_at = now()
        WHERE id = p_id RETURNING generations.attempts INTO attempts;
    outcome := 'started';
END $$;

-- recorded | stale | terminal | not_found
CREATE FUNCTION farm_record_provider_request(p_id uuid, p_fence bigint, p_index int, p_request text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF p_fence < g.fence THEN RETURN 'stale'; END IF;
    IF g.status NOT IN ('queued', 'running') THEN RETURN 'terminal'; END IF;
    UPDATE generations SET provider_requests = provider_requests || jsonb_build_object(p_index::text, p_request),
            updated_at = now()
        WHERE id = p_id;
    RETURN 'recorded';
END $$;

-- Settles one image: capture when it succeeded, release when it failed.
-- The generation row is not locked up front: the unique settlement index
-- makes a second settlement a no-op, and the fenced UPDATE re-checks the
-- token on the newest row version; a stale token raises (SQLSTATE GF409),
-- which undoes the ledger row inserted just before.
-- settled | duplicate | stale | invalid | not_found
CREATE FUNCTION farm_image_settle(p_id uuid, p_fence bigint, p_index int, p_succeeded boolean,
                                  p_error jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g record;
BEGIN
    SELECT user_id, unit_cost, fence, images INTO g FROM generations WHERE id = p_id;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF p_fence < g.fence THEN RETURN 'stale'; END IF;
    IF p_index < 0 OR p_index >= g.images THEN RETURN 'invalid'; END IF;
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index)
        VALUES (g.user_id, CASE WHEN p_succeeded THEN 'capture' ELSE 'release' END, g.unit_cost, p_id, p_index)
        ON CONFLICT (generation_id, image_index) WHERE kind IN ('capture', 'release') DO NOTHING;
    IF NOT FOUND THEN RETURN 'duplicate'; END IF;
    IF p_succeeded THEN
        UPDATE generations SET images_done = images_done + 1, charged = charged + g.unit_cost,
                updated_at = now()
            WHERE id = p_id AND fence <= p_fence;
    ELSE
        UPDATE generations SET images_failed = images_failed + 1, released = released + g.unit_cost,
                failures = failures || jsonb_build_array(
                    jsonb_build_object('index', p_index, 'error', coalesce(p_error, 'null'::jsonb))),
                updated_at = now()
            WHERE id = p_id AND fence <= p_fence;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stale fencing token' USING ERRCODE = 'GF409';
    END IF;
    UPDATE credit_accounts SET balance = balance - CASE WHEN p_succeeded THEN g.unit_cost ELSE 0 END,
            held = held - g.unit_cost, updated_at = now()
        WHERE user_id = g.user_id;
    RETURN 'settled';
END $$;

-- Sets the terminal status once, releasing what is not settled. 'auto'
-- derives succeeded / partial / failed from the images. A second finish
-- changes nothing and answers the first status.
-- finished | already | stale | not_found, with the status in force
CREATE FUNCTION farm_finish(p_id uuid, p_fence bigint, p_status text, p_error jsonb,
                            OUT outcome text, OUT status text)
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
    v_released bigint;
    v_status text := p_status;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN outcome := 'not_found'; RETURN; END IF;
    IF g.status NOT IN ('queued', 'running') THEN outcome := 'already'; status := g.status; RETURN; END IF;
    IF p_fence IS NOT NULL AND p_fence < g.fence THEN outcome := 'stale'; status := g.status; RETURN; END IF;
    v_released := farm__release_rest(g);
    IF v_status = 'auto' THEN
        v_status := CASE WHEN g.images_done = g.images THEN 'succeeded'
                         WHEN g.images_done = 0 THEN 'failed'
                         ELSE 'partial' END;
    END IF;
    UPDATE generations SET status = v_status, stage = NULL,
            progress = CASE WHEN v_status IN ('succeeded', 'partial') THEN 100 ELSE progress END,
            released = released + v_released,
            images_failed = images - images_done,
            error = coalesce(p_error, error), finished_at = now(), updated_at = now()
        WHERE id = p_id;
    outcome := 'finished';
    status := v_status;
END $$;

-- The api's cancel. A queued generation is canceled at once and released;
-- a running one is flagged for its worker, which finishes it.
-- canceled | cancel_requested | not_cancelable | not_found
CREATE FUNCTION farm_cancel(p_id uuid, p_user uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id AND user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF g.status = 'queued' THEN
        PERFORM farm_finish(p_id, NULL, 'canceled', NULL);
        RETURN 'canceled';
    ELSIF g.status = 'running' THEN
        UPDATE generations SET cancel_requested = true, updated_at = now() WHERE id = p_id;
        RETURN 'cancel_requested';
    END IF;
    RETURN 'not_cancelable';
END $$;

-- A queued generation past its deadline: expired and released.
-- expired | not_expired | not_found
CREATE FUNCTION farm_expire(p_id uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF g.status <> 'queued' OR g.deadline_at IS NULL OR g.deadline_at > now() THEN
        RETURN 'not_expired';
    END IF;
    PERFORM farm_finish(p_id, NULL, 'expired',
        jsonb_build_object('code', 'expired', 'message', 'not started before its deadline',
                           'retryable', false));
    RETURN 'expired';
END $$;

-- Admin grant (amount > 0) or adjust (any sign, never below what is held).
-- granted | insufficient
CREATE FUNCTION farm_credit(p_user uuid, p_plan text, p_welcome bigint, p_amount bigint, p_reason text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM farm_user_ensure(p_user, p_plan, p_welcome);
    UPDATE credit_accounts SET balance = balance + p_amount, updated_at = now()
        WHERE user_id = p_user AND balance + p_amount >= held;
    IF NOT FOUND THEN RETURN 'insufficient'; END IF;
    INSERT INTO credit_ledger (user_id, kind, amount, reason)
        VALUES (p_user, CASE WHEN p_amount > 0 THEN 'grant' ELSE 'adjust' END, p_amount, p_reason);
    RETURN 'granted';
END $$;

-- Every violation of the ledger's invariants, one line each (farm reconcile).
CREATE FUNCTION farm_reconcile() RETURNS TABLE (problem text)
LANGUAGE sql STABLE AS $$
    WITH sums AS (
        SELECT a.user_id, a.balance, a.held,
               coalesce(sum(l.amount) FILTER (WHERE l.kind IN ('grant', 'adjust')), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'capture'), 0) AS want_balance,
               coalesce(sum(l.amount) FILTER (WHERE l.kind = 'hold'), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.kind IN ('capture', 'release')), 0) AS want_held
        FROM credit_accounts a LEFT JOIN credit_ledger l ON l.user_id = a.user_id
        GROUP BY a.user_id, a.balance, a.held)
    SELECT format('account %s: balance %s, but grants + adjusts - captures = %s', user_id, balance, want_balance)
        FROM sums WHERE balance <> want_balance
    UNION ALL
    SELECT format('account %s: held %s, but holds - captures - releases = %s', user_id, held, want_held)
        FROM sums WHERE held <> want_held
    UNION ALL
    SELECT format('generation %s (%s): charged %s + released %s <> cost %s', id, status, charged, released, cost)
        FROM generations WHERE status NOT IN ('queued', 'running') AND charged + released <> cost
    UNION ALL
    SELECT format('generation %s: charged %s, released %s, but its ledger says %s and %s',
                  g.id, g.charged, g.released, coalesce(s.captured, 0), coalesce(s.released, 0))
        FROM generations g LEFT JOIN (
            SELECT generation_id,
                   sum(amount) FILTER (WHERE kind = 'capture') AS captured,
                   sum(amount) FILTER (WHERE kind = 'release') AS released
            FROM credit_ledger WHERE generation_id IS NOT NULL GROUP BY generation_id) s
          ON s.generation_id = g.id
        WHERE g.charged <> coalesce(s.captured, 0) OR g.released <> coalesce(s.released, 0)
    UNION ALL
    SELECT format('ledger row %s: %s of %s for generation %s image %s, but the image costs %s',
                  l.id, l.kind, l.amount, l.generation_id, l.image_index, g.unit_cost)
        FROM credit_ledger l JOIN generations g ON g.id = l.generation_id
        WHERE l.kind IN ('capture', 'release') AND l.amount <> g.unit_cost
    UNION ALL
    SELECT format('ledger row %s: hold of %s for generation %s, but it costs %s', l.id, l.amount, g.id, g.cost)
        FROM credit_ledger l JOIN generations g ON g.id = l.generation_id
        WHERE l.kind = 'hold' AND l.amount <> g.cost
    UNION ALL
    SELECT format('ledger row %s: %s for generation %s without a hold', l.id, l.kind, l.generation_id)
        FROM credit_ledger l
        WHERE l.kind IN ('capture', 'release')
          AND NOT EXISTS (SELECT 1 FROM credit_ledger h WHERE h.kind = 'hold' AND h.generation_id = l.generation_id)
    UNION ALL
    SELECT format('generation %s has no hold', g.id)
        FROM generations g
        WHERE NOT EXISTS (SELECT 1 FROM credit_ledger h WHERE h.kind = 'hold' AND h.generation_id = g.id)
$$;
