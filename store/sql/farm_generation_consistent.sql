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
-- plpgsql, not LANGUAGE sql: Postgres builds a table's CHECKs again for
-- every INSERT or UPDATE statement, and a LANGUAGE sql function inlined into
-- its CHECK is parsed and analysed again each time (about 20 us a statement,
-- measured), where a plpgsql function is compiled once per connection and
-- costs about 1.5 us a row. Nearly every statement that writes a generation
-- writes one row (a worker's start, each image, the finish).
CREATE OR REPLACE FUNCTION farm_generation_consistent(
    p_status farm_gen_status, p_images farm_image_count, p_unit_cost farm_credits, p_cost bigint,
    p_images_done farm_count, p_images_failed farm_count, p_charged farm_credits,
    p_released farm_credits)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN p_cost = p_images * p_unit_cost
       AND p_charged + p_released <= p_cost
       AND p_images_done + p_images_failed <= p_images
       AND (p_status IN ('queued', 'running') OR p_charged + p_released = p_cost);
END $$;
