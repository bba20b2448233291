//! The generic websocket client adapter (`docs/websocket.md`): shouhou connects to a push
//! endpoint (a platform bridge), authenticates with a bearer token, takes buyer messages as
//! JSON text frames and sends replies back over the same connection.
//!
//! Delivery contract: a `message` frame is acknowledged (`ack`) only after
//! [`store_event`] committed it, so a dropped connection or a crash loses nothing (the
//! peer redelivers what it has no `ack` for) and a redelivered frame is acknowledged again but
//! not processed twice. A malformed frame gets an `error` frame and is neither stored nor
//! acknowledged. The connection is kept alive with websocket pings; a peer that stops answering
//! is dropped and the client reconnects with jittered exponential backoff. Replies are
//! [`Platform`] deliveries: a `reply` frame carrying the idempotency key, settled by the peer's
//! `reply_ack` (or `error`); while the connection is down a reply is `Outcome::Retry`, so the
//! durable `sends` row waits.
//!
//! This module owns the connection; it never logs message text or buyer data.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt, future::BoxFuture};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue};

pub use crate::config::websocket::{TOKEN_ENV, WsConfig};
use crate::{
    domain::event::InboundEvent,
    intake::store_event,
    outbound::{
        http::jittered,
        platform::{Outcome, Platform},
    },
    state::AppState,
};

/// The first reconnection delay; it doubles per failed attempt up to `reconnect_max`.
const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How long the websocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One JSON text frame of the protocol, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// Peer to shouhou: one buyer message (the generic inbound event).
    Message {
        /// The peer's delivery id, echoed in the `ack` (defaults to the event's `message_id`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The shop; may instead be in the event, or implied when the connection serves one shop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shop_id: Option<String>,
        /// The event (docs/design.md "Inbound event").
        event: Value,
    },
    /// shouhou to peer: the message is stored; do not deliver it again.
    Ack {
        /// The delivery id.
        id: String,
        /// The event's message id.
        message_id: String,
        /// It had been stored before (a redelivery); it is not processed again.
        duplicate: bool,
    },
    /// Either way: a frame was refused (malformed) or could not be handled now.
    Error {
        /// The id of the frame it answers, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// What was wrong.
        reason: String,
        /// Whether sending the same frame again later may succeed.
        #[serde(default)]
        retry: bool,
    },
    /// shouhou to peer: a reply for the buyer.
    Reply {
        /// The idempotency key: the same on every attempt; the peer must deliver it once.
        id: String,
        /// The shop.
        shop_id: String,
        /// The conversation.
        conversation_id: String,
        /// The message answered.
        reply_to: String,
        /// The reply text.
        text: String,
    },
    /// Peer to shouhou: the reply with this `id` was delivered (or had been).
    ReplyAck {
        /// The reply's idempotency key.
        id: String,
    },
}

impl Frame {
    /// The frame as JSON text.
    #[must_use]
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A `message` frame that passed validation.
struct Inbound {
    id: String,
    shop: String,
    event: InboundEvent,
    raw: String,
}

/// Reads one `message` frame's body: the event must be a valid generic event and the shop one
/// this connection serves. Returns the refusal reason otherwise.
fn inbound(cfg: &WsConfig, id: Option<String>, shop_id: Option<String>, event: Value) -> Result<Inbound, String> {
    if !event.is_object() {
        return Err("`event` must be a JSON object (the generic inbound event)".into());
    }
    let raw = event.to_string();
    let event = InboundEvent::parse(&raw).map_err(|e| format!("invalid event: {e}"))?;
    let shop = match (shop_id, event.shop_id.clone()) {
        (Some(a), Some(b)) if a != b => return Err(format!("`shop_id` `{a}` differs from the event's `{b}`")),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) if cfg.shops.len() == 1 => cfg.shops[0].clone(),
        (None, None) => return Err("no `shop_id`: this connection serves several shops".into()),
    };
    if !cfg.shops.contains(&shop) {
        return Err(format!("shop `{shop}` is not served by this connection"));
    }
    Ok(Inbound { id: id.unwrap_or_else(|| event.message_id.clone()), shop, event, raw })
}

/// The connection's outbound side as seen by the sender tasks: the current connection's
/// queue, and the replies waiting for their `reply_ack`.
pub struct WsLink {
    out: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    pending: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Outcome>>>,
    reply_timeout: Duration,
}

impl WsLink {
    /// A link with no connection yet.
    #[must_use]
    pub fn new(reply_timeout: Duration) -> Self {
        Self { out: Mutex::new(None), pending: Mutex::new(HashMap::new()), reply_timeout }
    }

    /// Whether a connection is up.
    #[must_use]
    pub fn connected(&self) -> bool {
        self.out.lock().expect("link lock").is_some()
    }

    fn attach(&self, tx: mpsc::UnboundedSender<Message>) {
        *self.out.lock().expect("link lock") = Some(tx);
    }

    /// Forgets the connection; replies waiting for an ack are settled as `Retry`.
    fn detach(&self) {
        *self.out.lock().expect("link lock") = None;
        for (_, w) in self.pending.lock().expect("link lock").drain() {
            let _ = w.send(Outcome::Retry("websocket connection lost before reply_ack".into()));
        }
    }

    fn settle(&self, id: &str, outcome: Outcome) -> bool {
        match self.pending.lock().expect("link lock").remove(id) {
            Some(w) => w.send(outcome).is_ok(),
            None => false,
        }
    }
}

impl Platform for WsLink {
    fn send<'a>(&'a self, key: &'a str, reply: &'a Value) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let s = |k: &str| reply[k].as_str().unwrap_or_default().to_owned();
            let frame = Frame::Reply {
                id: key.to_owned(),
                shop_id: s("shop_id"),
                conversation_id: s("conversation_id"),
                reply_to: s("reply_to"),
                text: s("text"),
            };
            let Some(tx) = self.out.lock().expect("link lock").clone() else {
                return Outcome::Retry("websocket not connected".into());
            };
            let (w, r) = tokio::sync::oneshot::channel();
            self.pending.lock().expect("link lock").insert(key.to_owned(), w);
            if tx.send(Message::text(frame.to_text())).is_err() {
                self.pending.lock().expect("link lock").remove(key);
                return Outcome::Retry("websocket connection lost".into());
            }
            match tokio::time::timeout(self.reply_timeout, r).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Outcome::Retry("websocket connection lost before reply_ack".into()),
                Err(_) => {
                    self.pending.lock().expect("link lock").remove(key);
                    Outcome::Retry("no reply_ack in time".into())
                }
            }
        })
    }
}

/// Why a connection ended.
enum End {
    Shutdown,
    Lost(String),
}

/// Keeps a connection to the push endpoint until shutdown: connect, serve, and on any loss
/// reconnect after a jittered exponential backoff.
pub async fn run(s: Arc<AppState>, cfg: WsConfig, link: Arc<WsLink>) {
    let mut failures: u32 = 0;
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        let started = Instant::now();
        let end = session(&s, &cfg, &link).await;
        link.detach();
        match end {
            End::Shutdown => return,
            End::Lost(why) => {
                metrics::counter!("shouhou_ws_disconnects_total").increment(1);
                tracing::warn!(reason = %why, "websocket connection lost; reconnecting");
            }
        }
        failures = if started.elapsed() >= STABLE_AFTER { 1 } else { failures.saturating_add(1) };
        let delay = backoff(failures, cfg.reconnect_max);
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Delay before reconnection attempt `n` (1-based): `BACKOFF_BASE * 2^(n-1)` capped at `max`,
/// then a random point in its upper half (so instances that lost the same peer spread out).
#[must_use]
pub fn backoff(n: u32, max: Duration) -> Duration {
    jittered(crate::outbound::http::backoff(BACKOFF_BASE, n, max))
}

/// The URL without its query (which may carry credentials), for logs.
fn url_for_log(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// One connection, from handshake to loss or shutdown.
async fn session(s: &AppState, cfg: &WsConfig, link: &WsLink) -> End {
    let mut req = match cfg.url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return End::Lost(format!("bad websocket url: {e}")),
    };
    match HeaderValue::from_str(&format!("Bearer {}", cfg.token.expose_secret())) {
        Ok(v) => {
            req.headers_mut().insert("authorization", v);
        }
        Err(_) => return End::Lost(format!("{TOKEN_ENV} holds characters not allowed in a header")),
    }
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req));
    let ws = tokio::select! {
        () = s.shutdown.cancelled() => return End::Shutdown,
        r = connect => match r {
            Err(_) => return End::Lost("handshake timed out".into()),
            Ok(Err(tungstenite::Error::Http(resp))) if matches!(resp.status().as_u16(), 401 | 403) => {
                metrics::counter!("shouhou_ws_connects_total", "result" => "unauthorized").increment(1);
                return End::Lost(format!(
                    "the push endpoint refused the token in {TOKEN_ENV} (HTTP {})",
                    resp.status().as_u16()
                ));
            }
            Ok(Err(e)) => {
                metrics::counter!("shouhou_ws_connects_total", "result" => "failed").increment(1);
                return End::Lost(format!("cannot connect: {e}"));
            }
            Ok(Ok((ws, _))) => ws,
        },
    };
    metrics::counter!("shouhou_ws_connects_total", "result" => "ok").increment(1);
    tracing::info!(url = url_for_log(&cfg.url), "websocket connected");
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    link.attach(tx);

    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    // A slow store write must not cause a burst of pings afterwards.
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set when a ping is out and nothing has been heard since; passing it means a dead peer.
    let mut deadline: Option<Instant> = None;
    loop {
        let dead = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = s.shutdown.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return End::Shutdown;
            }
            () = dead => return End::Lost("no pong from the peer".into()),
            _ = ping.tick() => {
                if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                    return End::Lost(format!("write failed: {e}"));
                }
                deadline.get_or_insert(Instant::now() + cfg.pong_timeout);
            }
            Some(out) = rx.recv() => {
                if let Err(e) = sink.send(out).await {
                    return End::Lost(format!("write failed: {e}"));
                }
            }
            frame = stream.next() => {
                deadline = None;
                let answer = match frame {
                    None => return End::Lost("the peer closed the connection".into()),
                    Some(Err(e)) => return End::Lost(format!("read failed: {e}")),
                    Some(Ok(Message::Close(_))) => return End::Lost("the peer closed the connection".into()),
                    Some(Ok(Message::Text(t))) => handle_text(s, cfg, link, t.as_str()).await,
                    Some(Ok(Message::Binary(_))) => Some(Frame::Error {
                        id: None,
                        reason: "binary frames are not part of the protocol; send JSON text frames".into(),
                        retry: false,
                    }),
                    // Pongs only prove the peer is alive; pings are answered by tungstenite.
                    Some(Ok(_)) => None,
                };
                if let Some(a) = answer
                    && let Err(e) = sink.send(Message::text(a.to_text())).await
                {
                    return End::Lost(format!("write failed: {e}"));
                }
            }
        }
    }
}

/// Handles one text frame; returns the frame to answer with, if any.
async fn handle_text(s: &AppState, cfg: &WsConfig, link: &WsLink, text: &str) -> Option<Frame> {
    let refuse = |id: Option<String>, reason: String| {
        metrics::counter!("shouhou_ws_frames_total", "result" => "refused").increment(1);
        Some(Frame::Error { id, reason, retry: false })
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return refuse(None, format!("not JSON: {e}")),
    };
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let frame: Frame = match serde_json::from_value(value) {
        Ok(f) => f,
        Err(e) => return refuse(id, format!("not a valid frame: {e}")),
    };
    match frame {
        Frame::Message { id, shop_id, event } => {
            let m = match inbound(cfg, id.clone(), shop_id, event) {
                Ok(m) => m,
                Err(reason) => return refuse(id, reason),
            };
            match store_event(s, &m.shop, &m.event, &m.raw).await {
                Ok(duplicate) => {
                    metrics::counter!("shouhou_ws_frames_total", "result" => "acked").increment(1);
                    Some(Frame::Ack { id: m.id, message_id: m.event.message_id, duplicate })
                }
                Err(e) => {
                    // Not acknowledged: the peer keeps it and delivers it again.
                    tracing::error!(error = %e, "could not store a websocket message; not acknowledged");
                    Some(Frame::Error {
                        id: Some(m.id),
                        reason: "shouhou could not store the message; deliver it again later".into(),
                        retry: true,
                    })
                }
            }
        }
        Frame::ReplyAck { id } => {
            if !link.settle(&id, Outcome::Sent) {
                tracing::debug!("reply_ack for a reply no longer waited for");
            }
            None
        }
        Frame::Error { id: Some(id), reason, retry } => {
            let outcome = if retry { Outcome::Retry(reason.clone()) } else { Outcome::Rejected(reason.clone()) };
            if !link.settle(&id, outcome) {
                tracing::warn!(%reason, "the peer reported an error");
            }
            None
        }
        Frame::Error { reason, .. } => {
            tracing::warn!(%reason, "the peer reported an error");
            None
        }
        Frame::Ack { .. } | Frame::Reply { .. } => {
            refuse(id, "`ack` and `reply` frames are sent by shouhou, not to it".into())
        }
    }
}
