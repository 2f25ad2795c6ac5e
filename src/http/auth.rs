//! Login, refresh, logout, revoke and introspect.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::cookies::{self, REFRESH_COOKIE};
use super::error::ApiError;
use super::extract::{Admin, Body, Caller, ClientAddr, OptionalBody, check_origin};
use super::policy::{Revoker, authorize_revoke};
use super::session::{
    PASSWORD, application, clear_cookies, lifecycle_error, open, optional_name, store_unavailable,
    token_response,
};
use super::state::{HttpState, LimitKey, SharedState};
use crate::names::validate_name;
use crate::tokens::refresh::{Opening, REFRESH_TOKEN_PREFIX, RefreshError};
use crate::tokens::revocation::{RevokeRequest, RevokeTarget};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LoginRequest {
    username: String,
    password: String,
    device_id: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    cookie: bool,
}

fn invalid_credentials(addr: Option<std::net::IpAddr>) -> ApiError {
    metrics::counter!("nats_callout_logins_total", "result" => "invalid-credentials").increment(1);
    let addr = addr.map(|a| a.to_string()).unwrap_or_default();
    info!(result = "deny", reason = "invalid-credentials", addr, "login");
    ApiError::unauthorized("invalid-credentials", "invalid user name or password")
}

pub(super) async fn login(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Body(req): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    let now = state.now();
    check_origin(&state, &headers, req.cookie)?;
    state.limit_address(addr)?;
    let username = req.username.trim();
    // A name that cannot be a user is refused before it is counted or looked up: the
    // per-user limit keeps only valid (short) names.
    if validate_name(username).is_err() {
        return Err(invalid_credentials(addr));
    }
    state.limit(LimitKey::User(username), state.settings.login_per_user_per_minute)?;
    let device = optional_name("deviceId", req.device_id)?;
    let client_id = application(&state, req.client_id)?;

    let hash = state
        .permissions
        .load()
        .user(username)
        .and_then(|u| u.password_hash().map(str::to_string));
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => crate::password::verify_password(&h, &password),
        None => {
            crate::password::verify_dummy(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err(invalid_credentials(addr));
    }
    let opening = Opening {
        user: username,
        device: device.as_deref(),
        client_id: client_id.as_deref(),
        address: addr.map(|a| a.to_string()),
        ..Opening::default()
    };
    let pair = open(&state, &opening, PASSWORD, now).await?;
    Ok(token_response(&state, &pair, req.cookie, PASSWORD.message))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RefreshRequest {
    refresh_token: Option<String>,
}

/// The refresh token from the body, or else the cookie (then `Origin` must be sent).
fn presented_refresh(
    state: &HttpState,
    headers: &HeaderMap,
    body: Option<RefreshRequest>,
) -> Result<(String, bool), ApiError> {
    if let Some(t) = body.and_then(|b| b.refresh_token).filter(|t| !t.is_empty()) {
        return Ok((t, false));
    }
    let t = cookies::get(headers, REFRESH_COOKIE)
        .ok_or_else(|| ApiError::unauthorized("missing-token", "no refresh token"))?;
    check_origin(state, headers, true)?;
    Ok((t.to_string(), true))
}

pub(super) async fn refresh(
    State(state): State<SharedState>,
    headers: HeaderMap,
    OptionalBody(body): OptionalBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers, false)?;
    let (token, browser) = presented_refresh(&state, &headers, body)?;
    let pair = state
        .tokens
        .rotate(&token, state.now())
        .await
        .map_err(lifecycle_error)?;
    Ok(token_response(&state, &pair, browser, "refreshed"))
}

/// What a logout or a revocation did.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Revoked {
    revoked_sessions: usize,
    /// After a logout from a session opened through a provider: where the page may send the
    /// browser to end the provider's session too.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_logout: Option<String>,
}

/// End the caller's session (identified by its refresh token, or its access token) and
/// clear both cookies.
pub(super) async fn logout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    OptionalBody(body): OptionalBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers, false)?;
    let now = state.now();
    let session = match presented_refresh(&state, &headers, body) {
        Ok((t, _)) => match state.tokens.refresh().session_for_token(&t).await {
            Ok(s) => Some(s.id),
            Err(RefreshError::Store(e)) => return Err(store_unavailable(&e)),
            Err(_) => None,
        },
        Err(e) if e.code != "missing-token" => return Err(e),
        Err(_) => None,
    };
    let session = match session {
        Some(s) => s,
        None => caller?.claims.sid,
    };
    // A session opened through a provider: the page may end the provider's session too.
    let provider_logout = match state.tokens.refresh().session(&session).await {
        Ok(Some(info)) => info.asserted.and_then(|a| {
            let p = state.ops.providers.by_name(&a.idp)?;
            let back = format!("{}/", state.public_origin()?);
            crate::oidc::login::end_session_url(p, &back)
        }),
        _ => None,
    };
    let revoked_sessions = state
        .tokens
        .revoke(&RevokeTarget::Session(session), "logout", now)
        .await
        .map_err(lifecycle_error)?;
    let mut resp = Json(Revoked {
        revoked_sessions,
        provider_logout,
    })
    .into_response();
    clear_cookies(&mut resp, &state.settings);
    Ok(resp)
}

/// Revoke by session, device, user or everything before a time; who may revoke what is
/// [`authorize_revoke`]. Roles come from the permission files.
pub(super) async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Body(req): Body<RevokeRequest>,
) -> Result<Json<Revoked>, ApiError> {
    let asked = match req.target().map_err(|e| ApiError::bad_request(e.to_string()))? {
        // An application of the caller's own, unless a user is named.
        RevokeTarget::Application { user, client_id } if user.is_empty() => RevokeTarget::Application {
            user: caller.claims.sub.clone(),
            client_id,
        },
        t => t,
    };
    let owner = match &asked {
        RevokeTarget::Session(id) => match state.tokens.refresh().session(id).await {
            Ok(s) => s.map(|s| s.user),
            Err(e) => return Err(store_unavailable(&e)),
        },
        _ => None,
    };
    if caller.claims.user(&state.permissions.load()).is_none() {
        return Err(ApiError::forbidden("unknown user"));
    }
    let roles = caller.roles(&state);
    let c = &caller.claims;
    let revoker = Revoker {
        user: &c.sub,
        roles: &roles,
    };
    let target = authorize_revoke(&revoker, asked, owner.as_deref()).map_err(ApiError::forbidden)?;
    let reason = format!("revoked by {}", c.sub);
    let revoked_sessions = state
        .tokens
        .revoke(&target, &reason, state.now())
        .await
        .map_err(lifecycle_error)?;
    let what = serde_json::json!({"target": target, "sessions": revoked_sessions});
    state.ops.audit.action("revocation", &c.sub, state.now(), what);
    Ok(Json(Revoked {
        revoked_sessions,
        provider_logout: None,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntrospectRequest {
    token: String,
}

/// RFC 7662 in spirit: is a token active, whose, and if not, why.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Introspection {
    Access(AccessStatus),
    Refresh(RefreshStatus),
    Inactive(Inactive),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AccessStatus {
    active: bool,
    token_type: &'static str,
    sub: String,
    sid: String,
    did: Option<String>,
    tid: String,
    iat: i64,
    exp: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefreshStatus {
    active: bool,
    token_type: &'static str,
    sub: String,
    sid: String,
    did: Option<String>,
    exp: Option<i64>,
    session_expires_at: i64,
    revoked_at: Option<i64>,
    reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Inactive {
    active: bool,
    token_type: &'static str,
    reason: &'static str,
}

/// Admins: is this token active, and if not, why.
pub(super) async fn introspect(
    State(state): State<SharedState>,
    _admin: Admin,
    Body(req): Body<IntrospectRequest>,
) -> Result<Json<Introspection>, ApiError> {
    let now = state.now();
    let inactive = |token_type, reason| {
        Introspection::Inactive(Inactive {
            active: false,
            token_type,
            reason,
        })
    };
    if req.token.starts_with(REFRESH_TOKEN_PREFIX) {
        return Ok(Json(match state.tokens.refresh().status(&req.token, now).await {
            Ok((s, verdict)) => Introspection::Refresh(RefreshStatus {
                active: verdict.is_ok(),
                token_type: "refresh_token",
                sub: s.user,
                sid: s.id,
                did: s.device,
                exp: verdict.as_ref().ok().copied(),
                session_expires_at: s.expires_at,
                revoked_at: s.revoked_at,
                reason: s.revoke_reason.or(verdict.err().map(|e| e.code().to_string())),
            }),
            Err(RefreshError::Store(e)) => return Err(store_unavailable(&e)),
            Err(e) => inactive("refresh_token", e.code()),
        }));
    }
    Ok(Json(match state.tokens.verify_access(&req.token, now) {
        Ok(c) => Introspection::Access(AccessStatus {
            active: true,
            token_type: "access_token",
            sub: c.sub,
            sid: c.sid,
            did: c.did,
            tid: c.tid,
            iat: c.iat,
            exp: c.exp,
        }),
        Err(e) => inactive("access_token", e.code()),
    }))
}
