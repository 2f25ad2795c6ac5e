//! `GET /api/auth/sessions`: the caller's sessions by application and device (admins:
//! anyone's, with `?userId=`), each with when it was opened and last used, from where, and
//! which one is the caller's own. Ending them is `POST /api/auth/revoke` (`sessionId`,
//! `clientId`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::Caller;
use super::session::store_unavailable;
use super::state::SharedState;
use crate::clock::rfc3339;
use crate::names::validate_name;
use crate::tokens::refresh::NEVER;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Which {
    user_id: Option<String>,
}

/// One session as its owner sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionEntry {
    session_id: String,
    user_id: String,
    client_id: Option<String>,
    device_id: Option<String>,
    created_at: String,
    /// The last login or refresh.
    last_used_at: String,
    /// Null for a session that never expires (a guest under `tokens.guest_refresh = "never"`).
    expires_at: Option<String>,
    address: Option<String>,
    /// The identity provider it was opened through, if any.
    provider: Option<String>,
    /// The session of the token that asked.
    current: bool,
}

pub(super) async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    which: Result<Query<Which>, QueryRejection>,
) -> Result<Json<Vec<SessionEntry>>, ApiError> {
    let Query(which) = which.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let me = caller.claims.sub.as_str();
    let user = match which.user_id.as_deref() {
        None => me,
        Some(u) if u == me => me,
        Some(u) => {
            if !caller.is_admin(&state) {
                return Err(ApiError::forbidden("only admins list other users' sessions"));
            }
            validate_name(u).map_err(|e| ApiError::bad_request(format!("userId: {e}")))?;
            u
        }
    };
    let sessions = state
        .tokens
        .refresh()
        .sessions_of(user, state.now())
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionEntry {
                current: s.info.id == caller.claims.sid,
                session_id: s.info.id,
                user_id: s.info.user,
                client_id: s.info.client_id,
                device_id: s.info.device,
                created_at: rfc3339(s.info.created_at),
                last_used_at: rfc3339(s.current_issued_at),
                expires_at: (s.info.expires_at < NEVER)
                    .then(|| rfc3339(s.info.expires_at.min(s.current_expires_at))),
                address: s.info.address,
                provider: s.info.asserted.map(|a| a.idp),
            })
            .collect(),
    ))
}
