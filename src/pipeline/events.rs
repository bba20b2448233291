//! Which consumer events a processed message emits, in the order they happened.

use serde_json::json;

use super::orders::CLOSED;
use crate::{
    domain::{case::Action, draft::Draft, event::InboundEvent},
    outbound::webhooks,
    state::AppState,
    store::Stmt,
};

/// The consumer events of one processed message, in the order they happened: the message,
/// its draft, then the escalation, call request and promises the draft carries.
pub fn draft_events(
    s: &AppState,
    now: i64,
    seq: i64,
    shop: &str,
    event: &InboundEvent,
    draft: &Draft,
    route: &str,
) -> Vec<Stmt> {
    let w = &s.cfg.webhooks;
    if w.endpoints.is_empty() {
        return Vec::new();
    }
    let (conv, msg) = (event.conversation_id.as_str(), event.message_id.as_str());
    let key = |ty: &str| format!("{ty}:{shop}:{msg}");
    let mut out = webhooks::event(
        w,
        now,
        "message.received",
        shop,
        conv,
        &key("message.received"),
        json!({
            "message_id": msg,
            "sender_account_id": event.sender.account_id,
            "text": event.text,
            "order_id": event.order.as_ref().and_then(|o| o.order_id.clone()),
        }),
    );
    out.extend(webhooks::draft_event(
        w,
        now,
        "draft.created",
        shop,
        conv,
        &key("draft.created"),
        seq,
        json!({
            "message_id": msg,
            "route": route,
            "group": draft.group,
            "intents": draft.intents,
            "reply": draft.reply,
            "actions": draft.actions,
            "guard": draft.guard,
        }),
    ));
    for (i, a) in draft.actions.iter().enumerate() {
        let (ty, data) = match a {
            Action::Escalate { reasons } => {
                ("case.escalated", json!({"message_id": msg, "reasons": reasons, "group": draft.group}))
            }
            // No call on a closed order: the call row is cancelled in this transaction.
            Action::CallRequest { .. } if event.order.as_ref().and_then(|o| o.status.as_deref()) == Some(CLOSED) => {
                continue;
            }
            Action::CallRequest { script, next_allowed_at } => {
                let p = &s.assistant.settings;
                (
                    "call.requested",
                    json!({
                        "message_id": msg,
                        "script": script,
                        "next_allowed_at": next_allowed_at,
                        "window": p.calls.window_text(),
                        "max_attempts": p.calls.max_attempts(),
                        "timezone": p.shop.timezone,
                    }),
                )
            }
            Action::Promise { what, due_at } => {
                ("promise.created", json!({"message_id": msg, "what": what, "due_at": due_at.to_string()}))
            }
            _ => continue,
        };
        out.extend(webhooks::draft_event(w, now, ty, shop, conv, &format!("{}:{i}", key(ty)), seq, data));
    }
    out
}
