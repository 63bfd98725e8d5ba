-- Schema only since #13: this file's function definitions moved to
-- store/sql/, applied by `farm migrate` after the numbered migrations.
-- Databases that applied it as shipped are accepted by that version's
-- checksum, listed in migrations/shipped.sha256.

-- The ledger's two foreign keys (user_id -> users, generation_id ->
-- generations) go; `farm reconcile` checks the same two references instead.
--
-- Why: each ledger row made Postgres run a foreign-key check per key (a
-- query through SPI, and a KEY SHARE lock on the referenced row): two per
-- hold and two per capture. On `scripts/bench ledger`'s calls alone
-- (bench_ledger, 8 connections, 4 alternating 8 s runs) that was 6304
-- against 7051 accept + capture pairs/s without them, 12 %.
--
-- Why nothing is lost by construction: every ledger row is written by this
-- schema's functions, from the rows it names, in the same statement or
-- transaction: the welcome grant after its user and account; an admin
-- grant or adjust after farm_user_ensure and the account's UPDATE; a hold
-- in the statement that inserts its generation; a capture or release
-- selected from its generation's row. Users and generations are never
-- deleted, and the ledger takes no UPDATE or DELETE (its triggers). The
-- foreign keys did not stop a hand edit either: session_replication_role =
-- replica, the way round the ledger's triggers, skips them too.
-- generations.user_id and credit_accounts.user_id keep theirs.
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_user_id_fkey;
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_generation_id_fkey;
