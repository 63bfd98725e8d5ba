-- The outcome of accepts (of generations, or of uploads) whose answer was
-- lost (docs/api.md "An accept whose answer is lost"; api/resolve.c): the
-- connection that sent them dropped, or Postgres said nothing past
-- statement_timeout, so they may have committed or not. First the fence:
-- the backend that ran them (p_pid, libpq's PQbackendPID, whose
-- application_name is p_app, unique to the api's connection; NULL: unknown)
-- is terminated and waited for, so its transaction has either committed or
-- rolled back for good. A backend already gone is fine, and a pid that
-- names another process (a restarted Postgres reuses them) is left alone:
-- the name does not match. Then, for each of p_ids (the new generations' or
-- uploads' ids, in the caller's order; UUIDs, never the same in both),
-- whether it was accepted: its row exists. Answers one character per id,
-- 't' or 'f'. Raises when the backend outlives the wait (the caller asks
-- again).
--
-- pg_terminate_backend needs the caller's role to be the backend's (or
-- pg_signal_backend): every api process connects as the same role.
CREATE OR REPLACE FUNCTION farm_accept_resolve(p_pid int, p_app text, p_ids uuid[])
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_pid IS NOT NULL AND p_pid <> pg_backend_pid()
       AND EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p_pid AND application_name = p_app)
    THEN
        -- True once it has ended; false when it outlived the wait, or was gone
        -- already (then the activity view, read afresh, no longer lists it).
        IF NOT pg_terminate_backend(p_pid, 5000) THEN
            PERFORM pg_stat_clear_snapshot();
            IF EXISTS (SELECT 1 FROM pg_stat_activity
                       WHERE pid = p_pid AND application_name = p_app) THEN
                RAISE EXCEPTION 'backend % of a lost accept has not ended', p_pid
                    USING ERRCODE = 'lock_not_available';
            END IF;
        END IF;
    END IF;
    RETURN (SELECT string_agg(CASE WHEN EXISTS (SELECT 1 FROM generations g WHERE g.id = x.id)
                                     OR EXISTS (SELECT 1 FROM uploads u WHERE u.id = x.id)
                                   THEN 't' ELSE 'f' END, '' ORDER BY x.n)
            FROM unnest(p_ids) WITH ORDINALITY x(id, n));
END $$;
