-- Provisions the user on first sight with the welcome grant. Every route
-- that may meet a new user calls it (accept, credit, balance, upload).
CREATE OR REPLACE FUNCTION farm_user_ensure(p_user uuid, p_plan text, p_welcome bigint) RETURNS void
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
