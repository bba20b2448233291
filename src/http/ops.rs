//! For operators: readiness (the store answers) and the Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;

use super::ApiResult;
use crate::state::AppState;

pub(super) async fn readyz(State(s): State<Arc<AppState>>) -> ApiResult<&'static str> {
    s.store.ping().await?;
    Ok("ready")
}

pub(super) async fn metrics_text(State(s): State<Arc<AppState>>) -> String {
    s.metrics.render()
}
