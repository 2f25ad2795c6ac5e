//! Login by proving a key: `POST /api/auth/challenge {publicKey, clientId?, deviceId?}` →
//! `{challenge, expiresAt}` (a `clientId` or `deviceId` given is bound into the challenge);
//! `POST /api/auth/authenticate {challenge, publicKey, signature, deviceId?, clientId?,
//! cookie?}` → an OAuthToken as after a password login (see [`crate::tokens::challenge`]).
//! Rate limited per client address, like every login. Not per key: public keys are public,
//! so a per-key limit would let anyone lock a user out with junk answers, and an ed25519
//! signature cannot be guessed, so it would protect nothing.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Body, ClientAddr, check_origin};
use super::session::{
    LoginKind, PASSWORD, application, lifecycle_error, open, optional_name, token_response,
};
use super::state::SharedState;
use crate::clock::rfc3339;
use crate::tokens::challenge::{Binding, ChallengeError, IssueError};
use crate::tokens::refresh::Opening;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ChallengeRequest {
    public_key: String,
    client_id: Option<String>,
    device_id: Option<String>,
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

/// A challenge to sign.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Challenge {
    challenge: String,
    expires_at: String,
}

pub(super) async fn challenge(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    Body(req): Body<ChallengeRequest>,
) -> Result<Json<Challenge>, ApiError> {
    state.limit_address(addr)?;
    let binding_device = optional_name("deviceId", req.device_id)?;
    let binding_client = application(&state, req.client_id)?;
    let binding = Binding {
        client_id: binding_client.as_deref(),
        device_id: binding_device.as_deref(),
    };
    // Issued for any well-formed key: whether someone logs in with it is not told here.
    match state
        .tokens
        .keys()
        .issue_challenge(&req.public_key, binding, state.now())
    {
        Ok((challenge, exp)) => Ok(Json(Challenge {
            challenge,
            expires_at: rfc3339(exp),
        })),
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
    Body(req): Body<AuthenticateRequest>,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers, req.cookie)?;
    state.limit_address(addr)?;
    let device = optional_name("deviceId", req.device_id)?;
    let client_id = application(&state, req.client_id)?;
    let now = state.now();
    let c = state
        .tokens
        .keys()
        .check_answer(&req.challenge, &req.public_key, &req.signature, now)
        .map_err(|e| refused(&e))?;
    // Before it is used up: the client that asked it may still answer it rightly.
    let answer = Binding {
        client_id: client_id.as_deref(),
        device_id: device.as_deref(),
    };
    c.check_binding(answer).map_err(|e| refused(&e))?;
    let first = state
        .tokens
        .use_once(&format!("challenge:{}", c.nonce), c.exp)
        .await
        .map_err(lifecycle_error)?;
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
    let pair = open(&state, &opening, kind, now).await?;
    Ok(token_response(&state, &pair, req.cookie, kind.message))
}
