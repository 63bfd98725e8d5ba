-- Admin grant (amount > 0) or adjust (any sign, never below what is held).
-- granted | insufficient. An insufficient one changes nothing: a user it
-- would have provisioned (a mistyped id, say) is not left behind.
CREATE OR REPLACE FUNCTION farm_credit(p_user uuid, p_plan text, p_welcome bigint, p_amount bigint, p_reason text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM farm_user_ensure(p_user, p_plan, p_welcome);
    UPDATE credit_accounts SET balance = balance + p_amount, updated_at = now()
        WHERE user_id = p_user AND balance + p_amount >= held;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF402'; -- undoes the provisioning above
    END IF;
    INSERT INTO credit_ledger (user_id, kind, amount, reason)
        VALUES (p_user, CASE WHEN p_amount > 0 THEN 'grant' ELSE 'adjust' END, p_amount, p_reason);
    RETURN 'granted';
EXCEPTION WHEN SQLSTATE 'GF402' THEN
    RETURN 'insufficient';
END $$;
