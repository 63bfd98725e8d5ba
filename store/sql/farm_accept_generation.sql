-- POST /v1/generations: the idempotency key, the hold and the generation.
-- accepted | existing | conflict | insufficient
--
-- A known user is not looked up before the hold: the hold's UPDATE finds
-- the account, and only when it does not (a user seen for the first time)
-- is the user provisioned and the hold tried again. With an idempotency key
-- the user is provisioned first (the key row references the user). The
-- generation and its hold entry are inserted in one statement. (Each
-- statement of a plpgsql function is one more executor start, plan check
-- and end.)
CREATE OR REPLACE FUNCTION farm_accept_generation(
    p_id uuid, p_user uuid, p_plan text, p_welcome bigint, p_kind text, p_images int,
    p_unit_cost bigint, p_params jsonb, p_metadata jsonb, p_deadline_at timestamptz,
    p_idem_key text, p_idem_hash text, p_webhook_url text, p_webhook_events text[],
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
        LOOP
            INSERT INTO idempotency_keys (user_id, key, request_hash, generation_id)
                VALUES (p_user, p_idem_key, p_idem_hash, p_id)
                ON CONFLICT (user_id, key) DO NOTHING;
            v_inserted_key := FOUND;
            EXIT WHEN v_inserted_key;
            SELECT * INTO v_key FROM idempotency_keys k
                WHERE k.user_id = p_user AND k.key = p_idem_key FOR UPDATE;
            IF FOUND THEN
                IF v_key.created_at > now() - interval '24 hours' THEN
                    outcome := CASE WHEN v_key.request_hash = p_idem_hash THEN 'existing' ELSE 'conflict' END;
                    generation_id := v_key.generation_id;
                    RETURN;
                END IF;
                UPDATE idempotency_keys k SET request_hash = p_idem_hash, generation_id = p_id,
                        created_at = now()
                    WHERE k.user_id = p_user AND k.key = p_idem_key;
                v_inserted_key := true;
                EXIT;
            END IF;
            -- The key's old row went between the two statements (the sweeper's purge
            -- of keys past 24 hours, or a request with it that was short of credits):
            -- insert again, or this generation would be accepted with no key to replay.
        END LOOP;
    END IF;
    -- The hold: one conditional UPDATE, so two requests can never both pass a check.
    UPDATE credit_accounts a SET held = a.held + v_cost, updated_at = now()
        WHERE a.user_id = p_user AND a.balance - a.held >= v_cost
        RETURNING a.balance - a.held INTO available;
    v_held := FOUND;
    IF NOT v_held THEN
        -- Short of credits, or no account in this statement's snapshot: first
        -- sight of this user, or a first request of the same user provisioned
        -- it meanwhile (a new statement sees it, and a provisioning still
        -- running is waited for inside farm_user_ensure). Provision if need
        -- be (welcome grant), then try the hold once more.
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
    IF NOT v_held THEN
        IF v_inserted_key THEN
            DELETE FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_idem_key;
        END IF;
        outcome := 'insufficient';
        RETURN;
    END IF;
    WITH g AS (
        INSERT INTO generations (id, user_id, kind, plan, params, metadata, images, unit_cost, cost,
                                 deadline_at, webhook_url, webhook_events)
            VALUES (p_id, p_user, p_kind, coalesce(p_plan, 'free'), p_params, p_metadata, p_images,
                    p_unit_cost, v_cost, p_deadline_at, p_webhook_url,
                    coalesce(p_webhook_events, '{}'))
            RETURNING id)
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id)
        SELECT p_user, 'hold', v_cost, g.id FROM g;
    outcome := 'accepted';
    generation_id := p_id;
END $$;
