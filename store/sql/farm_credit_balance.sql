-- The admin grant (or adjust) and its answer in one round trip:
-- farm_credit's outcome, then, when granted, the account after it. Reading
-- the balance in a statement of its own could fail after the grant
-- committed, and the admin would get a 503 ("nothing was charged") for a
-- grant that happened, and grant again on retry. plpgsql: its SELECT runs
-- after farm_credit's writes and sees them. The outcome's column is named
-- farm_credit, as the single column of `SELECT farm_credit(...)` was: the
-- audit row keeps it under detail.result (docs/operations.md).
CREATE OR REPLACE FUNCTION farm_credit_balance(p_user uuid, p_plan text, p_welcome bigint,
                                               p_amount bigint, p_reason text, OUT farm_credit text,
                                               OUT balance bigint, OUT held bigint)
LANGUAGE plpgsql AS $$
BEGIN
    farm_credit := farm_credit(p_user, p_plan, p_welcome, p_amount, p_reason);
    IF farm_credit = 'granted' THEN
        SELECT a.balance, a.held INTO balance, held FROM credit_accounts a
            WHERE a.user_id = p_user;
    END IF;
END $$;
