-- A generation's `webhook` as GET shows it (API.md): the terminal event's
-- delivery; null without a webhook_url; pending before the terminal status.
-- plpgsql, not sql: its query is planned once per session and kept, where a
-- LANGUAGE sql function that cannot be inlined (this one has sub-selects) is
-- parsed and planned again on every call (5 to 7 times the cost, measured).
CREATE OR REPLACE FUNCTION farm_webhook_json(g generations) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT CASE WHEN g.webhook_url IS NULL THEN NULL ELSE coalesce((
            SELECT jsonb_build_object('status', d.status, 'attempts', d.attempts,
                                      'last_status_code', d.last_status_code,
                                      'next_attempt_at', CASE WHEN d.status = 'pending'
                                                              THEN farm_ts(d.next_attempt_at) END)
                FROM webhook_deliveries d
                WHERE d.generation_id = g.id AND d.kind = 'terminal' AND d.seq = 0),
            jsonb_build_object('status', 'pending', 'attempts', 0, 'last_status_code', NULL,
                               'next_attempt_at', NULL)) END);
END $$;
