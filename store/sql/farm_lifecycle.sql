-- The sweeper's lifecycle step (docs/storage.md, "Lifecycle"), each part
-- bounded by p_limit rows:
-- 1. retention: outputs older than p_output_days (0: kept) and uploads
--    older than p_upload_days (0: kept) are marked deleted and their
--    objects listed in storage_deletions;
-- 2. idempotency keys older than 24 h are purged (API.md: a key holds 24 h);
-- 3. objects due for deletion are claimed: each claim counts an attempt and
--    moves the row's next attempt 2^attempts s ahead (at most an hour), so
--    a failed delete is retried later and two sweepers never claim the same
--    row at once. Rows that must wait (farm__storage_waits) are skipped.
-- Returns {"keys": [...], "outputs_expired": n, "uploads_expired": n,
-- "idempotency_purged": n}; the caller deletes the keys' objects and
-- reports those it deleted to farm_storage_deleted.
CREATE OR REPLACE FUNCTION farm_lifecycle(p_limit int, p_output_days int, p_upload_days int)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_outputs int := 0;
    v_uploads int := 0;
    v_purged int := 0;
    v_keys text[];
BEGIN
    IF p_output_days > 0 THEN
        WITH due AS (
            SELECT o.generation_id, o.image_index, o.variant FROM generation_outputs o
            WHERE o.deleted_at IS NULL AND o.created_at < now() - make_interval(days => p_output_days)
            ORDER BY o.created_at LIMIT p_limit FOR UPDATE SKIP LOCKED),
        gone AS (
            UPDATE generation_outputs o SET deleted_at = now() FROM due
            WHERE o.generation_id = due.generation_id AND o.image_index = due.image_index
              AND o.variant = due.variant
            RETURNING o.storage_key, o.generation_id),
        listed AS (
            INSERT INTO storage_deletions (storage_key, user_id, generation_id, reason)
            SELECT gone.storage_key, g.user_id, gone.generation_id, 'retention'
            FROM gone JOIN generations g ON g.id = gone.generation_id
            ON CONFLICT (storage_key) DO NOTHING RETURNING 1)
        SELECT count(*) INTO v_outputs FROM gone;
    END IF;
    IF p_upload_days > 0 THEN
        WITH due AS (
            SELECT u.id FROM uploads u
            WHERE u.deleted_at IS NULL AND u.created_at < now() - make_interval(days => p_upload_days)
            ORDER BY u.created_at LIMIT p_limit FOR UPDATE SKIP LOCKED),
        gone AS (
            UPDATE uploads u SET deleted_at = now() FROM due WHERE u.id = due.id
            RETURNING u.id, u.user_id, u.storage_key),
        listed AS (
            INSERT INTO storage_deletions (storage_key, user_id, upload_id, reason)
            SELECT gone.storage_key, gone.user_id, gone.id, 'retention' FROM gone
            ON CONFLICT (storage_key) DO NOTHING RETURNING 1)
        SELECT count(*) INTO v_uploads FROM gone;
    END IF;
    WITH old AS (
        SELECT k.user_id, k.key FROM idempotency_keys k
        WHERE k.created_at < now() - interval '24 hours'
        ORDER BY k.created_at LIMIT p_limit FOR UPDATE SKIP LOCKED),
    gone AS (
        DELETE FROM idempotency_keys k USING old
        WHERE k.user_id = old.user_id AND k.key = old.key RETURNING 1)
    SELECT count(*) INTO v_purged FROM gone;
    WITH due AS (
        SELECT d.storage_key FROM storage_deletions d
        WHERE d.next_attempt_at <= now()
          AND NOT farm__storage_waits(d.user_id, d.upload_id, d.generation_id)
        ORDER BY d.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE storage_deletions d
        SET attempts = d.attempts + 1,
            next_attempt_at = now() + make_interval(secs => least(power(2, d.attempts), 3600))
        FROM due WHERE d.storage_key = due.storage_key
        RETURNING d.storage_key)
    SELECT coalesce(array_agg(storage_key ORDER BY storage_key), '{}') INTO v_keys FROM claimed;
    RETURN jsonb_build_object('keys', to_jsonb(v_keys), 'outputs_expired', v_outputs,
                              'uploads_expired', v_uploads, 'idempotency_purged', v_purged)::text;
END $$;
