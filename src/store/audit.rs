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

/// The oldest 5000 audit rows.
///
/// # Errors
/// The store failed.
pub async fn oldest(store: &Store) -> Result<Vec<AuditRow>, StoreError> {
    store
        .fetch(
            "SELECT id, at, actor, kind, shop_id, conversation_id, COALESCE(draft_id, 0) AS draft_id, verdict, detail FROM audit ORDER BY id LIMIT 5000",
            &[],
        )
        .await
}
