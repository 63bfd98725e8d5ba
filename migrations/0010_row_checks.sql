-- The multi-column CHECKs of generations and credit_ledger, each table's
-- rules in one immutable function that its CHECK calls: the same rules,
-- still a CHECK constraint on every written row (not a trigger, which
-- session_replication_role could switch off).
--
-- Why (as for 0009): Postgres rebuilds each CHECK expression from its stored
-- text for every INSERT or UPDATE statement. A CHECK that calls a function
-- is a short text (the call and its arguments); the function's body is
-- compiled once per connection. On `scripts/bench ledger` the four CHECKs
-- of generations and the three of credit_ledger cost more than the
-- function calls that replace them.
--
-- The functions must stay immutable (a result depends on the arguments
-- only): Postgres does not re-check stored rows when a function changes, so
-- a later migration that changes a rule must drop and re-add the CHECK.

-- generations: cost = images x unit cost; what is settled (charged +
-- released, images done + failed) stays within the cost and the images; a
-- terminal generation is settled in full. (Each count and amount is >= 0
-- by its domain, 0009.)
CREATE FUNCTION farm_generation_consistent(
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

-- credit_ledger: only an adjust may be negative; hold, capture and release
-- name a generation, the others do not; capture and release name an image,
-- the others do not.
CREATE FUNCTION farm_ledger_entry_consistent(p_kind farm_ledger_kind, p_amount bigint,
                                             p_generation_id uuid, p_image_index int)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (p_kind = 'adjust' OR p_amount >= 0)
       AND (p_kind IN ('hold', 'capture', 'release')) = (p_generation_id IS NOT NULL)
       AND (p_kind IN ('capture', 'release')) = (p_image_index IS NOT NULL);
END $$;

ALTER TABLE generations
    DROP CONSTRAINT cost_is_images_times_unit,
    DROP CONSTRAINT settled_within_cost,
    DROP CONSTRAINT images_within_count,
    DROP CONSTRAINT terminal_is_settled,
    ADD CONSTRAINT generation_consistent CHECK (farm_generation_consistent(
        status, images, unit_cost, cost, images_done, images_failed, charged, released));

ALTER TABLE credit_ledger
    DROP CONSTRAINT amount_sign,
    DROP CONSTRAINT generation_iff_hold_capture_release,
    DROP CONSTRAINT image_iff_capture_release,
    ADD CONSTRAINT ledger_entry_consistent CHECK (farm_ledger_entry_consistent(
        kind, amount, generation_id, image_index));
