-- POST /v1/generations, group-committed: the accepts an api process collected
-- in one loop turn, as one statement and one transaction (docs/credits.md
-- "Group-committed accepts"). p_batch is a JSON array, one object per
-- request (store/call.c, store_call_accept_batch):
--   {id, user, plan, welcome, kind, images, unit_cost, params (JSON text),
--    metadata (JSON text | null), deadline_ms (| null), idem_key, idem_hash,
--    webhook_url, webhook_events (array literal | null),
--    identity_upload, identity_gen, identity_index, poses (uuid array),
--    at_cap (true | absent: the user is at the active generations cap, and
--    a request that would be accepted is answered at_cap instead, writing
--    nothing; it goes the request-by-request way)}
-- The answer is a JSON array in the same order, one object per request:
--   {outcome: accepted | existing | conflict | insufficient | missing | at_cap | error,
--    generation_id, available, missing ('identity' | 'poses'), sqlstate, message,
--    created_at (accepted: the new generation's, as GET shows it; every
--                generation of the batch has the transaction's),
--    generation: {kind, status, cost, images, created_at} of an existing one
--                (null when it was deleted since)}
--
-- Most requests of a batch of two or more go through one set-based
-- statement (the fast path; a lone request costs less one by one): those
-- of users that have an account, sent no Idempotency-Key and no reference
-- in this batch, and whose available credits cover all their requests of
-- the batch. For them the outcome cannot differ from the one the
-- request-by-request path gives (every hold passes), so the statement
-- takes each such user's holds as one UPDATE and inserts all their
-- generations and hold entries at once: a few executor starts per batch
-- instead of several per request. Everything else goes the
-- request-by-request way below; should the fast statement fail, it is
-- undone and every request goes that way. A batch that the fast path
-- answers in full (the usual one) is answered from it at once, with no
-- statement of the request-by-request path planned or run.
--
-- Each request keeps its own outcome: on the one-by-one path its reference
-- check and its accept (farm_accept_generation, the idempotency key, the
-- hold, the generation row) run in a block of their own, a subtransaction,
-- so an error of one request undoes that request only and is answered as
-- its own 'error'.
-- Two requests of the same user see each other's holds (one transaction;
-- the hold is farm_accept_generation's conditional UPDATE).
--
-- Lock order: in a batch of two or more, first a transaction advisory lock
-- on each user of the batch (class 71002, the hash of the user id), in the
-- order of those keys, in one statement; then every existing account of the
-- batch is locked (FOR UPDATE) in user id order; then the fast path takes
-- its holds, and the one-by-one path takes its requests by user id, locking
-- each user's account (or provisioning a new user) in that order. The
-- advisory locks come first because a user seen for the first time has no
-- account row to lock until the loop provisions it: without them, a batch
-- could hold an existing account while it waits for another batch's
-- provisioning of a new user, and that other batch wait for the same
-- account (a deadlock that tests/integration/store/accept_batch.c's racing
-- batches hit). Two batches on two connections (or two api processes)
-- that share a user therefore run one after the other from their first
-- shared user on, and never wait on each other in a cycle.
CREATE OR REPLACE FUNCTION farm_accept_generations(p_batch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_n int := jsonb_array_length(p_batch);
    v_out jsonb[] := array_fill(NULL::jsonb, ARRAY[v_n]);
    v_fast jsonb := '[]'; -- the fast path's outcomes, in the order of their requests
    v_fast_ord int[] := '{}'; -- the positions of those requests in the batch
    v_fast_n int := 0;
    r record;
    v_user uuid;
    v_missing text;
    v_acc record;
    v_gen jsonb;
    v_now text := farm_ts(now()); -- the created_at of every generation this accepts
BEGIN
    IF v_n > 1 THEN -- a lone request costs less one by one than set-based
        PERFORM pg_advisory_xact_lock(71002, s.k)
            FROM (SELECT DISTINCT hashtext((e->>'user')::uuid::text) AS k
                  FROM jsonb_array_elements(p_batch) e ORDER BY 1) s;
        -- = ANY of an array, not IN (a set-returning function): the planner
        -- guesses 100 rows for the function and then prefers a hash join over
        -- a scan of every account, whose cost grows with the user count.
        PERFORM 1 FROM credit_accounts a
            WHERE a.user_id = ANY (ARRAY(SELECT DISTINCT (e->>'user')::uuid
                                         FROM jsonb_array_elements(p_batch) e))
            ORDER BY a.user_id FOR UPDATE;
        BEGIN
            WITH req AS (
                SELECT t.*, t.images::bigint * t.unit_cost AS cost,
                       bool_and(t.idem_key IS NULL AND t.identity_upload IS NULL
                                AND t.identity_gen IS NULL
                                AND jsonb_array_length(coalesce(t.poses, '[]')) = 0
                                AND NOT coalesce(t.at_cap, false))
                           OVER (PARTITION BY t."user") AS plain
                FROM ROWS FROM (jsonb_to_recordset(p_batch) AS (
                         id uuid, "user" uuid, plan text, kind text, images int, unit_cost bigint,
                         params text, metadata text, deadline_ms double precision, idem_key text,
                         identity_upload text, identity_gen text, poses jsonb, webhook_url text,
                         webhook_events text, at_cap boolean)) WITH ORDINALITY AS t(
                         id, "user", plan, kind, images, unit_cost, params, metadata, deadline_ms,
                         idem_key, identity_upload, identity_gen, poses, webhook_url, webhook_events,
                         at_cap, ord)
            ), mine AS (
                SELECT * FROM req WHERE plain
            ), held AS (
                UPDATE credit_accounts a SET held = a.held + u.cost, updated_at = now()
                    FROM (SELECT m."user", sum(m.cost) AS cost FROM mine m GROUP BY m."user") u
                    WHERE a.user_id = u."user" AND a.balance - a.held >= u.cost
                    RETURNING a.user_id, a.balance - a.held AS available
            ), fast AS (
                -- available: after this request's hold, as one hold at a time leaves it
                SELECT m.*, h.available + coalesce(sum(m.cost) OVER (
                           PARTITION BY m."user" ORDER BY m.ord
                           ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS available
                FROM mine m JOIN held h ON h.user_id = m."user"
            ), gen AS (
                INSERT INTO generations (id, user_id, kind, plan, params, metadata, images, unit_cost,
                                         cost, deadline_at, webhook_url, webhook_events)
                    SELECT f.id, f."user", f.kind, coalesce(f.plan, 'free'), f.params::jsonb,
                           f.metadata::jsonb, f.images, f.unit_cost, f.cost,
                           to_timestamp(f.deadline_ms / 1000), f.webhook_url,
                           coalesce(f.webhook_events::text[], '{}')
                    FROM fast f ORDER BY f.ord
                    RETURNING id, user_id, cost
            ), led AS (
                INSERT INTO credit_ledger (user_id, kind, amount, generation_id)
                    SELECT g.user_id, 'hold', g.cost, g.id FROM gen g
            )
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'outcome', 'accepted', 'generation_id', f.id, 'available', f.available,
                       'created_at', v_now, 'generation', NULL) ORDER BY f.ord), '[]'),
                   coalesce(array_agg(f.ord::int ORDER BY f.ord), '{}'), count(*)
                INTO v_fast, v_fast_ord, v_fast_n FROM fast f;
        EXCEPTION WHEN OTHERS THEN
            -- undone: every request goes one by one
            v_fast := '[]';
            v_fast_ord := '{}';
            v_fast_n := 0;
        END;
    END IF;
    IF v_fast_n = v_n THEN
        RETURN v_fast; -- the usual batch: no request left for the one-by-one path
    END IF;
    FOR i IN 1 .. v_fast_n LOOP
        v_out[v_fast_ord[i]] := v_fast -> (i - 1);
    END LOOP;
    FOR r IN
        SELECT e.ord::int AS ord, e.v, (e.v->>'user')::uuid AS u
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e(v, ord)
        WHERE v_out[e.ord::int] IS NULL -- not answered by the fast path
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
            -- A key of the last 24 hours decides before the references do: its
            -- replay (or conflict) is answered even when a file the first request
            -- named was deleted since (farm_accept_generation writes nothing then).
            IF v_missing <> 'ok' AND r.v->>'idem_key' IS NOT NULL AND EXISTS (
                   SELECT 1 FROM idempotency_keys k
                   WHERE k.user_id = r.u AND k.key = r.v->>'idem_key'
                     AND k.created_at > now() - interval '24 hours') THEN
                v_missing := 'ok';
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
                -- At the active cap (the api asked the queue): what would be accepted is
                -- undone and answered at_cap, so the request writes nothing; every other
                -- answer (a key's replay or conflict, waited for as ever, or 402) stands.
                IF v_acc.outcome = 'accepted' AND coalesce((r.v->>'at_cap')::boolean, false) THEN
                    RAISE EXCEPTION USING ERRCODE = 'GF429';
                END IF;
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
                                                   'created_at', CASE WHEN v_acc.outcome = 'accepted'
                                                                      THEN v_now END,
                                                   'generation', v_gen);
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'GF429' THEN -- its accept undone
                v_out[r.ord] := jsonb_build_object('outcome', 'at_cap', 'generation_id', NULL,
                                                   'available', v_acc.available,
                                                   'generation', NULL);
            WHEN OTHERS THEN
                v_out[r.ord] := jsonb_build_object('outcome', 'error', 'sqlstate', SQLSTATE,
                                                   'message', SQLERRM);
        END;
    END LOOP;
    RETURN to_jsonb(v_out);
END $$;
