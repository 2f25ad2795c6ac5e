//! Opening a session and answering its tokens: the one path every login takes (password,
//! key, guest, identity provider), the OAuthToken body and the two cookies.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header::SET_COOKIE};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::{info, warn};

use super::cookies::{self, ACCESS_COOKIE, REFRESH_COOKIE, REFRESH_PATH};
use super::error::ApiError;
use super::state::HttpState;
use crate::clock::rfc3339;
use crate::names::validate_name;
use crate::tokens::refresh::{Opening, RefreshError};
use crate::tokens::service::{LifecycleError, Pair};

/// The OAuthToken answer. In browser mode both tokens are left out (they travel in cookies).
#[derive(Serialize)]
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

/// A login through an identity provider's page (its own method and message).
pub(super) const PROVIDER: LoginKind = LoginKind {
    method: "provider",
    result: "ok",
    message: "logged in",
};

/// Open the session of a login that has proved who `opening.user` is: counted, and logged
/// once ("session started", with how the user proved it). The handler answers its tokens
/// ([`token_response`], or cookies and a redirect after a provider's login).
pub(super) async fn open(
    state: &HttpState,
    opening: &Opening<'_>,
    kind: LoginKind,
    now: i64,
) -> Result<Pair, ApiError> {
    let pair = state.tokens.open(opening, now).await.map_err(lifecycle_error)?;
    metrics::counter!("nats_callout_logins_total", "result" => kind.result).increment(1);
    let session = &pair.refresh.session;
    info!(
        result = "allow",
        method = kind.method,
        user = %session.user,
        session = %session.id,
        device = session.device.as_deref().unwrap_or(""),
        client_id = session.client_id.as_deref().unwrap_or(""),
        provider = session.asserted.as_ref().map_or("", |a| a.idp.as_str()),
        addr = opening.address.as_deref().unwrap_or(""),
        "session started"
    );
    Ok(pair)
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

/// The `clientId` of a login (any kind): a valid name and, when the permission files define
/// applications, one of them; else 400 `unknown-application`, counted and logged.
pub(super) fn application(state: &HttpState, client_id: Option<String>) -> Result<Option<String>, ApiError> {
    let client_id = optional_name("clientId", client_id)?;
    match state.permissions.load().check_application(client_id.as_deref()) {
        Ok(()) => Ok(client_id),
        Err(e) => {
            metrics::counter!("nats_callout_logins_total", "result" => e.code()).increment(1);
            // A valid name (checked above): bounded, one token.
            let client_id = client_id.unwrap_or_default();
            info!(result = "deny", reason = e.code(), client_id, "login");
            Err(ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))
        }
    }
}

pub(super) fn clear_cookies(resp: &mut Response, settings: &crate::config::HttpSettings) {
    for c in [
        cookies::set_cookie(settings, ACCESS_COOKIE, "", "/", 0),
        cookies::set_cookie(settings, REFRESH_COOKIE, "", REFRESH_PATH, 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
}
