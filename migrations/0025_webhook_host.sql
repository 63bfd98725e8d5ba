-- The host a delivery goes to, lower-cased (no port, no user), as the
-- claim's per-host bound counts it (store/sql/farm_webhook_claim.sql): a
-- receiver that hangs holds at most that many of a deliverer's slots, and
-- every other host's deliveries are claimed past its backlog. Computed from
-- `url`, so no writer can set it wrong; NULL for a URL without one. One to
-- three slashes after the scheme, as curl reads them. (Adding it rewrites
-- the table: on a large outbox, migrate in a quiet minute.)
ALTER TABLE webhook_deliveries ADD COLUMN host text GENERATED ALWAYS AS (
    lower(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*:/{1,3}(?:[^/?#@]*@)?(\[[^]/?#]*\]|[^/?#:]*)'))
) STORED;
