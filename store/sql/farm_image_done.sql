-- A finished image in one call: its outputs recorded and its share captured
-- in the same transaction, so an image is either delivered and charged or
-- neither. Repeating the call changes nothing (outputs ON CONFLICT, the
-- settlement through its unique index).
-- settled | duplicate | stale | invalid | not_found
CREATE OR REPLACE FUNCTION farm_image_done(p_id uuid, p_fence bigint, p_index int, p_outputs jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
BEGIN
    v_outcome := farm_image_settle(p_id, p_fence, p_index, true, NULL);
    IF v_outcome NOT IN ('settled', 'duplicate') THEN
        RETURN v_outcome;
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
        WHERE id = p_id AND status = 'running';
    RETURN v_outcome;
END $$;
