-- A timestamp as the API writes it: UTC, milliseconds, ISO 8601.
-- STABLE, as to_char is: a LANGUAGE sql function is inlined into its caller
-- only when its body is no more volatile than it says it is, and one that is
-- not inlined is parsed and planned again on every execution of its caller.
CREATE OR REPLACE FUNCTION farm_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
