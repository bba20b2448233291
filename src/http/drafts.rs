//! The review queue and drafts: `GET /v1/queue`, `GET /v1/drafts/{id}` and approve / edit /
//! reject, each a thin call into [`crate::review`].

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, auth, auth::refuse};
use crate::{
    domain::role::Role,
    review,
    state::{AppState, now_ms},
    store::{audit, drafts},
};

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
    let triaged = if role == Role::PartTime { drafts::triaged(&s.store).await? } else { Vec::new() };
    let policy = &s.assistant.settings;
    let items: Vec<Value> = rows
        .iter()
        .map(drafts::DraftRow::to_json)
        // Part-time staff get what the part-time console shows, masked alike.
        .filter(|d| role != Role::PartTime || review::part_time_may_see(policy, d, &triaged))
        .map(|d| if role == Role::PartTime { review::for_part_time(d) } else { d })
        .filter(|d| q.group.as_deref().is_none_or(|g| d["group"] == g))
        .filter(|d| q.shop.as_deref().is_none_or(|g| d["shop_id"] == g))
        .filter(|d| {
            q.intent.as_deref().is_none_or(|i| d["intents"].as_array().is_some_and(|a| a.iter().any(|h| h["id"] == i)))
        })
        .collect();
    metrics::gauge!("shouhou_queue_depth").set(rows.len() as f64);
    Ok(Json(json!({"items": items})))
}

pub(super) async fn draft(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (_, role) = auth(&s, &headers, Role::PartTime)?;
    let d = review::load(&s, id).await?.to_json();
    if role == Role::PartTime {
        let triaged = drafts::triaged(&s.store).await?;
        if !review::part_time_may_see(&s.assistant.settings, &d, &triaged) {
            return Err(refuse(StatusCode::FORBIDDEN, "this role may not do that"));
        }
        return Ok(Json(review::for_part_time(d)));
    }
    Ok(Json(d))
}

pub(super) async fn approve(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(json!(review::approve(&s, &who, id).await?)))
}

/// The longest edited reply, in characters (a reply is a chat message, not a document).
pub const MAX_EDIT_CHARS: usize = 2000;
/// Blocked edits one token may make per minute before further edits are refused with a 429.
pub const MAX_BLOCKED_EDITS_PER_MINUTE: i64 = 30;

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
    let chars = body.text.chars().count();
    if chars > MAX_EDIT_CHARS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("text: {chars} characters; at most {MAX_EDIT_CHARS} are accepted"),
        ));
    }
    // Each blocked edit writes an audit row: a flood of them would bury the log.
    if audit::count_since(&s.store, &who, "edit_blocked", now_ms() - 60_000).await? >= MAX_BLOCKED_EDITS_PER_MINUTE {
        return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "too many blocked edits; wait a minute"));
    }
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
