//! The review queue and drafts: `GET /v1/queue`, `GET /v1/drafts/{id}` and approve / edit /
//! reject, each a thin call into [`crate::review`].

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, auth};
use crate::{domain::role::Role, review, state::AppState, store::drafts};

#[derive(Deserialize)]
pub(super) struct QueueQuery {
    group: Option<String>,
    intent: Option<String>,
    shop: Option<String>,
}

pub(super) async fn queue(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Value>> {
    let (_, role) = auth(&s, &headers, Role::PartTime)?;
    let rows = drafts::waiting(&s.store).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(drafts::DraftRow::to_json)
        .filter(|d| q.group.as_deref().is_none_or(|g| d["group"] == g))
        .filter(|d| q.shop.as_deref().is_none_or(|g| d["shop_id"] == g))
        .filter(|d| {
            q.intent.as_deref().is_none_or(|i| d["intents"].as_array().is_some_and(|a| a.iter().any(|h| h["id"] == i)))
        })
        // Part-time staff see only FAQ-type items of the reception group (seed 002).
        .filter(|d| role != Role::PartTime || d["group"] == "reception")
        .collect();
    metrics::gauge!("shouhou_queue_depth").set(rows.len() as f64);
    Ok(Json(json!({"items": items})))
}

pub(super) async fn draft(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    Ok(Json(review::load(&s, id).await?.to_json()))
}

pub(super) async fn approve(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(json!(review::approve(&s, &who, id).await?)))
}

#[derive(Deserialize)]
pub(super) struct EditBody {
    text: String,
}

pub(super) async fn edit(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<EditBody>,
) -> ApiResult<Json<Value>> {
    let (who, role) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(json!(review::edit(&s, &who, role, id, &body.text).await?)))
}

#[derive(Deserialize)]
pub(super) struct RejectBody {
    reason: String,
}

pub(super) async fn reject(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<RejectBody>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(json!(review::reject(&s, &who, id, &body.reason).await?)))
}
