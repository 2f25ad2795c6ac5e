//! The HTTP API (axum): login, refresh, logout, revoke, introspect, user context, rooms.
//!
//! [`router`] builds everything from an [`HttpState`], so tests call it without a socket.

mod admin;
mod auth;
pub mod cookies;
pub mod error;
pub mod ratelimit;
mod user;
pub mod web;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::request::Parts;
use axum::routing::{get, post};

use crate::config::HttpSettings;
use crate::permissions::Snapshot;
use crate::tokens::AccessClaims;
use crate::tokens::service::TokenService;
use error::ApiError;
use ratelimit::RateLimiter;

pub use user::{UserContext, user_context};

/// Everything the handlers share.
pub struct HttpState {
    pub tokens: Arc<TokenService>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub settings: HttpSettings,
    pub limiter: RateLimiter,
    /// Unix seconds; tests inject their own clock.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Operations: reload status, live enforcement, metrics (absent in router-only tests).
    pub ops: Ops,
}

pub use crate::ops::Ops;

impl HttpState {
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

pub type SharedState = Arc<HttpState>;

/// The API router.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/revoke", post(auth::revoke))
        .route("/api/auth/introspect", post(auth::introspect))
        .route("/api/auth/me", get(user::me))
        .route("/api/rooms", get(user::rooms))
        .route("/api/admin/status", get(admin::status))
        .route("/api/admin/token-reset", post(admin::token_reset))
        .route("/metrics", get(admin::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(admin::readyz))
        .merge(web::routes())
        .with_state(state)
}

/// The client's address, when the server was started with connect info.
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
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

/// The caller of an authenticated endpoint.
pub(crate) struct Caller {
    pub claims: AccessClaims,
}

/// Authenticate by `Authorization: Bearer` or, failing that, the `nats_token` cookie
/// (checked against `Origin`).
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
