-- The agent console: users, sessions, login throttling, per-intent autonomy, call attempts
-- and kept promises. Times are unix milliseconds.
CREATE TABLE console_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Sessions are stored server-side; the cookie holds a random token whose SHA-256 is the key.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Failed logins, keyed by user:NAME and ip:ADDR, counted over a sliding window.
CREATE TABLE console_login_failures (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX console_login_failures_key ON console_login_failures (key, at);

-- Auto-send switched on per intent by a supervisor once the intent earned it.
CREATE TABLE autonomy (
    intent TEXT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);

ALTER TABLE calls ADD COLUMN attempt_times TEXT NOT NULL DEFAULT '[]';
ALTER TABLE promises ADD COLUMN kept_at BIGINT;
ALTER TABLE promises ADD COLUMN kept_by TEXT;
-- Set when part-time staff hand a draft to another group (it then leaves their view).
ALTER TABLE drafts ADD COLUMN triaged_by TEXT;
CREATE INDEX drafts_conversation ON drafts (shop_id, conversation_id, id);
