-- How many more deliveries to host p_host the farm may lease now under a
-- bound of p_per_host (docs/webhooks.md): p_per_host less the host's live
-- leases (webhook_deliveries_leased), counted under a transaction-level
-- advisory lock of the host taken with pg_try_, so two transactions never
-- both fill the same room. NULL when another transaction holds that lock
-- (it is counting the host now): the caller passes the host over and waits
-- for nothing. Hosts whose hashtext collides share a lock. The one place
-- farm_webhook_claim and farm__webhook_lease_terminal count a host's room.
CREATE OR REPLACE FUNCTION farm__webhook_host_room(p_host text, p_per_host int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_leased int;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1734831471, hashtext(p_host)) THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO v_leased FROM webhook_deliveries d
        WHERE d.host = p_host AND d.status = 'pending' AND d.lease_until IS NOT NULL
          AND d.lease_until >= now();
    RETURN p_per_host - v_leased;
END $$;
