-- Consumer webhooks: a durable outbox, one row per event and endpoint (Standard Webhooks).
-- `event_id` is the `webhook-id`, stable across retries; `body` is the exact bytes signed.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claimed_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    UNIQUE (endpoint, event_id)
);
-- The claim walks due rows in (next_at, id) order and stops at its LIMIT.
CREATE INDEX outbox_due ON outbox (status, next_at, id);
-- Deliveries are ordered per endpoint and conversation: the claim looks for earlier undelivered
-- ones, so only those are indexed (delivered rows pile up; they never slow the claim).
CREATE INDEX outbox_open ON outbox (endpoint, shop_id, conversation_id, id) WHERE status IN ('pending', 'sending');
-- promise.due is announced once.
ALTER TABLE promises ADD COLUMN due_announced BIGINT NOT NULL DEFAULT 0;
CREATE INDEX promises_due ON promises (status, due_announced, due_at);
