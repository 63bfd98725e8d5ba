-- The CHECK ledger_entry_consistent of credit_ledger (0010) calls this: only
-- an adjust may be negative; hold, capture and release name a generation,
-- the others do not; capture and release name an image, the others do not.
--
-- Immutable, and changed only as farm_generation_consistent.sql says;
-- plpgsql for the reason it gives (a capture writes one ledger row).
CREATE OR REPLACE FUNCTION farm_ledger_entry_consistent(p_kind farm_ledger_kind, p_amount bigint,
                                                        p_generation_id uuid, p_image_index int)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (p_kind = 'adjust' OR p_amount >= 0)
       AND (p_kind IN ('hold', 'capture', 'release')) = (p_generation_id IS NOT NULL)
       AND (p_kind IN ('capture', 'release')) = (p_image_index IS NOT NULL);
END $$;
