-- The provider's request id for one image, persisted before the worker waits
-- on it, so a worker that takes the generation over resumes the request
-- instead of paying for it again (farm_worker_resume).
-- recorded | stale | terminal | not_found
CREATE OR REPLACE FUNCTION farm_record_provider_request(p_id uuid, p_fence bigint, p_index int, p_request text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g generations;
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF p_fence < g.fence THEN RETURN 'stale'; END IF;
    IF g.status NOT IN ('queued', 'running') THEN RETURN 'terminal'; END IF;
    UPDATE generations SET provider_requests = provider_requests || jsonb_build_object(p_index::text, p_request),
            updated_at = now()
        WHERE id = p_id;
    RETURN 'recorded';
END $$;
