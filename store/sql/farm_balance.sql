-- The account of a user, provisioned on first sight. (A plain SELECT could
-- not see the account its own subquery inserted: one statement, one snapshot.)
CREATE OR REPLACE FUNCTION farm_balance(p_user uuid, p_welcome bigint, OUT balance bigint, OUT held bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM farm_user_ensure(p_user, NULL, p_welcome);
    SELECT a.balance, a.held INTO balance, held FROM credit_accounts a WHERE a.user_id = p_user;
END $$;
