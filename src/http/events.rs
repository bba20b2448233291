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

use super::{ApiError, ApiResult};
use crate::{
    domain::{event::InboundEvent, sign},
    intake::store_event,
    state::{AppState, now_ms},
};

pub(super) async fn intake(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    // The shop is named by a header so the secret can be chosen before the body is trusted.
    let shop =
        h("x-shouhou-shop").ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing header `x-shouhou-shop`"))?;
    let Some(secrets) = s.cfg.shops.get(shop) else {
        metrics::counter!("shouhou_intake_total", "result" => "unknown_shop").increment(1);
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown shop `{shop}`")));
    };
    if let Err(e) =
        sign::verify(secrets, h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), &body, now_ms() / 1000)
    {
        metrics::counter!("shouhou_intake_total", "result" => "unauthorized").increment(1);
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
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true, "duplicate": duplicate}))).into_response())
}
