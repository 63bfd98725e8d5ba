-- `farm webhooks retry`: a failed delivery (p_id), or every failed one
-- (p_id NULL), of the host p_host only when it is not NULL (a receiver back
-- after an outage: other customers' old failures stay failed), pending again
-- at once with a new 24 h window whose backoff starts again at its first
-- step; its id, the `webhook-id`, and its count of attempts stay. Returns how
-- many were put back.
--
-- Every failed one leaves out those that did not fail for a receiver being
-- down: a 410 (the receiver asked us to stop) and an address refused as not
-- public (it would be refused again). Each of those goes back only by its id,
-- when on-call means it.
-- p_host has a default so that the previous version's one-argument call (a
-- pod not yet upgraded prepares it on each new connection) still answers:
-- its function is dropped in this same transaction, the call resolves here.
DROP FUNCTION IF EXISTS farm_webhook_retry(uuid);
CREATE OR REPLACE FUNCTION farm_webhook_retry(p_id uuid, p_host text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(),
            first_attempt_at = NULL, retried_attempts = attempts, lease_token = NULL, lease_until = NULL
        WHERE status = 'failed' AND (p_host IS NULL OR host = lower(p_host))
          AND (id = p_id OR (p_id IS NULL AND last_status_code IS DISTINCT FROM 410
                             AND coalesce(last_error, '') NOT LIKE '%not a public address%'));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
