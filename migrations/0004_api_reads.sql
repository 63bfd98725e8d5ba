-- Schema only since #13: this file's function definitions moved to
-- store/sql/, applied by `farm migrate` after the numbered migrations.
-- Databases that applied it as shipped are accepted by that version's
-- checksum, listed in migrations/shipped.sha256.

-- Reads for the API: one JSON shape of a generation (GET /v1/generations/{id}
-- and the list share it), a page of generations and a page of the ledger.
