//! Operator endpoints: service status (reloads, live connections, enforcement), token
//! reset by token id, and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{SharedState, authenticate};
use crate::sessions::TokenResetRequest;

pub(super) async fn status(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&state, &headers, false)?.claims;
    if !state
        .snapshot
        .load()
        .user(&caller.sub)
        .is_some_and(|u| u.is_admin())
    {
        return Err(ApiError::forbidden("only admins read the status"));
    }
    let mut status = state.ops.status();
    status["revocations"] = json!(state.tokens.revocations().load().len());
    Ok(Json(status))
}

/// 200 when connected to NATS with permissions loaded, else 503.
pub(super) async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    let (ready, body) = state.ops.readiness();
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

pub(super) async fn token_reset(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<TokenResetRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&state, &headers, true)?.claims;
    let allowed = state
        .snapshot
        .load()
        .user(&caller.sub)
        .is_some_and(|u| u.roles().any(|r| state.ops.token_reset_roles.contains(&r)));
    if !allowed {
        return Err(ApiError::forbidden("your roles may not reset tokens"));
    }
    let Json(req) = body?;
    if let Some(problem) = req.problem() {
        return Err(ApiError::bad_request(problem));
    }
    let sessions = state.ops.sessions.as_ref().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "live enforcement is off",
        )
    })?;
    Ok(Json(json!({ "affected": sessions.token_reset(&req) })))
}

pub(super) async fn metrics(State(state): State<SharedState>) -> String {
    state.ops.metrics.as_ref().map(|h| h.render()).unwrap_or_default()
}
