//! Operator endpoints: service status (reloads, live connections, enforcement), token
//! reset, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{Admin, Caller, SharedState};
use crate::permissions::Privileges;
use crate::wire::TokenResetRequest;

pub(super) async fn status(State(state): State<SharedState>, _admin: Admin) -> Json<Value> {
    Json(state.ops.status().await)
}

/// 200 when every part is ready, else 503; the body says which part is not and why.
pub(super) async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    let (ready, body) = state.ops.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Token reset by token ids, users or sessions, for the roles in
/// `enforcement.token_reset_roles` (the same rule as publishing `auth.v1.tokenReset`).
pub(super) async fn token_reset(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<Json<TokenResetRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let enforcement = state.ops.enforcement.as_ref().ok_or_else(|| {
        ApiError::unavailable("unavailable", "live enforcement is off (no nats.system_user)")
    })?;
    let may = caller
        .claims
        .user(&state.permissions.load())
        .is_some_and(|u| Privileges::of(&u, enforcement.token_reset_roles()).token_reset);
    if !may {
        return Err(ApiError::forbidden("your roles may not reset tokens"));
    }
    let Json(req) = body?;
    if let Some(problem) = req.problem() {
        return Err(ApiError::bad_request(problem));
    }
    Ok(Json(json!({ "affected": enforcement.token_reset(&req) })))
}

/// Prometheus text; readiness is taken first, so `nats_callout_part_ready{part}` is current.
pub(super) async fn metrics(State(state): State<SharedState>) -> String {
    state.ops.readiness().await;
    state.ops.metrics.render()
}
