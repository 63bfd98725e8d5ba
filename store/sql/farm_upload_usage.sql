-- What a user's uploads hold against their quota (FARM_UPLOAD_QUOTAS): the
-- user's live uploads, the rows of `uploads` that name the user and are not
-- deleted (deleted_at IS NULL; a DELETE or retention sets it, migration
-- 0019), so a deleted upload frees its place at once. The api reads it when
-- an upload's headers are in, and farm_upload_add again under the user's lock.
CREATE OR REPLACE FUNCTION farm_upload_usage(p_user uuid, OUT uploads bigint, OUT bytes bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*), coalesce(sum(u.bytes), 0)::bigint FROM uploads u
    WHERE u.user_id = p_user AND u.deleted_at IS NULL;
$$;
