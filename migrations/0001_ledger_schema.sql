-- The record of the farm: users, credit accounts, the append-only credit
-- ledger, generations and their outputs, uploads and idempotency keys.
-- Money-like invariants are constraints here, not only code (docs/credits.md).

CREATE TABLE users (
    id uuid PRIMARY KEY,
    plan text NOT NULL DEFAULT 'free',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- balance counts credits owned (captures already taken out); held is the part
-- promised to open generations; available = balance - held never goes below 0.
CREATE TABLE credit_accounts (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT held_within_balance CHECK (held <= balance)
) WITH (fillfactor = 80); -- room for HOT updates: accounts change on every hold and capture

CREATE TABLE generations (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    kind text NOT NULL CHECK (kind IN ('avatar', 'pose')),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'canceled', 'expired')),
    stage text CHECK (stage IN ('starting', 'generating', 'postprocessing', 'storing')),
    progress int NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    plan text NOT NULL,
    params jsonb NOT NULL,
    metadata jsonb,
    images int NOT NULL CHECK (images BETWEEN 1 AND 40),
    unit_cost bigint NOT NULL CHECK (unit_cost >= 0),
    cost bigint NOT NULL,
    images_done int NOT NULL DEFAULT 0,
    images_failed int NOT NULL DEFAULT 0,
    charged bigint NOT NULL DEFAULT 0,
    released bigint NOT NULL DEFAULT 0,
    attempts int NOT NULL DEFAULT 0,
    -- the newest fencing token of the queue seen by a worker call
    fence bigint NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    provider text,
    -- image index (text) -> provider request id, persisted before waiting on it
    provider_requests jsonb NOT NULL DEFAULT '{}',
    error jsonb,
    failures jsonb NOT NULL DEFAULT '[]',
    deadline_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cost_is_images_times_unit CHECK (cost = images * unit_cost),
    CONSTRAINT settled_within_cost CHECK (charged >= 0 AND released >= 0 AND charged + released <= cost),
    CONSTRAINT images_within_count CHECK (images_done >= 0 AND images_failed >= 0
                                          AND images_done + images_failed <= images),
    CONSTRAINT terminal_is_settled CHECK (
        status IN ('queued', 'running') OR charged + released = cost)
) WITH (fillfactor = 80); -- room for HOT updates: progress and settlements change the row

-- GET /v1/generations: the caller's own, newest first (cursor = created_at, id).
-- Status and kind filters scan one user's rows in this order; no index on
-- status, so the updates of a running generation stay HOT.
CREATE INDEX generations_by_user ON generations (user_id, created_at DESC, id DESC);
-- The sweeper: open generations by age.
CREATE INDEX generations_open ON generations (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE credit_ledger (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    kind text NOT NULL CHECK (kind IN ('grant', 'hold', 'capture', 'release', 'adjust')),
    amount bigint NOT NULL,
    generation_id uuid REFERENCES generations (id),
    image_index int,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT amount_sign CHECK (kind = 'adjust' OR amount >= 0),
    CONSTRAINT generation_iff_hold_capture_release
        CHECK ((kind IN ('hold', 'capture', 'release')) = (generation_id IS NOT NULL)),
    CONSTRAINT image_iff_capture_release
        CHECK ((kind IN ('capture', 'release')) = (image_index IS NOT NULL))
);

-- One hold per generation; one settlement (capture or release) per image.
CREATE UNIQUE INDEX credit_ledger_one_hold ON credit_ledger (generation_id) WHERE kind = 'hold';
CREATE UNIQUE INDEX credit_ledger_one_settlement
    ON credit_ledger (generation_id, image_index) WHERE kind IN ('capture', 'release');
CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, id DESC);

CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only: % refused', TG_OP;
END $$;

CREATE TRIGGER credit_ledger_no_update_delete BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();
CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION credit_ledger_append_only();

CREATE TABLE generation_outputs (
    generation_id uuid NOT NULL REFERENCES generations (id),
    image_index int NOT NULL,
    pose int NOT NULL DEFAULT 0,
    variant text NOT NULL,
    format text NOT NULL,
    width int NOT NULL,
    height int NOT NULL,
    bytes bigint NOT NULL,
    sha256 text NOT NULL,
    storage_key text NOT NULL,
    seed bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (generation_id, image_index, variant)
);

CREATE TABLE uploads (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    format text NOT NULL CHECK (format IN ('png', 'jpeg', 'webp')),
    width int NOT NULL,
    height int NOT NULL,
    bytes bigint NOT NULL,
    sha256 text NOT NULL,
    storage_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_by_user ON uploads (user_id, created_at DESC);

CREATE TABLE idempotency_keys (
    user_id uuid NOT NULL REFERENCES users (id),
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash text NOT NULL,
    generation_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
