-- Whether an object due for deletion must wait (docs/storage.md,
-- "Lifecycle"): a queued or running generation of its user references the
-- upload (identity or a pose map), or takes an output of the generation as
-- its identity. Such a generation reads the file when it starts (again
-- after a hand-back), so the object stays until it has finished.
CREATE OR REPLACE FUNCTION farm__storage_waits(p_user uuid, p_upload uuid, p_generation uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (p_upload IS NOT NULL OR p_generation IS NOT NULL) AND EXISTS (
        SELECT 1 FROM generations g
        WHERE g.user_id = p_user AND g.status IN ('queued', 'running')
          AND ((p_upload IS NOT NULL
                AND (g.params -> 'identity' ->> 'upload_id' = p_upload::text
                     OR coalesce(g.params -> 'poses', '[]'::jsonb)
                        @> jsonb_build_array(jsonb_build_object('upload_id', p_upload::text))))
               OR (p_generation IS NOT NULL
                   AND g.params -> 'identity' ->> 'generation_id' = p_generation::text)))
$$;
