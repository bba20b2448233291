//! The Chatwoot Agent Bot adapter (`docs/chatwoot.md`).
//!
//! In: Chatwoot POSTs `message_created` (and other) events to `POST /v1/chatwoot/{shop}`. The
//! signature (`X-Chatwoot-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`) is
//! checked when a secret is set, and the shared `?token=` of the bot's outgoing URL when one is set
//! (one of the two is required); only incoming, public messages of conversations the bot owns
//! (`pending`) are taken (the bot's own replies come back as `message_created` too), mapped onto
//! the generic event and stored with [`store_event`]. The answer is immediate (Chatwoot
//! opens the conversation for a person when a bot takes more than 5 s or fails); the processors
//! draft asynchronously. Redeliveries are recognised by the message id.
//!
//! Out: replies are posted to the conversation messages API with the `api_access_token`; a
//! draft that needs a person hands the conversation over by opening it (`toggle_status`), with a
//! private note carrying the bot's draft.
//!
//! Never logs message text or contact data.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use futures_util::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;

pub use crate::config::chatwoot::{ChatwootConfig, SECRET_ENV, TOKEN_ENV, TOLERANCE_SECONDS, URL_TOKEN_ENV};
use crate::{
    domain::event::{Attachment, InboundEvent, Sender},
    intake::store_event,
    outbound::{
        http::outcome,
        platform::{Outcome, Platform},
    },
    state::{AppState, MAX_BODY_BYTES, now_ms},
};

/// Time allowed for one call to the Chatwoot API.
const API_TIMEOUT: Duration = Duration::from_secs(10);

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
    let expected =
        signature.trim().strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()).ok_or(SignatureError::Malformed)?;
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
    use subtle::ConstantTimeEq;
    let Some(given) = query
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find_map(|(k, v)| (k == "token").then(|| v.into_owned())))
    else {
        return false;
    };
    given.as_bytes().ct_eq(expected.as_bytes()).into()
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
                    media_id: None,
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
pub fn router(shared: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chatwoot/{shop}", post(webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn webhook(
    State(s): State<Arc<AppState>>,
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
        && !url_token_matches(query.as_deref(), expected.expose_secret())
    {
        result("unauthorized");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "the `token` query parameter is missing or wrong (see SHOUHOU_CHATWOOT_URL_TOKEN)"}),
        );
    }
    if let Some(secret) = &cw.secret {
        let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        if let Err(e) = verify_signature(
            secret.expose_secret().as_bytes(),
            h("x-chatwoot-timestamp"),
            h("x-chatwoot-signature"),
            &body,
            now_ms() / 1000,
        ) {
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
    match store_event(&s, &shop, &event, &raw).await {
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
                .header("api_access_token", self.cfg.token.expose_secret())
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
        let res = self
            .http
            .get(url)
            .header("api_access_token", self.cfg.token.expose_secret())
            .timeout(API_TIMEOUT)
            .send()
            .await;
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
    fn send<'a>(&'a self, _key: &'a str, reply: &'a Value) -> BoxFuture<'a, Outcome> {
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

    fn open_for_person<'a>(&'a self, shop: &'a str, conversation: &'a str) -> BoxFuture<'a, Outcome> {
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
    ) -> BoxFuture<'a, Outcome> {
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

    #[test]
    fn the_url_token_is_read_from_the_query() {
        // (query, expected token, matches)
        let table = [
            (Some("token=abc-123"), "abc-123", true),
            (Some("x=1&token=abc-123&y=2"), "abc-123", true),
            (Some("token=abc-12"), "abc-123", false),
            (Some("token=abc-1234"), "abc-123", false),
            (Some("tokens=abc-123"), "abc-123", false),
            (Some(""), "abc-123", false),
            (None, "abc-123", false),
            // The first `token` counts.
            (Some("token=wrong&token=abc-123"), "abc-123", false),
        ];
        for (query, expected, want) in table {
            assert_eq!(url_token_matches(query, expected), want, "{query:?}");
        }
    }

    #[test]
    fn signatures_are_checked_over_timestamp_and_body() {
        let (secret, body, ts) = (b"s3cret".as_slice(), br#"{"event":"message_created"}"#.as_slice(), 1_700_000_000);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let t = ts.to_string();
        assert_eq!(verify_signature(secret, Some(&t), Some(&good), body, ts), Ok(()));
        let table: [(Option<&str>, Option<&str>, i64, SignatureError); 5] = [
            (Some(&t), None, ts, SignatureError::Missing("X-Chatwoot-Signature")),
            (None, Some(&good), ts, SignatureError::Missing("X-Chatwoot-Timestamp")),
            (Some("soon"), Some(&good), ts, SignatureError::BadTimestamp),
            (Some(&t), Some(&good), ts + TOLERANCE_SECONDS + 1, SignatureError::Stale),
            (Some(&t), Some("sha256=zz"), ts, SignatureError::Malformed),
        ];
        for (timestamp, signature, now, want) in table {
            assert_eq!(verify_signature(secret, timestamp, signature, body, now), Err(want.clone()), "{want:?}");
        }
        assert_eq!(verify_signature(b"other", Some(&t), Some(&good), body, ts), Err(SignatureError::Mismatch));
    }
}
