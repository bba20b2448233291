//! The `sends` table: replies to post to the platform, each with its idempotency key.

use super::{Arg, Stmt, Store, StoreError, drafts::DraftRow};

macro_rules! claim_send {
    ($lock:literal) => {
        concat!(
            "UPDATE sends SET status = 'sending', claimed_at = $1
 WHERE id IN (
   SELECT s.id FROM sends s WHERE s.status = 'pending' AND s.next_at <= $1 AND $2 = $2
      AND NOT EXISTS (SELECT 1 FROM sends t WHERE t.shop_id = s.shop_id AND t.conversation_id = s.conversation_id
                       AND t.id < s.id AND t.status IN ('pending', 'sending'))
    ORDER BY s.next_at, s.id LIMIT 32",
            $lock,
            ")
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts"
        )
    };
}

macro_rules! reclaim_send {
    ($lock:literal) => {
        concat!(
            "UPDATE sends SET claimed_at = $1
 WHERE id = (SELECT id FROM sends WHERE status = 'sending' AND claimed_at < $2 ORDER BY id LIMIT 1",
            $lock,
            ")
 RETURNING id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, attempts"
        )
    };
}

/// Claims up to 32 sends that are due, never one with an earlier unsent send in its
/// conversation (replies arrive in order).
const CLAIM_SEND_PG: &str = claim_send!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`CLAIM_SEND_PG`].
const CLAIM_SEND_SQLITE: &str = claim_send!("");
/// Takes over a send whose sender died (claimed longer ago than `$2`).
const RECLAIM_SEND_PG: &str = reclaim_send!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`RECLAIM_SEND_PG`].
const RECLAIM_SEND_SQLITE: &str = reclaim_send!("");

/// Queues `text`, decided by a person for draft `d` (ignored when already queued: the key is
/// unique per draft).
#[must_use]
pub fn queue_person(d: &DraftRow, text: &str, now: i64) -> Stmt {
    let key = format!("{}:{}:draft{}", d.shop_id, d.message_id, d.id);
    Stmt {
        sql: "INSERT INTO sends (draft_id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, next_at, created_at)
              VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7) ON CONFLICT (idempotency_key) DO NOTHING",
        args: vec![
            Arg::I(d.id),
            Arg::T(d.shop_id.clone()),
            Arg::T(d.conversation_id.clone()),
            Arg::T(d.message_id.clone()),
            Arg::T(text.into()),
            Arg::T(key),
            Arg::I(now),
        ],
    }
}

/// Queues the bot's `text` for the draft written for inbox message `inbox_seq` in the same
/// transaction.
#[must_use]
pub fn queue_auto(inbox_seq: i64, text: &str, key: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO sends (draft_id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, next_at, created_at)
              SELECT id, shop_id, conversation_id, message_id, $2, 0, $3, $4, $4 FROM drafts WHERE inbox_seq = $1",
        args: vec![Arg::I(inbox_seq), Arg::T(text.to_owned()), Arg::T(key.to_owned()), Arg::I(now)],
    }
}

typed_row! {
    /// A claimed send.
    #[derive(Debug, Clone)]
    pub struct ClaimedSend {
        id: i64,
        shop_id: String,
        conversation_id: String,
        reply_to: String,
        text: String,
        /// Decided by a person (sent even when a person owns the conversation).
        by_person: bool,
        idempotency_key: String,
        attempts: i64,
    }
}

/// Claims up to 32 sends that are due, never one with an earlier unsent send in its
/// conversation (replies arrive in order).
///
/// # Errors
/// The store failed.
pub async fn claim(store: &Store, now: i64, lease_cutoff: i64) -> Result<Vec<ClaimedSend>, StoreError> {
    let sql = if store.is_postgres() { CLAIM_SEND_PG } else { CLAIM_SEND_SQLITE };
    store.claim(sql, &[Arg::I(now), Arg::I(lease_cutoff)]).await
}

/// Takes over a send whose sender died (claimed before `lease_cutoff`).
///
/// # Errors
/// The store failed.
pub async fn reclaim(store: &Store, now: i64, lease_cutoff: i64) -> Result<Vec<ClaimedSend>, StoreError> {
    let sql = if store.is_postgres() { RECLAIM_SEND_PG } else { RECLAIM_SEND_SQLITE };
    store.claim(sql, &[Arg::I(now), Arg::I(lease_cutoff)]).await
}

/// Holds a bot's send: a person owns the conversation.
#[must_use]
pub fn held(id: i64) -> Stmt {
    Stmt { sql: "UPDATE sends SET status = 'held' WHERE id = $1", args: vec![Arg::I(id)] }
}

/// The platform accepted the send.
#[must_use]
pub fn sent(id: i64, attempts: i64, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE sends SET status = 'sent', attempts = $2, sent_at = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::I(now)],
    }
}

/// Tries the send again at `next_at`.
#[must_use]
pub fn retry(id: i64, attempts: i64, next_at: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE sends SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::I(next_at), Arg::T(why.to_owned())],
    }
}

/// Gives the send up.
#[must_use]
pub fn failed(id: i64, attempts: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE sends SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.to_owned())],
    }
}
