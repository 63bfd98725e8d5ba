-- A timestamp as the API writes it: UTC, milliseconds, ISO 8601.
CREATE OR REPLACE FUNCTION farm_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
