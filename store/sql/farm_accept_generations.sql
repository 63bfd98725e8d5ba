-- POST /v1/generations, group-committed: the accepts an api process collected
-- in one loop turn, as one statement and one transaction (docs/credits.md
-- "Group-committed accepts"). p_batch is a JSON array, one object per
-- request (store/call.c, store_call_accept_batch):
--   {id, user, plan, welcome, kind, images, unit_cost, params (JSON text),
--    metadata (JSON text | null), deadline_ms (| null), idem_key, idem_hash,
--    webhook_url, webhook_events (array literal | null),
--    identity_upload, identity_gen, identity_index, poses (uuid array)}
-- The answer is a JSON array in the same order, one object per request:
--   {outcome: accepted | existing | conflict | insufficient | missing | error,
--    generation_id, available, missing ('identity' | 'poses'), sqlstate, message,
--    generation: {kind, status, cost, images, created_at} of an existing one
--                (null when it was deleted since)}
--
-- Each request keeps its own outcome: its reference check and its accept
-- (farm_accept_generation, the idempotency key, the hold, the generation
-- row) run in a block of their own, a subtransaction, so an error of one
-- request undoes that request only and is answered as its own 'error'.
-- Two requests of the same user see each other's holds (one transaction;
-- the hold is farm_accept_generation's conditional UPDATE).
--
-- Lock order: the requests are taken by user id, and each user's account
-- row is locked (FOR UPDATE) before anything else of that user, so
-- two batches on two connections (or two api processes) take the accounts
-- they share in the same order and never wait on each other in a cycle.
CREATE OR REPLACE FUNCTION farm_accept_generations(p_batch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_n int := jsonb_array_length(p_batch);
    v_out jsonb[] := array_fill(NULL::jsonb, ARRAY[v_n]);
    r record;
    v_user uuid;
    v_missing text;
    v_acc record;
    v_gen jsonb;
BEGIN
    FOR r IN
        SELECT e.ord::int AS ord, e.v, (e.v->>'user')::uuid AS u
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e(v, ord)
        ORDER BY (e.v->>'user')::uuid, e.ord
    LOOP
        IF v_user IS DISTINCT FROM r.u THEN
            v_user := r.u;
            -- (A user seen for the first time has no row yet: farm_accept_generation
            -- provisions them, account and all, before it writes anything else.)
            PERFORM 1 FROM credit_accounts a WHERE a.user_id = r.u FOR UPDATE;
        END IF;
        BEGIN
            v_missing := 'ok'; -- most requests refer to no file: no check to run
            IF r.v->>'identity_upload' IS NOT NULL OR r.v->>'identity_gen' IS NOT NULL
               OR jsonb_array_length(coalesce(r.v->'poses', '[]')) > 0 THEN
                v_missing := farm_refs_check(r.u, (r.v->>'identity_upload')::uuid,
                                             (r.v->>'identity_gen')::uuid,
                                             (r.v->>'identity_index')::int,
                                             ARRAY(SELECT jsonb_array_elements_text(
                                                       coalesce(r.v->'poses', '[]'))::uuid));
            END IF;
            IF v_missing <> 'ok' THEN
                v_out[r.ord] := jsonb_build_object('outcome', 'missing', 'missing', v_missing);
            ELSE
                SELECT * INTO v_acc FROM farm_accept_generation(
                    (r.v->>'id')::uuid, r.u, r.v->>'plan', (r.v->>'welcome')::bigint,
                    r.v->>'kind', (r.v->>'images')::int, (r.v->>'unit_cost')::bigint,
                    (r.v->>'params')::jsonb, (r.v->>'metadata')::jsonb,
                    to_timestamp((r.v->>'deadline_ms')::double precision / 1000),
                    r.v->>'idem_key', r.v->>'idem_hash', r.v->>'webhook_url',
                    (r.v->>'webhook_events')::text[]);
                v_gen := NULL;
                IF v_acc.outcome = 'existing' THEN
                    SELECT jsonb_build_object('kind', g.kind, 'status', g.status, 'cost', g.cost,
                                              'images', g.images,
                                              'created_at', farm_ts(g.created_at))
                        INTO v_gen
                        FROM generations g
                        WHERE g.id = v_acc.generation_id AND g.user_id = r.u
                          AND g.deleted_at IS NULL;
                END IF;
                v_out[r.ord] := jsonb_build_object('outcome', v_acc.outcome,
                                                   'generation_id', v_acc.generation_id,
                                                   'available', v_acc.available,
                                                   'generation', v_gen);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            v_out[r.ord] := jsonb_build_object('outcome', 'error', 'sqlstate', SQLSTATE,
                                               'message', SQLERRM);
        END;
    END LOOP;
    RETURN coalesce(to_jsonb(v_out), '[]'::jsonb);
END $$;
