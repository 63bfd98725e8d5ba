-- Sets the terminal status once, releasing what is not settled. 'auto'
-- derives succeeded / partial / failed from the images, or is canceled when
-- the user's cancel was taken while it ran (cancel_requested: the client was
-- answered 202, and API.md's running cancel ends canceled, keeping what was
-- captured, even when its last image was being recorded as the cancel came).
-- An error is kept for failed, canceled and expired only: API.md's `error`
-- is there when failed, and succeeded or partial carry none. A failed or
-- partial finish that releases images no settlement recorded (the queue
-- gave up on the job, unreadable parameters) lists each in `failures` with
-- the finish's error, so `failures` names every one `images_failed`
-- counts. A second finish
-- changes nothing and answers the first status. With a webhook_url, the
-- terminal event's delivery is recorded in the same transaction. A finish
-- without a fencing token (the sweeper's, an expiry) fences the generation:
-- a worker still running it is refused from then on (stale), so nothing it
-- does later is recorded.
-- finished | already | stale | not_found, with the status in force
CREATE OR REPLACE FUNCTION farm_finish(p_id uuid, p_fence bigint, p_status text, p_error jsonb,
                                       OUT outcome text, OUT status text)
LANGUAGE plpgsql AS $$
DECLARE
    g generations;
    v_released bigint;
    v_status text := p_status;
    v_failures jsonb := '[]';
BEGIN
    SELECT * INTO g FROM generations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN outcome := 'not_found'; RETURN; END IF;
    IF g.status NOT IN ('queued', 'running') THEN outcome := 'already'; status := g.status; RETURN; END IF;
    IF p_fence IS NOT NULL AND p_fence < g.fence THEN outcome := 'stale'; status := g.status; RETURN; END IF;
    IF v_status = 'auto' AND g.cancel_requested THEN
        v_status := 'canceled';
    ELSIF v_status = 'auto' THEN
        v_status := CASE WHEN g.images_done = g.images THEN 'succeeded'
                         WHEN g.images_done = 0 THEN 'failed'
                         ELSE 'partial' END;
    ELSIF v_status = 'failed' AND g.images_done > 0 THEN
        -- Failed with images delivered and charged (the queue giving up on a
        -- job after some of its images were captured): API.md's partial, so
        -- no client reads "failed" as "not charged".
        v_status := 'partial';
    END IF;
    IF v_status IN ('failed', 'partial') AND g.images_done + g.images_failed < g.images THEN
        -- Before farm__release_rest records their release: the images nothing settled.
        SELECT coalesce(jsonb_agg(jsonb_build_object('index', i, 'error', coalesce(p_error,
                   '{"code": "internal", "message": "the generation ended before this image did", "retryable": false}'))
                   ORDER BY i), '[]')
            INTO v_failures
            FROM generate_series(0, g.images - 1) AS i
            WHERE NOT EXISTS (SELECT 1 FROM credit_ledger l
                              WHERE l.generation_id = g.id AND l.image_index = i
                                AND l.kind IN ('capture', 'release'));
    END IF;
    v_released := farm__release_rest(g);
    UPDATE generations SET status = v_status, stage = NULL,
            progress = CASE WHEN v_status IN ('succeeded', 'partial') THEN 100 ELSE progress END,
            released = released + v_released,
            images_failed = images - images_done,
            failures = failures || v_failures,
            -- A failed generation always carries an error (API.md). A finish
            -- that brings none (a worker that took over after an earlier
            -- attempt had settled every image, the sweeper's) takes the last
            -- failed image's, as a worker's own finish does.
            error = CASE WHEN v_status IN ('succeeded', 'partial') THEN NULL
                         ELSE coalesce(p_error, error, CASE WHEN v_status = 'failed' THEN coalesce(
                nullif((failures || v_failures) -> -1 -> 'error', 'null'),
                '{"code": "internal", "message": "no image error was recorded", "retryable": false}')
                END) END,
            finished_at = now(), updated_at = now(),
            fence = CASE WHEN p_fence IS NULL THEN fence + 1 ELSE fence END
        WHERE id = p_id;
    -- The terminal event's webhook, in this transaction (migrations/0018);
    -- without a webhook_url no statement runs for it.
    IF g.webhook_url IS NOT NULL THEN
        PERFORM farm__webhook_add(p_id, g.webhook_url, g.webhook_events, 'terminal', 0, v_status,
                                  NULL);
    END IF;
    outcome := 'finished';
    status := v_status;
END $$;
