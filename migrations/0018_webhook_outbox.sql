-- Webhooks (API.md, Webhooks; docs/webhooks.md): the outbox.
--
-- A generation keeps where its events go (webhook_url) and which events
-- besides the terminal one (webhook_events). One webhook_deliveries row is
-- one event to deliver, inserted by the SQL function that makes the event
-- happen, in its transaction: farm_finish (the terminal status), farm_start
-- (started) and farm_image_settle / farm_image_done (image). Its id is the
-- `webhook-id` header, the same on every attempt.
--
-- Claims are fenced like jobs: farm_webhook_claim gives each claimed row a
-- new lease_token and a lease; farm_webhook_result records an attempt only
-- with the current token, so a worker whose lease ran out records nothing.
ALTER TABLE generations
    ADD COLUMN webhook_url text CHECK (length(webhook_url) <= 2048),
    ADD COLUMN webhook_events text[] NOT NULL DEFAULT '{}'
        CHECK (webhook_events <@ ARRAY['started', 'image']::text[]);

CREATE SEQUENCE webhook_lease_seq;

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    generation_id uuid NOT NULL REFERENCES generations (id),
    -- started | image | terminal (the event name is the status then)
    kind text NOT NULL CHECK (kind IN ('started', 'image', 'terminal')),
    seq int NOT NULL DEFAULT 0,      -- the image index of an image event
    event text NOT NULL,             -- the body's "type"
    url text NOT NULL,
    data jsonb,                      -- NULL for the terminal event: the generation, read when sent
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts int NOT NULL DEFAULT 0,
    last_status_code int,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(), -- when the event happened
    first_attempt_at timestamptz,
    next_attempt_at timestamptz DEFAULT now(),     -- NULL once delivered or failed
    delivered_at timestamptz,
    lease_token bigint,
    lease_until timestamptz,
    UNIQUE (generation_id, kind, seq)
);

-- The claim's scan: due rows only.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
-- `farm webhooks list --failed`.
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (created_at)
    WHERE status = 'failed';

-- farm_accept_generation takes the webhook now (store/sql/farm_accept_generation.sql).
DROP FUNCTION IF EXISTS farm_accept_generation(uuid, uuid, text, bigint, text, int, bigint, jsonb, jsonb,
                                               timestamptz, text, text);
