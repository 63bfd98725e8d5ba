-- The single-column CHECK constraints of generations and credit_ledger
-- become domains: the same rules, enforced on every write of the column.
--
-- Why: Postgres rebuilds a table's CHECK constraints from their stored text
-- (stringToNode, then planning) for every INSERT or UPDATE statement, and
-- every statement inside the plpgsql ledger functions is one; all the
-- table's checks are rebuilt even when the statement changes none of their
-- columns. That was a quarter of the server's CPU in `scripts/bench ledger`.
-- A domain's checks are compiled once per connection (the type cache) and
-- run only when the column is assigned.
--
-- Checks that tie several columns together stay table CHECKs; the parts of
-- them a domain now covers (charged >= 0, images_done >= 0, ...) are left
-- out of the table CHECK. credit_accounts keeps its table CHECKs as they are.

CREATE DOMAIN farm_gen_kind AS text
    CONSTRAINT farm_gen_kind_check CHECK (VALUE IN ('avatar', 'pose'));
CREATE DOMAIN farm_gen_status AS text
    CONSTRAINT farm_gen_status_check
    CHECK (VALUE IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'canceled', 'expired'));
CREATE DOMAIN farm_gen_stage AS text
    CONSTRAINT farm_gen_stage_check
    CHECK (VALUE IN ('starting', 'generating', 'postprocessing', 'storing'));
CREATE DOMAIN farm_percent AS int CONSTRAINT farm_percent_check CHECK (VALUE BETWEEN 0 AND 100);
CREATE DOMAIN farm_image_count AS int CONSTRAINT farm_image_count_check CHECK (VALUE BETWEEN 1 AND 40);
-- Counts and amounts that never go below zero.
CREATE DOMAIN farm_count AS int CONSTRAINT farm_count_check CHECK (VALUE >= 0);
CREATE DOMAIN farm_credits AS bigint CONSTRAINT farm_credits_check CHECK (VALUE >= 0);
CREATE DOMAIN farm_ledger_kind AS text
    CONSTRAINT farm_ledger_kind_check
    CHECK (VALUE IN ('grant', 'hold', 'capture', 'release', 'adjust'));

-- One rewrite of each table (the domains' checks are validated on every row).
ALTER TABLE generations
    DROP CONSTRAINT generations_kind_check,
    DROP CONSTRAINT generations_status_check,
    DROP CONSTRAINT generations_stage_check,
    DROP CONSTRAINT generations_progress_check,
    DROP CONSTRAINT generations_images_check,
    DROP CONSTRAINT generations_unit_cost_check,
    DROP CONSTRAINT settled_within_cost,
    DROP CONSTRAINT images_within_count,
    ALTER COLUMN kind TYPE farm_gen_kind,
    ALTER COLUMN status TYPE farm_gen_status,
    ALTER COLUMN stage TYPE farm_gen_stage,
    ALTER COLUMN progress TYPE farm_percent,
    ALTER COLUMN images TYPE farm_image_count,
    ALTER COLUMN unit_cost TYPE farm_credits,
    ALTER COLUMN images_done TYPE farm_count,
    ALTER COLUMN images_failed TYPE farm_count,
    ALTER COLUMN charged TYPE farm_credits,
    ALTER COLUMN released TYPE farm_credits,
    -- charged, released, images_done and images_failed are >= 0 by their type.
    ADD CONSTRAINT settled_within_cost CHECK (charged + released <= cost),
    ADD CONSTRAINT images_within_count CHECK (images_done + images_failed <= images);

ALTER TABLE credit_ledger
    DROP CONSTRAINT credit_ledger_kind_check,
    ALTER COLUMN kind TYPE farm_ledger_kind;
