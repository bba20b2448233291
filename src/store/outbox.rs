//! The `outbox` table: consumer webhook deliveries, one row per event and endpoint, delivered in
//! order per endpoint and conversation.

use super::{Arg, Stmt, Store, StoreError};

status_enum! {
    /// Where a delivery stands.
    pub enum OutboxStatus fallback Pending {
        /// Waiting for its time.
        Pending = "pending",
        /// Being attempted.
        Sending = "sending",
        /// The consumer took it.
        Delivered = "delivered",
        /// Given up (the API can redeliver it).
        Dead = "dead",
    }
}

macro_rules! claim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sending', claimed_at = $1
 WHERE id IN (
   SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_at <= $1 AND $2 = $2
      AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.endpoint = o.endpoint AND p.shop_id = o.shop_id
                       AND p.conversation_id = o.conversation_id AND p.id < o.id AND p.status IN ('pending', 'sending'))
    ORDER BY o.next_at, o.id LIMIT 64",
            $lock,
            ")
 RETURNING id, endpoint, event_id, body, attempts"
        )
    };
}

macro_rules! reclaim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET claimed_at = $1
 WHERE id IN (SELECT id FROM outbox WHERE status = 'sending' AND claimed_at < $2 ORDER BY id LIMIT 64",
            $lock,
            ")
 RETURNING id, endpoint, event_id, body, attempts"
        )
    };
}

/// Marks the rows whose ids are in the JSON array `$1` delivered at `$2`.
const MARK_DELIVERED_SQLITE: &str =
    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, last_error = NULL
 WHERE id IN (SELECT value FROM json_each($1))";
/// The PostgreSQL form of [`MARK_DELIVERED_SQLITE`].
const MARK_DELIVERED_PG: &str =
    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, last_error = NULL
 WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST($1 AS JSON)))";

const CLAIM_PG: &str = claim_outbox!(" FOR UPDATE SKIP LOCKED");
const CLAIM_SQLITE: &str = claim_outbox!("");
const RECLAIM_PG: &str = reclaim_outbox!(" FOR UPDATE SKIP LOCKED");
const RECLAIM_SQLITE: &str = reclaim_outbox!("");

typed_row! {
    /// A claimed delivery.
    #[derive(Debug, Clone)]
    pub struct ClaimedDelivery {
        id: i64,
        endpoint: String,
        event_id: String,
        body: String,
        attempts: i64,
    }
}

/// Claims up to 64 due deliveries, at most the oldest undelivered one of each endpoint and
/// conversation.
///
/// # Errors
/// The store failed.
pub async fn claim(store: &Store, now: i64, lease_cutoff: i64) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let sql = if store.is_postgres() { CLAIM_PG } else { CLAIM_SQLITE };
    store.claim(sql, &[Arg::I(now), Arg::I(lease_cutoff)]).await
}

/// Takes over up to 64 deliveries whose deliverer died (claimed before `lease_cutoff`).
///
/// # Errors
/// The store failed.
pub async fn reclaim(store: &Store, now: i64, lease_cutoff: i64) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let sql = if store.is_postgres() { RECLAIM_PG } else { RECLAIM_SQLITE };
    store.claim(sql, &[Arg::I(now), Arg::I(lease_cutoff)]).await
}

/// Marks the deliveries `ids` done at `now`, in one statement.
#[must_use]
pub fn delivered(store: &Store, ids: &[i64], now: i64) -> Stmt {
    Stmt {
        sql: if store.is_postgres() { MARK_DELIVERED_PG } else { MARK_DELIVERED_SQLITE },
        args: vec![Arg::T(serde_json::to_string(ids).unwrap_or_default()), Arg::I(now)],
    }
}

/// Tries the delivery again at `next_at`.
#[must_use]
pub fn retry(id: i64, attempts: i64, next_at: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE outbox SET status = 'pending', attempts = $2, next_at = $3, last_error = $4 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::I(next_at), Arg::T(why.to_owned())],
    }
}

/// Dead-letters the delivery.
#[must_use]
pub fn dead(id: i64, attempts: i64, why: &str) -> Stmt {
    Stmt {
        sql: "UPDATE outbox SET status = 'dead', attempts = $2, last_error = $3 WHERE id = $1",
        args: vec![Arg::I(id), Arg::I(attempts), Arg::T(why.to_owned())],
    }
}

/// The row of one event for one endpoint (`ON CONFLICT DO NOTHING`: an event is written once).
#[must_use]
pub fn insert(endpoint: &str, event_id: &str, ty: &str, shop: &str, conv: &str, body: &str, next_at: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO outbox (endpoint, event_id, event_type, shop_id, conversation_id, body, next_at, created_at)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (endpoint, event_id) DO NOTHING",
        args: vec![
            Arg::T(endpoint.to_owned()),
            Arg::T(event_id.to_owned()),
            Arg::T(ty.to_owned()),
            Arg::T(shop.to_owned()),
            Arg::T(conv.to_owned()),
            Arg::T(body.to_owned()),
            Arg::I(next_at),
        ],
    }
}

/// [`insert`] for an event about the draft written for inbox row `inbox_seq` in the same
/// transaction: `placeholder` in the body becomes `prefix` and the draft's id.
#[must_use]
pub fn for_draft(mut row: Stmt, placeholder: &str, prefix: &str, inbox_seq: i64) -> Stmt {
    row.sql = "INSERT INTO outbox (endpoint, event_id, event_type, shop_id, conversation_id, body, next_at, created_at)
          SELECT $1, $2, $3, $4, $5, REPLACE($6, $8, $9 || CAST(d.id AS TEXT)), $7, $7 FROM drafts d WHERE d.inbox_seq = $10
          ON CONFLICT (endpoint, event_id) DO NOTHING";
    row.args.push(Arg::T(placeholder.to_owned()));
    row.args.push(Arg::T(prefix.to_owned()));
    row.args.push(Arg::I(inbox_seq));
    row
}

/// Which deliveries to list: `status` and `endpoint` when not empty, ids above `after`.
pub struct Filter {
    /// Only this status (empty: all).
    pub status: String,
    /// Only this endpoint (empty: all).
    pub endpoint: String,
    /// Only rows with a larger id (paging).
    pub after: i64,
    /// At most this many.
    pub limit: i64,
}

typed_row! {
    /// A delivery as the API lists it.
    #[derive(Debug, Clone)]
    pub struct DeliveryRow {
        id: i64,
        endpoint: String,
        event_id: String,
        event_type: String,
        shop_id: String,
        conversation_id: String,
        status: OutboxStatus,
        attempts: i64,
        next_at: i64,
        /// 0 when not delivered.
        delivered_at: i64,
        last_error: Option<String>,
        created_at: i64,
    }
}

/// Deliveries matching `f`, oldest first.
///
/// # Errors
/// The store failed.
pub async fn list(store: &Store, f: &Filter) -> Result<Vec<DeliveryRow>, StoreError> {
    store
        .fetch(
            "SELECT id, endpoint, event_id, event_type, shop_id, conversation_id, status, attempts, next_at,
                    COALESCE(delivered_at, 0) AS delivered_at, last_error, created_at
               FROM outbox
              WHERE ($1 = '' OR status = $1) AND ($2 = '' OR endpoint = $2) AND id > $3
              ORDER BY id LIMIT $4",
            &[Arg::T(f.status.clone()), Arg::T(f.endpoint.clone()), Arg::I(f.after), Arg::I(f.limit)],
        )
        .await
}

typed_row! {
    /// What a redelivery needs to know of a delivery.
    #[derive(Debug, Clone)]
    pub struct DeliveryRef {
        shop_id: String,
        conversation_id: String,
        status: OutboxStatus,
        event_id: String,
    }
}

/// Delivery `id`, if there is one.
///
/// # Errors
/// The store failed.
pub async fn get(store: &Store, id: i64) -> Result<Option<DeliveryRef>, StoreError> {
    store.fetch_one("SELECT shop_id, conversation_id, status, event_id FROM outbox WHERE id = $1", &[Arg::I(id)]).await
}

/// Queues delivery `id` again with a fresh schedule (0 rows when it is being attempted).
#[must_use]
pub fn redeliver(id: i64, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE outbox SET status = 'pending', attempts = 0, next_at = $2, last_error = NULL WHERE id = $1 AND status <> 'sending'",
        args: vec![Arg::I(id), Arg::I(now)],
    }
}
