//! The `calls` table: calls the bot asked a person to make, and their attempts.

use super::{Arg, Stmt, Store, StoreError};

status_enum! {
    /// Where a call request stands.
    pub enum CallStatus fallback Requested {
        /// Waiting for a person to call.
        Requested = "requested",
        /// Called at least once.
        Attempted = "attempted",
        /// The order closed before the call.
        Cancelled = "cancelled",
    }
}

/// Records the call request of the draft written for inbox message `inbox_seq` in the same
/// transaction.
#[must_use]
pub fn insert(inbox_seq: i64, next_allowed_at: Option<&str>, script_json: &str) -> Stmt {
    Stmt {
        sql: "INSERT INTO calls (draft_id, shop_id, conversation_id, next_allowed_at, script) SELECT id, shop_id, conversation_id, $2, $3 FROM drafts WHERE inbox_seq = $1",
        args: vec![Arg::I(inbox_seq), Arg::N(next_allowed_at.map(str::to_owned)), Arg::T(script_json.to_owned())],
    }
}

/// Cancels a call still requested.
pub const CANCEL: &str = "UPDATE calls SET status = 'cancelled' WHERE id = $1 AND status = 'requested'";

/// Cancels call `id` if it is still requested.
#[must_use]
pub fn cancel(id: i64) -> Stmt {
    Stmt { sql: CANCEL, args: vec![Arg::I(id)] }
}

/// Cancels, silently, every call still requested in a conversation (the one the message being
/// processed requests included).
#[must_use]
pub fn cancel_all_in_conversation(shop: &str, conv: &str) -> Stmt {
    Stmt {
        sql: "UPDATE calls SET status = 'cancelled' WHERE shop_id = $1 AND conversation_id = $2 AND status = 'requested'",
        args: vec![Arg::T(shop.to_owned()), Arg::T(conv.to_owned())],
    }
}

typed_row! {
    /// A call still requested.
    #[derive(Debug, Clone)]
    pub struct PendingCall {
        id: i64,
        draft_id: i64,
        conversation_id: String,
    }
}

/// The calls still requested in every conversation linked to `order_id`.
///
/// # Errors
/// The store failed.
pub async fn pending_for_order(store: &Store, shop: &str, order_id: &str) -> Result<Vec<PendingCall>, StoreError> {
    store
        .fetch(
            "SELECT c.id, c.draft_id, c.conversation_id FROM calls c
               JOIN conversation_orders o ON o.shop_id = c.shop_id AND o.conversation_id = c.conversation_id
              WHERE o.shop_id = $1 AND o.order_id = $2 AND c.status = 'requested' ORDER BY c.id",
            &[Arg::T(shop.to_owned()), Arg::T(order_id.to_owned())],
        )
        .await
}

/// The calls still requested in one conversation.
///
/// # Errors
/// The store failed.
pub async fn pending_in_conversation(store: &Store, shop: &str, conv: &str) -> Result<Vec<PendingCall>, StoreError> {
    store
        .fetch(
            "SELECT id, draft_id, conversation_id FROM calls
              WHERE shop_id = $1 AND conversation_id = $2 AND status = 'requested' ORDER BY id",
            &[Arg::T(shop.to_owned()), Arg::T(conv.to_owned())],
        )
        .await
}

typed_row! {
    /// A call request as the API lists it.
    #[derive(Debug, Clone)]
    pub struct CallRow {
        id: i64,
        shop_id: String,
        conversation_id: String,
        next_allowed_at: Option<String>,
        /// The script (JSON).
        script: String,
        attempts: i64,
        status: CallStatus,
    }
}

/// Up to 1000 call requests, oldest first.
///
/// # Errors
/// The store failed.
pub async fn list(store: &Store) -> Result<Vec<CallRow>, StoreError> {
    store
        .fetch("SELECT id, shop_id, conversation_id, next_allowed_at, script, attempts, status FROM calls ORDER BY id LIMIT 1000", &[])
        .await
}

typed_row! {
    /// A call request with its attempts, as the console shows it.
    #[derive(Debug, Clone)]
    pub struct CallAttempts {
        id: i64,
        shop_id: String,
        conversation_id: String,
        attempts: i64,
        /// Unix milliseconds of each attempt (JSON array).
        attempt_times: String,
        /// The script (JSON).
        script: String,
        status: CallStatus,
        draft_id: i64,
    }
}

/// Up to 500 call requests with their attempts, oldest first.
///
/// # Errors
/// The store failed.
pub async fn with_attempts(store: &Store) -> Result<Vec<CallAttempts>, StoreError> {
    store
        .fetch(
            "SELECT id, shop_id, conversation_id, attempts, attempt_times, script, status, draft_id FROM calls ORDER BY id LIMIT 500",
            &[],
        )
        .await
}

/// Call request `id` with its attempts.
///
/// # Errors
/// The store failed.
pub async fn attempts_of(store: &Store, id: i64) -> Result<Option<CallAttempts>, StoreError> {
    store
        .fetch_one(
            "SELECT id, shop_id, conversation_id, attempts, attempt_times, script, status, draft_id FROM calls WHERE id = $1",
            &[Arg::I(id)],
        )
        .await
}

/// Records an attempt, unless someone else recorded one since `attempts` were read (0 rows).
#[must_use]
pub fn attempted(id: i64, attempt_times_json: &str, attempts: i64) -> Stmt {
    Stmt {
        sql: "UPDATE calls SET attempts = attempts + 1, attempt_times = $2, status = 'attempted' WHERE id = $1 AND attempts = $3",
        args: vec![Arg::I(id), Arg::T(attempt_times_json.to_owned()), Arg::I(attempts)],
    }
}
