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
    auth(&s, &headers, Role::Agent)?;
    let now = now_ms();
    let items: Vec<Value> = promises::list(&s.store)
        .await?
        .iter()
        .map(|p| json!({"id": p.id, "shop_id": p.shop_id, "conversation_id": p.conversation_id, "what": p.what, "due_at": p.due_at, "status": p.status, "overdue": p.status == PromiseStatus::Open && p.due_at < now}))
        .collect();
    Ok(Json(json!({"items": items})))
}

pub(super) async fn calls(State(s): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Agent)?;
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
    /// The `next` of the previous page.
    after: Option<i64>,
    limit: Option<i64>,
}

/// The default page of `GET /v1/audit`.
const AUDIT_PAGE: i64 = 100;

pub(super) async fn audit(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Supervisor)?;
    let limit = q.limit.unwrap_or(AUDIT_PAGE).clamp(1, audit::MAX_PAGE);
    let rows = audit::page(&s.store, q.shop.as_deref(), q.conversation_id.as_deref(), q.after, limit).await?;
    // The next page starts after the last row when this one was full.
    let next = if i64::try_from(rows.len()).unwrap_or(0) == limit { rows.last().map(|r| r.id) } else { None };
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let draft = if r.draft_id == 0 { Value::Null } else { json!(r.draft_id) };
            json!({"id": r.id, "at": r.at, "actor": r.actor, "kind": r.kind, "shop_id": r.shop_id, "conversation_id": r.conversation_id, "draft_id": draft, "verdict": r.verdict, "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"items": items, "next": next})))
}
