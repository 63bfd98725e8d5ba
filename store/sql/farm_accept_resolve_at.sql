-- farm_accept_resolve, with each accepted generation's created_at: what the
-- api needs to answer a resolved accept's 202 as GET will show it. A JSON
-- array in p_ids' order, one object per id:
--   {accepted: bool, created_at: text (a generation's, farm_ts) | null (not
--    accepted, or an upload)}
-- The fence is farm_accept_resolve's; the rows are read after it, by a
-- statement of their own (this function is VOLATILE: it sees what the
-- ended backend committed).
CREATE OR REPLACE FUNCTION farm_accept_resolve_at(p_pid int, p_app text, p_ids uuid[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_exists text := farm_accept_resolve(p_pid, p_app, p_ids);
BEGIN
    RETURN (SELECT jsonb_agg(jsonb_build_object(
                       'accepted', substr(v_exists, x.n::int, 1) = 't',
                       'created_at', (SELECT farm_ts(g.created_at) FROM generations g
                                      WHERE g.id = x.id AND substr(v_exists, x.n::int, 1) = 't'))
                   ORDER BY x.n)
            FROM unnest(p_ids) WITH ORDINALITY x(id, n));
END $$;
