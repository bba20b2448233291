//! Consumer webhooks: the durable outbox delivered with Standard Webhooks signatures.
//!
//! Every event (`message.received`, `draft.created`, …) is written as one outbox row per
//! subscribed endpoint in the same transaction as the change it reports, so an event exists
//! exactly when its change committed. Deliverer tasks claim due rows (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so several instances share the outbox), at most the oldest undelivered row
//! of each endpoint and conversation at a time (events arrive in order per conversation), POST
//! the stored body with `webhook-id` (the row's event id, the same on every attempt),
//! `webhook-timestamp` (per attempt) and `webhook-signature` (one `v1,` signature per secret,
//! several during rotation). A failure is retried on the configured schedule (by default the
//! spec's: about 75 hours); after the last attempt the row is dead-lettered and the API can
//! redeliver it. A `410 Gone` dead-letters at once.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    http::retry_after_ms,
    webhooks::{Endpoint, event},
};
use crate::{
    state::{AppState, LEASE_MS, now_ms, reclaim_due},
    store::{
        Stmt, StoreError,
        outbox::{self, ClaimedDelivery},
        promises,
    },
};

/// Delivers due outbox rows until shutdown.
pub async fn deliverer(s: Arc<AppState>) {
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        match deliver_batch(&s).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "outbox store error"),
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.new_webhook.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// 410: the consumer asked us to stop.
    Gone,
    /// Any other failure; the consumer's `Retry-After` in ms, if it gave one.
    Failed(String, Option<i64>),
}

/// Claims due rows, posts them concurrently (they are from different conversations), and records
/// every outcome in one write. Returns whether there was any.
///
/// # Errors
/// Store failures (claimed rows are then retried after the lease).
pub async fn deliver_batch(s: &Arc<AppState>) -> Result<bool, StoreError> {
    if s.cfg.webhooks.endpoints.is_empty() {
        return Ok(false);
    }
    let now = now_ms();
    let mut claimed = outbox::claim(&s.store, now, now - LEASE_MS).await?;
    static LAST_RECLAIM: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    if reclaim_due(&LAST_RECLAIM, now, claimed.is_empty()) {
        claimed.extend(outbox::reclaim(&s.store, now, now - LEASE_MS).await?);
    }
    if claimed.is_empty() {
        return Ok(false);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for ClaimedDelivery { id, endpoint, event_id, body, attempts } in claimed {
        let target = s.cfg.webhooks.endpoints.iter().find(|e| e.name == endpoint).cloned();
        let http = s.http.clone();
        tasks.spawn(async move {
            let outcome = match target {
                Some(t) => post(&http, &t, &event_id, &body).await,
                None => Attempt::Gone,
            };
            (id, endpoint, attempts, outcome)
        });
    }
    let mut stmts = Vec::new();
    let mut delivered = Vec::new();
    let now = now_ms();
    while let Some(done) = tasks.join_next().await {
        let Ok((id, endpoint, attempts, outcome)) = done else { continue };
        let attempts = attempts + 1;
        let known = s.cfg.webhooks.endpoints.iter().any(|e| e.name == endpoint);
        let st = match outcome {
            Attempt::Delivered => {
                metrics::counter!("shouhou_webhook_deliveries_total", "result" => "delivered").increment(1);
                delivered.push(id);
                continue;
            }
            Attempt::Gone => {
                metrics::counter!("shouhou_webhook_deliveries_total", "result" => "dead").increment(1);
                let why = if known { "410 Gone: the consumer asked to stop" } else { "endpoint no longer configured" };
                tracing::warn!(endpoint = %endpoint, outbox_id = id, why, "webhook dead-lettered");
                outbox::dead(id, attempts, why)
            }
            Attempt::Failed(why, retry_after) => match s.cfg.webhooks.delay_after(attempts) {
                Some(delay) => {
                    metrics::counter!("shouhou_webhook_deliveries_total", "result" => "retry").increment(1);
                    // One line per failed delivery (ids and the reason only, never the body), so a
                    // sick consumer shows in the log.
                    tracing::warn!(endpoint = %endpoint, outbox_id = id, attempts, why = %why, "webhook delivery failed; will retry");
                    outbox::retry(id, attempts, now + delay.max(retry_after.unwrap_or(0)), &why)
                }
                None => {
                    metrics::counter!("shouhou_webhook_deliveries_total", "result" => "dead").increment(1);
                    tracing::warn!(endpoint = %endpoint, outbox_id = id, attempts, "webhook dead-lettered after its last retry");
                    outbox::dead(id, attempts, &why)
                }
            },
        };
        stmts.push(st);
    }
    if !delivered.is_empty() {
        // All successes in one statement: one round trip however many rows.
        stmts.push(outbox::delivered(&s.store, &delivered, now));
    }
    s.store.apply(&stmts).await?;
    Ok(true)
}

/// Signs and POSTs one delivery.
async fn post(http: &reqwest::Client, e: &Endpoint, id: &str, body: &str) -> Attempt {
    let ts = now_ms() / 1000;
    let signature = e.secrets.iter().map(|k| k.sign(id, ts, body.as_bytes())).collect::<Vec<_>>().join(" ");
    let res = http
        .post(&e.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    match res {
        Err(err) => Attempt::Failed(if err.is_timeout() { "timeout".into() } else { "connection failed".into() }, None),
        Ok(r) if r.status().is_success() => Attempt::Delivered,
        Ok(r) if r.status().as_u16() == 410 => Attempt::Gone,
        Ok(r) => {
            let retry_after = retry_after_ms(r.headers()).map(|ms| ms.clamp(0, 86_400_000));
            Attempt::Failed(format!("http {}", r.status().as_u16()), retry_after)
        }
    }
}

/// Writes `promise.due` for promises that fell due and are still open, once each. Returns how many.
///
/// # Errors
/// Store failures.
pub async fn announce_due_promises(s: &AppState, now: i64) -> Result<usize, StoreError> {
    let rows = promises::due(&s.store, now).await?;
    let keys: Vec<(String, String)> = rows.iter().map(|p| (p.shop_id.clone(), p.conversation_id.clone())).collect();
    let mut stmts: Vec<Stmt> = s.store.lock_conversations(&keys).into_iter().collect();
    for p in &rows {
        stmts.push(promises::announced(p.id));
        let due = jiff::Timestamp::from_millisecond(p.due_at).map(|t| t.to_string()).unwrap_or_default();
        stmts.extend(event(
            &s.cfg.webhooks,
            now,
            "promise.due",
            &p.shop_id,
            &p.conversation_id,
            &format!("promise.due:{}", p.id),
            json!({"promise_id": p.id, "draft_id": p.draft_id, "what": p.what, "due_at": due}),
        ));
    }
    if !rows.is_empty() {
        s.store.apply(&stmts).await?;
        s.new_webhook.notify_waiters();
    }
    Ok(rows.len())
}

/// Announces due promises every few seconds until shutdown.
pub async fn promise_watch(s: Arc<AppState>) {
    loop {
        if let Err(e) = announce_due_promises(&s, now_ms()).await {
            tracing::warn!(error = %e, "promise watch store error");
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
