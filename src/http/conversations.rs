//! A conversation's case and owner, and taking it over or handing it back to the bot.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::{Value, json};

use super::{ApiError, ApiResult, auth};
use crate::{domain::role::Role, review, state::AppState, store::conversations};

pub(super) async fn conversation(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Agent)?;
    let r = conversations::get(&s.store, &shop, &id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such conversation"))?;
    Ok(Json(
        json!({"shop_id": shop, "conversation_id": id, "owner": r.owner, "case": serde_json::from_str::<Value>(&r.case_state).unwrap_or(Value::Null)}),
    ))
}

pub(super) async fn takeover(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    review::take_over(&s, &who, &shop, &id).await?;
    Ok(Json(json!({"shop_id": shop, "conversation_id": id, "owner": who})))
}

pub(super) async fn handback(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    review::hand_back(&s, &who, &shop, &id).await?;
    Ok(Json(json!({"shop_id": shop, "conversation_id": id, "owner": "bot"})))
}
