//! `GET /v1/webhooks/deliveries` and `POST /v1/webhooks/deliveries/{id}/redeliver`: the consumer
//! webhook outbox as supervisors see it.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::{Value, json};

use super::{ApiError, ApiResult, auth};
use crate::{
    domain::role::Role,
    state::{AppState, now_ms},
    store::{
        audit::audit_stmt,
        outbox::{self, OutboxStatus},
    },
};

#[derive(serde::Deserialize)]
pub(super) struct DeliveriesQuery {
    status: Option<String>,
    endpoint: Option<String>,
    /// Only rows with a larger id (paging).
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/webhooks/deliveries`: outbox rows, oldest first (supervisor or above).
pub(super) async fn deliveries(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Value>> {
    auth(&s, &headers, Role::Supervisor)?;
    let filter = outbox::Filter {
        status: q.status.unwrap_or_default(),
        endpoint: q.endpoint.unwrap_or_default(),
        after: q.after.unwrap_or(0),
        limit: q.limit.unwrap_or(500).clamp(1, 5000),
    };
    let items: Vec<Value> = outbox::list(&s.store, &filter)
        .await?
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "endpoint": r.endpoint, "event_id": r.event_id, "type": r.event_type,
                "shop_id": r.shop_id, "conversation_id": r.conversation_id, "status": r.status, "attempts": r.attempts,
                "next_at": r.next_at, "delivered_at": (r.delivered_at != 0).then_some(r.delivered_at),
                "last_error": r.last_error, "created_at": r.created_at,
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `POST /v1/webhooks/deliveries/{id}/redeliver`: queues a delivery again, under the same
/// `webhook-id`, with a fresh retry schedule (supervisor or above; audited).
pub(super) async fn redeliver(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (who, _) = auth(&s, &headers, Role::Supervisor)?;
    let Some(r) = outbox::get(&s.store, id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no delivery {id}")));
    };
    if r.status == OutboxStatus::Sending {
        return Err(ApiError::new(StatusCode::CONFLICT, "the delivery is being attempted right now"));
    }
    let now = now_ms();
    let counts = s
        .store
        .apply(&[
            outbox::redeliver(id, now),
            audit_stmt(
                now,
                &who,
                "webhook_redeliver",
                &r.shop_id,
                &r.conversation_id,
                None,
                None,
                json!({"outbox_id": id, "event_id": r.event_id, "was": r.status}),
            ),
        ])
        .await?;
    if counts[0] == 0 {
        // A deliverer claimed it between our read and our write (the audit row stands: the
        // request was made).
        return Err(ApiError::new(StatusCode::CONFLICT, "the delivery is being attempted right now"));
    }
    s.new_webhook.notify_waiters();
    // Any status but `sending` is re-queued (docs/webhooks.md); `was` says which it had.
    Ok(Json(json!({"id": id, "status": "pending", "was": r.status})))
}
