//! Consumer webhook rows: the outbox rows of one event, one per subscribed endpoint, written in
//! the same transaction as the change they report (so an event exists exactly when its change
//! committed). The deliverer ([`super::deliverer`]) posts them.

use serde_json::{Value, json};
use sha2::Digest;

pub use crate::config::webhooks::{Endpoint, Webhooks};
use crate::store::{Stmt, Store, StoreError, calls, outbox};

/// The stable `webhook-id` of an event, derived from what it reports (no `.` in it).
#[must_use]
pub fn event_id(key: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// In the body of an event about a draft, this is replaced by the draft's id when the row is
/// written (the id is assigned in the same transaction).
const DRAFT_ID_PLACEHOLDER: &str = "\"draft_id\":-1";

fn body(ty: &str, now: i64, shop: &str, conv: &str, mut data: Value) -> String {
    if let Value::Object(m) = &mut data {
        m.insert("shop_id".into(), json!(shop));
        m.insert("conversation_id".into(), json!(conv));
    }
    let ts = jiff::Timestamp::from_millisecond(now).map(|t| t.to_string()).unwrap_or_default();
    json!({"type": ty, "timestamp": ts, "data": data}).to_string()
}

/// The rows for one event: one per endpoint that wants `ty`. `key` identifies the event (the
/// same key always gives the same `webhook-id`; a repeat is ignored).
#[must_use]
pub fn event(w: &Webhooks, now: i64, ty: &str, shop: &str, conv: &str, key: &str, data: Value) -> Vec<Stmt> {
    let targets: Vec<&Endpoint> = w.endpoints.iter().filter(|e| e.wants(ty)).collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let (id, body) = (event_id(key), body(ty, now, shop, conv, data));
    targets
        .into_iter()
        .map(|e| {
            outbox::insert(&e.name, &id, ty, shop, conv, &body, now + w.retry_schedule_ms.first().copied().unwrap_or(0))
        })
        .collect()
}

/// Like [`event`], for an event about the draft written for inbox row `inbox_seq` in the same
/// transaction: `data.draft_id` becomes that draft's id.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn draft_event(
    w: &Webhooks,
    now: i64,
    ty: &str,
    shop: &str,
    conv: &str,
    key: &str,
    inbox_seq: i64,
    mut data: Value,
) -> Vec<Stmt> {
    if let Value::Object(m) = &mut data {
        m.insert("draft_id".into(), json!(-1));
    }
    event(w, now, ty, shop, conv, key, data)
        .into_iter()
        .map(|st| outbox::for_draft(st, DRAFT_ID_PLACEHOLDER, "\"draft_id\":", inbox_seq))
        .collect()
}

/// The consumer event written for each call a closed trade cancels.
pub const CALL_CANCELLED: &str = "call.cancelled";

/// Cancels the pending calls of every conversation about `order_id` (or, with `only_conv`, of
/// that conversation), each with its `call.cancelled` consumer event, to commit in one
/// transaction.
///
/// # Errors
/// The store failed.
pub async fn cancel_pending_calls(
    store: &Store,
    w: &Webhooks,
    shop: &str,
    order_id: &str,
    only_conv: Option<&str>,
    now: i64,
) -> Result<Vec<Stmt>, StoreError> {
    let pending = match only_conv {
        None => calls::pending_for_order(store, shop, order_id).await?,
        Some(conv) => calls::pending_in_conversation(store, shop, conv).await?,
    };
    let mut stmts = Vec::new();
    for call in &pending {
        stmts.push(calls::cancel(call.id));
        stmts.extend(event(
            w,
            now,
            CALL_CANCELLED,
            shop,
            &call.conversation_id,
            &format!("{CALL_CANCELLED}:{}", call.id),
            json!({"call_id": call.id, "draft_id": call.draft_id, "order_id": order_id, "reason": "trade_closed"}),
        ));
    }
    Ok(stmts)
}
