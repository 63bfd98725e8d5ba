-- accept and image settle with one statement less each; the answers, and
-- what each writes, are those of 0002 and 0011. (Each statement of a
-- plpgsql function is one more executor start, plan check and end.)
--
-- settle: the ledger row is inserted straight from the generation's row,
-- only when the generation exists, the token is not stale and the index is
-- in range (and, through the unique settlement index, not when the image
-- is settled already). Only when nothing was inserted is the generation
-- read again, to tell why, in the order 0002 answered. The fenced UPDATE
-- still re-checks the token on the newest row version and raises GF409
-- when it went stale mid-call.
CREATE OR REPLACE FUNCTION farm_image_settle(p_id uuid, p_fence bigint, p_index int,
                                             p_succeeded boolean, p_error jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g record;
    v_user uuid;
    v_unit bigint;
BEGIN
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index)
        SELECT x.user_id, CASE WHEN p_succeeded THEN 'capture' ELSE 'release' END, x.unit_cost,
               x.id, p_index
        FROM generations x
        WHERE x.id = p_id AND x.fence <= p_fence AND p_index >= 0 AND p_index < x.images
        ON CONFLICT (generation_id, image_index) WHERE kind IN ('capture', 'release') DO NOTHING
        RETURNING user_id, amount INTO v_user, v_unit;
    IF NOT FOUND THEN
        SELECT user_id, unit_cost, fence, images INTO g FROM generations WHERE id = p_id;
        IF NOT FOUND THEN RETURN 'not_found'; END IF;
        IF p_fence IS NULL OR p_fence < g.fence THEN RETURN 'stale'; END IF;
        IF p_index < 0 OR p_index >= g.images THEN RETURN 'invalid'; END IF;
        RETURN 'duplicate';
    END IF;
    IF p_succeeded THEN
        UPDATE generations SET images_done = images_done + 1, charged = charged + v_unit,
                updated_at = now()
            WHERE id = p_id AND fence <= p_fence;
    ELSE
        UPDATE generations SET images_failed = images_failed + 1, released = released + v_unit,
                failures = failures || jsonb_build_array(
                    jsonb_build_object('index', p_index, 'error', coalesce(p_error, 'null'::jsonb))),
                updated_at = now()
            WHERE id = p_id AND fence <= p_fence;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stale fencing token' USING ERRCODE = 'GF409';
    END IF;
    UPDATE credit_accounts SET balance = balance - CASE WHEN p_succeeded THEN v_unit ELSE 0 END,
            held = held - v_unit, updated_at = now()
        WHERE user_id = v_user;
    RETURN 'settled';
END $$;

-- accept: the generation and its hold entry in one statement (the hold's
-- foreign key to the generation is checked at the end of it, as before at
-- the end of the second INSERT). The rest is 0011's.
CREATE OR REPLACE FUNCTION farm_accept_generation(
    p_id uuid, p_user uuid, p_plan text, p_welcome bigint, p_kind text, p_images int,
    p_unit_cost bigint, p_params jsonb, p_metadata jsonb, p_deadline_at timestamptz,
    p_idem_key text, p_idem_hash text,
    OUT outcome text, OUT generation_id uuid, OUT available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_cost bigint := p_images * p_unit_cost;
    v_key record;
    v_inserted_key boolean := false;
    v_held boolean;
BEGIN
    IF p_idem_key IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user) THEN
            PERFORM farm_user_ensure(p_user, p_plan, p_welcome);
        END IF;
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
    v_held := FOUND;
    IF NOT v_held THEN
        SELECT a.balance - a.held INTO available FROM credit_accounts a WHERE a.user_id = p_user;
        IF NOT FOUND THEN
            -- First sight of this user: provision (welcome grant), then hold.
            PERFORM farm_user_ensure(p_user, p_plan, p_welcome);
            UPDATE credit_accounts a SET held = a.held + v_cost, updated_at = now()
                WHERE a.user_id = p_user AND a.balance - a.held >= v_cost
                RETURNING a.balance - a.held INTO available;
            v_held := FOUND;
            IF NOT v_held THEN
                SELECT a.balance - a.held INTO available FROM credit_accounts a
                    WHERE a.user_id = p_user;
            END IF;
        END IF;
    END IF;
    IF NOT v_held THEN
        IF v_inserted_key THEN
            DELETE FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_idem_key;
        END IF;
        outcome := 'insufficient';
        RETURN;
    END IF;
    WITH g AS (
        INSERT INTO generations (id, user_id, kind, plan, params, metadata, images, unit_cost, cost, deadline_at)
            VALUES (p_id, p_user, p_kind, coalesce(p_plan, 'free'), p_params, p_metadata, p_images,
                    p_unit_cost, v_cost, p_deadline_at)
            RETURNING id)
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id)
        SELECT p_user, 'hold', v_cost, g.id FROM g;
    outcome := 'accepted';
    generation_id := p_id;
END $$;
