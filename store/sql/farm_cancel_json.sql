-- The api's cancel and its answer in one round trip: farm_cancel's outcome,
-- then, when the cancel was taken (canceled, cancel_requested), the
-- generation as GET shows it after the cancel (farm_generation_json).
-- Reading it back in a statement of its own could fail after the cancel
-- committed, and the client would get a 503 for a cancel that happened.
-- plpgsql: its SELECT runs after farm_cancel's writes and sees them (a
-- second call in one SQL statement would read the statement's snapshot,
-- from before the cancel).
CREATE OR REPLACE FUNCTION farm_cancel_json(p_id uuid, p_user uuid, OUT outcome text,
                                            OUT generation jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    outcome := farm_cancel(p_id, p_user);
    IF outcome IN ('canceled', 'cancel_requested') THEN
        SELECT farm_generation_json(g) INTO generation FROM generations g WHERE g.id = p_id;
    END IF;
END $$;
