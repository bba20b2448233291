//! HTTP: the REST routes of `shouhou serve` ([`router`]): signed intake (`POST /v1/events`), the
//! API for agents (bearer tokens with roles), the consumer-webhook outbox, health, metrics and the
//! OpenAPI document (`crate::app` adds the Chatwoot webhook and the console beside them). Errors
//! are JSON `{"error": "..."}` with a status that says what to fix ([`ApiError`]); internals never
//! leak into a response. Handlers are thin: parse, call [`crate::review`] or the store, map.

mod auth;
mod conversations;
mod drafts;
mod error;
mod events;
mod ops;
mod records;
mod webhooks;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};

pub use auth::auth;
pub use drafts::{MAX_BLOCKED_EDITS_PER_MINUTE, MAX_EDIT_CHARS};
pub use error::{ApiError, ApiResult};

use crate::state::{AppState, MAX_BODY_BYTES};

/// The REST routes, documented in `/openapi.json` (a test checks both agree).
pub fn router(shared: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", post(events::intake))
        .route("/v1/queue", get(drafts::queue))
        .route("/v1/drafts/{id}", get(drafts::draft))
        .route("/v1/drafts/{id}/approve", post(drafts::approve))
        .route("/v1/drafts/{id}/edit", post(drafts::edit))
        .route("/v1/drafts/{id}/reject", post(drafts::reject))
        .route("/v1/conversations/{shop}/{id}", get(conversations::conversation))
        .route("/v1/conversations/{shop}/{id}/takeover", post(conversations::takeover))
        .route("/v1/conversations/{shop}/{id}/handback", post(conversations::handback))
        .route("/v1/promises", get(records::promises))
        .route("/v1/calls", get(records::calls))
        .route("/v1/audit", get(records::audit))
        .route("/v1/webhooks/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/deliveries/{id}/redeliver", post(webhooks::redeliver))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics_text))
        .route("/openapi.json", get(|| async { ([("content-type", "application/json")], OPENAPI) }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("http/openapi.json");
