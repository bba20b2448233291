//! The WeCom Kf tables (`docs/wecom.md`): `wecom_callbacks` (the replay guard) and
//! `wecom_cursors` (per customer-service account: the `sync_msg` cursor, written with the page it
//! follows, and the latest callback's pending sync token).

use super::{Arg, Stmt, Store, StoreError};

/// Records a callback by its `msg_signature` (0 rows: a replay).
#[must_use]
pub fn callback(shop: &str, signature: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO wecom_callbacks (shop_id, signature, received_at) VALUES ($1, $2, $3) ON CONFLICT (shop_id, signature) DO NOTHING",
        args: vec![Arg::T(shop.to_owned()), Arg::T(signature.to_owned()), Arg::I(now)],
    }
}

/// Keeps `token` as the account's pending pull, only when [`callback`] recorded this callback
/// at `now` in the same transaction (a replay changes nothing).
#[must_use]
pub fn pending(shop: &str, open_kfid: &str, token: &str, signature: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO wecom_cursors (shop_id, open_kfid, pending_token, token_at)
              SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM wecom_callbacks WHERE shop_id = $1 AND signature = $5 AND received_at = $4)
              ON CONFLICT (shop_id, open_kfid) DO UPDATE SET pending_token = excluded.pending_token, token_at = excluded.token_at",
        args: vec![
            Arg::T(shop.to_owned()),
            Arg::T(open_kfid.to_owned()),
            Arg::T(token.to_owned()),
            Arg::I(now),
            Arg::T(signature.to_owned()),
        ],
    }
}

typed_row! {
    /// An account with a pull to make.
    #[derive(Debug, Clone)]
    pub struct PendingPull {
        shop_id: String,
        open_kfid: String,
        /// The cursor after the last committed page (none before the first pull).
        cursor: Option<String>,
        /// The latest callback's sync token.
        pending_token: String,
        /// When that callback came (unix ms).
        token_at: i64,
    }
}

/// The accounts with a pending pull, oldest callback first.
///
/// # Errors
/// The store failed.
pub async fn pending_pulls(store: &Store) -> Result<Vec<PendingPull>, StoreError> {
    store
        .fetch(
            "SELECT shop_id, open_kfid, cursor, pending_token, token_at FROM wecom_cursors WHERE pending_token IS NOT NULL ORDER BY token_at",
            &[],
        )
        .await
}

typed_row! {
    /// An account's pull state.
    #[derive(Debug, Clone)]
    pub struct CursorRow {
        shop_id: String,
        open_kfid: String,
        cursor: Option<String>,
        pending_token: Option<String>,
        last_error: Option<String>,
    }
}

/// Every account's pull state.
///
/// # Errors
/// The store failed.
pub async fn cursors(store: &Store) -> Result<Vec<CursorRow>, StoreError> {
    store
        .fetch("SELECT shop_id, open_kfid, cursor, pending_token, last_error FROM wecom_cursors ORDER BY shop_id, open_kfid", &[])
        .await
}

/// The cursor after a committed page.
#[must_use]
pub fn cursor_moved(shop: &str, open_kfid: &str, cursor: &str, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE wecom_cursors SET cursor = $3, pulled_at = $4, last_error = NULL WHERE shop_id = $1 AND open_kfid = $2",
        args: vec![Arg::T(shop.to_owned()), Arg::T(open_kfid.to_owned()), Arg::T(cursor.to_owned()), Arg::I(now)],
    }
}

/// The pull for the callback of `token_at` reached the end; a newer callback keeps its token.
#[must_use]
pub fn pull_done(shop: &str, open_kfid: &str, token_at: i64) -> Stmt {
    Stmt {
        sql: "UPDATE wecom_cursors SET pending_token = NULL WHERE shop_id = $1 AND open_kfid = $2 AND token_at = $3",
        args: vec![Arg::T(shop.to_owned()), Arg::T(open_kfid.to_owned()), Arg::I(token_at)],
    }
}

/// Why the account's last pull failed.
#[must_use]
pub fn pull_failed(shop: &str, open_kfid: &str, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE wecom_cursors SET last_error = $3 WHERE shop_id = $1 AND open_kfid = $2",
        args: vec![Arg::T(shop.to_owned()), Arg::T(open_kfid.to_owned()), Arg::T(why.to_owned())],
    }
}

/// Forgets replay records older than `before` (unix ms).
#[must_use]
pub fn prune_callbacks(before: i64) -> Stmt {
    Stmt { sql: "DELETE FROM wecom_callbacks WHERE received_at < $1", args: vec![Arg::I(before)] }
}

/// The buyer wrote at `at` (unix ms): the conversation's reply budget counts from the latest
/// such time (created with an empty case when new).
#[must_use]
pub fn buyer_wrote(shop: &str, conversation: &str, at: i64, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO conversations (shop_id, conversation_id, case_state, owner, updated_at, buyer_at) VALUES ($1, $2, '{}', 'bot', $4, $3)
              ON CONFLICT (shop_id, conversation_id) DO UPDATE SET buyer_at =
                CASE WHEN conversations.buyer_at IS NULL OR conversations.buyer_at < excluded.buyer_at
                     THEN excluded.buyer_at ELSE conversations.buyer_at END",
        args: vec![Arg::T(shop.to_owned()), Arg::T(conversation.to_owned()), Arg::I(at), Arg::I(now)],
    }
}

/// The WeCom session ended: a conversation a WeCom servicer (or the queue) had is the bot's again.
#[must_use]
pub fn session_ended(shop: &str, conversation: &str, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE conversations SET owner = 'bot', updated_at = $3 WHERE shop_id = $1 AND conversation_id = $2 AND owner LIKE 'wecom:%'",
        args: vec![Arg::T(shop.to_owned()), Arg::T(conversation.to_owned()), Arg::I(now)],
    }
}
