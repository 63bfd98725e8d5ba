-- Every violation of the ledger's invariants, one line each (`farm
-- reconcile`, docs/credits.md): the accounts against their ledger, the
-- generations against their cost and their ledger, each ledger row against
-- its generation, and the references no foreign key checks (0014, 0015);
-- the accounts' running totals of captures and releases (0021).
--
-- 0015 kept 0014's checks under the name farm_reconcile_0014 and called it;
-- they are all here now, and the old name goes in the same transaction.
DROP FUNCTION IF EXISTS farm_reconcile_0014();

CREATE OR REPLACE FUNCTION farm_reconcile() RETURNS TABLE (problem text)
LANGUAGE sql STABLE AS $$
    WITH sums AS (
        SELECT a.user_id, a.balance, a.held, a.captured, a.released,
               coalesce(sum(l.amount) FILTER (WHERE l.kind IN ('grant', 'adjust')), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'capture'), 0) AS want_balance,
               coalesce(sum(l.amount) FILTER (WHERE l.kind = 'hold'), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.kind IN ('capture', 'release')), 0) AS want_held,
               coalesce(sum(l.amount) FILTER (WHERE l.kind = 'capture'), 0) AS want_captured,
               coalesce(sum(l.amount) FILTER (WHERE l.kind = 'release'), 0) AS want_released
        FROM credit_accounts a LEFT JOIN credit_ledger l ON l.user_id = a.user_id
        GROUP BY a.user_id, a.balance, a.held, a.captured, a.released)
    SELECT format('account %s: balance %s, but grants + adjusts - captures = %s', user_id, balance, want_balance)
        FROM sums WHERE balance <> want_balance
    UNION ALL
    SELECT format('account %s: held %s, but holds - captures - releases = %s', user_id, held, want_held)
        FROM sums WHERE held <> want_held
    UNION ALL
    SELECT format('account %s: captured %s, released %s, but its ledger says %s and %s (0021)',
                  user_id, captured, released, want_captured, want_released)
        FROM sums WHERE captured <> want_captured OR released <> want_released
    UNION ALL
    SELECT format('generation %s (%s): charged %s + released %s <> cost %s', id, status, charged, released, cost)
        FROM generations WHERE status NOT IN ('queued', 'running') AND charged + released <> cost
    UNION ALL
    SELECT format('generation %s: charged %s, released %s, but its ledger says %s and %s',
                  g.id, g.charged, g.released, coalesce(s.captured, 0), coalesce(s.released, 0))
        FROM generations g LEFT JOIN (
            SELECT generation_id,
                   sum(amount) FILTER (WHERE kind = 'capture') AS captured,
                   sum(amount) FILTER (WHERE kind = 'release') AS released
            FROM credit_ledger WHERE generation_id IS NOT NULL GROUP BY generation_id) s
          ON s.generation_id = g.id
        WHERE g.charged <> coalesce(s.captured, 0) OR g.released <> coalesce(s.released, 0)
    UNION ALL
    SELECT format('ledger row %s: %s of %s for generation %s image %s, but the image costs %s',
                  l.id, l.kind, l.amount, l.generation_id, l.image_index, g.unit_cost)
        FROM credit_ledger l JOIN generations g ON g.id = l.generation_id
        WHERE l.kind IN ('capture', 'release') AND l.amount <> g.unit_cost
    UNION ALL
    SELECT format('ledger row %s: hold of %s for generation %s, but it costs %s', l.id, l.amount, g.id, g.cost)
        FROM credit_ledger l JOIN generations g ON g.id = l.generation_id
        WHERE l.kind = 'hold' AND l.amount <> g.cost
    UNION ALL
    SELECT format('ledger row %s: %s for generation %s without a hold', l.id, l.kind, l.generation_id)
        FROM credit_ledger l
        WHERE l.kind IN ('capture', 'release')
          AND NOT EXISTS (SELECT 1 FROM credit_ledger h WHERE h.kind = 'hold' AND h.generation_id = l.generation_id)
    UNION ALL
    SELECT format('generation %s has no hold', g.id)
        FROM generations g
        WHERE NOT EXISTS (SELECT 1 FROM credit_ledger h WHERE h.kind = 'hold' AND h.generation_id = g.id)
    UNION ALL
    SELECT format('ledger row %s: %s for user %s, who does not exist', l.id, l.kind, l.user_id)
        FROM credit_ledger l
        WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id)
    UNION ALL
    SELECT format('ledger row %s: %s for generation %s, which does not exist', l.id, l.kind,
                  l.generation_id)
        FROM credit_ledger l
        WHERE l.generation_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = l.generation_id)
    UNION ALL
    SELECT format('generation %s: user %s does not exist', g.id, g.user_id)
        FROM generations g
        WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = g.user_id)
$$;
