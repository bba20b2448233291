-- WeChat customer service (WeCom Kf, docs/wecom.md).
-- buyer_at: when the buyer last wrote in the conversation (unix ms); a channel's reply budget
-- (WeCom: 5 replies within 48 h) counts from it.
ALTER TABLE conversations ADD COLUMN buyer_at BIGINT;
-- One sync_msg cursor per customer-service account, written in the same transaction as the
-- messages of the page it follows. pending_token is the latest callback's sync token (valid
-- 10 minutes), kept until a pull that started after it has run to has_more = 0, so a crash
-- between the callback's answer and the pull, or between two pages, loses nothing.
CREATE TABLE wecom_cursors (
    shop_id TEXT NOT NULL,
    open_kfid TEXT NOT NULL,
    cursor TEXT,
    pending_token TEXT,
    token_at BIGINT NOT NULL DEFAULT 0,
    pulled_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (shop_id, open_kfid)
);
-- Callbacks already taken (replay de-duplication by msg_signature), kept for the timestamp
-- window and pruned after.
CREATE TABLE wecom_callbacks (
    shop_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, signature)
);
