//! What the bot promised and the calls it asked for (`GET /v1/promises`, `GET /v1/calls`), and
//! the audit log (`GET /v1/audit`, supervisors).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
    http::HeaderMap,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, auth};
use crate::{
    domain::role::Role,
    state::{AppState, now_ms},
    store::{
        audit, calls,
        promises::{self, PromiseStatus},
    },
};

pub(super) async fn promises(State(s): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    let now = now_ms();
    let items: Vec<Value> = promises::list(&s.store)
        .await?
        .iter()
        .map(|p| json!({"id": p.id, "shop_id": p.shop_id, "conversation_id": p.conversation_id, "what": p.what, "due_at": p.due_at, "status": p.status, "overdue": p.status == PromiseStatus::Open && p.due_at < now}))
        .collect();
    Ok(Json(json!({"items": items})))
}

pub(super) async fn calls(State(s): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    let items: Vec<Value> = calls::list(&s.store)
        .await?
        .iter()
        .map(|c| json!({"id": c.id, "shop_id": c.shop_id, "conversation_id": c.conversation_id, "next_allowed_at": c.next_allowed_at, "script": serde_json::from_str::<Value>(&c.script).unwrap_or(Value::Null), "attempts": c.attempts, "status": c.status}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    shop: Option<String>,
    conversation_id: Option<String>,
}

pub(super) async fn audit(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Supervisor)?;
    let items: Vec<Value> = audit::oldest(&s.store)
        .await?
        .iter()
        .filter(|r| q.shop.as_deref().is_none_or(|x| r.shop_id == x))
        .filter(|r| q.conversation_id.as_deref().is_none_or(|x| r.conversation_id == x))
        .map(|r| {
            let draft = if r.draft_id == 0 { Value::Null } else { json!(r.draft_id) };
            json!({"id": r.id, "at": r.at, "actor": r.actor, "kind": r.kind, "shop_id": r.shop_id, "conversation_id": r.conversation_id, "draft_id": draft, "verdict": r.verdict, "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}
