//! Order facts from the Taobao message service: `orders` (trade and refund status per order),
//! `conversation_orders` (which conversations are about an order) and `tmc_messages` (every
//! message id applied, so a redelivery changes nothing).

use super::{Arg, Stmt, Store, StoreError};

typed_row! {
    /// What TMC said about an order.
    #[derive(Debug, Clone)]
    pub struct OrderStatuses {
        /// Taobao's trade status.
        trade_status: Option<String>,
        /// Taobao's refund status.
        refund_status: Option<String>,
        /// The refund's amount, as the message carried it.
        refund_fee: Option<String>,
    }
}

/// The stored statuses of an order, if TMC reported any.
///
/// # Errors
/// The store failed.
pub async fn statuses(store: &Store, shop: &str, order_id: &str) -> Result<Option<OrderStatuses>, StoreError> {
    store
        .fetch_one(
            "SELECT trade_status, refund_status, refund_fee FROM orders WHERE shop_id = $1 AND order_id = $2",
            &[Arg::T(shop.to_owned()), Arg::T(order_id.to_owned())],
        )
        .await
}

/// Links a conversation to the order it is about (once).
#[must_use]
pub fn link(shop: &str, order_id: &str, conversation: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO conversation_orders (shop_id, order_id, conversation_id, linked_at) VALUES ($1, $2, $3, $4)
              ON CONFLICT (shop_id, order_id, conversation_id) DO NOTHING",
        args: vec![Arg::T(shop.to_owned()), Arg::T(order_id.to_owned()), Arg::T(conversation.to_owned()), Arg::I(now)],
    }
}

typed_row! {
    /// A conversation id.
    struct Conversation {
        conversation_id: String,
    }
}

/// The conversations linked to an order, in id order.
///
/// # Errors
/// The store failed.
pub async fn linked_conversations(store: &Store, shop: &str, order_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(store
        .fetch::<Conversation>(
            "SELECT conversation_id FROM conversation_orders WHERE shop_id = $1 AND order_id = $2 ORDER BY conversation_id",
            &[Arg::T(shop.to_owned()), Arg::T(order_id.to_owned())],
        )
        .await?
        .into_iter()
        .map(|c| c.conversation_id)
        .collect())
}

typed_row! {
    /// What became of a TMC message.
    struct Seen {
        /// Read only to see that the row exists.
        #[allow(dead_code)]
        outcome: String,
    }
}

/// Whether TMC message `id` of `app_key` was applied before.
///
/// # Errors
/// The store failed.
pub async fn tmc_seen(store: &Store, app_key: &str, id: i64) -> Result<bool, StoreError> {
    Ok(store
        .fetch_one::<Seen>(
            "SELECT outcome FROM tmc_messages WHERE app_key = $1 AND message_id = $2",
            &[Arg::T(app_key.to_owned()), Arg::I(id)],
        )
        .await?
        .is_some())
}

/// One TMC message as recorded.
pub struct TmcMessage<'a> {
    /// App key.
    pub app_key: &'a str,
    /// TMC's message id.
    pub message_id: i64,
    /// Shop.
    pub shop_id: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// The order it is about, if any.
    pub order_id: Option<&'a str>,
    /// `applied`, `ignored`, `duplicate`.
    pub outcome: &'a str,
    /// When TMC published it.
    pub published_at: i64,
    /// When it arrived.
    pub received_at: i64,
}

/// Records a TMC message (a plain INSERT: a second instance recording the same id fails on the key
/// and its whole transaction with it).
#[must_use]
pub fn record_tmc(m: &TmcMessage<'_>) -> Stmt {
    Stmt {
        sql: "INSERT INTO tmc_messages (app_key, message_id, shop_id, topic, order_id, outcome, published_at, received_at)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args: vec![
            Arg::T(m.app_key.to_owned()),
            Arg::I(m.message_id),
            Arg::T(m.shop_id.to_owned()),
            Arg::T(m.topic.to_owned()),
            Arg::N(m.order_id.map(str::to_owned)),
            Arg::T(m.outcome.to_owned()),
            Arg::I(m.published_at),
            Arg::I(m.received_at),
        ],
    }
}

/// Upserts an order's trade status (a message older than the stored one changes nothing).
#[must_use]
pub fn trade(shop: &str, order_id: &str, status: Option<&str>, topic: &str, at: i64, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO orders (shop_id, order_id, trade_status, trade_topic, trade_at, updated_at)
              VALUES ($1, $2, $3, $4, $5, $6)
              ON CONFLICT (shop_id, order_id) DO UPDATE SET
                trade_status = COALESCE(excluded.trade_status, orders.trade_status),
                trade_topic = excluded.trade_topic, trade_at = excluded.trade_at, updated_at = excluded.updated_at
              WHERE orders.trade_at <= excluded.trade_at",
        args: vec![
            Arg::T(shop.to_owned()),
            Arg::T(order_id.to_owned()),
            Arg::N(status.map(str::to_owned)),
            Arg::T(topic.to_owned()),
            Arg::I(at),
            Arg::I(now),
        ],
    }
}

/// A refund message's facts.
pub struct Refund<'a> {
    /// Shop.
    pub shop_id: &'a str,
    /// Order.
    pub order_id: &'a str,
    /// Refund id.
    pub refund_id: Option<&'a str>,
    /// Taobao's refund status.
    pub status: Option<&'a str>,
    /// Refund amount.
    pub fee: Option<&'a str>,
    /// Topic.
    pub topic: &'a str,
    /// When TMC published it.
    pub at: i64,
    /// Now.
    pub now: i64,
}

/// Upserts an order's refund (a message older than the stored one changes nothing).
#[must_use]
pub fn refund(r: &Refund<'_>) -> Stmt {
    Stmt {
        sql: "INSERT INTO orders (shop_id, order_id, refund_id, refund_status, refund_fee, refund_topic, refund_at, updated_at)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
              ON CONFLICT (shop_id, order_id) DO UPDATE SET
                refund_id = COALESCE(excluded.refund_id, orders.refund_id),
                refund_status = COALESCE(excluded.refund_status, orders.refund_status),
                refund_fee = COALESCE(excluded.refund_fee, orders.refund_fee),
                refund_topic = excluded.refund_topic, refund_at = excluded.refund_at, updated_at = excluded.updated_at
              WHERE orders.refund_at <= excluded.refund_at",
        args: vec![
            Arg::T(r.shop_id.to_owned()),
            Arg::T(r.order_id.to_owned()),
            Arg::N(r.refund_id.map(str::to_owned)),
            Arg::N(r.status.map(str::to_owned)),
            Arg::N(r.fee.map(str::to_owned)),
            Arg::T(r.topic.to_owned()),
            Arg::I(r.at),
            Arg::I(r.now),
        ],
    }
}
