-- Releases every image of `g` not settled yet; returns the amount released.
-- `g` is the generation's row as locked by its caller. When its counts say
-- every image is settled (images_done + images_failed reaches images, where
-- the CHECK caps it; each settlement counts its image, farm_image_settle)
-- there is nothing to release and no statement runs: the usual finish,
-- whose last image was just captured. (The INSERT's plan depends on
-- g.images, so Postgres plans it again on each execution.)
CREATE OR REPLACE FUNCTION farm__release_rest(g generations) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    IF g.images_done + g.images_failed >= g.images THEN
        RETURN 0;
    END IF;
    INSERT INTO credit_ledger (user_id, kind, amount, generation_id, image_index)
        SELECT g.user_id, 'release', g.unit_cost, g.id, i
        FROM generate_series(0, g.images - 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM credit_ledger l
                          WHERE l.generation_id = g.id AND l.image_index = i
                            AND l.kind IN ('capture', 'release'))
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        UPDATE credit_accounts SET held = held - v_n * g.unit_cost,
                released = released + v_n * g.unit_cost, updated_at = now()
            WHERE user_id = g.user_id;
    END IF;
    RETURN v_n * g.unit_cost;
END $$;
