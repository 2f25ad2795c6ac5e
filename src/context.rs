//! The user context of a verified access token, as internal services (`auth.v1.usercontext`)
//! and the page (`GET /api/auth/me`) see it: who, from which application, with which roles
//! (from the permission files, at every call) and which session; in the split-token design's
//! shape: `authorization` (what the token is, never the token), `user` (the user as the files
//! describe them) and `userError` when the context is limited. Gateways and services also
//! look a user up by id (`auth.v1.usercontext {userId}`, `GET /api/users/{id}/context`):
//! the same shape without a token's parts (`data`, `authorization`).

use serde::Serialize;
use tracing::warn;

use crate::permissions::{Snapshot, User};
use crate::tokens::AccessClaims;
use crate::tokens::refresh::RefreshService;

/// What internal services learn about a caller. Roles come from the permission files.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserContext {
    pub id: String,
    pub client_id: Option<String>,
    pub roles: Vec<String>,
    /// The token's session; absent for a lookup by user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<UserData>,
    /// What the token is; absent for a lookup by user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// The user as the files describe them now; absent when the context is limited.
    pub user: Option<UserInfo>,
    /// Why the context is limited (user removed from the files, session revoked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_error: Option<String>,
}

/// What the presented token is (never the token itself).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// `Bearer`.
    pub token_type: &'static str,
    /// Unix seconds.
    pub expires_at: i64,
    /// The roles, space separated (as in the OAuthToken).
    pub scope: String,
}

/// The user as the permission files (and a provider's assertion) describe them.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub id: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// Exact rooms the user may join.
    pub room_count: usize,
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
    #[error("the token store is unavailable")]
    Store,
    #[error("userId: {0}")]
    BadUserId(crate::names::NameError),
    #[error("no user {0:?} in the permission files")]
    UnknownUser(String),
}

impl ContextError {
    pub fn code(&self) -> &'static str {
        match self {
            ContextError::Store => "store-unavailable",
            ContextError::BadUserId(_) => "bad-request",
            ContextError::UnknownUser(_) => "unknown-user",
        }
    }
}

/// What the files say of `user`, with these roles.
fn user_info(user: &User, roles: &[String], snapshot: &Snapshot) -> UserInfo {
    UserInfo {
        id: user.id().to_string(),
        roles: roles.to_vec(),
        groups: user.groups().to_vec(),
        room_count: snapshot.rooms_for(user).len(),
    }
}

fn role_names(user: &User) -> Vec<String> {
    user.roles().map(|r| r.to_string()).collect()
}

/// The context of the user `id` of the permission files (a lookup by user, no token): who,
/// with which roles and groups. Users only a provider's token asserts, and guests, are not
/// in the files: unknown here.
///
/// # Errors
/// [`ContextError::BadUserId`] for a name no user can have, [`ContextError::UnknownUser`]
/// for a user the files do not define.
pub fn user_context_of(id: &str, snapshot: &Snapshot) -> Result<UserContext, ContextError> {
    crate::names::validate_name(id).map_err(ContextError::BadUserId)?;
    let user = snapshot
        .user(id)
        .ok_or_else(|| ContextError::UnknownUser(id.to_string()))?;
    let roles = role_names(user);
    Ok(UserContext {
        id: user.id().to_string(),
        client_id: None,
        data: None,
        authorization: None,
        user: Some(user_info(user, &roles, snapshot)),
        user_error: None,
        roles,
    })
}

/// The context of a verified access token: the user from the files, the application
/// (`clientId`) from its login session. A user removed from the files or a session revoked
/// since the token was issued limits it (`userError`, no `user`, no roles). A store error
/// is logged and reported as such.
pub async fn user_context(
    claims: &AccessClaims,
    snapshot: &Snapshot,
    sessions: &RefreshService,
) -> Result<UserContext, ContextError> {
    let session = match sessions.session(&claims.sid).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, session = %claims.sid, "token store error while reading a session");
            return Err(ContextError::Store);
        }
    };
    let revoked = session.as_ref().and_then(|s| s.revoked_at);
    let user = claims.user(snapshot).filter(|_| revoked.is_none());
    let user_error = match (&user, revoked) {
        (_, Some(_)) => Some("the session was revoked since this token was issued".to_string()),
        (None, None) => Some("the user is no longer in the permission files".to_string()),
        (Some(_), None) => None,
    };
    let roles: Vec<String> = user.as_deref().map(role_names).unwrap_or_default();
    Ok(UserContext {
        id: claims.sub.clone(),
        client_id: session
            .and_then(|s| s.client_id)
            .or_else(|| claims.client_id.clone()),
        authorization: Some(Authorization {
            token_type: "Bearer",
            expires_at: claims.exp,
            scope: roles.join(" "),
        }),
        user: user.map(|u| user_info(&u, &roles, snapshot)),
        user_error,
        roles,
        data: Some(UserData {
            session_id: claims.sid.clone(),
            device_id: claims.did.clone(),
            token_id: claims.tid.clone(),
            expires_at: claims.exp,
        }),
    })
}
