//! Operator endpoints: service status (reloads, live connections, enforcement), token
//! reset, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{Admin, Body, TokenResetter};
use super::state::SharedState;
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

/// What a token reset reached.
#[derive(Serialize)]
pub(super) struct Reset {
    /// Connections made to decide again.
    affected: usize,
}

/// Token reset by token ids, users or sessions, for the roles in
/// `enforcement.token_reset_roles` (the same rule as publishing `auth.v1.tokenReset`).
pub(super) async fn token_reset(
    State(state): State<SharedState>,
    TokenResetter(who): TokenResetter,
    Body(req): Body<TokenResetRequest>,
) -> Result<Json<Reset>, ApiError> {
    if let Some(problem) = req.problem() {
        return Err(ApiError::bad_request(problem));
    }
    // TokenResetter found live enforcement on.
    let affected = state.ops.enforcement.as_ref().map_or(0, |e| e.token_reset(&req));
    let what = serde_json::json!({"request": req, "affected": affected});
    state
        .ops
        .audit
        .action("token-reset", &who.claims.sub, state.now(), what);
    Ok(Json(Reset { affected }))
}

/// Prometheus text; readiness is taken first, so `nats_callout_part_ready{part}` is current.
pub(super) async fn metrics(State(state): State<SharedState>) -> String {
    state.ops.readiness().await;
    state.ops.metrics.render()
}
