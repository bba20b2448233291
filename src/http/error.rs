//! The API's error: a status and a JSON body `{"error": "..."}` (the axum error-handling
//! pattern). Store failures become 503 without detail; review refusals map to what to fix.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{review::ReviewError, store::StoreError};

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
            ReviewError::OverBudget(_) => StatusCode::CONFLICT,
            ReviewError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        match e {
            ReviewError::OverBudget(why) => Self(status, json!({"error": why, "budget": {"remaining": 0}})),
            ReviewError::Blocked(guard) => Self(status, json!({"error": "the guard blocks this text", "guard": guard})),
            ReviewError::Store(e) => e.into(),
            e => Self::new(status, e.to_string()),
        }
    }
}

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;
