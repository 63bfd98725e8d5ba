-- One attempt's outcome, recorded only under the claim's lease token (an
-- older token: 'stale', nothing changes). p_outcome: delivered | failed |
-- retry (again in p_next_ms) | release (not sent: due again at once, no
-- attempt counted). Returns the outcome recorded and, once a terminal event
-- is delivered, the seconds from the terminal status to its delivery.
-- recorded | stale
CREATE OR REPLACE FUNCTION farm_webhook_result(p_id uuid, p_token bigint, p_outcome text,
                                               p_status_code int, p_error text, p_next_ms bigint,
                                               OUT outcome text, OUT lag_s double precision)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_outcome = 'release' THEN
        UPDATE webhook_deliveries SET lease_token = NULL, lease_until = NULL
            WHERE id = p_id AND lease_token = p_token AND status = 'pending';
    ELSE
        UPDATE webhook_deliveries SET attempts = attempts + 1,
                status = CASE WHEN p_outcome = 'retry' THEN 'pending' ELSE p_outcome END,
                last_status_code = p_status_code, last_error = p_error,
                first_attempt_at = coalesce(first_attempt_at, now()),
                next_attempt_at = CASE WHEN p_outcome = 'retry'
                                       THEN now() + p_next_ms * interval '1 millisecond' END,
                delivered_at = CASE WHEN p_outcome = 'delivered' THEN now() END,
                lease_token = NULL, lease_until = NULL
            WHERE id = p_id AND lease_token = p_token AND status = 'pending'
            RETURNING CASE WHEN kind = 'terminal' AND p_outcome = 'delivered'
                      THEN extract(epoch FROM (now() - created_at)) END INTO lag_s;
    END IF;
    outcome := CASE WHEN FOUND THEN 'recorded' ELSE 'stale' END;
END $$;
