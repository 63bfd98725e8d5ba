-- The objects of these keys are deleted from storage: their
-- storage_deletions rows go. Returns how many went.
CREATE OR REPLACE FUNCTION farm_storage_deleted(p_keys text[]) RETURNS int
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM storage_deletions WHERE storage_key = ANY (p_keys) RETURNING 1)
    SELECT count(*)::int FROM gone
$$;
