//! The WeChat customer-service adapter (WeCom Kf, `docs/wecom.md`): callback endpoint, puller, sender.
//!
//! In: WeCom calls `GET /v1/wecom/{shop}` once to verify the URL (the `echostr` is checked,
//! decrypted and answered) and `POST /v1/wecom/{shop}` for events. An event is checked (timestamp
//! window, `msg_signature`, AES, receive id) before anything is stored; a `kf_msg_or_event`
//! stores only its sync token (with the replay guard, in one transaction) and is answered at
//! once. The puller then pulls `kf/sync_msg` behind it, page by page until `has_more` is 0, and
//! commits each page's messages with the cursor that follows them: a crash between pages
//! resumes at the next page, and `msgid` (the inbox's message id) keeps a page pulled twice
//! from being processed twice.
//!
//! Out: replies go through `kf/send_msg` with a msgid derived from the send's idempotency key,
//! spaced per shop, after checking the session state; the reply budget (5 within 48 h after
//! the buyer's message by default) is enforced by the pipeline, the review and the sender
//! (`store::budget`). A handoff moves the session to the queue (or a named servicer) with
//! `kf/service_state/trans`; a `session_status_change` from WeChat sets the owner.
//!
//! Never logs message text or buyer ids.

pub mod client;
pub mod crypto;
pub mod kf;
pub mod map;
pub mod token;
pub mod xml;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State, rejection::QueryRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::future::BoxFuture;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use self::{
    client::{CallError, Client},
    crypto::{Crypto, CryptoError},
    kf::{MAX_TEXT_BYTES, SendMsgRequest, SendText, ServiceStateGetRequest, ServiceStateTransRequest, SyncMsgRequest},
    map::{Mapped, map_message, split_conversation},
};
pub use crate::config::wecom::{AES_KEY_ENV, SECRET_ENV, ServiceStates, TOKEN_ENV, WecomConfig};
use crate::{
    domain::{event::InboundEvent, schedule::Budget},
    intake,
    outbound::{
        http::backoff_ms,
        platform::{Outcome, Platform},
    },
    state::{AppState, MAX_BODY_BYTES, now_ms},
    store::{Stmt, Store, StoreError, audit::audit_stmt, conversations, wecom as rows},
};

/// How long a callback's sync token is valid (10 minutes per the SDK comments): a pending pull
/// whose token is older is made without it.
const TOKEN_LIFE_MS: i64 = 10 * 60 * 1000;

/// The adapter: the API client, the pull trigger, and the outbound side.
pub struct Wecom {
    /// Settings.
    pub cfg: WecomConfig,
    crypto: Crypto,
    client: Client,
    store: Store,
    /// Wakes the puller after a callback.
    pub wake: Notify,
    next_send: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl Wecom {
    /// The adapter over `store` with its own API client.
    ///
    /// # Errors
    /// The Token or the EncodingAESKey is malformed (the message names the variable).
    pub fn new(http: reqwest::Client, cfg: WecomConfig, store: Store) -> Result<Self, String> {
        let crypto = Crypto::new(cfg.token.expose_secret(), cfg.aes_key.expose_secret(), cfg.file.corp_id.trim())
            .map_err(|e| format!("{}: {e}", if e == CryptoError::Token { TOKEN_ENV } else { AES_KEY_ENV }))?
            .with_window(cfg.file.timestamp_window_secs);
        let client = Client::new(
            http,
            &cfg.file.api_url,
            &cfg.file.corp_id,
            cfg.secret.expose_secret(),
            cfg.file.token_margin_secs * 1000,
        );
        Ok(Self { cfg, crypto, client, store, wake: Notify::new(), next_send: Mutex::new(HashMap::new()) })
    }

    async fn pace(&self, shop: &str) {
        let gap = Duration::from_millis(self.cfg.file.send_interval_ms);
        let at = {
            let mut next = self.next_send.lock().expect("pacing lock");
            let now = tokio::time::Instant::now();
            let slot = next.get(shop).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(shop.to_owned(), slot + gap);
            slot
        };
        tokio::time::sleep_until(at).await;
    }

    fn outcome(&self, e: CallError) -> Outcome {
        match e {
            CallError::Retry { rate_limited: true, .. } => Outcome::RateLimited(self.cfg.file.rate_limit_wait_ms),
            CallError::Retry { why, .. } => Outcome::Retry(why),
            CallError::Rejected { errcode: Some(c), .. } if self.cfg.file.duplicate_msgid_errcodes.contains(&c) => {
                Outcome::Sent
            }
            CallError::Rejected { why, .. } => Outcome::Rejected(why),
        }
    }

    /// Records that a person (servicer, or the queue) has the conversation.
    async fn set_owner(&self, shop: &str, conv: &str, owner: &str) -> Result<(), StoreError> {
        self.store.apply(&[conversations::set_owner(shop, conv, owner, now_ms())]).await.map(|_| ())
    }
}

/// The WeCom msgid for an idempotency key: at most 32 of `[0-9a-zA-Z_-]`, the same for every
/// attempt of one send.
#[must_use]
pub fn msgid_for(key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    format!("sh{}", hex::encode(&h[..15]))
}

impl Platform for Wecom {
    fn send<'a>(&'a self, key: &'a str, reply: &'a serde_json::Value) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let shop = reply["shop_id"].as_str().unwrap_or_default();
            let conv = reply["conversation_id"].as_str().unwrap_or_default();
            let text = reply["text"].as_str().unwrap_or_default();
            let Some((kf, user)) = split_conversation(conv).filter(|(kf, _)| self.cfg.serves(shop, kf)) else {
                return Outcome::Rejected(format!("conversation is not a WeChat conversation of shop `{shop}`"));
            };
            if text.len() > MAX_TEXT_BYTES {
                return Outcome::Rejected(format!("the reply is {} bytes; WeChat takes {MAX_TEXT_BYTES}", text.len()));
            }
            self.pace(shop).await;
            // The API may only send while the session is new or with the assistant; a person or
            // the queue having it is the owner's business, and a stale owner is corrected.
            let state = match self
                .client
                .service_state(&ServiceStateGetRequest { open_kfid: kf.to_owned(), external_userid: user.to_owned() })
                .await
            {
                Ok(s) => s,
                Err(e) => return self.outcome(e),
            };
            let states = &self.cfg.file.states;
            if !states.send.contains(&state.service_state) {
                if state.service_state == states.person && !state.servicer_userid.is_empty() {
                    let _ = self.set_owner(shop, conv, &format!("wecom:{}", state.servicer_userid)).await;
                } else if state.service_state == states.queue {
                    let _ = self.set_owner(shop, conv, "wecom:queue").await;
                }
                metrics::counter!("shouhou_wecom_sends_total", "result" => "not_sendable").increment(1);
                return Outcome::Rejected(format!(
                    "the WeChat session is in state {} (not one the API may send in: {:?})",
                    state.service_state, states.send
                ));
            }
            let req = SendMsgRequest {
                touser: user.to_owned(),
                open_kfid: kf.to_owned(),
                msgid: msgid_for(key),
                msgtype: "text",
                text: SendText { content: text.to_owned() },
            };
            match self.client.send_msg(&req).await {
                Ok(_) => {
                    metrics::counter!("shouhou_wecom_sends_total", "result" => "sent").increment(1);
                    Outcome::Sent
                }
                Err(e) => {
                    metrics::counter!("shouhou_wecom_sends_total", "result" => "error").increment(1);
                    self.outcome(e)
                }
            }
        })
    }

    fn hands_off(&self, shop: &str) -> bool {
        self.cfg.file.shops.contains_key(shop)
    }

    /// Only escalations move a WeChat session to people: a session with a person or in the
    /// queue takes no API messages, so a draft for review stays with the assistant until it is
    /// approved or the reviewer takes the conversation over.
    fn hands_off_on_review(&self, _shop: &str) -> bool {
        false
    }

    fn reply_budget(&self, shop: &str) -> Option<Budget> {
        self.cfg.file.shops.contains_key(shop).then_some(self.cfg.budget)
    }

    fn open_for_person<'a>(&'a self, shop: &'a str, conversation: &'a str) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some((kf, user)) = split_conversation(conversation).filter(|(kf, _)| self.cfg.serves(shop, kf)) else {
                return Outcome::Rejected(format!("conversation is not a WeChat conversation of shop `{shop}`"));
            };
            let states = &self.cfg.file.states;
            let get = ServiceStateGetRequest { open_kfid: kf.to_owned(), external_userid: user.to_owned() };
            let now = match self.client.service_state(&get).await {
                Ok(s) => s,
                Err(e) => return self.outcome(e),
            };
            // Already with people (a retry after a lost answer, or WeChat moved it): done.
            if now.service_state == states.queue || now.service_state == states.person {
                let owner = if now.servicer_userid.is_empty() {
                    "wecom:queue".to_owned()
                } else {
                    format!("wecom:{}", now.servicer_userid)
                };
                return match self.set_owner(shop, conversation, &owner).await {
                    Ok(()) => Outcome::Sent,
                    Err(_) => Outcome::Retry("store unavailable".into()),
                };
            }
            let servicer = self.cfg.file.handoff_servicer.clone();
            let req = ServiceStateTransRequest {
                open_kfid: kf.to_owned(),
                external_userid: user.to_owned(),
                service_state: if servicer.is_some() { states.person } else { states.queue },
                servicer_userid: servicer.clone(),
            };
            if let Err(e) = self.client.trans(&req).await {
                return self.outcome(e);
            }
            metrics::counter!("shouhou_wecom_handoffs_total").increment(1);
            let owner = servicer.map_or_else(|| "wecom:queue".to_owned(), |s| format!("wecom:{s}"));
            match self.set_owner(shop, conversation, &owner).await {
                Ok(()) => Outcome::Sent,
                // The session moved; the next attempt finds it with people and records the owner.
                Err(_) => Outcome::Retry("store unavailable".into()),
            }
        })
    }

    // `leave_note` keeps the default (nothing): WeChat customer service has no private note, and
    // anything sent would reach the buyer. The draft stays readable in the console.
}

/// The query of a WeCom callback.
#[derive(Debug, Default, Deserialize)]
struct CallbackQuery {
    msg_signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
}

/// `GET` (URL verification) and `POST` (events) on `/v1/wecom/{shop}`.
pub fn router(shared: Arc<AppState>, wecom: Arc<Wecom>) -> Router {
    Router::new()
        .route("/v1/wecom/{shop}", get(verify).post(callback))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state((shared, wecom))
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.into()).into_response()
}

fn refuse(e: &CryptoError) -> Response {
    let status = match e {
        CryptoError::Signature | CryptoError::Stale(_) | CryptoError::ReceiveId => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    plain(status, e.to_string())
}

fn result(r: &'static str) {
    metrics::counter!("shouhou_wecom_callbacks_total", "result" => r).increment(1);
}

type Q = Result<Query<CallbackQuery>, QueryRejection>;

/// The three signed parameters, or why not (a 400).
fn signed(q: Q) -> Result<(CallbackQuery, String, String, String), String> {
    let Query(q) = q.map_err(|e| format!("the query string is malformed: {e}"))?;
    let get = |v: &Option<String>, name: &str| {
        v.clone().filter(|s| !s.is_empty()).ok_or_else(|| format!("the `{name}` query parameter is missing"))
    };
    let (sig, ts, nonce) =
        (get(&q.msg_signature, "msg_signature")?, get(&q.timestamp, "timestamp")?, get(&q.nonce, "nonce")?);
    Ok((q, sig, ts, nonce))
}

async fn verify(State((_, w)): State<(Arc<AppState>, Arc<Wecom>)>, Path(shop): Path<String>, q: Q) -> Response {
    if !w.cfg.file.shops.contains_key(&shop) {
        return plain(StatusCode::NOT_FOUND, format!("shop `{shop}` is not served through WeChat customer service"));
    }
    let (q, sig, ts, nonce) = match signed(q) {
        Ok(x) => x,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let Some(echostr) = q.echostr.filter(|s| !s.is_empty()) else {
        return plain(StatusCode::BAD_REQUEST, "the `echostr` query parameter is missing");
    };
    match w.crypto.open(&sig, &ts, &nonce, &echostr, now_ms() / 1000) {
        Ok(echo) => {
            result("verified");
            plain(StatusCode::OK, echo)
        }
        Err(e) => {
            result("refused");
            refuse(&e)
        }
    }
}

async fn callback(
    State((s, w)): State<(Arc<AppState>, Arc<Wecom>)>,
    Path(shop): Path<String>,
    q: Q,
    body: Bytes,
) -> Response {
    if !w.cfg.file.shops.contains_key(&shop) {
        return plain(StatusCode::NOT_FOUND, format!("shop `{shop}` is not served through WeChat customer service"));
    }
    let (_, sig, ts, nonce) = match signed(q) {
        Ok(x) => x,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        result("malformed");
        return plain(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let env = match xml::envelope(body) {
        Ok(e) => e,
        Err(e) => {
            result("malformed");
            return plain(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let plain_xml = match w.crypto.open(&sig, &ts, &nonce, &env.encrypt, now_ms() / 1000) {
        Ok(p) => p,
        Err(e) => {
            result("refused");
            return refuse(&e);
        }
    };
    let event = match xml::callback_event(&plain_xml) {
        Ok(e) => e,
        Err(e) => {
            result("malformed");
            return plain(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let Some(token) = event.kf_token().map(str::to_owned) else {
        result("ignored");
        return plain(StatusCode::OK, "success");
    };
    let Some(kf) = event.open_kfid.clone().filter(|k| !k.is_empty()) else {
        result("malformed");
        return plain(StatusCode::BAD_REQUEST, "the kf_msg_or_event has no OpenKfId");
    };
    if !w.cfg.serves(&shop, &kf) {
        result("refused");
        return plain(
            StatusCode::FORBIDDEN,
            format!("customer-service account `{kf}` is not configured for shop `{shop}`"),
        );
    }
    // The replay guard and the pending token in one transaction: a replayed callback changes
    // nothing; a new one is durable before it is answered.
    let now = now_ms();
    let sig = sig.to_ascii_lowercase();
    let stmts = [rows::callback(&shop, &sig, now), rows::pending(&shop, &kf, &token, &sig, now)];
    match s.store.apply(&stmts).await {
        Ok(counts) if counts[0] == 0 => {
            result("duplicate");
            plain(StatusCode::OK, "success")
        }
        Ok(_) => {
            result("accepted");
            w.wake.notify_one();
            plain(StatusCode::OK, "success")
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store a WeCom callback");
            plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
        }
    }
}

/// Pulls `kf/sync_msg` for every account with a pending callback until shutdown.
pub async fn puller(s: Arc<AppState>, w: Arc<Wecom>) {
    let mut failures: u32 = 0;
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        let pause = match pull_pending(&s, &w).await {
            Ok(()) => {
                failures = 0;
                Duration::from_secs(1)
            }
            Err(why) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %why, "WeCom pull failed; retrying");
                metrics::counter!("shouhou_wecom_pull_errors_total").increment(1);
                Duration::from_millis(backoff_ms(i64::from(failures)).unsigned_abs().min(60_000))
            }
        };
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = w.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn pull_pending(s: &AppState, w: &Wecom) -> Result<(), String> {
    let pulls = rows::pending_pulls(&s.store).await.map_err(|e| e.to_string())?;
    for p in pulls {
        if s.shutdown.is_cancelled() {
            return Ok(());
        }
        if let Err(why) = pull_account(s, w, &p).await {
            let _ = s.store.apply(&[rows::pull_failed(&p.shop_id, &p.open_kfid, &why)]).await;
            return Err(why);
        }
    }
    // Replay records older than twice the timestamp window can no longer match a fresh callback.
    let horizon = now_ms() - 2_000 * i64::try_from(w.cfg.file.timestamp_window_secs).unwrap_or(i64::MAX / 4_000);
    let _ = s.store.apply(&[rows::prune_callbacks(horizon)]).await;
    Ok(())
}

/// Pulls one account page by page until `has_more` is 0; each page's effects and the cursor
/// after it are one transaction.
async fn pull_account(s: &AppState, w: &Wecom, p: &rows::PendingPull) -> Result<(), String> {
    let (shop, kf, token, token_at) = (p.shop_id.as_str(), p.open_kfid.as_str(), p.pending_token.as_str(), p.token_at);
    let mut cursor = p.cursor.clone();
    // Past its life the token is refused; pulling without it is allowed at a stricter rate.
    let mut token = (now_ms() - token_at < TOKEN_LIFE_MS).then(|| token.to_owned());
    loop {
        let req = SyncMsgRequest {
            cursor: cursor.clone().filter(|c| !c.is_empty()),
            token: token.clone(),
            limit: w.cfg.file.page_limit,
            open_kfid: Some(kf.to_owned()),
        };
        let page = match w.client.sync_msg(&req).await {
            Ok(p) => p,
            // A refused sync token (expired early, or not the one WeCom expects) must not block
            // the account: the same page is pulled without it (allowed, at a stricter rate).
            Err(CallError::Rejected { why, .. }) if token.is_some() => {
                tracing::warn!(reason = %why, "sync_msg refused the callback token; pulling without it");
                token = None;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let now = now_ms();
        let mut stmts = Vec::with_capacity(page.msg_list.len() * 2 + 2);
        let mut stored = 0usize;
        for m in &page.msg_list {
            match map_message(m, shop) {
                Ok(mapped) => stored += effects(&mut stmts, shop, kf, mapped, now),
                Err(why) => {
                    metrics::counter!("shouhou_wecom_messages_total", "result" => "malformed").increment(1);
                    tracing::warn!(reason = %why, "a sync_msg entry was skipped");
                }
            }
        }
        stmts.push(rows::cursor_moved(shop, kf, &page.next_cursor, now));
        let done = page.has_more == 0;
        if done {
            // Cleared only if no newer callback came meanwhile (that one pulls again).
            stmts.push(rows::pull_done(shop, kf, token_at));
        }
        s.store.apply(&stmts).await.map_err(|e| e.to_string())?;
        if stored > 0 {
            s.new_event.notify_waiters();
        }
        if done {
            return Ok(());
        }
        if page.next_cursor.is_empty() {
            return Err("sync_msg said has_more = 1 without a next_cursor".into());
        }
        cursor = Some(page.next_cursor);
    }
}

/// Appends the statements of one mapped entry; returns 1 when it queued a buyer message.
fn effects(stmts: &mut Vec<Stmt>, shop: &str, kf: &str, mapped: Mapped, now: i64) -> usize {
    let count = |r: &'static str| metrics::counter!("shouhou_wecom_messages_total", "result" => r).increment(1);
    match mapped {
        Mapped::Buyer(event) => {
            let raw = serde_json::to_string(&event).unwrap_or_default();
            if let Err(e) = InboundEvent::parse(&raw) {
                count("malformed");
                tracing::warn!(error = %e, "a WeCom message does not make a valid event; skipped");
                return 0;
            }
            if !event.conversation_id.starts_with(&format!("{kf}:")) {
                count("other_account");
                return 0;
            }
            count("buyer");
            let at = event.sent_at.map_or(now, |t| t.as_millisecond());
            stmts.push(rows::buyer_wrote(shop, &event.conversation_id, at, now));
            stmts.push(intake::event_stmt(shop, &event, &raw, now));
            1
        }
        Mapped::BuyerOther { conversation_id, sent_at, msgtype } => {
            count("buyer_other");
            let at = sent_at.map_or(now, |t| t.as_millisecond());
            stmts.push(rows::buyer_wrote(shop, &conversation_id, at, now));
            stmts.push(audit_stmt(
                now,
                "wecom",
                "wecom_unread_message",
                shop,
                &conversation_id,
                None,
                None,
                json!({"msgtype": msgtype}),
            ));
            0
        }
        Mapped::TakenOver { conversation_id, servicer } => {
            count("taken_over");
            let owner = format!("wecom:{servicer}");
            stmts.push(conversations::set_owner(shop, &conversation_id, &owner, now));
            stmts.push(audit_stmt(
                now,
                "wecom",
                "wecom_taken_over",
                shop,
                &conversation_id,
                None,
                None,
                json!({"owner": owner}),
            ));
            0
        }
        Mapped::Ended { conversation_id } => {
            count("ended");
            stmts.push(rows::session_ended(shop, &conversation_id, now));
            stmts.push(audit_stmt(now, "wecom", "wecom_session_ended", shop, &conversation_id, None, None, json!({})));
            0
        }
        Mapped::SendFailed { conversation_id, msgid, fail_type } => {
            count("send_failed");
            stmts.push(audit_stmt(
                now,
                "wecom",
                "wecom_send_failed",
                shop,
                &conversation_id,
                None,
                None,
                json!({"msgid": msgid, "fail_type": fail_type}),
            ));
            0
        }
        Mapped::Ignore(_) => {
            count("ignored");
            0
        }
    }
}
