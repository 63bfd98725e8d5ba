-- The last image of a generation and the generation's finish in one call:
-- farm_image_done, then, when the image is settled as captured (settled or
-- duplicate), farm_finish with 'auto'. One round trip and one transaction
-- where a worker would make two in a row; the outbox row of the terminal
-- event is written by farm_finish, in this transaction. Repeating the call
-- changes nothing (both parts are idempotent). A finish refused as stale
-- cannot follow an image the same token just settled; should it, the whole
-- call is undone (GF409) rather than leave the image recorded unfinished.
-- With p_webhook_lease_s > 0 the caller also claims the terminal event's
-- delivery for itself (farm__webhook_lease_terminal: fenced as
-- farm_webhook_claim fences, and within the farm's p_webhook_per_host of
-- its host as a claim is; NULL: no bound; and not while one of the
-- generation's started or image deliveries, this image's included, waits
-- for its first attempt: those go first), so its deliverer sends it at once.
-- image: farm_image_done's outcome; outcome, status: farm_finish's (NULL when
-- the image was refused and nothing was finished); webhook: the lease, in
-- farm_webhook_claim's shape (NULL when none was asked for or none was due and
-- unleased: a repeated call after the finish may lease one a claim would).
CREATE OR REPLACE FUNCTION farm_image_done_finish(p_id uuid, p_fence bigint, p_index int,
                                                  p_outputs jsonb, p_webhook_lease_s int,
                                                  p_webhook_per_host int,
                                                  OUT image text, OUT outcome text,
                                                  OUT status text, OUT webhook jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    image := farm_image_done(p_id, p_fence, p_index, p_outputs);
    IF image NOT IN ('settled', 'duplicate') THEN
        RETURN;
    END IF;
    SELECT f.outcome, f.status INTO outcome, status
        FROM farm_finish(p_id, p_fence, 'auto', NULL) f;
    IF outcome = 'stale' THEN
        RAISE EXCEPTION 'stale fencing token' USING ERRCODE = 'GF409';
    END IF;
    IF p_webhook_lease_s > 0 THEN
        webhook := farm__webhook_lease_terminal(p_id, p_webhook_lease_s, p_webhook_per_host);
    END IF;
END $$;
-- The calls of the versions before, with a lease and no per-host bound, or
-- with no lease: the processes of those versions prepare them until a
-- rolling deploy has replaced them all.
CREATE OR REPLACE FUNCTION farm_image_done_finish(p_id uuid, p_fence bigint, p_index int,
                                                  p_outputs jsonb, p_webhook_lease_s int,
                                                  OUT image text, OUT outcome text,
                                                  OUT status text, OUT webhook jsonb)
LANGUAGE sql AS $$
    SELECT f.image, f.outcome, f.status, f.webhook
        FROM farm_image_done_finish(p_id, p_fence, p_index, p_outputs, p_webhook_lease_s,
                                    NULL::int) f
$$;
CREATE OR REPLACE FUNCTION farm_image_done_finish(p_id uuid, p_fence bigint, p_index int,
                                                  p_outputs jsonb, OUT image text,
                                                  OUT outcome text, OUT status text)
LANGUAGE sql AS $$
    SELECT f.image, f.outcome, f.status FROM farm_image_done_finish(p_id, p_fence, p_index,
                                                                    p_outputs, 0, NULL::int) f
$$;
