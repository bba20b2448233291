//! The Taobao message service (TMC) client: order and refund events for the case's order
//! context (docs/tmc.md).
//!
//! One task holds a WebSocket to the message service: it logs in with a signed CONNECT,
//! keeps the CONNECTACK token for every later frame, applies each pushed data message to the
//! store and confirms it only after the transaction committed, so a drop or a crash loses
//! nothing (the server redelivers what was not confirmed) and a redelivered message id is
//! confirmed again but not applied twice. Like the official SDK it sends a pull request every
//! `pull_seconds` as a compensation for missed pushes (with a WebSocket ping beside it), and it
//! reconnects with jittered exponential backoff and a fresh signature after a drop.
//!
//! The wire format is in [`codec`]; what a message means for an order is in [`effects`].
//! `pipeline::orders` is the other half: it puts what TMC said about an order into a buyer
//! message's order before drafting.

pub mod codec;
pub mod effects;

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

pub use crate::config::tmc::{Options, SECRET_ENV, STABLE_AFTER, resolve};
use crate::{
    outbound::{
        http::{backoff, jittered},
        webhooks::cancel_pending_calls,
    },
    state::{AppState, now_ms},
    store::{Stmt, StoreError, audit::audit_stmt, calls, orders},
};
use codec::{Frame, MessageType, Value, kind};
use effects::Effect;

/// How long the WebSocket connect and the login may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts the client on `tracker`; it stops when `shared.shutdown` is cancelled.
pub fn spawn(shared: &Arc<AppState>, tracker: &tokio_util::task::TaskTracker, opts: Options) {
    tracker.spawn(run(shared.clone(), opts));
}

/// The client loop: connect, serve the session, back off, reconnect, until shutdown.
pub async fn run(s: Arc<AppState>, o: Options) {
    let mut failures: u32 = 0;
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        let mut logged_in = None;
        match session(&s, &o, &mut logged_in).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!("shouhou_tmc_disconnects_total").increment(1);
                tracing::warn!(error = %e, "TMC connection lost; reconnecting");
            }
        }
        metrics::gauge!("shouhou_tmc_connected").set(0.0);
        // Only a session that stayed up for a while counts as a success: a login alone does not.
        if logged_in.is_some_and(|at: Instant| at.elapsed() >= o.stable_after) {
            failures = 0;
        }
        // Exponential from `backoff_min`, capped at `backoff_max`, with jitter in the upper half.
        let delay = jittered(backoff(o.backoff_min, failures.saturating_add(1), o.backoff_max));
        failures = failures.saturating_add(1);
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("timed out connecting or logging in")]
    Timeout,
    #[error("login refused: status {code} {phrase}")]
    Refused { code: i32, phrase: String },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("no traffic for {0:?}")]
    Silent(Duration),
}

/// One connection: login, then messages until a drop (error) or shutdown (`Ok`). `logged_in`
/// is set to the time the login was accepted.
async fn session(s: &AppState, o: &Options, logged_in: &mut Option<Instant>) -> Result<(), SessionError> {
    let (ws, _) = timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(o.url.as_str()))
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (mut tx, mut rx) = ws.split();
    let login = Frame::connect(&o.app_key, &o.group_name, now_ms(), o.secret.expose_secret());
    tx.send(Message::Binary(login.encode().into())).await?;
    let token = timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            let bytes = match rx.next().await {
                None => return Err(SessionError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(_))) => return Err(SessionError::Closed),
                Some(Ok(_)) => continue,
            };
            let f = Frame::decode(&bytes).map_err(|e| SessionError::Protocol(format!("login answer: {e}")))?;
            if f.message_type != MessageType::ConnectAck {
                tracing::debug!(message_type = f.message_type.byte(), "TMC frame before the login answer ignored");
                continue;
            }
            if let Some(code) = f.status_code.filter(|c| *c > 0) {
                return Err(SessionError::Refused { code, phrase: f.status_phrase.unwrap_or_default() });
            }
            return f
                .token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| SessionError::Protocol("the login answer carries no token".into()));
        }
    })
    .await
    .map_err(|_| SessionError::Timeout)??;
    *logged_in = Some(Instant::now());
    metrics::gauge!("shouhou_tmc_connected").set(1.0);
    metrics::counter!("shouhou_tmc_connects_total").increment(1);
    tracing::info!(group = %o.group_name, "TMC connected");

    let mut tick = tokio::time::interval_at(Instant::now() + o.pull_every, o.pull_every);
    // A long stretch of work delays the next pull rather than firing a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => {
                let _ = tx.send(Message::Close(None)).await;
                return Ok(());
            }
            _ = tick.tick() => {
                // Pings are answered by any WebSocket server; three periods without a byte
                // means the connection is dead even if TCP has not noticed.
                let quiet = last_seen.elapsed();
                if quiet > o.pull_every * 3 {
                    return Err(SessionError::Silent(quiet));
                }
                tx.send(Message::Ping(Vec::new().into())).await?;
                tx.send(Message::Binary(Frame::pull(&token).encode().into())).await?;
            }
            m = rx.next() => {
                let m = match m {
                    None => return Err(SessionError::Closed),
                    Some(m) => m?,
            };
                last_seen = Instant::now();
                match m {
                    Message::Binary(b) => {
                        if let Some(id) = handle_frame(s, o, &b).await {
                            tx.send(Message::Binary(Frame::confirm(&token, id).encode().into())).await?;
                        }
                    }
                    Message::Close(_) => return Err(SessionError::Closed),
                    _ => {}
                }
            }
        }
    }
}

/// Handles one frame from the server; returns the message id to confirm, if any.
async fn handle_frame(s: &AppState, o: &Options, bytes: &[u8]) -> Option<i64> {
    let f = match Frame::decode(bytes) {
        Ok(f) => f,
        Err(e) => {
            metrics::counter!("shouhou_tmc_bad_frames_total").increment(1);
            tracing::warn!(error = %e, len = bytes.len(), "undecodable TMC frame skipped");
            return None;
        }
    };
    if let Some(code) = f.status_code.filter(|c| *c > 0) {
        tracing::warn!(code, phrase = f.status_phrase.as_deref().unwrap_or(""), "TMC server reported an error");
        return None;
    }
    let data = f.message_type == MessageType::Send
        && (f.kind() == Some(kind::DATA) || f.kind().is_none() && f.get("topic").is_some());
    if !data {
        tracing::debug!(message_type = f.message_type.byte(), kind = ?f.kind(), "TMC frame ignored");
        return None;
    }
    let Some(id) = f.get("id").and_then(Value::as_i64) else {
        tracing::warn!("TMC data message without an id: it cannot be confirmed");
        return None;
    };
    let topic = f.get("topic").and_then(Value::as_str).unwrap_or_default();
    let content = f.get("content").and_then(Value::as_str).unwrap_or_default();
    let published = f.get("time").or_else(|| f.get("outtime")).and_then(Value::as_i64).unwrap_or_else(now_ms);
    match apply(s, &o.app_key, &o.shop_id, id, topic, content, published).await {
        Ok(outcome) => {
            metrics::counter!("shouhou_tmc_messages_total", "outcome" => outcome.as_str()).increment(1);
            Some(id)
        }
        Err(e) => {
            // Not confirmed: the server delivers it again later.
            metrics::counter!("shouhou_tmc_messages_total", "outcome" => "store_failed").increment(1);
            tracing::warn!(error = %e, id, topic, "storing a TMC message failed; left unconfirmed for redelivery");
            None
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The order was updated.
    Applied,
    /// Recorded, nothing to change (unknown topic, no order id).
    Ignored,
    /// This id was applied before.
    Duplicate,
}

impl Outcome {
    /// For logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Applies one data message in one transaction with the record of its id; a second delivery of
/// the same id changes nothing. Returns when the transaction committed (then it may be confirmed).
///
/// # Errors
/// The store failed: nothing was applied, and the message must not be confirmed.
pub async fn apply(
    s: &AppState,
    app_key: &str,
    shop: &str,
    id: i64,
    topic: &str,
    content: &str,
    published: i64,
) -> Result<Outcome, StoreError> {
    if orders::tmc_seen(&s.store, app_key, id).await? {
        return Ok(Outcome::Duplicate);
    }
    let effect = effects::interpret(topic, content);
    let now = now_ms();
    let (outcome, order_id) = match &effect {
        Effect::Ignored { reason } => {
            tracing::debug!(topic, reason, "TMC message recorded, nothing to apply");
            (Outcome::Ignored, None)
        }
        Effect::Trade { order_id, .. } | Effect::Refund { order_id, .. } => (Outcome::Applied, Some(order_id.clone())),
    };
    // A plain INSERT: if another instance recorded this id meanwhile, the whole transaction
    // fails on the key and nothing is applied twice.
    let mut stmts = vec![orders::record_tmc(&orders::TmcMessage {
        app_key,
        message_id: id,
        shop_id: shop,
        topic,
        order_id: order_id.as_deref(),
        outcome: outcome.as_str(),
        published_at: published,
        received_at: now,
    })];
    if let Some((order_id, upsert, kind, detail)) = order_upsert(&effect, shop, topic, id, published, now) {
        stmts.push(upsert);
        let convs = orders::linked_conversations(&s.store, shop, order_id).await?;
        if matches!(effect, Effect::Trade { closed: true, .. }) {
            stmts.extend(cancel_pending_calls(&s.store, &s.cfg.webhooks, shop, order_id, None, now).await?);
        }
        for conv in &convs {
            stmts.push(audit_stmt(now, "tmc", kind, shop, conv, None, None, detail.clone()));
        }
        if convs.is_empty() {
            // The order is not (yet) linked to a conversation: audited without one.
            stmts.push(audit_stmt(now, "tmc", kind, shop, "", None, None, detail));
        }
    }
    match s.store.apply(&stmts).await {
        Ok(counts) => {
            let cancelled: u64 =
                stmts.iter().zip(&counts).filter(|(st, _)| st.sql == calls::CANCEL).map(|(_, n)| n).sum();
            if cancelled > 0 {
                metrics::counter!("shouhou_tmc_calls_cancelled_total").increment(cancelled);
                tracing::info!(cancelled, "trade closed: pending calls cancelled");
            }
            Ok(outcome)
        }
        Err(e) if e.is_unique_violation() => Ok(Outcome::Duplicate),
        Err(e) => Err(e),
    }
}

/// The upsert of the order an effect is about, with the audit kind and detail; `None` when the
/// message changes no order.
fn order_upsert<'a>(
    effect: &'a Effect,
    shop: &str,
    topic: &str,
    id: i64,
    published: i64,
    now: i64,
) -> Option<(&'a str, Stmt, &'static str, serde_json::Value)> {
    Some(match effect {
        Effect::Ignored { .. } => return None,
        Effect::Trade { order_id, status, closed } => {
            let upsert = orders::trade(shop, order_id, status.as_deref(), topic, published, now);
            let kind = if *closed { "order_closed" } else { "order_trade" };
            (
                order_id,
                upsert,
                kind,
                json!({"order_id": order_id, "topic": topic, "trade_status": status, "tmc_id": id}),
            )
        }
        Effect::Refund { order_id, refund_id, status, fee } => {
            let upsert = orders::refund(&orders::Refund {
                shop_id: shop,
                order_id,
                refund_id: refund_id.as_deref(),
                status: status.as_deref(),
                fee: fee.as_deref(),
                topic,
                at: published,
                now,
            });
            (
                order_id,
                upsert,
                "order_refund",
                json!({"order_id": order_id, "topic": topic, "refund_status": status, "tmc_id": id}),
            )
        }
    })
}
