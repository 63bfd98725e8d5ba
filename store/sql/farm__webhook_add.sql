-- One event into the webhook outbox (migrations/0018), inside the
-- transaction of the function that makes it happen. Nothing without a
-- webhook_url; started and image events only when the generation asked for
-- them (webhook_events). An event already recorded (a worker that took the
-- generation over and started it again) is not recorded twice.
CREATE OR REPLACE FUNCTION farm__webhook_add(p_gen uuid, p_url text, p_events text[], p_kind text,
                                             p_seq int, p_event text, p_data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_url IS NULL OR (p_kind <> 'terminal' AND NOT (p_kind = ANY (p_events))) THEN
        RETURN;
    END IF;
    INSERT INTO webhook_deliveries (id, generation_id, kind, seq, event, url, data)
        VALUES (gen_random_uuid(), p_gen, p_kind, p_seq, p_event, p_url, p_data)
        ON CONFLICT (generation_id, kind, seq) DO NOTHING;
END $$;
