//! The HTTP API (axum): login, refresh, logout, revoke, introspect, user context, rooms,
//! operator endpoints and the chat page.
//!
//! [`router`] builds everything from an [`HttpState`], so tests call it without a socket.
//! Who may call what is decided here, once: the [`Caller`] and [`Admin`] extractors, and
//! [`policy`] for revocations.

mod admin;
mod auth;
mod console;
pub mod cookies;
pub mod error;
mod guest;
mod keylogin;
mod oidc;
pub mod policy;
pub mod ratelimit;
mod sessions;
mod user;
pub mod web;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::routing::{get, post};

use crate::config::HttpSettings;
use crate::forwarded::TrustedProxies;
use crate::ops::Ops;
use crate::permissions::{Permissions, Role};
use crate::tokens::AccessClaims;
use crate::tokens::service::TokenService;
use error::ApiError;
use ratelimit::RateLimiter;

/// Everything the handlers share.
pub struct HttpState {
    pub tokens: Arc<TokenService>,
    pub permissions: Permissions,
    pub settings: HttpSettings,
    pub limiter: RateLimiter,
    /// Unix seconds; tests inject their own clock.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Readiness, status, metrics, live enforcement.
    pub ops: Arc<Ops>,
    /// Whose forwarding headers name the client (`http.trusted_proxies`).
    pub proxies: TrustedProxies,
    /// `tokens.guest_refresh`.
    pub guest_refresh: crate::config::GuestRefresh,
}

impl HttpState {
    /// The state of a running service: the real clock, fresh rate limits.
    pub fn new(
        tokens: Arc<TokenService>,
        permissions: Permissions,
        settings: HttpSettings,
        ops: Arc<Ops>,
    ) -> Self {
        HttpState {
            proxies: TrustedProxies::new(&settings.trusted_proxies),
            tokens,
            permissions,
            settings,
            limiter: RateLimiter::default(),
            clock: Arc::new(crate::clock::now_secs),
            ops,
            guest_refresh: crate::config::GuestRefresh::Default,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

pub type SharedState = Arc<HttpState>;

/// The public router: the chat page and the user API (`http.listen`).
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/guest", post(guest::create))
        .route("/api/auth/challenge", post(keylogin::challenge))
        .route("/api/auth/authenticate", post(keylogin::authenticate))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/revoke", post(auth::revoke))
        .route("/api/auth/introspect", post(auth::introspect))
        .route("/api/auth/me", get(user::me))
        .route("/api/auth/sessions", get(sessions::list))
        .route("/api/console/connections", get(console::connections))
        .route("/api/console/permissions", get(console::permissions))
        .route("/api/console/denies", get(console::denies))
        .route("/api/console/metrics", get(console::metrics))
        .route("/api/console/token-reset", post(admin::token_reset))
        .route("/api/rooms", get(user::rooms))
        .route("/api/auth/oidc/{name}/login", get(oidc::begin))
        .route("/api/auth/oidc/{name}/callback", get(oidc::callback))
        .merge(web::routes())
        .with_state(state)
}

/// The operations router (`http.admin_listen`): metrics, health, readiness and the admin
/// API (admin calls still need an admin's token).
pub fn admin_router(state: SharedState) -> Router {
    Router::new()
        .route("/api/admin/status", get(admin::status))
        .route("/api/admin/token-reset", post(admin::token_reset))
        .route("/metrics", get(admin::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(admin::readyz))
        .with_state(state)
}

/// The client's address: the peer, or behind a trusted proxy the address the proxy
/// forwards (`None` when the server was started without connect info).
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<SharedState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(ClientAddr(peer.map(|p| {
            state
                .proxies
                .client(p, header("forwarded"), header("x-forwarded-for"))
        })))
    }
}

/// Cookie-authenticated requests must come from an allowed origin. State-changing
/// requests must name their origin; others are checked when they do.
pub(crate) fn check_origin(
    state: &HttpState,
    headers: &HeaderMap,
    state_changing: bool,
) -> Result<(), ApiError> {
    match headers.get(ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(o) if state.settings.allowed_origins.iter().any(|a| a == o) => Ok(()),
        Some(_) => Err(ApiError::forbidden("origin not allowed")),
        None if state_changing => Err(ApiError::forbidden("cookie requests must send Origin")),
        None => Ok(()),
    }
}

/// The authenticated caller of an endpoint: `Authorization: Bearer` or, failing that, the
/// `nats_token` cookie (checked against `Origin`; state-changing methods must send one).
pub struct Caller {
    pub claims: AccessClaims,
}

impl Caller {
    /// The roles the permission files (and a provider's role mapping) give the caller now
    /// (none if the user was removed).
    pub fn roles(&self, state: &HttpState) -> Vec<Role> {
        self.claims
            .user(&state.permissions.load())
            .map(|u| u.roles().collect())
            .unwrap_or_default()
    }
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let state_changing = !matches!(parts.method, Method::GET | Method::HEAD);
        authenticate(state, &parts.headers, state_changing)
    }
}

/// A caller whose user is an admin (role `admin` or `sysadmin`) in the permission files now.
pub struct Admin(pub Caller);

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let admin = caller
            .claims
            .user(&state.permissions.load())
            .is_some_and(|u| u.is_admin());
        if !admin {
            return Err(ApiError::forbidden("your roles do not allow this"));
        }
        Ok(Admin(caller))
    }
}

/// Authenticate by bearer token or cookie (see [`Caller`]).
pub(crate) fn authenticate(
    state: &HttpState,
    headers: &HeaderMap,
    state_changing: bool,
) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token)
        .map(str::trim);
    let token = match bearer {
        Some(t) => t,
        None => {
            let t = cookies::get(headers, cookies::ACCESS_COOKIE)
                .ok_or_else(|| ApiError::unauthorized("missing-token", "no access token"))?;
            check_origin(state, headers, state_changing)?;
            t
        }
    };
    let claims = state
        .tokens
        .verify_access(token, state.now())
        .map_err(|e| ApiError::unauthorized(e.code(), e.to_string()))?;
    Ok(Caller { claims })
}

/// This page's origin, from `Host` (a host name and port only) and `http.secure_cookies`.
pub(crate) fn page_origin(state: &HttpState, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let name = web::host_name(host)?;
    let port = &host[name.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !port_ok {
        return None;
    }
    let scheme = if state.settings.secure_cookies {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{host}"))
}
