-- Settles one image: capture when it succeeded, release when it failed.
-- settled | duplicate | stale | invalid | not_found
--
-- The ledger row is inserted straight from the generation's row, only when
-- the generation exists, the token is not stale and the index is in range
-- (and, through the unique settlement index, not when the image is settled
-- already). Only when nothing was inserted is the generation read again, to
-- tell why. The generation row is not locked up front: the fenced UPDATE
-- re-checks the token on the newest row version and raises GF409 when it
-- went stale mid-call, which undoes the ledger row inserted just before.
CREATE OR REPLACE FUNCTION farm_image_settle(p_id uuid, p_fence bigint, p_index int,
                                             p_succeeded boolean, p_error jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g record;
    v_user uuid;
    v_unit bigint;
    v_url text;
    v_events text[];
    v_pose int;
    v_progress int;
BEGIN
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index)
        SELECT x.user_id, CASE WHEN p_succeeded THEN 'capture' ELSE 'release' END, x.unit_cost,
               x.id, p_index
        FROM generations x
        WHERE x.id = p_id AND x.fence <= p_fence AND p_index >= 0 AND p_index < x.images
        ON CONFLICT (generation_id, image_index) WHERE kind IN ('capture', 'release') DO NOTHING
        RETURNING user_id, amount INTO v_user, v_unit;
    IF NOT FOUND THEN
        SELECT user_id, unit_cost, fence, images INTO g FROM generations WHERE id = p_id;
        IF NOT FOUND THEN RETURN 'not_found'; END IF;
        IF p_fence IS NULL OR p_fence < g.fence THEN RETURN 'stale'; END IF;
        IF p_index < 0 OR p_index >= g.images THEN RETURN 'invalid'; END IF;
        RETURN 'duplicate';
    END IF;
    IF p_succeeded THEN
        UPDATE generations SET images_done = images_done + 1, charged = charged + v_unit,
                updated_at = now()
            WHERE id = p_id AND fence <= p_fence;
    ELSE
        UPDATE generations SET images_failed = images_failed + 1, released = released + v_unit,
                failures = failures || jsonb_build_array(
                    jsonb_build_object('index', p_index, 'error', coalesce(p_error, 'null'::jsonb))),
                updated_at = now()
            WHERE id = p_id AND fence <= p_fence
            RETURNING webhook_url, webhook_events, farm__image_pose(images, params, p_index),
                      ((images_done + images_failed) * 100) / images
            INTO v_url, v_events, v_pose, v_progress;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stale fencing token' USING ERRCODE = 'GF409';
    END IF;
    IF NOT p_succeeded THEN
        -- A failed image's `image` webhook; a captured one's is farm_image_done's.
        PERFORM farm__webhook_add(p_id, v_url, v_events, 'image', p_index, 'image',
            jsonb_build_object('id', p_id, 'index', p_index, 'pose', v_pose,
                               'status', 'running', 'progress', v_progress,
                               'error', coalesce(p_error, 'null'::jsonb)));
    END IF;
    UPDATE credit_accounts SET balance = balance - CASE WHEN p_succeeded THEN v_unit ELSE 0 END,
            held = held - v_unit,
            captured = captured + CASE WHEN p_succeeded THEN v_unit ELSE 0 END,
            released = released + CASE WHEN p_succeeded THEN 0 ELSE v_unit END, updated_at = now()
        WHERE user_id = v_user;
    RETURN 'settled';
END $$;
