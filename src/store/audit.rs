//! The audit log: who did what, when, with the guard's verdict. Rows are never updated or deleted.

use super::{Arg, Stmt, Store, StoreError};

/// An audit row: who did what, when, with the guard's verdict. Never updated or deleted.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn audit_stmt(
    at: i64,
    actor: &str,
    kind: &str,
    shop: &str,
    conversation: &str,
    draft_id: Option<i64>,
    verdict: Option<&str>,
    detail: serde_json::Value,
) -> Stmt {
    Stmt {
        sql: "INSERT INTO audit (at, actor, kind, shop_id, conversation_id, draft_id, verdict, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args: vec![
            Arg::I(at),
            Arg::T(actor.to_owned()),
            Arg::T(kind.to_owned()),
            Arg::T(shop.to_owned()),
            Arg::T(conversation.to_owned()),
            Arg::NI(draft_id),
            Arg::N(verdict.map(str::to_owned)),
            Arg::T(detail.to_string()),
        ],
    }
}

typed_row! {
    /// An audit row.
    #[derive(Debug, Clone)]
    pub struct AuditRow {
        id: i64,
        at: i64,
        actor: String,
        kind: String,
        shop_id: String,
        conversation_id: String,
        /// 0 when the row is about no draft.
        draft_id: i64,
        verdict: Option<String>,
        /// JSON.
        detail: String,
    }
}

/// The largest page of [`page`].
pub const MAX_PAGE: i64 = 1000;

/// Up to `limit` (1 to [`MAX_PAGE`]) audit rows, newest first, older than id `after` (the last id
/// of the previous page; `None` for the first page), of shop `shop` and conversation
/// `conversation` when given. Filtered and paged in SQL, so no row is ever out of reach.
///
/// # Errors
/// The store failed.
pub async fn page(
    store: &Store,
    shop: Option<&str>,
    conversation: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    store
        .fetch(
            "SELECT id, at, actor, kind, shop_id, conversation_id, COALESCE(draft_id, 0) AS draft_id, verdict, detail FROM audit
              WHERE ($1 = '' OR shop_id = $1) AND ($2 = '' OR conversation_id = $2) AND id < $3
              ORDER BY id DESC LIMIT $4",
            &[
                Arg::T(shop.unwrap_or_default().to_owned()),
                Arg::T(conversation.unwrap_or_default().to_owned()),
                Arg::I(after.unwrap_or(i64::MAX)),
                Arg::I(limit.clamp(1, MAX_PAGE)),
            ],
        )
        .await
}

/// Audit rows of `kind` by `actor` after `since` (to rate-limit blocked edits).
///
/// # Errors
/// The store failed.
pub async fn count_since(store: &Store, actor: &str, kind: &str, since: i64) -> Result<i64, StoreError> {
    Ok(store
        .fetch_one::<Count>(
            "SELECT COUNT(*) AS n FROM audit WHERE actor = $1 AND kind = $2 AND at > $3",
            &[Arg::T(actor.to_owned()), Arg::T(kind.to_owned()), Arg::I(since)],
        )
        .await?
        .map_or(0, |c| c.n))
}

typed_row! {
    /// A count.
    struct Count {
        n: i64,
    }
}
