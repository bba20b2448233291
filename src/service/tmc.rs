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
//! [`order_context`] is the other half: it puts what TMC said about an order into a buyer
//! message's order before drafting.

pub mod codec;
pub mod effects;

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

use super::{
    Shared, audit_stmt, now_ms, outbox,
    store::{Arg, Col, Stmt, StoreError},
};
use crate::{config::TmcSettings, domain::event::InboundEvent};
use codec::{Frame, MessageType, Value, kind};
use effects::Effect;

/// The environment variable holding the app secret.
pub const SECRET_ENV: &str = "SHOUHOU_TMC_SECRET";

/// How long the WebSocket connect and the login may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A session that stayed up this long after its login resets the backoff (as the websocket
/// adapter does): a server that accepts the login and then drops is retried with a growing delay.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How the client connects and paces itself.
#[derive(Clone)]
pub struct Options {
    /// `ws://` or `wss://` endpoint.
    pub url: String,
    /// App key.
    pub app_key: String,
    /// App secret (signs the login; never logged).
    pub secret: String,
    /// Message group.
    pub group_name: String,
    /// The shouhou shop the messages belong to.
    pub shop_id: String,
    /// Between pull requests (and pings).
    pub pull_every: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// How long a session must stay up after its login to reset the backoff.
    pub stable_after: Duration,
}

impl Options {
    /// From `[tmc]` and the secret; reconnects back off from 1 s to 60 s.
    #[must_use]
    pub fn new(t: &TmcSettings, secret: String) -> Self {
        Self {
            url: t.url.clone(),
            app_key: t.app_key.clone(),
            secret,
            group_name: t.group_name.clone(),
            shop_id: t.shop_id.clone(),
            pull_every: Duration::from_secs(t.pull_seconds),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: STABLE_AFTER,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("app_key", &self.app_key)
            .field("group_name", &self.group_name)
            .field("shop_id", &self.shop_id)
            .finish_non_exhaustive()
    }
}

/// The client options for an enabled `[tmc]` section, with the secret read from
/// [`SECRET_ENV`] by the caller (`serve` resolves it like the adapters' secrets). `Ok(None)`
/// when TMC is off.
///
/// # Errors
/// TMC is enabled and the secret is missing or empty.
pub fn resolve(t: Option<&TmcSettings>, secret: Option<String>) -> anyhow::Result<Option<Options>> {
    let Some(t) = t.filter(|t| t.enabled) else { return Ok(None) };
    match secret {
        Some(s) if !s.trim().is_empty() => Ok(Some(Options::new(t, s.trim().to_owned()))),
        _ => anyhow::bail!(
            "[tmc] is enabled in the config but {SECRET_ENV} is not set: export the app secret of app key `{}` \
             (or set enabled = false)",
            t.app_key
        ),
    }
}

/// Starts the client on `tracker`; it stops when `shared.shutdown` is cancelled.
pub fn spawn(shared: &Arc<Shared>, tracker: &tokio_util::task::TaskTracker, opts: Options) {
    tracker.spawn(run(shared.clone(), opts));
}

/// The client loop: connect, serve the session, back off, reconnect, until shutdown.
pub async fn run(s: Arc<Shared>, o: Options) {
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
        let delay = backoff(&o, failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Exponential from `backoff_min`, capped at `backoff_max`, with jitter: a uniform pick in the
/// upper half, so many clients do not reconnect in step.
fn backoff(o: &Options, failures: u32) -> Duration {
    let base = o.backoff_min.saturating_mul(1u32 << failures.min(16)).min(o.backoff_max);
    let half = base / 2;
    half + Duration::from_millis(fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX)))
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
async fn session(s: &Shared, o: &Options, logged_in: &mut Option<Instant>) -> Result<(), SessionError> {
    let (ws, _) = timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(o.url.as_str()))
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (mut tx, mut rx) = ws.split();
    let login = Frame::connect(&o.app_key, &o.group_name, now_ms(), &o.secret);
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
async fn handle_frame(s: &Shared, o: &Options, bytes: &[u8]) -> Option<i64> {
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
    s: &Shared,
    app_key: &str,
    shop: &str,
    id: i64,
    topic: &str,
    content: &str,
    published: i64,
) -> Result<Outcome, StoreError> {
    let seen = s
        .store
        .rows(
            "SELECT outcome FROM tmc_messages WHERE app_key = $1 AND message_id = $2",
            &[Arg::T(app_key.to_owned()), Arg::I(id)],
            &[Col::T("outcome")],
        )
        .await?;
    if !seen.is_empty() {
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
    let mut stmts = vec![Stmt {
        sql: "INSERT INTO tmc_messages (app_key, message_id, shop_id, topic, order_id, outcome, published_at, received_at)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args: vec![
            Arg::T(app_key.to_owned()),
            Arg::I(id),
            Arg::T(shop.to_owned()),
            Arg::T(topic.to_owned()),
            Arg::N(order_id.clone()),
            Arg::T(outcome.as_str().to_owned()),
            Arg::I(published),
            Arg::I(now),
        ],
    }];
    if let Some((order_id, upsert, kind, detail)) = order_upsert(&effect, shop, topic, id, published, now) {
        stmts.push(upsert);
        let convs = linked_conversations(s, shop, order_id).await?;
        if matches!(effect, Effect::Trade { closed: true, .. }) {
            stmts.extend(cancel_pending_calls(s, shop, order_id, None, now).await?);
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
                stmts.iter().zip(&counts).filter(|(st, _)| st.sql == CANCEL_CALL).map(|(_, n)| n).sum();
            if cancelled > 0 {
                metrics::counter!("shouhou_tmc_calls_cancelled_total").increment(cancelled);
                tracing::info!(cancelled, "trade closed: pending calls cancelled");
            }
            Ok(outcome)
        }
        Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => Ok(Outcome::Duplicate),
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
            let upsert = Stmt {
                sql: "INSERT INTO orders (shop_id, order_id, trade_status, trade_topic, trade_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, $6)
                      ON CONFLICT (shop_id, order_id) DO UPDATE SET
                        trade_status = COALESCE(excluded.trade_status, orders.trade_status),
                        trade_topic = excluded.trade_topic, trade_at = excluded.trade_at, updated_at = excluded.updated_at
                      WHERE orders.trade_at <= excluded.trade_at",
                args: vec![
                    Arg::T(shop.to_owned()),
                    Arg::T(order_id.clone()),
                    Arg::N(status.clone()),
                    Arg::T(topic.to_owned()),
                    Arg::I(published),
                    Arg::I(now),
                ],
            };
            let kind = if *closed { "order_closed" } else { "order_trade" };
            (
                order_id,
                upsert,
                kind,
                json!({"order_id": order_id, "topic": topic, "trade_status": status, "tmc_id": id}),
            )
        }
        Effect::Refund { order_id, refund_id, status, fee } => {
            let upsert = Stmt {
                sql: "INSERT INTO orders (shop_id, order_id, refund_id, refund_status, refund_fee, refund_topic, refund_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                      ON CONFLICT (shop_id, order_id) DO UPDATE SET
                        refund_id = COALESCE(excluded.refund_id, orders.refund_id),
                        refund_status = COALESCE(excluded.refund_status, orders.refund_status),
                        refund_fee = COALESCE(excluded.refund_fee, orders.refund_fee),
                        refund_topic = excluded.refund_topic, refund_at = excluded.refund_at, updated_at = excluded.updated_at
                      WHERE orders.refund_at <= excluded.refund_at",
                args: vec![
                    Arg::T(shop.to_owned()),
                    Arg::T(order_id.clone()),
                    Arg::N(refund_id.clone()),
                    Arg::N(status.clone()),
                    Arg::N(fee.clone()),
                    Arg::T(topic.to_owned()),
                    Arg::I(published),
                    Arg::I(now),
                ],
            };
            (
                order_id,
                upsert,
                "order_refund",
                json!({"order_id": order_id, "topic": topic, "refund_status": status, "tmc_id": id}),
            )
        }
    })
}

const CANCEL_CALL: &str = "UPDATE calls SET status = 'cancelled' WHERE id = $1 AND status = 'requested'";

/// The consumer event written for each call a closed trade cancels.
pub const CALL_CANCELLED: &str = "call.cancelled";

/// Cancels the pending calls of every conversation about `order_id` (or, with `only_conv`, of
/// that conversation), each with its `call.cancelled` consumer event, to commit in one
/// transaction.
///
/// # Errors
/// The store failed.
async fn cancel_pending_calls(
    s: &Shared,
    shop: &str,
    order_id: &str,
    only_conv: Option<&str>,
    now: i64,
) -> Result<Vec<Stmt>, StoreError> {
    let cols = [Col::I("id"), Col::I("draft_id"), Col::T("conversation_id")];
    let pending = match only_conv {
        None => {
            s.store
                .rows(
                    "SELECT c.id, c.draft_id, c.conversation_id FROM calls c
                       JOIN conversation_orders o ON o.shop_id = c.shop_id AND o.conversation_id = c.conversation_id
                      WHERE o.shop_id = $1 AND o.order_id = $2 AND c.status = 'requested' ORDER BY c.id",
                    &[Arg::T(shop.to_owned()), Arg::T(order_id.to_owned())],
                    &cols,
                )
                .await?
        }
        Some(conv) => {
            s.store
                .rows(
                    "SELECT id, draft_id, conversation_id FROM calls
                      WHERE shop_id = $1 AND conversation_id = $2 AND status = 'requested' ORDER BY id",
                    &[Arg::T(shop.to_owned()), Arg::T(conv.to_owned())],
                    &cols,
                )
                .await?
        }
    };
    let mut stmts = Vec::new();
    for row in &pending {
        let (call_id, draft_id, conv) = (row[0].i(), row[1].i(), row[2].t());
        stmts.push(Stmt { sql: CANCEL_CALL, args: vec![Arg::I(call_id)] });
        stmts.extend(outbox::event(
            &s.cfg.webhooks,
            now,
            CALL_CANCELLED,
            shop,
            &conv,
            &format!("{CALL_CANCELLED}:{call_id}"),
            json!({"call_id": call_id, "draft_id": draft_id, "order_id": order_id, "reason": "trade_closed"}),
        ));
    }
    Ok(stmts)
}

async fn linked_conversations(s: &Shared, shop: &str, order_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(s.store
        .rows(
            "SELECT conversation_id FROM conversation_orders WHERE shop_id = $1 AND order_id = $2 ORDER BY conversation_id",
            &[Arg::T(shop.to_owned()), Arg::T(order_id.to_owned())],
            &[Col::T("conversation_id")],
        )
        .await?
        .iter()
        .map(|r| r[0].t())
        .collect())
}

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
    s: &Shared,
    shop: &str,
    event: &mut InboundEvent,
    now: i64,
) -> Result<Vec<Stmt>, StoreError> {
    let Some(order) = event.order.as_mut() else { return Ok(Vec::new()) };
    let Some(order_id) = order.order_id.clone().filter(|o| !o.trim().is_empty()) else { return Ok(Vec::new()) };
    let mut stmts = vec![Stmt {
        sql: "INSERT INTO conversation_orders (shop_id, order_id, conversation_id, linked_at) VALUES ($1, $2, $3, $4)
              ON CONFLICT (shop_id, order_id, conversation_id) DO NOTHING",
        args: vec![
            Arg::T(shop.to_owned()),
            Arg::T(order_id.clone()),
            Arg::T(event.conversation_id.clone()),
            Arg::I(now),
        ],
    }];
    let rows = s
        .store
        .rows(
            "SELECT trade_status, refund_status, refund_fee FROM orders WHERE shop_id = $1 AND order_id = $2",
            &[Arg::T(shop.to_owned()), Arg::T(order_id.clone())],
            &[Col::T("trade_status"), Col::T("refund_status"), Col::T("refund_fee")],
        )
        .await?;
    if let Some(row) = rows.first() {
        let had_refund = order.refund_status.as_deref().is_some_and(|s| !s.trim().is_empty());
        merge_statuses(
            order,
            row[0].opt().as_deref().and_then(effects::order_status),
            row[1].opt().as_deref().and_then(effects::refund_status),
        );
        // The stored amount belongs to the stored refund: it fills in only with its status.
        if !had_refund && order.refund_status.is_some() && order.refund_amount.is_none() {
            order.refund_amount = row[2].opt().filter(|f| crate::domain::money::Money::parse(f).is_ok());
        }
    }
    if order.status.as_deref() == Some(CLOSED) {
        // Calls requested earlier on this conversation are cancelled with their events; the
        // one this message may request (inserted before these statements run) has had no
        // `call.requested` event and is cancelled silently.
        stmts.extend(cancel_pending_calls(s, shop, &order_id, Some(&event.conversation_id), now).await?);
        stmts.push(Stmt {
            sql: "UPDATE calls SET status = 'cancelled' WHERE shop_id = $1 AND conversation_id = $2 AND status = 'requested'",
            args: vec![Arg::T(shop.to_owned()), Arg::T(event.conversation_id.clone())],
        });
    }
    Ok(stmts)
}

/// The order status of a closed trade.
pub const CLOSED: &str = "closed";

/// Merges what TMC stored into the event's order. The event (sent with the message) is fresher
/// than a stored status of unknown age, so a stored status only fills one the event lacks;
/// except a closed trade, which is terminal and always wins. The refund status is only filled:
/// an order can have several refunds over time, so no stored refund status is final.
pub fn merge_statuses(order: &mut crate::domain::event::Order, trade: Option<&str>, refund: Option<&str>) {
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
