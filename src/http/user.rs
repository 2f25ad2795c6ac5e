//! Who am I (`/api/auth/me`, the same context as `auth.v1.usercontext`) and who is a user
//! (`/api/users/{id}/context`, admins).

use axum::Json;
use axum::extract::{Path, State};

use super::error::ApiError;
use super::extract::{Admin, Caller};
use super::state::SharedState;
use crate::context::{ContextError, UserContext, user_context, user_context_of};

fn context_error(e: ContextError) -> ApiError {
    match e {
        ContextError::Store => ApiError::unavailable(e.code(), e.to_string()),
        ContextError::BadUserId(_) => ApiError::bad_request(e.to_string()),
        ContextError::UnknownUser(_) => ApiError::not_found(e.code(), e.to_string()),
    }
}

pub(super) async fn me(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<UserContext>, ApiError> {
    let snapshot = state.permissions.load();
    user_context(&caller.claims, &snapshot, state.tokens.refresh())
        .await
        .map(Json)
        .map_err(context_error)
}

/// Admins: the context of a user of the permission files (404 `unknown-user`).
pub(super) async fn context(
    State(state): State<SharedState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<UserContext>, ApiError> {
    user_context_of(&id, &state.permissions.load())
        .map(Json)
        .map_err(context_error)
}
