//! Who am I (`/api/auth/me`, the same context as `auth.v1.usercontext`) and which rooms may I join.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::error::ApiError;
use super::extract::Caller;
use super::state::SharedState;
use crate::context::{ContextError, UserContext, user_context};

pub(super) async fn me(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<UserContext>, ApiError> {
    let snapshot = state.permissions.load();
    user_context(&caller.claims, &snapshot, state.tokens.refresh())
        .await
        .map(Json)
        .map_err(|e| match e {
            ContextError::Store => ApiError::unavailable(e.code(), e.to_string()),
        })
}

#[derive(Debug, Serialize)]
pub(super) struct RoomEntry {
    name: String,
    read: bool,
    write: bool,
}

pub(super) async fn rooms(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Vec<RoomEntry>>, ApiError> {
    let snapshot = state.permissions.load();
    let user = caller
        .claims
        .user(&snapshot)
        .ok_or_else(|| ApiError::unauthorized("unknown-user", "user no longer exists"))?;
    Ok(Json(
        snapshot
            .rooms_for(&user)
            .into_iter()
            .map(|(name, access)| RoomEntry {
                name,
                read: access.can_read(),
                write: access.can_write(),
            })
            .collect(),
    ))
}
