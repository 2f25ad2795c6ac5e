//! The user context of a verified access token, as internal services (`auth.v1.usercontext`)
//! and the page (`GET /api/auth/me`) see it: who, from which application, with which roles
//! (from the permission files, at every call) and which session.

use serde::Serialize;
use tracing::warn;

use crate::permissions::Snapshot;
use crate::tokens::AccessClaims;
use crate::tokens::refresh::RefreshService;

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

/// Why no context could be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("user no longer exists")]
    UnknownUser,
    #[error("the token store is unavailable")]
    Store,
}

impl ContextError {
    pub fn code(&self) -> &'static str {
        match self {
            ContextError::UnknownUser => "unknown-user",
            ContextError::Store => "store-unavailable",
        }
    }
}

/// The context of a verified access token: the user from the files, the application
/// (`clientId`) from its login session. A store error is logged and reported as such.
pub async fn user_context(
    claims: &AccessClaims,
    snapshot: &Snapshot,
    sessions: &RefreshService,
) -> Result<UserContext, ContextError> {
    let user = claims.user(snapshot).ok_or(ContextError::UnknownUser)?;
    let client_id = match sessions.session(&claims.sid).await {
        Ok(s) => s.and_then(|s| s.client_id),
        Err(e) => {
            warn!(error = %e, session = %claims.sid, "token store error while reading a session");
            return Err(ContextError::Store);
        }
    };
    Ok(UserContext {
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
