-- Schema only since #13: this file's function definitions moved to
-- store/sql/, applied by `farm migrate` after the numbered migrations.
-- Databases that applied it as shipped are accepted by that version's
-- checksum, listed in migrations/shipped.sha256.

-- The sweeper's side in Postgres (docs/credits.md, "Nothing stays held").
-- One call per tick: under a transaction advisory lock (so only one sweeper
-- in the whole farm works at a time), expire what missed its deadline and
-- list what the queue should hold, for the caller to enqueue again
-- (idempotent in the queue) or, when the queue has given up on it, to fail.
