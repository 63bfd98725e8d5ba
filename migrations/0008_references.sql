-- Schema only since #13: this file's function definitions moved to
-- store/sql/, applied by `farm migrate` after the numbered migrations.
-- Databases that applied it as shipped are accepted by that version's
-- checksum, listed in migrations/shipped.sha256.

-- References a generation makes to earlier files of its user: an identity
-- (an upload, or an output of an earlier generation) and uploaded pose maps.
