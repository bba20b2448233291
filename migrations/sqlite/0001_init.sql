-- shouhou schema (SQLite). Times are unix milliseconds.
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    shop_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    claimed_by TEXT,
    claimed_at BIGINT,
    UNIQUE (shop_id, message_id)
);
CREATE INDEX inbox_pending ON inbox (status, seq);
CREATE INDEX inbox_conversation ON inbox (shop_id, conversation_id, seq);

CREATE TABLE conversations (
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    case_state TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'bot',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, conversation_id)
);

CREATE TABLE drafts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    inbox_seq BIGINT NOT NULL UNIQUE,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    route TEXT NOT NULL,
    status TEXT NOT NULL,
    grp TEXT NOT NULL,
    reply TEXT,
    intents TEXT NOT NULL,
    actions TEXT NOT NULL,
    guard TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    reason TEXT
);
CREATE INDEX drafts_queue ON drafts (status, created_at);

CREATE TABLE sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    draft_id BIGINT NOT NULL,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    reply_to TEXT NOT NULL,
    text TEXT NOT NULL,
    by_person BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claimed_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX sends_pending ON sends (status, next_at);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    draft_id BIGINT,
    verdict TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_conversation ON audit (shop_id, conversation_id, id);

CREATE TABLE promises (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    draft_id BIGINT NOT NULL,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    what TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open'
);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    draft_id BIGINT NOT NULL,
    shop_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    next_allowed_at TEXT,
    script TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'requested'
);
