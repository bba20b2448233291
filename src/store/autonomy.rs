//! The `autonomy` table: the intents a supervisor switched auto-send on for.

use super::{Arg, Stmt, Store, StoreError};

typed_row! {
    /// An intent id.
    struct Intent {
        intent: String,
    }
}

/// The intents auto-send is switched on for.
///
/// # Errors
/// The store failed.
pub async fn enabled(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(store
        .fetch::<Intent>("SELECT intent FROM autonomy WHERE enabled = 1", &[])
        .await?
        .into_iter()
        .map(|r| r.intent)
        .collect())
}

/// Whether auto-send is switched on for every intent in `intents` (the pipeline's one lookup:
/// `plan_message` asks this where the route is decided).
///
/// # Errors
/// The store failed.
pub async fn auto_send_allowed(store: &Store, intents: &[&str]) -> Result<bool, StoreError> {
    if intents.is_empty() {
        return Ok(false);
    }
    let on = enabled(store).await?;
    Ok(intents.iter().all(|i| on.iter().any(|o| o == i)))
}

/// Switches auto-send on or off for `intent`.
#[must_use]
pub fn set(intent: &str, on: bool, who: &str, now: i64) -> Stmt {
    Stmt {
        sql: "INSERT INTO autonomy (intent, enabled, changed_by, changed_at) VALUES ($1, $2, $3, $4)
              ON CONFLICT (intent) DO UPDATE SET enabled = excluded.enabled, changed_by = excluded.changed_by, changed_at = excluded.changed_at",
        args: vec![Arg::T(intent.to_owned()), Arg::I(i64::from(on)), Arg::T(who.to_owned()), Arg::I(now)],
    }
}
