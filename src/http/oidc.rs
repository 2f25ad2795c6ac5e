//! "Log in with …": the browser's side of the code flow (see [`crate::oidc::login`]).
//! `GET /api/auth/oidc/{name}/login?deviceId=&clientId=` sends the browser to the provider;
//! `GET /api/auth/oidc/{name}/callback` comes back, opens our own session (cookies, as
//! after a password login) and returns to the page; a failure returns to the page with
//! `?loginError=code` and a logged reason.

use axum::extract::{Path, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::warn;

use super::cookies;
use super::error::ApiError;
use super::extract::ClientAddr;
use super::session::{PROVIDER, application, open, optional_name, session_cookies};
use super::state::{HttpState, SharedState};
use crate::oidc::login::{self, LoginError, PENDING_COOKIE, PENDING_PATH, PENDING_TTL, Pending};
use crate::oidc::{Provider, fetch};
use crate::tokens::refresh::Opening;

/// The label of the key that signs logins in progress.
const PENDING_KEY: &[u8] = b"oidc-login";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Begin {
    device_id: Option<String>,
    client_id: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The providers offering a login: `(name, label)`.
pub(super) fn login_providers(state: &HttpState) -> Vec<(String, String)> {
    state
        .ops
        .providers
        .iter()
        .filter(|p| p.settings.client_id.is_some())
        .map(|p| {
            let label = p
                .settings
                .display_name
                .clone()
                .unwrap_or_else(|| p.name().to_string());
            (p.name().to_string(), label)
        })
        .collect()
}

fn provider<'a>(state: &'a HttpState, name: &str) -> Result<&'a Provider, LoginError> {
    state
        .ops
        .providers
        .by_name(name)
        .map(|p| &**p)
        .filter(|p| p.settings.client_id.is_some())
        .ok_or(LoginError::UnknownProvider)
}

/// Our callback address: the provider's `redirect_url`, or the page's public origin
/// (`http.public_url`) and the callback path; never built from a request header.
fn redirect_uri(state: &HttpState, p: &Provider) -> Option<String> {
    match &p.settings.redirect_url {
        Some(u) => Some(u.clone()),
        None => Some(format!(
            "{}{PENDING_PATH}/{}/callback",
            state.public_origin()?,
            p.name()
        )),
    }
}

fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(SET_COOKIE, v);
        }
    }
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

fn pending_cookie(state: &HttpState, value: &str, max_age: i64) -> String {
    // Lax, not Strict: the provider's redirect back is a cross-site top-level navigation.
    cookies::set_cookie(&state.settings, PENDING_COOKIE, value, PENDING_PATH, max_age)
        .replace("SameSite=Strict", "SameSite=Lax")
}

/// Back to the page with a reason it can show; the login in progress is forgotten.
fn failed(state: &HttpState, provider: &str, e: &LoginError) -> Response {
    // The name comes from the URL: bounded before it is logged.
    let provider: String = provider.chars().take(crate::names::MAX_NAME_LEN).collect();
    warn!(provider, reason = e.code(), error = %e, "login through a provider failed");
    metrics::counter!("nats_callout_logins_total", "result" => e.code()).increment(1);
    see_other(
        &format!("/?loginError={}", e.code()),
        &[pending_cookie(state, "", 0)],
    )
}

pub(super) async fn begin(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    ClientAddr(addr): ClientAddr,
    Query(q): Query<Begin>,
) -> Result<Response, ApiError> {
    state.limit_address(addr)?;
    let device = optional_name("deviceId", q.device_id)?;
    let client_id = application(&state, q.client_id)?;
    let p = match provider(&state, &name) {
        Ok(p) => p,
        Err(e) => return Err(ApiError::not_found(e.code(), e.to_string())),
    };
    let Some(redirect) = redirect_uri(&state, p) else {
        // Refused at start (a provider with a client_id needs redirect_url or public_url).
        warn!(provider = %name, "no callback address: set redirect_url or http.public_url");
        return Err(ApiError::unavailable(
            "no-callback-url",
            "the login through this provider is not set up",
        ));
    };
    let endpoints = match p.endpoints() {
        Some(e) => e,
        // Not reached at start: one attempt now (this path may wait, the callout never does).
        None => match fetch::discover(&fetch::client(), p).await {
            Ok(e) => {
                p.set_endpoints(e.clone());
                e
            }
            Err(e) => return Ok(failed(&state, &name, &LoginError::Fetch(e))),
        },
    };
    let pending = Pending {
        client_id,
        ..Pending::new(&name, device, state.now())
    };
    let url = match login::authorization_url(p, &endpoints, &pending, &redirect) {
        Ok(u) => u,
        Err(e) => return Ok(failed(&state, &name, &e)),
    };
    let key = state.tokens.derived_key(PENDING_KEY);
    let cookie = pending_cookie(&state, &pending.seal(&key), PENDING_TTL);
    Ok(see_other(&url, &[cookie]))
}

pub(super) async fn callback(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let now = state.now();
    if let Err(e) = state.limit_address(addr) {
        return e.into_response();
    }
    match complete(&state, &name, &headers, q, addr, now).await {
        Ok(resp) => resp,
        Err(Outcome::Login(e)) => failed(&state, &name, &e),
        Err(Outcome::Api(e)) => e.into_response(),
    }
}

enum Outcome {
    Login(LoginError),
    Api(ApiError),
}

impl From<LoginError> for Outcome {
    fn from(e: LoginError) -> Self {
        Outcome::Login(e)
    }
}

async fn complete(
    state: &HttpState,
    name: &str,
    headers: &HeaderMap,
    q: Callback,
    address: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Response, Outcome> {
    let p = provider(state, name)?;
    let key = state.tokens.derived_key(PENDING_KEY);
    let pending = cookies::get(headers, PENDING_COOKIE)
        .ok_or(LoginError::BadPending)
        .and_then(|c| Pending::open(c, &key, now))?;
    if pending.provider != name {
        return Err(LoginError::BadPending.into());
    }
    pending.check_state(q.state.as_deref().unwrap_or(""))?;
    if let Some(error) = q.error {
        return Err(LoginError::Provider(error.chars().take(100).collect()).into());
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| LoginError::Provider("no code".into()))?;
    let redirect = redirect_uri(state, p).ok_or(LoginError::BadPending)?;
    let (user, asserted) = login::finish(&fetch::client(), p, &pending, &code, &redirect, now).await?;
    if crate::names::validate_name(&user).is_err()
        || state
            .permissions
            .load()
            .effective(&user, Some(&asserted))
            .is_none()
    {
        warn!(provider = name, user = %user.escape_debug(), "login through a provider: unknown user");
        metrics::counter!("nats_callout_logins_total", "result" => "unknown-user").increment(1);
        return Ok(see_other(
            "/?loginError=unknown-user",
            &[pending_cookie(state, "", 0)],
        ));
    }
    // The files may have changed while the user was at the provider.
    if let Err(e) = state
        .permissions
        .load()
        .check_application(pending.client_id.as_deref())
    {
        return Err(LoginError::Application(e).into());
    }
    let opening = Opening {
        user: &user,
        device: pending.device.as_deref(),
        client_id: pending.client_id.as_deref(),
        asserted: Some(&asserted),
        address: address.map(|a| a.to_string()),
        ..Opening::default()
    };
    let pair = open(state, &opening, PROVIDER, now).await.map_err(Outcome::Api)?;
    let mut set = session_cookies(state, &pair, true);
    set.push(pending_cookie(state, "", 0));
    Ok(see_other("/", &set))
}
