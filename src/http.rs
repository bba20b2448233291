//! HTTP: the REST routes of `shouhou serve` ([`router`]): signed intake (`POST /v1/events`), the
//! API for agents (bearer tokens with roles), the consumer-webhook outbox, health, metrics and the
//! OpenAPI document (`crate::app` adds the Chatwoot webhook and the console beside them). Errors are JSON
//! `{"error": "..."}` with a status that says what to fix; internals never leak into a response.
//! Handlers are thin: parse, call [`crate::review`] or the store, map the answer.

pub mod webhooks;

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
use sha2::Digest;

use crate::{
    domain::{event::InboundEvent, role::Role, sign},
    intake::store_event,
    review::{self, ReviewError},
    state::{AppState, MAX_BODY_BYTES, now_ms},
    store::{
        StoreError, audit, calls, conversations, drafts, inbox,
        promises::{self, PromiseStatus},
    },
};

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

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        let status = match &e {
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::Decided(_) | ReviewError::DecidedMeanwhile | ReviewError::NotWaiting => StatusCode::CONFLICT,
            ReviewError::NoText | ReviewError::Blocked(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::EmptyReason => StatusCode::BAD_REQUEST,
            ReviewError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        match e {
            ReviewError::Blocked(guard) => Self(status, json!({"error": "the guard blocks this text", "guard": guard})),
            ReviewError::Store(e) => e.into(),
            e => Self::new(status, e.to_string()),
        }
    }
}

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// The REST routes, documented in `/openapi.json` (a test checks both agree).
pub fn router(shared: Arc<AppState>) -> Router {
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
        .route("/v1/webhooks/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/deliveries/{id}/redeliver", post(webhooks::redeliver))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(|| async { ([("content-type", "application/json")], OPENAPI) }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("http/openapi.json");

/// Stands in for the secret of a shop that does not exist, so an unknown shop costs and answers
/// exactly like a known one with a wrong signature (shop ids cannot be enumerated).
static UNKNOWN_SHOP: std::sync::LazyLock<sign::Secret> = std::sync::LazyLock::new(|| {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source works");
    sign::Secret::from_bytes(&key).expect("32 bytes is a valid key")
});

async fn intake(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
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

/// A refused API request, counted and logged (never the token).
fn refuse(status: StatusCode, why: &'static str) -> ApiError {
    metrics::counter!("shouhou_api_refused_total", "status" => status.as_str().to_owned()).increment(1);
    tracing::warn!(status = status.as_u16(), why, "API request refused");
    ApiError::new(status, why)
}

pub(crate) fn auth(s: &AppState, headers: &HeaderMap, need: Role) -> ApiResult<(String, Role)> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    let role = *s.cfg.api_tokens.get(token).ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "unknown token"))?;
    if role < need {
        return Err(refuse(StatusCode::FORBIDDEN, "this role may not do that"));
    }
    // The audit names a token by a hash, never by any of its characters.
    let who = format!("{role:?}:{:08x}", crate::domain::templates::fnv1a(token.as_bytes()) as u32).to_lowercase();
    Ok((who, role))
}

#[derive(Deserialize)]
struct QueueQuery {
    group: Option<String>,
    intent: Option<String>,
    shop: Option<String>,
}

async fn queue(
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

async fn draft(State(s): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
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

async fn approve(State(s): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(json!(review::approve(&s, &who, id).await?)))
}

/// The longest edited reply, in characters (a reply is a chat message, not a document).
pub const MAX_EDIT_CHARS: usize = 2000;
/// Blocked edits one token may make per minute before further edits are refused with a 429.
pub const MAX_BLOCKED_EDITS_PER_MINUTE: i64 = 30;

#[derive(Deserialize)]
struct EditBody {
    text: String,
}

async fn edit(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<EditBody>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
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
    Ok(Json(json!(review::edit(&s, &who, id, &body.text).await?)))
}

#[derive(Deserialize)]
struct RejectBody {
    reason: String,
}

async fn reject(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<RejectBody>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    Ok(Json(json!(review::reject(&s, &who, id, &body.reason).await?)))
}

async fn conversation(
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

async fn takeover(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    review::take_over(&s, &who, &shop, &id).await?;
    Ok(Json(json!({"shop_id": shop, "conversation_id": id, "owner": who})))
}

async fn handback(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Agent)?;
    review::hand_back(&s, &who, &shop, &id).await?;
    Ok(Json(json!({"shop_id": shop, "conversation_id": id, "owner": "bot"})))
}

async fn promises(State(s): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Agent)?;
    let now = now_ms();
    let items: Vec<Value> = promises::list(&s.store)
        .await?
        .iter()
        .map(|p| json!({"id": p.id, "shop_id": p.shop_id, "conversation_id": p.conversation_id, "what": p.what, "due_at": p.due_at, "status": p.status, "overdue": p.status == PromiseStatus::Open && p.due_at < now}))
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn calls(State(s): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Agent)?;
    let items: Vec<Value> = calls::list(&s.store)
        .await?
        .iter()
        .map(|c| json!({"id": c.id, "shop_id": c.shop_id, "conversation_id": c.conversation_id, "next_allowed_at": c.next_allowed_at, "script": serde_json::from_str::<Value>(&c.script).unwrap_or(Value::Null), "attempts": c.attempts, "status": c.status}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
struct AuditQuery {
    shop: Option<String>,
    conversation_id: Option<String>,
    /// The `next` of the previous page.
    after: Option<i64>,
    limit: Option<i64>,
}

/// The default page of `GET /v1/audit`.
const AUDIT_PAGE: i64 = 100;

async fn audit(
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

async fn readyz(State(s): State<Arc<AppState>>) -> ApiResult<&'static str> {
    s.store.ping().await?;
    Ok("ready")
}

async fn metrics_text(State(s): State<Arc<AppState>>) -> String {
    s.metrics.render()
}
