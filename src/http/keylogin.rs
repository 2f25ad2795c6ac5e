//! Login by proving a key: `POST /api/auth/challenge {publicKey}` → `{challenge, expiresAt}`;
//! `POST /api/auth/authenticate {challenge, publicKey, signature, deviceId?, clientId?,
//! cookie?}` → an OAuthToken as after a password login (see [`crate::tokens::challenge`]).
//! Rate limited like password logins: per client address and per key.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{LoginKind, PASSWORD, open_session, optional_name, store_unavailable};
use super::error::ApiError;
use super::{ClientAddr, HttpState, SharedState, check_origin};
use crate::clock::rfc3339;
use crate::tokens::challenge::{ChallengeError, IssueError};
use crate::tokens::refresh::Opening;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ChallengeRequest {
    public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AuthenticateRequest {
    challenge: String,
    public_key: String,
    signature: String,
    device_id: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    cookie: bool,
}

fn refused(e: &ChallengeError) -> ApiError {
    metrics::counter!("nats_callout_logins_total", "result" => e.code()).increment(1);
    match e {
        ChallengeError::BadPublicKey => {
            ApiError::new(axum::http::StatusCode::BAD_REQUEST, e.code(), e.to_string())
        }
        _ => ApiError::unauthorized(e.code(), e.to_string()),
    }
}

fn limit(state: &HttpState, key: String, per_minute: u32) -> Result<(), ApiError> {
    state
        .limiter
        .hit(&key, per_minute, state.now())
        .map_err(ApiError::rate_limited)
}

pub(super) async fn challenge(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<ChallengeRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    if let Some(ip) = addr {
        limit(
            &state,
            format!("addr:{ip}"),
            state.settings.login_per_address_per_minute,
        )?;
    }
    // Issued for any well-formed key: whether someone logs in with it is not told here.
    match state.tokens.keys().issue_challenge(&req.public_key, state.now()) {
        Ok((challenge, exp)) => Ok(Json(json!({"challenge": challenge, "expiresAt": rfc3339(exp)}))),
        Err(IssueError::Challenge(e)) => Err(refused(&e)),
        Err(IssueError::Key(e)) => {
            tracing::warn!(error = %e, "could not sign a login challenge");
            Err(ApiError::internal())
        }
    }
}

pub(super) async fn authenticate(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Result<Json<AuthenticateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    if req.cookie {
        check_origin(&state, &headers, true)?;
    }
    let s = &state.settings;
    if let Some(ip) = addr {
        limit(&state, format!("addr:{ip}"), s.login_per_address_per_minute)?;
    }
    limit(
        &state,
        format!("key:{}", req.public_key),
        s.login_per_user_per_minute,
    )?;
    let device = optional_name("deviceId", req.device_id)?;
    let client_id = optional_name("clientId", req.client_id)?;
    let now = state.now();
    let c = state
        .tokens
        .keys()
        .check_answer(&req.challenge, &req.public_key, &req.signature, now)
        .map_err(|e| refused(&e))?;
    let first = state
        .tokens
        .refresh()
        .use_once(&format!("challenge:{}", c.nonce), c.exp)
        .await
        .map_err(|e| store_unavailable(&e))?;
    if !first {
        return Err(refused(&ChallengeError::Replayed));
    }
    let snapshot = state.permissions.load();
    let Some(user) = snapshot.user_by_nkey(&req.public_key).map(|u| u.id().to_string()) else {
        return Err(refused(&ChallengeError::UnknownKey));
    };
    drop(snapshot);
    let opening = Opening {
        user: &user,
        device: device.as_deref(),
        client_id: client_id.as_deref(),
        address: addr.map(|a| a.to_string()),
        ..Opening::default()
    };
    let kind = LoginKind {
        method: "nkey",
        ..PASSWORD
    };
    open_session(&state, &opening, kind, req.cookie, now).await
}
