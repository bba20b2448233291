//! The sender workers: claim due sends, post them to the platform with their idempotency key at
//! most `rate_per_shop` a second per shop, retry timeouts and 5xx with backoff, wait out 429
//! `Retry-After`, and never send what the bot drafted to a conversation a person has taken over.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{http::backoff_ms, platform::Outcome, webhooks};
use crate::{
    state::{AppState, LEASE_MS, now_ms, reclaim_due},
    store::{
        Stmt, StoreError,
        audit::audit_stmt,
        conversations::{self, ConversationRow},
        sends::{self, ClaimedSend},
    },
};

/// Sends due replies until shutdown.
pub async fn sender(s: Arc<AppState>) {
    let gap = Duration::from_micros(1_000_000 / u64::from(s.cfg.rate_per_shop.max(1)));
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match send_batch(&s, gap).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "sender store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_send.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Claims due sends, posts them, and records every outcome in one write. Returns whether there
/// was any.
async fn send_batch(s: &AppState, gap: Duration) -> Result<bool, StoreError> {
    let now = now_ms();
    let mut claimed = sends::claim(&s.store, now, now - LEASE_MS).await?;
    static LAST_RECLAIM: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    if reclaim_due(&LAST_RECLAIM, now, claimed.is_empty()) {
        claimed.extend(sends::reclaim(&s.store, now, now - LEASE_MS).await?);
    }
    if claimed.is_empty() {
        return Ok(false);
    }
    claimed.sort_by_key(|c| c.id);
    // Who owns each conversation, in one read; then post the sends concurrently (a claim holds
    // at most one per conversation, so order within a conversation is kept) and record every
    // outcome in one write.
    let keys: Vec<(String, String)> = claimed.iter().map(|c| (c.shop_id.clone(), c.conversation_id.clone())).collect();
    let owners = conversations::states(&s.store, &keys).await?;
    let outcomes = futures_util::future::join_all(claimed.iter().zip(&keys).map(|(c, key)| {
        let person_owns = owners.get(key).is_some_and(ConversationRow::person_owns);
        deliver(s, c, person_owns, gap, now)
    }))
    .await;
    let stmts: Vec<Stmt> =
        s.store.lock_conversations(&keys).into_iter().chain(outcomes.into_iter().flatten()).collect();
    s.store.apply(&stmts).await?;
    if !s.cfg.webhooks.endpoints.is_empty() {
        s.new_webhook.notify_waiters();
    }
    Ok(true)
}

/// Posts one claimed send (unless a person owns its conversation) and returns the statements
/// that record the outcome.
async fn deliver(s: &AppState, c: &ClaimedSend, person_owns: bool, gap: Duration, now: i64) -> Vec<Stmt> {
    let (id, shop, conv) = (c.id, c.shop_id.as_str(), c.conversation_id.as_str());
    if !c.by_person && person_owns {
        return vec![
            sends::held(id),
            audit_stmt(
                now,
                "bot",
                "send_held",
                shop,
                conv,
                None,
                None,
                json!({"send_id": id, "why": "a person owns the conversation"}),
            ),
        ];
    }

    // The channel's reply budget counts what was delivered since the buyer's latest message; a
    // send beyond it is held (WeChat would refuse it, and might penalise the account).
    if let Some(b) = s.platform.reply_budget(shop) {
        match crate::store::budget::standing(&s.store, b, shop, conv, now).await {
            Ok(st) => {
                if let Some(spent) = st.sent.spent {
                    let why = b.explain(spent);
                    metrics::counter!("shouhou_sends_total", "result" => "over_budget").increment(1);
                    return vec![
                        crate::store::budget::held_over_budget(id, &why),
                        audit_stmt(now, "bot", "send_held", shop, conv, None, None, json!({"send_id": id, "why": why})),
                    ];
                }
            }
            Err(e) => return vec![sends::retry(id, c.attempts, now + 1000, &format!("budget check: {e}"))],
        }
    }

    s.pacer.wait(shop, gap).await;

    let body = json!({"shop_id": shop, "conversation_id": conv, "reply_to": c.reply_to, "text": c.text});
    let outcome = s.platform.send(&c.idempotency_key, &body).await;
    let now = now_ms();
    let attempts = c.attempts + 1;
    match &outcome {
        Outcome::Sent => {
            metrics::counter!("shouhou_sends_total", "result" => "sent").increment(1);
            vec![
                sends::sent(id, attempts, now),
                audit_stmt(
                    now,
                    if c.by_person { "person" } else { "bot" },
                    "send",
                    shop,
                    conv,
                    None,
                    None,
                    json!({"send_id": id, "attempts": attempts}),
                ),
            ]
            .into_iter()
            .chain(webhooks::event(
                &s.cfg.webhooks,
                now,
                "reply.sent",
                shop,
                conv,
                &format!("reply.sent:{}", c.idempotency_key),
                json!({"send_id": id, "reply_to": c.reply_to, "text": c.text, "by_person": c.by_person, "attempts": attempts}),
            ))
            .collect()
        }
        Outcome::RateLimited(wait) => {
            metrics::counter!("shouhou_send_retries_total", "reason" => "rate_limited").increment(1);
            vec![sends::retry(id, attempts, now + wait, "429")]
        }
        Outcome::Retry(why) if attempts < s.cfg.max_send_attempts => {
            metrics::counter!("shouhou_send_retries_total", "reason" => "retry").increment(1);
            vec![sends::retry(id, attempts, now + backoff_ms(attempts), why)]
        }
        Outcome::Retry(why) | Outcome::Rejected(why) => {
            metrics::counter!("shouhou_sends_total", "result" => "failed").increment(1);
            vec![
                sends::failed(id, attempts, why),
                audit_stmt(now, "bot", "send_failed", shop, conv, None, None, json!({"send_id": id, "error": why})),
            ]
        }
    }
}
