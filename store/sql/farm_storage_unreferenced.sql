-- The sweeper's cleanup of leftover files (docs/storage.md, "Leftover
-- files"): of these storage keys, the ones that no row records and that are
-- not due for deletion already (storage_deletions, the lifecycle's own):
-- - a generation's files ({user}/{generation}/...) that no output row
--   records, of a generation that is not queued or running (so the files of
--   an attempt in flight are never named, however old): a stale attempt's,
--   never served;
-- - an upload's file ({user}/uploads/{id}.{ext}) whose id no uploads row has,
--   not even a deleted one: put by an api that never recorded it, its id
--   never given out.
-- Keys of anything else are never named. Returns {"keys": [...]}.
CREATE OR REPLACE FUNCTION farm_storage_unreferenced(p_keys text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH k AS (
        SELECT key, CASE WHEN split_part(key, '/', 2)
                              ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                         THEN split_part(key, '/', 2)::uuid END AS gen,
                    CASE WHEN key ~ ('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
                                     '/uploads/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                                     '[0-9a-f]{12}\.[a-z]+$')
                         THEN substring(key FROM '/uploads/([0-9a-f-]{36})\.')::uuid END AS upload
        FROM unnest(p_keys) AS key)
    SELECT jsonb_build_object('keys', coalesce(jsonb_agg(k.key ORDER BY k.key), '[]'))::text
    FROM k
    WHERE NOT EXISTS (SELECT 1 FROM storage_deletions d WHERE d.storage_key = k.key)
      AND ((k.gen IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM generation_outputs o
                            WHERE o.generation_id = k.gen AND o.storage_key = k.key)
            AND NOT EXISTS (SELECT 1 FROM generations g
                            WHERE g.id = k.gen AND g.status IN ('queued', 'running')))
           OR (k.upload IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.id = k.upload)))
$$;
