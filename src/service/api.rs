//! HTTP: signed intake (`POST /v1/events`), the REST API for agents (bearer tokens with
//! roles), health, metrics and the OpenAPI document. Errors are JSON `{"error": "..."}` with a
//! status that says what to fix; internals never leak into a response.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    MAX_BODY_BYTES, Role, Shared, audit_stmt, now_ms,
    store::{Arg, Col, Stmt, StoreError},
};
use crate::domain::{event::InboundEvent, sign};

/// An API error: status and message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub Value);

impl ApiError {
    /// An error with a message.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self(status, json!({"error": msg.into()}))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error in a request");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; retry later")
    }
}

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// The routes, documented in `/openapi.json` (a test checks both agree).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/events", post(intake))
        .route("/v1/queue", get(queue))
        .route("/v1/drafts/{id}", get(draft))
        .route("/v1/drafts/{id}/approve", post(approve))
        .route("/v1/drafts/{id}/edit", post(edit))
        .route("/v1/drafts/{id}/reject", post(reject))
        .route("/v1/conversations/{shop}/{id}", get(conversation))
        .route("/v1/conversations/{shop}/{id}/takeover", post(takeover))
        .route("/v1/conversations/{shop}/{id}/handback", post(handback))
        .route("/v1/promises", get(promises))
        .route("/v1/calls", get(calls))
        .route("/v1/audit", get(audit))
        .route("/v1/webhooks/deliveries", get(super::outbox::deliveries))
        .route("/v1/webhooks/deliveries/{id}/redeliver", post(super::outbox::redeliver))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(|| async { ([("content-type", "application/json")], OPENAPI) }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared.clone())
        .merge(super::console::router(shared))
}

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn intake(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
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
    let duplicate = super::store_event(&s, shop, &event, text).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true, "duplicate": duplicate}))).into_response())
}

pub(super) fn auth(s: &Shared, headers: &HeaderMap, need: Role) -> ApiResult<(String, Role)> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    let role = *s.cfg.api_tokens.get(token).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"))?;
    if role < need {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this role may not do that"));
    }
    // The audit names a token by a hash, never by any of its characters.
    let who = format!("{role:?}:{:08x}", crate::domain::templates::fnv1a(token.as_bytes()) as u32).to_lowercase();
    Ok((who, role))
}

/// The draft columns read by [`draft_json`], in [`DRAFT_COLS`] order.
#[macro_export]
#[doc(hidden)]
macro_rules! draft_select {
    () => {
        "SELECT id, shop_id, conversation_id, message_id, route, status, grp, reply, intents, actions, guard, created_at, reason, inbox_seq FROM drafts"
    };
}

/// The columns of `draft_select!`.
pub const DRAFT_COLS: [Col; 14] = [
    Col::I("id"),
    Col::T("shop_id"),
    Col::T("conversation_id"),
    Col::T("message_id"),
    Col::T("route"),
    Col::T("status"),
    Col::T("grp"),
    Col::T("reply"),
    Col::T("intents"),
    Col::T("actions"),
    Col::T("guard"),
    Col::I("created_at"),
    Col::T("reason"),
    Col::I("inbox_seq"),
];

/// A draft row as JSON (the API's shape).
#[must_use]
pub fn draft_json(r: &[super::store::Val]) -> Value {
    let parse = |v: &super::store::Val| serde_json::from_str::<Value>(&v.t()).unwrap_or(Value::Null);
    json!({
        "id": r[0].i(), "shop_id": r[1].t(), "conversation_id": r[2].t(), "message_id": r[3].t(),
        "route": r[4].t(), "status": r[5].t(), "group": r[6].t(), "reply": r[7].opt(),
        "intents": parse(&r[8]), "actions": parse(&r[9]), "guard": parse(&r[10]),
        "created_at": r[11].i(), "reason": r[12].opt(),
    })
}

#[derive(Deserialize)]
struct QueueQuery {
    group: Option<String>,
    intent: Option<String>,
    shop: Option<String>,
}

async fn queue(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Value>> {
    let (_, role) = auth(&s, &headers, Role::PartTime)?;
    const SQL: &str = concat!(draft_select!(), "
        WHERE status IN ('pending_review', 'escalated') ORDER BY CASE WHEN status = 'escalated' THEN 0 ELSE 1 END, created_at, id LIMIT 500");
    let rows = s.store.rows(SQL, &[], &DRAFT_COLS).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| draft_json(r))
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

/// Reads draft `id` (404 when there is none).
///
/// # Errors
/// No such draft, or the store failed.
pub async fn load_draft(s: &Shared, id: i64) -> ApiResult<Vec<super::store::Val>> {
    const SQL: &str = concat!(draft_select!(), " WHERE id = $1");
    s.store
        .rows(SQL, &[Arg::I(id)], &DRAFT_COLS)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no draft {id}")))
}

async fn draft(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    Ok(Json(draft_json(&load_draft(&s, id).await?)))
}

fn open_for_decision(r: &[super::store::Val]) -> ApiResult<()> {
    match r[5].t().as_str() {
        "pending_review" | "escalated" => Ok(()),
        other => Err(ApiError::new(StatusCode::CONFLICT, format!("draft is `{other}`, not waiting for review"))),
    }
}

async fn queue_send(
    s: &Shared,
    who: &str,
    r: &[super::store::Val],
    text: &str,
    kind: &str,
    verdict: &str,
) -> ApiResult<()> {
    let now = now_ms();
    let (id, shop, conv, msg) = (r[0].i(), r[1].t(), r[2].t(), r[3].t());
    // The channel's reply budget: a draft beyond it cannot be sent.
    if let Some(st) = super::budget::standing(s, &shop, &conv, now).await?
        && !st.queued.allowed
    {
        let why =
            super::budget::explain(&st.budget, st.queued.spent.unwrap_or(crate::domain::schedule::Spent::Exhausted));
        return Err(ApiError(
            StatusCode::CONFLICT,
            json!({"error": why, "budget": {"max": st.budget.max(), "remaining": 0}}),
        ));
    }
    let status = if kind == "edit" { "edited" } else { "approved" };
    let counts = s
        .store
        .apply(&[
            Stmt {
                sql: "UPDATE drafts SET status = $2, decided_by = $3, decided_at = $4, reply = $5 WHERE id = $1 AND status IN ('pending_review', 'escalated')",
                args: vec![Arg::I(id), Arg::T(status.into()), Arg::T(who.into()), Arg::I(now), Arg::T(text.into())],
            },
            Stmt {
                sql: "INSERT INTO sends (draft_id, shop_id, conversation_id, reply_to, text, by_person, idempotency_key, next_at, created_at)
                      VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7) ON CONFLICT (idempotency_key) DO NOTHING",
                args: vec![Arg::I(id), Arg::T(shop.clone()), Arg::T(conv.clone()), Arg::T(msg.clone()), Arg::T(text.into()), Arg::T(format!("{shop}:{msg}:draft{id}")), Arg::I(now)],
            },
            audit_stmt(now, who, kind, &shop, &conv, Some(id), Some(verdict), json!({})),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(ApiError::new(StatusCode::CONFLICT, "draft was decided meanwhile"));
    }
    s.new_send.notify_one();
    Ok(())
}

async fn approve(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(approve_draft(&s, &who, id).await?))
}

/// Approves draft `id` as written, on behalf of `who` (the API and the console both call this).
///
/// # Errors
/// No such draft (404), already decided (409), no reply text or a reply the guard blocks (422).
pub async fn approve_draft(s: &Shared, who: &str, id: i64) -> ApiResult<Value> {
    let r = load_draft(s, id).await?;
    open_for_decision(&r)?;
    let Some(text) = r[7].opt() else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the draft has no reply text: edit it instead"));
    };
    let guard: Value = serde_json::from_str(&r[10].t()).unwrap_or(Value::Null);
    if guard["verdict"] != "pass" {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "the guard blocks this text", "guard": guard}),
        ));
    }
    queue_send(s, who, &r, &text, "approve", "pass").await?;
    Ok(json!({"id": id, "status": "approved"}))
}

#[derive(Deserialize)]
struct EditBody {
    text: String,
}

async fn edit(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<EditBody>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(edit_draft(&s, &who, id, &body.text).await?))
}

/// The inbound event a draft answers (for the guard's context and the console's order card).
///
/// # Errors
/// The store failed.
pub async fn draft_event(s: &Shared, inbox_seq: i64) -> ApiResult<Option<InboundEvent>> {
    let payload = s
        .store
        .rows("SELECT payload FROM inbox WHERE seq = $1", &[Arg::I(inbox_seq)], &[Col::T("payload")])
        .await?
        .into_iter()
        .next()
        .map(|v| v[0].t())
        .unwrap_or_default();
    Ok(InboundEvent::parse(&payload).ok())
}

/// Sends an agent's own text for draft `id`, after the guard passes it (the API and the
/// console both call this; a blocked text is audited and refused).
///
/// # Errors
/// No such draft (404), already decided (409), the guard blocks the text (422, with the verdict).
pub async fn edit_draft(s: &Shared, who: &str, id: i64, text: &str) -> ApiResult<Value> {
    let r = load_draft(s, id).await?;
    open_for_decision(&r)?;
    let event = draft_event(s, r[13].i()).await?;
    let verdict = s.assistant.check(text, event.as_ref());
    if !verdict.passed() {
        metrics::counter!("shouhou_guard_blocks_total").increment(1);
        s.store
            .apply(&[audit_stmt(
                now_ms(),
                who,
                "edit_blocked",
                &r[1].t(),
                &r[2].t(),
                Some(id),
                Some("block"),
                json!({"rules": verdict.findings.iter().map(|f| f.rule.clone()).collect::<Vec<_>>()}),
            )])
            .await?;
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "the guard blocks this text", "guard": verdict}),
        ));
    }
    queue_send(s, who, &r, text, "edit", "pass").await?;
    Ok(json!({"id": id, "status": "edited", "guard": verdict}))
}

#[derive(Deserialize)]
struct RejectBody {
    reason: String,
}

async fn reject(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<RejectBody>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(reject_draft(&s, &who, id, &body.reason).await?))
}

/// Rejects draft `id` with a reason (the API and the console both call this).
///
/// # Errors
/// An empty reason (400), no such draft (404), already decided (409).
pub async fn reject_draft(s: &Shared, who: &str, id: i64, reason: &str) -> ApiResult<Value> {
    if reason.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "a rejection needs a reason"));
    }
    let r = load_draft(s, id).await?;
    open_for_decision(&r)?;
    let now = now_ms();
    let counts = s
        .store
        .apply(&[
            Stmt {
                sql: "UPDATE drafts SET status = 'rejected', decided_by = $2, decided_at = $3, reason = $4 WHERE id = $1 AND status IN ('pending_review', 'escalated')",
                args: vec![Arg::I(id), Arg::T(who.to_owned()), Arg::I(now), Arg::T(reason.to_owned())],
            },
            audit_stmt(now, who, "reject", &r[1].t(), &r[2].t(), Some(id), None, json!({"reason": reason})),
        ])
        .await?;
    if counts[0] == 0 {
        return Err(ApiError::new(StatusCode::CONFLICT, "draft was decided meanwhile"));
    }
    Ok(json!({"id": id, "status": "rejected"}))
}

async fn conversation(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    let rows = s
        .store
        .rows(
            "SELECT case_state, owner FROM conversations WHERE shop_id = $1 AND conversation_id = $2",
            &[Arg::T(shop.clone()), Arg::T(id.clone())],
            &[Col::T("case_state"), Col::T("owner")],
        )
        .await?;
    let r = rows.first().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such conversation"))?;
    Ok(Json(
        json!({"shop_id": shop, "conversation_id": id, "owner": r[1].t(), "case": serde_json::from_str::<Value>(&r[0].t()).unwrap_or(Value::Null)}),
    ))
}

async fn set_owner(s: &Shared, who: &str, shop: &str, id: &str, owner: &str, kind: &str) -> ApiResult<Json<Value>> {
    let now = now_ms();
    s.store
        .apply(&[
            Stmt {
                sql: "INSERT INTO conversations (shop_id, conversation_id, case_state, owner, updated_at) VALUES ($1, $2, '{}', $3, $4)
                      ON CONFLICT (shop_id, conversation_id) DO UPDATE SET owner = excluded.owner, updated_at = excluded.updated_at",
                args: vec![Arg::T(shop.into()), Arg::T(id.into()), Arg::T(owner.into()), Arg::I(now)],
            },
            audit_stmt(now, who, kind, shop, id, None, None, json!({"owner": owner})),
        ])
        .await?;
    Ok(Json(json!({"shop_id": shop, "conversation_id": id, "owner": owner})))
}

async fn takeover(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::PartTime)?;
    set_owner(&s, &who, &shop, &id, &who, "takeover").await
}

async fn handback(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::PartTime)?;
    set_owner(&s, &who, &shop, &id, "bot", "handback").await
}

async fn promises(State(s): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    let rows = s
        .store
        .rows(
            "SELECT id, shop_id, conversation_id, what, due_at, status FROM promises ORDER BY due_at LIMIT 1000",
            &[],
            &[
                Col::I("id"),
                Col::T("shop_id"),
                Col::T("conversation_id"),
                Col::T("what"),
                Col::I("due_at"),
                Col::T("status"),
            ],
        )
        .await?;
    let now = now_ms();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| json!({"id": r[0].i(), "shop_id": r[1].t(), "conversation_id": r[2].t(), "what": r[3].t(), "due_at": r[4].i(), "status": r[5].t(), "overdue": r[5].t() == "open" && r[4].i() < now}))
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn calls(State(s): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::PartTime)?;
    let rows = s
        .store
        .rows(
            "SELECT id, shop_id, conversation_id, next_allowed_at, script, attempts, status FROM calls ORDER BY id LIMIT 1000",
            &[],
            &[Col::I("id"), Col::T("shop_id"), Col::T("conversation_id"), Col::T("next_allowed_at"), Col::T("script"), Col::I("attempts"), Col::T("status")],
        )
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| json!({"id": r[0].i(), "shop_id": r[1].t(), "conversation_id": r[2].t(), "next_allowed_at": r[3].opt(), "script": serde_json::from_str::<Value>(&r[4].t()).unwrap_or(Value::Null), "attempts": r[5].i(), "status": r[6].t()}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
struct AuditQuery {
    shop: Option<String>,
    conversation_id: Option<String>,
}

async fn audit(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Supervisor)?;
    let rows = s
        .store
        .rows(
            "SELECT id, at, actor, kind, shop_id, conversation_id, COALESCE(draft_id, 0) AS draft_id, verdict, detail FROM audit ORDER BY id LIMIT 5000",
            &[],
            &[Col::I("id"), Col::I("at"), Col::T("actor"), Col::T("kind"), Col::T("shop_id"), Col::T("conversation_id"), Col::I("draft_id"), Col::T("verdict"), Col::T("detail")],
        )
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .filter(|r| q.shop.as_deref().is_none_or(|x| r[4].t() == x))
        .filter(|r| q.conversation_id.as_deref().is_none_or(|x| r[5].t() == x))
        .map(|r| {
            let draft = if r[6].i() == 0 { Value::Null } else { json!(r[6].i()) };
            json!({"id": r[0].i(), "at": r[1].i(), "actor": r[2].t(), "kind": r[3].t(), "shop_id": r[4].t(), "conversation_id": r[5].t(), "draft_id": draft, "verdict": r[7].opt(), "detail": serde_json::from_str::<Value>(&r[8].t()).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn readyz(State(s): State<Arc<Shared>>) -> ApiResult<&'static str> {
    s.store.ping().await?;
    Ok("ready")
}

async fn metrics_text(State(s): State<Arc<Shared>>) -> String {
    s.metrics.render()
}
