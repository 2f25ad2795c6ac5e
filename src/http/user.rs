//! Who am I (`/api/auth/me`, the same context as `auth.v1.usercontext`).

use axum::Json;
use axum::extract::State;

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
