//! `POST /api/auth/nats-credentials` (operator mode, contract 15): a user JWT for the
//! caller's own nkey with the grant the callout would give for the rooms asked, so the
//! client can reconnect without a callout until it expires.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::error::ApiError;
use super::extract::{Body, access_token};
use super::state::SharedState;
use crate::callout::credentials::CredentialsError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CredentialsRequest {
    public_key: String,
    #[serde(default)]
    rooms: Vec<String>,
}

/// `{jwt, expiresAt, rooms, refused}`: the rooms granted and those left out, as the callout
/// would decide them.
pub(super) async fn mint(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Body(req): Body<CredentialsRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = access_token(&state, &headers, true)?;
    let Some(credentials) = &state.credentials else {
        return Err(refusal(&CredentialsError::OperatorModeOnly));
    };
    let now = state.now();
    let minted = credentials
        .callout
        .credentials(token, &req.public_key, &req.rooms, credentials.ttl, now)
        .await
        .map_err(|e| {
            metrics::counter!("nats_callout_credentials_total", "result" => e.code()).increment(1);
            info!(result = "deny", reason = e.code(), "nats credentials");
            refusal(&e)
        })?;
    let g = &minted.grant;
    let rooms: Vec<&str> = g.rooms.iter().map(|r| r.name.as_str()).collect();
    metrics::counter!("nats_callout_credentials_total", "result" => "minted").increment(1);
    info!(
        result = "allow",
        user = %g.identity.sub,
        session = %g.identity.sid,
        nkey = %req.public_key,
        rooms = %rooms.join(";"),
        expires_at = minted.expires_at,
        "nats credentials"
    );
    state.ops.audit.action(
        "credentials",
        &g.identity.sub,
        now,
        json!({
            "user": g.identity.sub,
            "session": g.identity.sid,
            "nkey": req.public_key,
            "rooms": rooms,
            "refused": g.refused,
            "expiresAt": minted.expires_at,
        }),
    );
    Ok(Json(json!({
        "jwt": minted.jwt,
        "expiresAt": minted.expires_at,
        "rooms": rooms,
        "refused": g.refused,
    })))
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
