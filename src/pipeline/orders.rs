//! The order context of a buyer message: what the Taobao message service (the TMC adapter, which
//! writes the `orders` table) said about the message's order, merged in before drafting.

use crate::{
    adapters::tmc::effects::{order_status, refund_status},
    domain::{
        event::{InboundEvent, Order},
        money::Money,
    },
    outbound::webhooks::cancel_pending_calls,
    state::AppState,
    store::{Stmt, StoreError, calls, orders},
};

/// Puts what the message service said about the event's order into the event before drafting
/// (see [`merge_statuses`]) and returns the statements to commit with the message: the link
/// between the conversation and the order (so a later trade close finds the conversation) and,
/// when the order is closed, the cancellation of the conversation's pending calls (those
/// announced earlier with their `call.cancelled` events; the one this message requests, which
/// gets no `call.requested`, silently). They run after the message's own inserts.
///
/// # Errors
/// The store failed.
pub async fn order_context(
    s: &AppState,
    shop: &str,
    event: &mut InboundEvent,
    now: i64,
) -> Result<Vec<Stmt>, StoreError> {
    let Some(order) = event.order.as_mut() else { return Ok(Vec::new()) };
    let Some(order_id) = order.order_id.clone().filter(|o| !o.trim().is_empty()) else { return Ok(Vec::new()) };
    let mut stmts = vec![orders::link(shop, &order_id, &event.conversation_id, now)];
    if let Some(stored) = orders::statuses(&s.store, shop, &order_id).await? {
        let had_refund = order.refund_status.as_deref().is_some_and(|r| !r.trim().is_empty());
        merge_statuses(
            order,
            stored.trade_status.as_deref().and_then(order_status),
            stored.refund_status.as_deref().and_then(refund_status),
        );
        // The stored amount belongs to the stored refund: it fills in only with its status.
        if !had_refund && order.refund_status.is_some() && order.refund_amount.is_none() {
            order.refund_amount = stored.refund_fee.filter(|f| Money::parse(f).is_ok());
        }
    }
    if order.status.as_deref() == Some(CLOSED) {
        // Calls requested earlier on this conversation are cancelled with their events; the
        // one this message may request (inserted before these statements run) has had no
        // `call.requested` event and is cancelled silently.
        stmts.extend(
            cancel_pending_calls(&s.store, &s.cfg.webhooks, shop, &order_id, Some(&event.conversation_id), now).await?,
        );
        stmts.push(calls::cancel_all_in_conversation(shop, &event.conversation_id));
    }
    Ok(stmts)
}

/// The order status of a closed trade.
pub const CLOSED: &str = "closed";

/// Merges what TMC stored into the event's order. The event (sent with the message) is fresher
/// than a stored status of unknown age, so a stored status only fills one the event lacks;
/// except a closed trade, which is terminal and always wins. The refund status is only filled:
/// an order can have several refunds over time, so no stored refund status is final.
pub fn merge_statuses(order: &mut Order, trade: Option<&str>, refund: Option<&str>) {
    if let Some(t) = trade
        && (t == CLOSED || order.status.as_deref().is_none_or(|s| s.trim().is_empty()))
    {
        order.status = Some(t.to_owned());
    }
    if let Some(r) = refund
        && order.refund_status.as_deref().is_none_or(|s| s.trim().is_empty())
    {
        order.refund_status = Some(r.to_owned());
    }
}
