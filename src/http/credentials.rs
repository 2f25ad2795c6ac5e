//! `POST /api/auth/nats-credentials` (operator mode, contract 15): a user JWT for the
//! caller's own nkey with the grant the callout would give for the rooms asked, so the
//! client can reconnect without a callout until it expires.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::error::ApiError;
use super::extract::{Body, access_token};
use super::state::SharedState;
use crate::callout::credentials::{CredentialsError, CredentialsRequest};

/// `{jwt, expiresAt, rooms, refused}`: the rooms granted and those left out, as the callout
/// would decide them.
pub(super) async fn mint(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Body(req): Body<CredentialsRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = access_token(&state, &headers, true)?;
    let Some(minter) = &state.credentials else {
        return Err(refusal(&CredentialsError::OperatorModeOnly));
    };
    let answer = minter.mint(token, &req, "http", state.now()).await;
    answer.map(|(_, body)| Json(body)).map_err(|e| refusal(&e))
}

/// The answer for a refusal: 404 where nothing is minted, 400 for bad input, 401 for the
/// token, 403 for a user the files do not place.
fn refusal(e: &CredentialsError) -> ApiError {
    let code = e.code();
    let status = match e {
        CredentialsError::OperatorModeOnly | CredentialsError::Off => StatusCode::NOT_FOUND,
        CredentialsError::BadPublicKey => StatusCode::BAD_REQUEST,
        CredentialsError::Sign(_) => StatusCode::INTERNAL_SERVER_ERROR,
        CredentialsError::NoTarget(_) => StatusCode::FORBIDDEN,
        CredentialsError::Denied(d) => match code {
            "too-many-rooms" | "room-list-too-long" | "bad-room-name" | "reserved-room-name" => {
                StatusCode::BAD_REQUEST
            }
            c if c.starts_with("token-") || c.starts_with("access-token") || c == "no-token" => {
                StatusCode::UNAUTHORIZED
            }
            "session-ended" => StatusCode::UNAUTHORIZED,
            _ if d.who.is_none() => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        },
    };
    ApiError::new(status, code, e.to_string())
}
