//! Who am I (`/api/auth/me`, also served on NATS as `auth.v1.usercontext`) and which rooms may I join.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use super::error::ApiError;
use super::{SharedState, authenticate};
use crate::permissions::Snapshot;
use crate::tokens::AccessClaims;

/// What internal services learn about a caller. Roles come from the permission files.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserContext {
    pub id: String,
    pub client_id: Option<String>,
    pub roles: Vec<String>,
    pub data: UserData,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserData {
    pub session_id: String,
    pub device_id: Option<String>,
    pub token_id: String,
    pub expires_at: i64,
}

/// Build the context of a verified access token; `None` if the user left the files.
pub fn user_context(
    claims: &AccessClaims,
    snapshot: &Snapshot,
    client_id: Option<String>,
) -> Option<UserContext> {
    let user = snapshot.user(&claims.sub)?;
    Some(UserContext {
        id: claims.sub.clone(),
        client_id,
        roles: user.roles().map(|r| r.to_string()).collect(),
        data: UserData {
            session_id: claims.sid.clone(),
            device_id: claims.did.clone(),
            token_id: claims.tid.clone(),
            expires_at: claims.exp,
        },
    })
}

pub(super) async fn me(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Json<UserContext>, ApiError> {
    let caller = authenticate(&state, &headers, false)?;
    let client_id = state
        .tokens
        .refresh()
        .session(&caller.claims.sid)
        .ok()
        .flatten()
        .and_then(|s| s.client_id);
    let snapshot = state.snapshot.load();
    user_context(&caller.claims, &snapshot, client_id)
        .map(Json)
        .ok_or_else(|| ApiError::unauthorized("unknown-user", "user no longer exists"))
}

#[derive(Debug, Serialize)]
pub(super) struct RoomEntry {
    name: String,
    read: bool,
    write: bool,
}

pub(super) async fn rooms(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Json<Vec<RoomEntry>>, ApiError> {
    let caller = authenticate(&state, &headers, false)?;
    let snapshot = state.snapshot.load();
    let user = snapshot
        .user(&caller.claims.sub)
        .ok_or_else(|| ApiError::unauthorized("unknown-user", "user no longer exists"))?;
    Ok(Json(
        snapshot
            .rooms_for(user)
            .into_iter()
            .map(|(name, access)| RoomEntry {
                name,
                read: access.can_read(),
                write: access.can_write(),
            })
            .collect(),
    ))
}
