-- Several attempts' outcomes in one transaction (farm_webhook_claim records
-- a deliverer's with its next claim), each recorded exactly as
-- farm_webhook_result records it (only under its claim's
-- lease token). p_results: [{id, token, outcome, status_code, error,
-- next_ms}], as farm_webhook_result's arguments. The rows are updated in id
-- order, so two batches that meet on a row (a lease that went stale) lock in
-- the same order. Answers [{outcome, lag_s}], one per element, in p_results'
-- order.
CREATE OR REPLACE FUNCTION farm_webhook_results(p_results jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    r record;
    v jsonb[] := array_fill(NULL::jsonb, ARRAY[coalesce(jsonb_array_length(p_results), 0)]);
BEGIN
    FOR e IN SELECT x.value AS o, x.n FROM jsonb_array_elements(p_results) WITH ORDINALITY x(value, n)
             ORDER BY x.value->>'id', x.n LOOP
        SELECT * INTO r FROM farm_webhook_result((e.o->>'id')::uuid, (e.o->>'token')::bigint,
                                                 e.o->>'outcome', (e.o->>'status_code')::int,
                                                 e.o->>'error', (e.o->>'next_ms')::bigint);
        v[e.n] := jsonb_build_object('outcome', r.outcome, 'lag_s', r.lag_s);
    END LOOP;
    RETURN to_jsonb(v);
END $$;
