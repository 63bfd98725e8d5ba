-- A finished image in one call: its outputs recorded and its share captured
-- in the same transaction, so an image is either delivered and charged or
-- neither. Repeating the call changes nothing (outputs ON CONFLICT, the
-- settlement through its unique index). Outputs are recorded only for an
-- image whose settlement is its capture, of a generation still open: an image
-- whose credits were released, or a generation that ended (the sweeper's
-- finish fences it), never gets files (issue #21, money edge 2).
-- settled | duplicate | released | stale | invalid | not_found
CREATE OR REPLACE FUNCTION farm_image_done(p_id uuid, p_fence bigint, p_index int, p_outputs jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
    v_url text;
    v_events text[];
    v_pose int;
    v_progress int;
BEGIN
    v_outcome := farm_image_settle(p_id, p_fence, p_index, true, NULL);
    IF v_outcome NOT IN ('settled', 'duplicate') THEN
        RETURN v_outcome;
    END IF;
    -- Two IFs, not one AND: the usual 'settled' then runs no query for the
    -- duplicate's test (a condition Postgres would plan again on every call,
    -- its custom plan folding to false).
    IF v_outcome = 'duplicate' THEN
        IF NOT EXISTS (SELECT 1 FROM credit_ledger
                       WHERE generation_id = p_id AND image_index = p_index AND kind = 'capture')
           OR NOT EXISTS (SELECT 1 FROM generations
                          WHERE id = p_id AND status IN ('queued', 'running')) THEN
            -- Released, or settled before the generation ended: nothing more is recorded
            -- (a repeated call of a capture that landed finds its outputs there already).
            RETURN CASE WHEN EXISTS (SELECT 1 FROM credit_ledger WHERE generation_id = p_id
                                     AND image_index = p_index AND kind = 'capture')
                        THEN 'duplicate' ELSE 'released' END;
        END IF;
    END IF;
    INSERT INTO generation_outputs (generation_id, image_index, pose, variant, format, width,
                                    height, bytes, sha256, storage_key, seed)
        SELECT p_id, p_index, (o ->> 'pose')::int, o ->> 'variant', o ->> 'format',
               (o ->> 'width')::int, (o ->> 'height')::int, (o ->> 'bytes')::bigint,
               o ->> 'sha256', o ->> 'storage_key', (o ->> 'seed')::bigint
        FROM jsonb_array_elements(p_outputs) o
        ON CONFLICT (generation_id, image_index, variant) DO NOTHING;
    UPDATE generations SET progress = ((images_done + images_failed) * 100) / images,
            stage = 'storing', updated_at = now()
        WHERE id = p_id AND status = 'running'
        RETURNING webhook_url, webhook_events, farm__image_pose(images, params, p_index), progress
        INTO v_url, v_events, v_pose, v_progress;
    IF v_outcome = 'settled' AND v_url IS NOT NULL AND 'image' = ANY (v_events) THEN
        -- The `image` webhook: the image's outputs (their storage keys; the
        -- deliverer signs their URLs as GET does).
        PERFORM farm__webhook_add(p_id, v_url, v_events, 'image', p_index, 'image',
            jsonb_build_object('id', p_id, 'index', p_index, 'pose', v_pose,
                'status', 'running', 'progress', v_progress,
                'outputs', coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'index', o.image_index, 'pose', o.pose, 'variant', o.variant,
                    'format', o.format, 'width', o.width, 'height', o.height, 'bytes', o.bytes,
                    'sha256', o.sha256, 'seed', o.seed, 'storage_key', o.storage_key)
                    ORDER BY o.variant)
                    FROM generation_outputs o
                    WHERE o.generation_id = p_id AND o.image_index = p_index), '[]'::jsonb)));
    END IF;
    RETURN v_outcome;
END $$;
