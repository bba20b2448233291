//! The Chatwoot Agent Bot adapter (`docs/chatwoot.md`).
//!
//! In: Chatwoot POSTs `message_created` (and other) events to `POST /v1/chatwoot/{shop}`. The
//! signature (`X-Chatwoot-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`) is
//! checked when a secret is set, and the shared `?token=` of the bot's outgoing URL when one is set
//! (one of the two is required); only incoming, public messages of conversations the bot owns
//! (`pending`) are taken (the bot's own replies come back as `message_created` too), mapped onto
//! the generic event and stored with [`super::store_event`]. The answer is immediate (Chatwoot
//! opens the conversation for a person when a bot takes more than 5 s or fails); the processors
//! draft asynchronously. Redeliveries are recognised by the message id.
//!
//! Out: replies are posted to the conversation messages API with the `api_access_token`; a
//! draft that needs a person hands the conversation over by opening it (`toggle_status`), with a
//! private note carrying the bot's draft.
//!
//! Never logs message text or contact data.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{
    MAX_BODY_BYTES, Shared, now_ms,
    platform::{Outcome, Platform, outcome},
};
use crate::{
    config::ChatwootFile,
    domain::event::{Attachment, InboundEvent, Sender},
};

/// The environment variable holding the bot's (or an agent's) API access token.
pub const TOKEN_ENV: &str = "SHOUHOU_CHATWOOT_TOKEN";

/// The environment variable holding the Agent Bot's webhook secret (optional).
pub const SECRET_ENV: &str = "SHOUHOU_CHATWOOT_SECRET";

/// The environment variable holding the shared token the bot's outgoing URL carries as
/// `?token=`: required when [`SECRET_ENV`] is not set.
pub const URL_TOKEN_ENV: &str = "SHOUHOU_CHATWOOT_URL_TOKEN";

/// How far `X-Chatwoot-Timestamp` may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Time allowed for one call to the Chatwoot API.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// The validated adapter settings with the secrets resolved from the environment.
#[derive(Clone)]
pub struct ChatwootConfig {
    /// The installation, without a trailing slash.
    pub url: String,
    /// `api_access_token` for replies and handoffs.
    pub token: String,
    /// The webhook signing secret; signatures are required when set.
    pub secret: Option<Vec<u8>>,
    /// The shared token of the outgoing URL (`?token=`); required on every event when set.
    pub url_token: Option<String>,
    /// Shop id to Chatwoot account id.
    pub accounts: HashMap<String, i64>,
    /// Leave a private note with the draft on a handoff.
    pub handoff_note: bool,
}

impl std::fmt::Debug for ChatwootConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatwootConfig")
            .field("url", &self.url)
            .field("accounts", &self.accounts)
            .field("signed", &self.secret.is_some())
            .field("url_token", &self.url_token.is_some())
            .finish_non_exhaustive()
    }
}

impl ChatwootConfig {
    /// Builds the settings from `[chatwoot]`, the token from [`TOKEN_ENV`], the secret from
    /// [`SECRET_ENV`] and the URL token from [`URL_TOKEN_ENV`].
    ///
    /// # Errors
    /// The token is missing or empty, or neither the secret nor the URL token is set (the
    /// message names the variables).
    pub fn from_file(
        f: &ChatwootFile,
        token: Option<String>,
        secret: Option<String>,
        url_token: Option<String>,
    ) -> anyhow::Result<Self> {
        let token = token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "[chatwoot] is configured but {TOKEN_ENV} is not set: set it to the Agent Bot's access token"
            )
        })?;
        let secret = secret.filter(|s| !s.trim().is_empty()).map(|s| s.trim().as_bytes().to_vec());
        let url_token = url_token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if secret.is_none() && url_token.is_none() {
            anyhow::bail!(
                "[chatwoot] is configured but neither {SECRET_ENV} nor {URL_TOKEN_ENV} is set: set {SECRET_ENV} to the \
                 Agent Bot's webhook secret or, when your Chatwoot does not sign bot webhooks, {URL_TOKEN_ENV} to a long \
                 random token and add `?token=<it>` to the bot's outgoing URL"
            );
        }
        if let Some(t) = &url_token
            && !t.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        {
            anyhow::bail!("{URL_TOKEN_ENV} must be URL-safe (letters, digits, `-`, `.`, `_`, `~`)");
        }
        if secret.is_none() {
            tracing::warn!("{SECRET_ENV} is not set: Chatwoot events are accepted unsigned, with the URL token");
        }
        Ok(Self {
            url: f.url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            secret,
            url_token,
            accounts: f.accounts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            handoff_note: f.handoff_note,
        })
    }
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is absent.
    #[error("missing header `{0}`")]
    Missing(&'static str),
    /// The timestamp is not unix seconds.
    #[error("`X-Chatwoot-Timestamp` is not a unix time in seconds")]
    BadTimestamp,
    /// The timestamp is outside the tolerance.
    #[error("`X-Chatwoot-Timestamp` is outside the {TOLERANCE_SECONDS} s tolerance")]
    Stale,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("`X-Chatwoot-Signature` must be `sha256=` followed by 64 hex digits")]
    Malformed,
    /// The HMAC does not match.
    #[error("`X-Chatwoot-Signature` does not match the body")]
    Mismatch,
}

/// Checks `X-Chatwoot-Signature` (`sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`)
/// and that `X-Chatwoot-Timestamp` is within [`TOLERANCE_SECONDS`] of `now` (unix seconds).
/// The comparison is constant-time.
///
/// # Errors
/// See [`SignatureError`].
pub fn verify_signature(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("X-Chatwoot-Signature"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-Chatwoot-Timestamp"))?;
    let ts: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    // abs_diff: `now - ts` overflows for a timestamp near i64::MIN and would pass as fresh.
    if ts.abs_diff(now) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = signature.trim().strip_prefix("sha256=").and_then(unhex).ok_or(SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// Whether the `token` query parameter of `query` is `expected`, compared in constant time
/// (the length aside).
#[must_use]
pub fn url_token_matches(query: Option<&str>, expected: &str) -> bool {
    let Some(given) = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")).map(|t| t.to_owned()))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// What to do with one Chatwoot event.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    /// A buyer message for the bot: store it.
    Store(Box<InboundEvent>),
    /// Not for the bot (why): acknowledge and drop.
    Ignore(&'static str),
}

/// Maps a Chatwoot webhook payload onto the generic event, or says why it is not for the bot.
/// `account` is the Chatwoot account configured for `shop`.
///
/// # Errors
/// A `message_created` for the bot that lacks a field the event needs, or comes from another
/// account (the reason names the field).
pub fn map_event(v: &Value, shop: &str, account: i64) -> Result<Intake, String> {
    if v["event"].as_str() != Some("message_created") {
        return Ok(Intake::Ignore("only message_created events are handled"));
    }
    // `message_type` is a string in webhook payloads; integers (0 = incoming) in nested messages.
    let incoming = match &v["message_type"] {
        Value::String(t) => t == "incoming",
        Value::Number(n) => n.as_i64() == Some(0),
        _ => return Err("`message_type` is missing".into()),
    };
    if !incoming {
        return Ok(Intake::Ignore("not an incoming message (outgoing, template or activity)"));
    }
    if v["private"].as_bool() == Some(true) {
        return Ok(Intake::Ignore("a private note"));
    }
    let conv = &v["conversation"];
    if conv["status"].as_str() != Some("pending") {
        return Ok(Intake::Ignore("the conversation is not pending (a person has it)"));
    }
    match v["account"]["id"].as_i64() {
        Some(a) if a == account => {}
        Some(a) => return Err(format!("`account.id` {a} is not the Chatwoot account configured for shop `{shop}`")),
        None => return Err("`account.id` is missing".into()),
    }
    let id = |x: &Value| match x {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    let message_id = id(&v["id"]).ok_or("`id` (the message id) is missing")?;
    let conversation_id = id(&conv["id"]).ok_or("`conversation.id` is missing")?;
    let contact = id(&v["sender"]["id"])
        .or_else(|| id(&conv["meta"]["sender"]["id"]))
        .or_else(|| id(&conv["contact_inbox"]["contact_id"]))
        .ok_or("`sender.id` is missing")?;
    let attachments: Vec<Attachment> = v["attachments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| Attachment {
                    kind: x["file_type"].as_str().unwrap_or("file").to_owned(),
                    url: x["data_url"].as_str().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    let text = v["content"].as_str().unwrap_or_default().to_owned();
    if text.trim().is_empty() && attachments.is_empty() {
        return Ok(Intake::Ignore("no text and no attachments"));
    }
    let sent_at = match &v["created_at"] {
        Value::String(s) => s.parse::<jiff::Timestamp>().ok(),
        Value::Number(n) => n.as_i64().and_then(|s| jiff::Timestamp::from_second(s).ok()),
        _ => None,
    };
    Ok(Intake::Store(Box::new(InboundEvent {
        message_id,
        shop_id: Some(shop.to_owned()),
        platform: Some("chatwoot".into()),
        conversation_id,
        sender: Sender { account_id: contact, nick: v["sender"]["name"].as_str().map(str::to_owned) },
        sent_at,
        text,
        attachments,
        order: None,
    })))
}

/// `POST /v1/chatwoot/{shop}`; mounted always, answers 404 for shops not served by Chatwoot.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chatwoot/{shop}", post(webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn webhook(
    State(s): State<Arc<Shared>>,
    Path(shop): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = |r: &'static str| metrics::counter!("shouhou_chatwoot_events_total", "result" => r).increment(1);
    let Some(cw) = s.cfg.chatwoot.as_ref() else {
        return answer(StatusCode::NOT_FOUND, json!({"error": "the Chatwoot adapter is not configured"}));
    };
    let Some(&account) = cw.accounts.get(&shop) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("shop `{shop}` is not served through Chatwoot")}),
        );
    };
    if let Some(expected) = &cw.url_token
        && !url_token_matches(query.as_deref(), expected)
    {
        result("unauthorized");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "the `token` query parameter is missing or wrong (see SHOUHOU_CHATWOOT_URL_TOKEN)"}),
        );
    }
    if let Some(secret) = &cw.secret {
        let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        if let Err(e) =
            verify_signature(secret, h("x-chatwoot-timestamp"), h("x-chatwoot-signature"), &body, now_ms() / 1000)
        {
            result("unauthorized");
            return answer(StatusCode::UNAUTHORIZED, json!({"error": e.to_string()}));
        }
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            result("malformed");
            return answer(StatusCode::BAD_REQUEST, json!({"error": format!("body is not JSON: {e}")}));
        }
    };
    let event = match map_event(&v, &shop, account) {
        Ok(Intake::Store(e)) => e,
        Ok(Intake::Ignore(why)) => {
            result("ignored");
            return answer(StatusCode::OK, json!({"ignored": why}));
        }
        Err(e) => {
            result("malformed");
            return answer(StatusCode::BAD_REQUEST, json!({"error": e}));
        }
    };
    let raw = serde_json::to_string(&event).unwrap_or_default();
    if let Err(e) = InboundEvent::parse(&raw) {
        result("malformed");
        return answer(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
    }
    match super::store_event(&s, &shop, &event, &raw).await {
        Ok(duplicate) => {
            result(if duplicate { "duplicate" } else { "stored" });
            answer(StatusCode::OK, json!({"stored": true, "duplicate": duplicate}))
        }
        Err(e) => {
            // Not stored: a failure answer makes Chatwoot open the conversation for a person.
            tracing::error!(error = %e, "could not store a Chatwoot event");
            answer(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "the store is unavailable"}))
        }
    }
}

/// Replies and handoffs through the Chatwoot REST API.
pub struct Chatwoot {
    http: reqwest::Client,
    cfg: ChatwootConfig,
}

impl Chatwoot {
    /// A client for `cfg`.
    #[must_use]
    pub fn new(http: reqwest::Client, cfg: ChatwootConfig) -> Self {
        Self { http, cfg }
    }

    fn conversation_url(&self, shop: &str, conversation: &str, tail: &str) -> Option<String> {
        let account = self.cfg.accounts.get(shop)?;
        Some(format!("{}/api/v1/accounts/{account}/conversations/{conversation}/{tail}", self.cfg.url))
    }

    async fn call(&self, url: &str, body: &Value) -> Outcome {
        outcome(
            self.http
                .post(url)
                .header("api_access_token", &self.cfg.token)
                .json(body)
                .timeout(API_TIMEOUT)
                .send()
                .await,
        )
    }
}

impl Chatwoot {
    /// Whether the conversation's latest messages (`GET …/messages`: `{"payload": [...]}`) hold
    /// a private note with exactly `note`. `Err` carries the outcome of a failed read.
    async fn note_present(&self, url: &str, note: &str) -> Result<bool, Outcome> {
        let res = self.http.get(url).header("api_access_token", &self.cfg.token).timeout(API_TIMEOUT).send().await;
        let res = match res {
            Ok(r) if r.status().is_success() => r,
            other => {
                return Err(match outcome(other) {
                    Outcome::Sent => Outcome::Retry("unreadable messages list".into()),
                    o => o,
                });
            }
        };
        let v: Value = res.json().await.map_err(|_| Outcome::Retry("messages list is not JSON".into()))?;
        Ok(v["payload"].as_array().is_some_and(|a| {
            a.iter().any(|m| m["private"].as_bool() == Some(true) && m["content"].as_str() == Some(note))
        }))
    }
}

impl Platform for Chatwoot {
    fn send<'a>(
        &'a self,
        _key: &'a str,
        reply: &'a Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            let shop = reply["shop_id"].as_str().unwrap_or_default();
            let conv = reply["conversation_id"].as_str().unwrap_or_default();
            let Some(url) = self.conversation_url(shop, conv, "messages") else {
                return Outcome::Rejected(format!("shop `{shop}` has no Chatwoot account"));
            };
            let body = json!({"content": reply["text"], "message_type": "outgoing", "private": false});
            self.call(&url, &body).await
        })
    }

    fn hands_off(&self, shop: &str) -> bool {
        self.cfg.accounts.contains_key(shop)
    }

    fn open_for_person<'a>(
        &'a self,
        shop: &'a str,
        conversation: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            let Some(toggle) = self.conversation_url(shop, conversation, "toggle_status") else {
                return Outcome::Rejected(format!("shop `{shop}` has no Chatwoot account"));
            };
            // Toggling to `open` again on a retry is harmless.
            self.call(&toggle, &json!({"status": "open"})).await
        })
    }

    fn leave_note<'a>(
        &'a self,
        shop: &'a str,
        conversation: &'a str,
        note: &'a str,
        maybe_stored: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            if !self.cfg.handoff_note {
                return Outcome::Sent;
            }
            let Some(messages) = self.conversation_url(shop, conversation, "messages") else {
                return Outcome::Rejected(format!("shop `{shop}` has no Chatwoot account"));
            };
            // The messages API takes no idempotency key: after an attempt whose answer was lost,
            // look among the conversation's latest messages for the note before posting it again.
            if maybe_stored {
                match self.note_present(&messages, note).await {
                    Ok(true) => return Outcome::Sent,
                    Ok(false) => {}
                    Err(o) => return o,
                }
            }
            match self.call(&messages, &json!({"content": note, "message_type": "outgoing", "private": true})).await {
                Outcome::Rejected(why) => {
                    // The conversation is open; a refused note does not undo the handoff.
                    tracing::warn!(reason = %why, "Chatwoot refused the handoff note");
                    Outcome::Sent
                }
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_that_overflow_are_stale() {
        let now = 1_700_000_000_i64;
        for ts in [now.wrapping_add(i64::MIN), i64::MIN, i64::MAX, now - TOLERANCE_SECONDS - 1] {
            let got = verify_signature(b"secret", Some(&ts.to_string()), Some("sha256=00"), b"{}", now);
            assert_eq!(got, Err(SignatureError::Stale), "ts {ts}");
        }
    }
}
