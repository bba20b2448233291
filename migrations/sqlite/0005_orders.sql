-- Order context from the Taobao message service (TMC): the latest trade and refund state per
-- order, which conversations talk about which order, and the TMC messages already applied
-- (redelivered ids are confirmed again but not applied twice). Times are unix milliseconds.
CREATE TABLE orders (
    shop_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    trade_status TEXT,
    trade_topic TEXT,
    trade_at BIGINT NOT NULL DEFAULT 0,
    refund_id TEXT,
    refund_status TEXT,
    refund_fee TEXT,
    refund_topic TEXT,
    refund_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, order_id)
);

CREATE TABLE conversation_orders (
    shop_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, order_id, conversation_id)
);

CREATE TABLE tmc_messages (
    app_key TEXT NOT NULL,
    message_id BIGINT NOT NULL,
    shop_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    order_id TEXT,
    outcome TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (app_key, message_id)
);
