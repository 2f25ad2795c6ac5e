//! Login, refresh, logout, revoke and introspect.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::SET_COOKIE};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::cookies::{self, ACCESS_COOKIE, REFRESH_COOKIE, REFRESH_PATH};
use super::error::ApiError;
use super::policy::{Revoker, authorize_revoke};
use super::{Admin, Caller, ClientAddr, HttpState, SharedState, authenticate, check_origin};
use crate::clock::rfc3339;
use crate::names::validate_name;
use crate::tokens::refresh::{Opening, RefreshError};
use crate::tokens::revocation::{RevokeRequest, RevokeTarget};
use crate::tokens::service::{LifecycleError, Pair};

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

/// The OAuthToken answer. In browser mode both tokens are left out (they travel in cookies).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct OAuthToken {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    access_token_expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    refresh_token_expires_at: String,
    scope: String,
    user_id: String,
    client_id: Option<String>,
    /// What happened, for people: "logged in", "refreshed", "logged in as guest".
    message: &'static str,
}

/// A token-store error on a request path: logged with its cause, then a 503.
pub(super) fn store_unavailable(err: &dyn std::fmt::Display) -> ApiError {
    warn!(error = %err, "token store error");
    ApiError::unavailable("store-unavailable", "the token store is unavailable, try again")
}

pub(super) fn lifecycle_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::Refresh(RefreshError::Store(err)) => store_unavailable(&err),
        LifecycleError::Refresh(r) => ApiError::unauthorized(r.code(), r.to_string()),
        LifecycleError::Token(t) => {
            warn!(error = %t, "could not mint an access token");
            ApiError::internal()
        }
        e @ (LifecycleError::CutoffInFuture | LifecycleError::NoUser) => ApiError::bad_request(e.to_string()),
    }
}

/// How a login proved who it is: counted (`nats_callout_logins_total{result}`), logged and
/// told to the client in the OAuthToken's `message`.
#[derive(Clone, Copy)]
pub(super) struct LoginKind {
    pub method: &'static str,
    pub result: &'static str,
    pub message: &'static str,
}

/// A password login.
pub(super) const PASSWORD: LoginKind = LoginKind {
    method: "password",
    result: "ok",
    message: "logged in",
};

/// Open the session of a login that has proved who `opening.user` is, and answer its tokens.
pub(super) async fn open_session(
    state: &HttpState,
    opening: &Opening<'_>,
    kind: LoginKind,
    browser: bool,
    now: i64,
) -> Result<Response, ApiError> {
    let pair = state.tokens.open(opening, now).await.map_err(lifecycle_error)?;
    metrics::counter!("nats_callout_logins_total", "result" => kind.result).increment(1);
    info!(result = "allow", user = %opening.user, method = kind.method, session = %pair.refresh.session.id, addr = ?opening.address, "login");
    Ok(token_response(state, &pair, browser, kind.message))
}

/// The token response: body plus cookies. `browser` keeps tokens out of the body.
pub(super) fn token_response(
    state: &HttpState,
    pair: &Pair,
    browser: bool,
    message: &'static str,
) -> Response {
    let snapshot = state.permissions.load();
    let scope = pair
        .access
        .user(&snapshot)
        .map(|u| u.roles().map(|r| r.to_string()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let body = OAuthToken {
        access_token: (!browser).then(|| pair.access_token.clone()),
        access_token_expires_at: rfc3339(pair.access.exp),
        refresh_token: (!browser).then(|| pair.refresh.refresh_token.clone()),
        refresh_token_expires_at: rfc3339(pair.refresh.refresh_expires_at),
        scope,
        user_id: pair.access.sub.clone(),
        client_id: pair.refresh.session.client_id.clone(),
        message,
    };
    let mut resp = Json(body).into_response();
    for c in session_cookies(state, pair, browser) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

/// The cookies of a new pair: the access token always, the refresh token for a browser.
pub(super) fn session_cookies(state: &HttpState, pair: &Pair, browser: bool) -> Vec<String> {
    let now = state.now();
    let settings = &state.settings;
    let mut out = vec![cookies::set_cookie(
        settings,
        ACCESS_COOKIE,
        &pair.access_token,
        "/",
        pair.access.exp - now,
    )];
    if browser {
        out.push(cookies::set_cookie(
            settings,
            REFRESH_COOKIE,
            &pair.refresh.refresh_token,
            REFRESH_PATH,
            pair.refresh.refresh_expires_at - now,
        ));
    }
    out
}

pub(super) fn optional_name(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) => validate_name(&s)
            .map(|_| Some(s))
            .map_err(|e| ApiError::bad_request(format!("{field}: {e}"))),
        None => Ok(None),
    }
}

pub(super) async fn login(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let now = state.now();
    if req.cookie {
        check_origin(&state, &headers, true)?;
    }
    let s = &state.settings;
    if let Some(ip) = addr {
        state
            .limiter
            .hit(&format!("addr:{ip}"), s.login_per_address_per_minute, now)
            .map_err(ApiError::rate_limited)?;
    }
    let username = req.username.trim().to_string();
    state
        .limiter
        .hit(
            &format!("user:{}", username.to_lowercase()),
            s.login_per_user_per_minute,
            now,
        )
        .map_err(ApiError::rate_limited)?;
    let device = optional_name("deviceId", req.device_id)?;
    let client_id = optional_name("clientId", req.client_id)?;

    let hash = state
        .permissions
        .load()
        .user(&username)
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
        metrics::counter!("nats_callout_logins_total", "result" => "invalid-credentials").increment(1);
        info!(result = "deny", reason = "invalid-credentials", addr = ?addr, "login");
        return Err(ApiError::unauthorized(
            "invalid-credentials",
            "invalid user name or password",
        ));
    }
    let opening = Opening {
        user: &username,
        device: device.as_deref(),
        client_id: client_id.as_deref(),
        address: addr.map(|a| a.to_string()),
        ..Opening::default()
    };
    open_session(&state, &opening, PASSWORD, req.cookie, now).await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RefreshRequest {
    refresh_token: Option<String>,
}

/// The refresh token from the body, or else the cookie (then `Origin` is checked).
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

/// An optional JSON body: empty is fine, malformed is a 400.
pub(super) fn optional_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

pub(super) async fn refresh(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (token, browser) = presented_refresh(&state, &headers, optional_body(&body)?)?;
    let pair = state
        .tokens
        .rotate(&token, state.now())
        .await
        .map_err(lifecycle_error)?;
    Ok(token_response(&state, &pair, browser, "refreshed"))
}

fn clear_cookies(resp: &mut Response, settings: &crate::config::HttpSettings) {
    for c in [
        cookies::set_cookie(settings, ACCESS_COOKIE, "", "/", 0),
        cookies::set_cookie(settings, REFRESH_COOKIE, "", REFRESH_PATH, 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
}

/// End the caller's session (identified by its refresh token, or its access token) and
/// clear both cookies.
pub(super) async fn logout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let now = state.now();
    let session = match presented_refresh(&state, &headers, optional_body(&body)?) {
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
        None => authenticate(&state, &headers, true)?.claims.sid,
    };
    // A session opened through a provider: the page may end the provider's session too.
    let provider_logout = match state.tokens.refresh().session(&session).await {
        Ok(Some(info)) => info.asserted.and_then(|a| {
            let p = state.ops.providers.by_name(&a.idp)?;
            let back = format!("{}/", super::page_origin(&state, &headers)?);
            crate::oidc::login::end_session_url(p, &back)
        }),
        _ => None,
    };
    let n = state
        .tokens
        .revoke(&RevokeTarget::Session(session), "logout", now)
        .await
        .map_err(lifecycle_error)?;
    let mut body = json!({ "revokedSessions": n });
    if let Some(url) = provider_logout {
        body["providerLogout"] = url.into();
    }
    let mut resp = Json(body).into_response();
    clear_cookies(&mut resp, &state.settings);
    Ok(resp)
}

/// Revoke by session, device, user or everything before a time; who may revoke what is
/// [`authorize_revoke`]. Roles come from the permission files.
pub(super) async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<Json<RevokeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
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
        device: c.did.as_deref(),
        roles: &roles,
    };
    let target = authorize_revoke(&revoker, asked, owner.as_deref()).map_err(ApiError::forbidden)?;
    let reason = format!("revoked by {}", c.sub);
    let n = state
        .tokens
        .revoke(&target, &reason, state.now())
        .await
        .map_err(lifecycle_error)?;
    Ok((StatusCode::OK, Json(json!({ "revokedSessions": n }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntrospectRequest {
    token: String,
}

/// Admins: is this token active, and if not, why (RFC 7662 in spirit).
pub(super) async fn introspect(
    State(state): State<SharedState>,
    _admin: Admin,
    body: Result<Json<IntrospectRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    let now = state.now();
    let refresh = state.tokens.refresh();
    if req
        .token
        .starts_with(crate::tokens::refresh::REFRESH_TOKEN_PREFIX)
    {
        return Ok(Json(match refresh.status(&req.token, now).await {
            Ok((s, verdict)) => json!({
                "active": verdict.is_ok(),
                "tokenType": "refresh_token", "sub": s.user, "sid": s.id, "did": s.device,
                "exp": verdict.as_ref().ok(), "sessionExpiresAt": s.expires_at, "revokedAt": s.revoked_at,
                "reason": s.revoke_reason.or(verdict.err().map(|e| e.code().to_string())),
            }),
            Err(RefreshError::Store(e)) => return Err(store_unavailable(&e)),
            Err(e) => json!({ "active": false, "tokenType": "refresh_token", "reason": e.code() }),
        }));
    }
    Ok(Json(match state.tokens.verify_access(&req.token, now) {
        Ok(c) => json!({
            "active": true, "tokenType": "access_token", "sub": c.sub, "sid": c.sid, "did": c.did,
            "tid": c.tid, "iat": c.iat, "exp": c.exp,
        }),
        Err(e) => json!({ "active": false, "tokenType": "access_token", "reason": e.code() }),
    }))
}
