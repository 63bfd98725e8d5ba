-- The server-made id of an admin grant (detail.op of its audit row), by
-- which a grant whose answer Postgres lost is found (farm_credit_resolve):
-- only grants carry it, so the index holds those rows only.
CREATE INDEX audit_log_by_op ON audit_log ((detail->>'op')) WHERE detail ? 'op';
