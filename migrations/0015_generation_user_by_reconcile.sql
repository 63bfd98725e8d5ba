-- Schema only since #13: this file's function definitions moved to
-- store/sql/, applied by `farm migrate` after the numbered migrations.
-- Databases that applied it as shipped are accepted by that version's
-- checksum, listed in migrations/shipped.sha256.

-- The foreign key generations.user_id -> users goes, as the ledger's did in
-- 0014; `farm reconcile` names a generation whose user does not exist.
--
-- Why: every accepted generation made Postgres run the key's check (a
-- query through SPI and a KEY SHARE lock on the user's row) at the end of
-- the INSERT. On `scripts/bench ledger`'s calls alone (bench_ledger, 8
-- connections, 3 alternating 5 s runs in one cluster) that was 7112, 6600
-- and 6661 against 7595, 7010 and 6840 accept + capture pairs/s without it.
--
-- Why nothing is lost by construction: a generation is inserted only by
-- farm_accept_generation, in the statement after the UPDATE that took its
-- hold from the user's account, and that account row references the user
-- (credit_accounts.user_id keeps its foreign key, and an account is made
-- only with its user, by farm_user_ensure). Users are never deleted.
-- generation_outputs, uploads and idempotency_keys keep theirs.
ALTER TABLE generations DROP CONSTRAINT generations_user_id_fkey;

