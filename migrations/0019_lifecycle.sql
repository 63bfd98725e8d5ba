-- Stored data has a lifecycle (API.md: DELETE /v1/generations/{id},
-- GET and DELETE /v1/uploads, FARM_OUTPUT_RETENTION_DAYS,
-- FARM_UPLOAD_RETENTION_DAYS; docs/storage.md, "Lifecycle").
--
-- A delete is two steps that cannot share a transaction: the rows in
-- Postgres, then the objects in storage. So the rows say it first, in one
-- statement, and the objects follow:
-- - generations.deleted_at: the generation is gone for its user (GET, the
--   list, the events answer 404); its ledger entries stay.
-- - generation_outputs.deleted_at: the output's object is deleted or due to
--   be (by a DELETE or by retention); GET shows `url: null, deleted: true`.
-- - uploads.deleted_at: the upload is deleted (by a DELETE or by retention).
--   An upload is live exactly when deleted_at IS NULL: the one test for it.
-- - storage_deletions: every object still to delete, one row each, until
--   storage/ has deleted it. The api deletes a row's object at once where it
--   can; the sweeper retries the rest in batches, with a backoff. A row that
--   names an upload, or a generation whose output may be an identity, waits
--   while a queued or running generation of its user references it, so a
--   generation never loses a file it is about to read.

ALTER TABLE generations ADD COLUMN deleted_at timestamptz;
ALTER TABLE generation_outputs ADD COLUMN deleted_at timestamptz;
ALTER TABLE uploads ADD COLUMN deleted_at timestamptz;

CREATE TABLE storage_deletions (
    storage_key text PRIMARY KEY,
    user_id uuid NOT NULL,
    upload_id uuid,      -- waits while an open generation references this upload
    generation_id uuid,  -- waits while an open generation takes this generation's output as identity
    reason text NOT NULL CHECK (reason IN ('deleted', 'retention')),
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX storage_deletions_due ON storage_deletions (next_attempt_at);

-- Retention's scans: live rows by age.
CREATE INDEX generation_outputs_live_by_age ON generation_outputs (created_at)
    WHERE deleted_at IS NULL;
CREATE INDEX uploads_live_by_age ON uploads (created_at) WHERE deleted_at IS NULL;
