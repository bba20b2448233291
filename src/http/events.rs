//! `POST /v1/events`: the signed webhook intake (Standard Webhooks, per-shop secrets). The
//! answer comes only after the event is stored.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;
use sha2::Digest;

use super::{ApiError, ApiResult};
use crate::{
    domain::{event::InboundEvent, sign},
    intake::store_event,
    state::{AppState, now_ms},
    store::inbox,
};

/// Stands in for the secret of a shop that does not exist, so an unknown shop costs and answers
/// exactly like a known one with a wrong signature (shop ids cannot be enumerated).
static UNKNOWN_SHOP: std::sync::LazyLock<sign::Secret> = std::sync::LazyLock::new(|| {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source works");
    sign::Secret::from_bytes(&key).expect("32 bytes is a valid key")
});

pub(super) async fn intake(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    // The shop is named by a header so the secret can be chosen before the body is trusted.
    let shop =
        h("x-shouhou-shop").ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing header `x-shouhou-shop`"))?;
    let known = s.cfg.shops.get(shop);
    let secrets = known.map_or(std::slice::from_ref(&*UNKNOWN_SHOP), Vec::as_slice);
    let checked =
        sign::verify(secrets, h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), &body, now_ms() / 1000);
    let refused = match (known, checked) {
        (_, Err(e)) => Some(e),
        (None, Ok(())) => Some(sign::VerifyError::BadSignature),
        (Some(_), Ok(())) => None,
    };
    if let Some(e) = refused {
        let result = if known.is_some() { "unauthorized" } else { "unknown_shop" };
        metrics::counter!("shouhou_intake_total", "result" => result).increment(1);
        // The shop id is the platform's, not buyer data.
        tracing::warn!(shop = %shop.chars().take(64).collect::<String>(), reason = %e, result, "intake refused");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()));
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "body is not UTF-8"))?;
    let event = InboundEvent::parse(text).map_err(|e| {
        metrics::counter!("shouhou_intake_total", "result" => "malformed").increment(1);
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    if event.shop_id.as_deref().is_some_and(|id| id != shop) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "shop_id in the body differs from `x-shouhou-shop`"));
    }
    let duplicate = store_event(&s, shop, &event, text).await?;
    if duplicate {
        // A redelivery repeats the event; a reused id with other content is refused, not dropped.
        if let Some(stored) = inbox::payload_of(&s.store, shop, &event.message_id).await?
            && InboundEvent::parse(&stored).ok().as_ref() != Some(&event)
        {
            metrics::counter!("shouhou_intake_total", "result" => "conflict").increment(1);
            tracing::warn!(shop, "intake refused: a message_id was reused with different content");
            return Err(ApiError(
                StatusCode::CONFLICT,
                json!({
                    "error": "this message_id was stored with different content; nothing was stored",
                    "stored_sha256": hex::encode(sha2::Sha256::digest(stored.as_bytes())),
                    "offered_sha256": hex::encode(sha2::Sha256::digest(text.as_bytes())),
                }),
            ));
        }
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true, "duplicate": duplicate}))).into_response())
}
