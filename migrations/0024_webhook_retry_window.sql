-- `farm webhooks retry` starts a delivery's retries over: a new 24 h window
-- and the backoff from its first step (5 s, 5 min, ...), while `attempts`
-- keeps counting every attempt ever made. The attempts made before the last
-- such retry, so that the backoff counts only this window's.
ALTER TABLE webhook_deliveries ADD COLUMN retried_attempts int NOT NULL DEFAULT 0;
