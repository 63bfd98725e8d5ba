-- The CHECK generation_consistent of generations (0010) calls this: cost =
-- images x unit cost; what is settled (charged + released, images done +
-- failed) stays within the cost and the images; a terminal generation is
-- settled in full. (Each count and amount is >= 0 by its domain, 0009.)
--
-- It must stay immutable (a result depends on the arguments only), and
-- Postgres does not check stored rows again when it changes: a rule change
-- is a schema change, a numbered migration that creates the new rule under
-- a new name and swaps the CHECK to it (docs/credits.md); this file then
-- holds the new function.
--
-- LANGUAGE sql, one expression: Postgres inlines it into the CHECK, where a
-- plpgsql function costs a call of the interpreter per row written (about
-- 1.5 us, on every insert and update of a generation).
CREATE OR REPLACE FUNCTION farm_generation_consistent(
    p_status farm_gen_status, p_images farm_image_count, p_unit_cost farm_credits, p_cost bigint,
    p_images_done farm_count, p_images_failed farm_count, p_charged farm_credits,
    p_released farm_credits)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_cost = p_images * p_unit_cost
       AND p_charged + p_released <= p_cost
       AND p_images_done + p_images_failed <= p_images
       AND (p_status IN ('queued', 'running') OR p_charged + p_released = p_cost) $$;
