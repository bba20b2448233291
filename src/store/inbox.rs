//! The `inbox` table: every verified inbound event, claimed by processors in order per
//! conversation.

use super::{Arg, Stmt, Store, StoreError};

/// The claim statements differ between the backends only in the row-lock clause: PostgreSQL
/// instances share the work with `FOR UPDATE SKIP LOCKED`; SQLite has one writer, so it needs
/// none. Each statement is written once and spliced with the clause for each backend.
macro_rules! claim_inbox {
    ($lock:literal) => {
        concat!(
            "UPDATE inbox SET status = 'processing', claimed_by = $1, claimed_at = $2
 WHERE seq IN (
   SELECT i.seq FROM inbox i
    WHERE i.status = 'pending' AND $3 = $3
      AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.shop_id = i.shop_id AND j.conversation_id = i.conversation_id
                       AND j.seq < i.seq AND j.status <> 'done')
    ORDER BY i.seq LIMIT $4",
            $lock,
            ")
 RETURNING seq, payload, shop_id, conversation_id"
        )
    };
}

macro_rules! reclaim_inbox {
    ($lock:literal) => {
        concat!(
            "UPDATE inbox SET claimed_by = $1, claimed_at = $2
 WHERE seq = (SELECT seq FROM inbox WHERE status = 'processing' AND claimed_at < $3 AND $4 = $4 ORDER BY seq LIMIT 1",
            $lock,
            ")
 RETURNING seq, payload, shop_id, conversation_id"
        )
    };
}

/// Claims up to `$4` of the oldest pending inbox messages whose conversations have nothing
/// earlier unfinished (conversations in order, different conversations in parallel; so a batch
/// holds at most one message per conversation). `$3` is unused here; see [`RECLAIM_INBOX_PG`].
const CLAIM_INBOX_PG: &str = claim_inbox!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`CLAIM_INBOX_PG`].
const CLAIM_INBOX_SQLITE: &str = claim_inbox!("");
/// Takes over a claim older than the lease (`$3`): its holder died mid-message. `$4` is unused.
const RECLAIM_INBOX_PG: &str = reclaim_inbox!(" FOR UPDATE SKIP LOCKED");
/// The SQLite form of [`RECLAIM_INBOX_PG`].
const RECLAIM_INBOX_SQLITE: &str = reclaim_inbox!("");

typed_row! {
    /// A claimed inbox message.
    #[derive(Debug, Clone)]
    pub struct Claimed {
        seq: i64,
        payload: String,
        shop_id: String,
        conversation_id: String,
    }
}

/// Records a verified event (`ON CONFLICT DO NOTHING`: 0 rows for a redelivered `message_id`).
#[must_use]
pub fn insert(shop: &str, message_id: &str, conversation_id: &str, raw: &str, now: i64) -> Stmt {
    Stmt {
        sql:
            "INSERT INTO inbox (shop_id, message_id, conversation_id, payload, received_at) VALUES ($1, $2, $3, $4, $5)
              ON CONFLICT (shop_id, message_id) DO NOTHING",
        args: vec![
            Arg::T(shop.to_owned()),
            Arg::T(message_id.to_owned()),
            Arg::T(conversation_id.to_owned()),
            Arg::T(raw.to_owned()),
            Arg::I(now),
        ],
    }
}

typed_row! {
    /// A stored payload.
    struct Stored {
        payload: String,
    }
}

/// The payload stored for `message_id` of `shop`, if any (to tell a redelivery from a reused id).
///
/// # Errors
/// The store failed.
pub async fn payload_of(store: &Store, shop: &str, message_id: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .fetch_one::<Stored>(
            "SELECT payload FROM inbox WHERE shop_id = $1 AND message_id = $2",
            &[Arg::T(shop.to_owned()), Arg::T(message_id.to_owned())],
        )
        .await?
        .map(|p| p.payload))
}

/// Claims for `me` up to `limit` of the oldest pending messages whose conversations have nothing
/// earlier unfinished (so a batch holds at most one message per conversation).
///
/// # Errors
/// The store failed.
pub async fn claim(
    store: &Store,
    me: &str,
    now: i64,
    lease_cutoff: i64,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let sql = if store.is_postgres() { CLAIM_INBOX_PG } else { CLAIM_INBOX_SQLITE };
    store.claim(sql, &[Arg::T(me.to_owned()), Arg::I(now), Arg::I(lease_cutoff), Arg::I(limit)]).await
}

/// Takes over for `me` one message whose claim is older than `lease_cutoff` (its holder died).
///
/// # Errors
/// The store failed.
pub async fn reclaim(
    store: &Store,
    me: &str,
    now: i64,
    lease_cutoff: i64,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let sql = if store.is_postgres() { RECLAIM_INBOX_PG } else { RECLAIM_INBOX_SQLITE };
    store.claim(sql, &[Arg::T(me.to_owned()), Arg::I(now), Arg::I(lease_cutoff), Arg::I(limit)]).await
}

/// Marks message `seq` processed.
#[must_use]
pub fn done(seq: i64) -> Stmt {
    Stmt { sql: "UPDATE inbox SET status = 'done' WHERE seq = $1", args: vec![Arg::I(seq)] }
}

/// Parks message `seq`: its stored event no longer parses.
#[must_use]
pub fn invalid(seq: i64) -> Stmt {
    Stmt { sql: "UPDATE inbox SET status = 'invalid' WHERE seq = $1", args: vec![Arg::I(seq)] }
}

typed_row! {
    /// A stored event's JSON.
    struct Payload {
        payload: String,
    }
}

/// The stored event of inbox row `seq`.
///
/// # Errors
/// The store failed.
pub async fn payload(store: &Store, seq: i64) -> Result<Option<String>, StoreError> {
    Ok(store.fetch_one::<Payload>("SELECT payload FROM inbox WHERE seq = $1", &[Arg::I(seq)]).await?.map(|p| p.payload))
}

typed_row! {
    /// One message of a conversation with the draft that answers it, if any.
    #[derive(Debug, Clone)]
    pub struct ThreadMessage {
        seq: i64,
        payload: String,
        received_at: i64,
        /// 0 when no draft answers it.
        draft_id: i64,
        reply: Option<String>,
        status: Option<String>,
    }
}

/// The first 200 messages of a conversation, oldest first, each with its draft.
///
/// # Errors
/// The store failed.
pub async fn thread(store: &Store, shop: &str, conversation: &str) -> Result<Vec<ThreadMessage>, StoreError> {
    store
        .fetch(
            "SELECT i.seq, i.payload, i.received_at, COALESCE(d.id, 0) AS draft_id, d.reply, d.status FROM inbox i LEFT JOIN drafts d ON d.inbox_seq = i.seq
              WHERE i.shop_id = $1 AND i.conversation_id = $2 ORDER BY i.seq LIMIT 200",
            &[Arg::T(shop.to_owned()), Arg::T(conversation.to_owned())],
        )
        .await
}

typed_row! {
    /// A conversation's first message and how long its first reply took.
    #[derive(Debug, Clone)]
    pub struct FirstReply {
        shop_id: String,
        conversation_id: String,
        first_at: i64,
        /// 0 when nothing was sent yet.
        wait: i64,
    }
}

/// Per conversation: its first message and the wait until its first reply was sent.
///
/// # Errors
/// The store failed.
pub async fn first_replies(store: &Store) -> Result<Vec<FirstReply>, StoreError> {
    store
        .fetch(
            "SELECT i.shop_id, i.conversation_id, CAST(MIN(i.received_at) AS BIGINT) AS first_at,
                    CAST(COALESCE((SELECT MIN(sent_at) FROM sends x WHERE x.shop_id = i.shop_id AND x.conversation_id = i.conversation_id AND x.status = 'sent') - MIN(i.received_at), 0) AS BIGINT) AS wait
               FROM inbox i GROUP BY i.shop_id, i.conversation_id",
            &[],
        )
        .await
}
