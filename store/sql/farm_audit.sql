-- Appends one row to the audit trail (0021) and returns its id. The store
-- runs it alone (STORE_OP_AUDIT); an action audited in its own transaction
-- inserts the row itself (store/call.c, audited_sql).
CREATE OR REPLACE FUNCTION farm_audit(p_actor text, p_action text, p_target text,
                                      p_request_id text, p_detail jsonb) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO audit_log (actor, action, target, request_id, detail)
        VALUES (p_actor, p_action, p_target, p_request_id, coalesce(p_detail, '{}'))
        RETURNING id
$$;
