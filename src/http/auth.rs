//! Bearer tokens: who calls (named in the audit by a hash of the token) and with which role.

use axum::http::{HeaderMap, StatusCode};

use super::{ApiError, ApiResult};
use crate::{domain::role::Role, state::AppState};

/// A refused API request, counted and logged (never the token).
pub(super) fn refuse(status: StatusCode, why: &'static str) -> ApiError {
    metrics::counter!("shouhou_api_refused_total", "status" => status.as_str().to_owned()).increment(1);
    tracing::warn!(status = status.as_u16(), why, "API request refused");
    ApiError::new(status, why)
}

/// The caller of a request with at least role `need`: its audit name and role.
///
/// # Errors
/// No or an unknown token (401), a role below `need` (403).
pub fn auth(s: &AppState, headers: &HeaderMap, need: Role) -> ApiResult<(String, Role)> {
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
