//! The one door into the inbox: every intake path (the signed webhook `POST /v1/events`, the
//! websocket adapter, the Chatwoot webhook) stores a verified event with [`store_event`] and
//! acknowledges only after it returns `Ok`; the WeCom puller commits [`event_stmt`] with its
//! cursor.

use crate::{
    domain::event::InboundEvent,
    state::{AppState, now_ms},
    store::{self, Stmt, inbox},
};

/// The statement that stores one verified event, for an intake path that must commit it with
/// other state in one transaction (the WeCom puller: a `sync_msg` page with the cursor after
/// it); the caller wakes the processors after the commit.
#[must_use]
pub fn event_stmt(shop: &str, event: &InboundEvent, raw: &str, now: i64) -> Stmt {
    inbox::insert(shop, &event.message_id, &event.conversation_id, raw, now)
}

/// Stores one verified inbound event in the durable inbox and wakes a processor. Returns
/// whether it was a duplicate (a redelivered `message_id`, acknowledged and not processed again).
/// Every intake path (webhook, websocket, adapters) acknowledges only after this returns `Ok`.
///
/// # Errors
/// The store failed: the event was not stored and must not be acknowledged.
pub async fn store_event(s: &AppState, shop: &str, event: &InboundEvent, raw: &str) -> Result<bool, store::StoreError> {
    let counts =
        s.store.apply(&[inbox::insert(shop, &event.message_id, &event.conversation_id, raw, now_ms())]).await?;
    let duplicate = counts[0] == 0;
    metrics::counter!("shouhou_intake_total", "result" => if duplicate { "duplicate" } else { "stored" }).increment(1);
    if !duplicate {
        s.new_event.notify_one();
    }
    Ok(duplicate)
}
