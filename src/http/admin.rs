//! Operator endpoints: service status (reloads, live connections, enforcement), token
//! reset by token id, and Prometheus metrics.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
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
    let ops = &state.ops;
    let enforcement = ops.sessions.as_ref().map(|s| {
        json!({
            "liveConnections": s.len(),
            "leader": s.is_leader(),
            "instances": s.instances(),
            "ldmSent": s.stats.ldm_sent.load(Ordering::Relaxed),
            "kicksSent": s.stats.kicks_sent.load(Ordering::Relaxed),
            "throttled": s.stats.throttled.load(Ordering::Relaxed),
            "lastLagMs": s.stats.last_lag_ms.load(Ordering::Relaxed),
        })
    });
    Ok(Json(json!({
        "permissions": ops.reloader.as_ref().map(|r| r.status()),
        "enforcement": enforcement,
        "revocations": state.tokens.revocations().load().len(),
    })))
}

pub(super) async fn token_reset(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<TokenResetRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&state, &headers, true)?.claims;
    let allowed = state.snapshot.load().user(&caller.sub).is_some_and(|u| {
        u.roles()
            .any(|r| state.ops.token_reset_roles.iter().any(|a| *a == r.to_string()))
    });
    if !allowed {
        return Err(ApiError::forbidden("your roles may not reset tokens"));
    }
    let Json(req) = body?;
    if req.tids.is_empty() {
        return Err(ApiError::bad_request("tids is empty"));
    }
    let sessions = state.ops.sessions.as_ref().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "live enforcement is off",
        )
    })?;
    Ok(Json(
        json!({ "affected": sessions.token_reset(&req.tids, &req.reason) }),
    ))
}

pub(super) async fn metrics(State(state): State<SharedState>) -> String {
    state.ops.metrics.as_ref().map(|h| h.render()).unwrap_or_default()
}
