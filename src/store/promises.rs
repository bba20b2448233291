//! The `promises` table: what a reply promised the buyer, and by when.

use super::{Arg, Stmt, Store, StoreError};

status_enum! {
    /// Where a promise stands.
    pub enum PromiseStatus fallback Open {
        /// Not kept yet.
        Open = "open",
        /// An agent marked it kept.
        Kept = "kept",
    }
}

/// Records a promise of the draft written for inbox message `inbox_seq` in the same transaction.
#[must_use]
pub fn insert(inbox_seq: i64, what: &str, due_at: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO promises (draft_id, shop_id, conversation_id, what, due_at) SELECT id, shop_id, conversation_id, $2, $3 FROM drafts WHERE inbox_seq = $1",
        args: vec![Arg::I(inbox_seq), Arg::T(what.to_owned()), Arg::I(due_at)],
    }
}

typed_row! {
    /// An open promise that fell due and was not announced yet.
    #[derive(Debug, Clone)]
    pub struct DuePromise {
        id: i64,
        draft_id: i64,
        shop_id: String,
        conversation_id: String,
        what: String,
        due_at: i64,
    }
}

/// Up to 256 open promises due by `now` and not announced yet, oldest first.
///
/// # Errors
/// The store failed.
pub async fn due(store: &Store, now: i64) -> Result<Vec<DuePromise>, StoreError> {
    store
        .fetch(
            "SELECT id, draft_id, shop_id, conversation_id, what, due_at FROM promises
              WHERE status = 'open' AND due_announced = 0 AND due_at <= $1 ORDER BY due_at, id LIMIT 256",
            &[Arg::I(now)],
        )
        .await
}

/// Marks promise `id` announced (once).
#[must_use]
pub fn announced(id: i64) -> Stmt {
    Stmt { sql: "UPDATE promises SET due_announced = 1 WHERE id = $1 AND due_announced = 0", args: vec![Arg::I(id)] }
}

typed_row! {
    /// A promise as the API lists it.
    #[derive(Debug, Clone)]
    pub struct PromiseRow {
        id: i64,
        shop_id: String,
        conversation_id: String,
        what: String,
        due_at: i64,
        status: PromiseStatus,
    }
}

/// Up to 1000 promises, soonest due first.
///
/// # Errors
/// The store failed.
pub async fn list(store: &Store) -> Result<Vec<PromiseRow>, StoreError> {
    store
        .fetch(
            "SELECT id, shop_id, conversation_id, what, due_at, status FROM promises ORDER BY due_at LIMIT 1000",
            &[],
        )
        .await
}

typed_row! {
    /// A promise as the console lists it.
    #[derive(Debug, Clone)]
    pub struct ConsolePromise {
        id: i64,
        shop_id: String,
        conversation_id: String,
        what: String,
        due_at: i64,
        status: PromiseStatus,
        kept_by: Option<String>,
        /// 0 when not kept.
        kept_at: i64,
        draft_id: i64,
    }
}

/// Up to 500 promises, open ones first, soonest due first.
///
/// # Errors
/// The store failed.
pub async fn for_console(store: &Store) -> Result<Vec<ConsolePromise>, StoreError> {
    store
        .fetch(
            "SELECT id, shop_id, conversation_id, what, due_at, status, kept_by, COALESCE(kept_at, 0) AS kept_at, draft_id FROM promises ORDER BY CASE WHEN status = 'open' THEN 0 ELSE 1 END, due_at LIMIT 500",
            &[],
        )
        .await
}

typed_row! {
    /// What keeping a promise needs to know of it.
    #[derive(Debug, Clone)]
    pub struct PromiseRef {
        shop_id: String,
        conversation_id: String,
        draft_id: i64,
        what: String,
    }
}

/// Promise `id`, if there is one.
///
/// # Errors
/// The store failed.
pub async fn get(store: &Store, id: i64) -> Result<Option<PromiseRef>, StoreError> {
    store.fetch_one("SELECT shop_id, conversation_id, draft_id, what FROM promises WHERE id = $1", &[Arg::I(id)]).await
}

/// Marks an open promise kept (0 rows when it is no longer open).
#[must_use]
pub fn keep(id: i64, who: &str, now: i64) -> Stmt {
    Stmt {
        sql: "UPDATE promises SET status = 'kept', kept_by = $2, kept_at = $3 WHERE id = $1 AND status = 'open'",
        args: vec![Arg::I(id), Arg::T(who.to_owned()), Arg::I(now)],
    }
}
