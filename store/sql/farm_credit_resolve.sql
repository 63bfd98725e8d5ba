-- The outcome of an admin grant whose answer was lost (api/credits.c,
-- api/resolve.c): it may have committed, and the admin's retry would then
-- grant twice, while a 503 promises nothing was written (API.md). The api
-- gave the grant an id of its own, p_op, kept in its audit row's
-- detail.op. First farm_accept_resolve's fence (p_pid, p_app: the backend
-- the grant ran on), so the lost call has committed or rolled back for
-- good; and a lock on p_op, so a resolution of the same grant whose own
-- answer was lost and that still runs is waited for. If the grant's audit
-- row is there, it committed: the answer is its outcome as the grant gave
-- it (the account right after it), resolved 'already'. Otherwise it rolled
-- back, and the grant runs now and answers for itself, resolved 'ran' (its
-- audited statement then writes the grant's one audit row, with p_op).
CREATE OR REPLACE FUNCTION farm_credit_resolve(p_op text, p_pid int, p_app text, p_user uuid,
                                               p_welcome bigint, p_amount bigint, p_reason text,
                                               OUT farm_credit text, OUT balance bigint,
                                               OUT held bigint, OUT resolved text)
LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM farm_accept_resolve(p_pid, p_app, '{}'::uuid[]);
    PERFORM pg_advisory_xact_lock(71003, hashtext(p_op));
    SELECT a.detail -> 'result' INTO v_result FROM audit_log a
        WHERE a.detail ? 'op' AND a.detail ->> 'op' = p_op AND a.action = 'credits.grant'
        LIMIT 1;
    IF FOUND THEN
        resolved := 'already';
        farm_credit := v_result ->> 'farm_credit';
        balance := (v_result ->> 'balance')::bigint;
        held := (v_result ->> 'held')::bigint;
        RETURN;
    END IF;
    resolved := 'ran';
    SELECT f.farm_credit, f.balance, f.held INTO farm_credit, balance, held
        FROM farm_credit_balance(p_user, NULL, p_welcome, p_amount, p_reason) f;
END $$;
