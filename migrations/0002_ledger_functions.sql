-- Schema only since #13: this file's function definitions moved to
-- store/sql/, applied by `farm migrate` after the numbered migrations.
-- Databases that applied it as shipped are accepted by that version's
-- checksum, listed in migrations/shipped.sha256.

-- The credit operations, one function each, so every operation is one
-- round trip and one transaction. Each answers an `outcome` word that
-- store/ translates; none reads a balance and then writes it (the hold is a
-- conditional UPDATE; settlements rely on the unique indexes of 0001).
