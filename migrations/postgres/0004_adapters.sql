-- Handoffs to a person on the platform's side (Chatwoot: open the conversation, leave a
-- private note), queued with the draft that needs a person and performed by a worker.
CREATE TABLE handoffs (
    id BIGSERIAL PRIMARY KEY,
    draft_id BIGINT NOT NULL UNIQUE,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    note TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claimed_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX handoffs_pending ON handoffs (status, next_at);
