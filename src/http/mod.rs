//! The HTTP API (axum): the router. Who may call what is decided in [`extract`] (the
//! [`extract::Caller`], [`extract::Admin`] and [`extract::TokenResetter`] extractors) and
//! [`policy`] (revocations); handlers live one module per area and import what they share
//! from [`state`], [`extract`] and `session`, never from here.
//!
//! The public listener (`http.listen`), built by [`router`]:
//!
//! | method | path | who | handler |
//! |---|---|---|---|
//! | POST | `/api/auth/login` | anyone (rate limited) | `auth` |
//! | POST | `/api/auth/guest` | anyone, with `http.guests` | `guest` |
//! | POST | `/api/auth/challenge`, `/api/auth/authenticate` | anyone (key login) | `keylogin` |
//! | POST | `/api/auth/refresh`, `/api/auth/logout` | a refresh token or cookie | `auth` |
//! | POST | `/api/auth/revoke` | a caller (admins: anyone's) | `auth` |
//! | POST | `/api/auth/introspect` | admins | `auth` |
//! | GET | `/api/auth/me` | a caller | `user` |
//! | GET | `/api/users/{id}/context` | admins | `user` |
//! | GET, POST | `/api/rooms` (`?open=true`: open rooms) | a caller (create: `rooms.creators`) | `rooms` |
//! | DELETE | `/api/rooms/{name}` | owners, admins | `rooms` |
//! | GET, POST | `/api/rooms/{name}/members` | members; owners and admins add | `rooms` |
//! | DELETE | `/api/rooms/{name}/members/{user}` | owners, admins, the member | `rooms` |
//! | POST | `/api/rooms/{name}/join` | a caller, open rooms | `rooms` |
//! | GET | `/api/auth/sessions` | a caller (admins: `?userId=`) | `sessions` |
//! | GET | `/api/auth/oidc/{name}/login`, `/callback` | anyone (browser login) | `oidc` |
//! | GET | `/api/console/{connections,permissions,denies,metrics}` | admins | `console` |
//! | POST | `/api/console/token-reset` | token-reset roles | `admin` |
//! | POST | `/api/console/explain` | admins | `console` |
//! | GET | `/api/console/rooms` | admins | `console` |
//! | GET | `/`, `/app.js`, ..., `/api/config` | anyone | `web` |
//!
//! The operations listener (`http.admin_listen`), built by [`admin_router`]: `GET
//! /api/admin/status` (admins), `POST /api/admin/token-reset` (token-reset roles),
//! `GET /metrics`, `/healthz`, `/readyz`.
//!
//! Every body under `/api/auth` is at most [`AUTH_BODY_LIMIT`] bytes: nobody is known yet
//! there, so nothing larger is read.

mod admin;
mod auth;
mod console;
pub mod cookies;
mod credentials;
pub mod error;
pub mod extract;
mod guest;
mod keylogin;
mod oidc;
pub mod policy;
pub mod ratelimit;
mod rooms;
mod session;
mod sessions;
pub mod state;
mod user;
pub mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

pub use state::{HttpState, SharedState};

/// The largest body an `/api/auth` (or `/api/rooms`) endpoint reads (a login, a key
/// answer, a token, a room).
pub const AUTH_BODY_LIMIT: usize = 8 * 1024;

/// The public router: the chat page and the user API (`http.listen`).
pub fn router(state: SharedState) -> Router {
    let auth = Router::new()
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/guest", post(guest::create))
        .route("/api/auth/challenge", post(keylogin::challenge))
        .route("/api/auth/authenticate", post(keylogin::authenticate))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/revoke", post(auth::revoke))
        .route("/api/auth/introspect", post(auth::introspect))
        .route("/api/auth/nats-credentials", post(credentials::mint))
        .route("/api/auth/me", get(user::me))
        .route("/api/auth/sessions", get(sessions::list))
        .route("/api/auth/oidc/{name}/login", get(oidc::begin))
        .route("/api/auth/oidc/{name}/callback", get(oidc::callback))
        .layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT));
    Router::new()
        .merge(auth)
        .route("/api/console/connections", get(console::connections))
        .route("/api/console/permissions", get(console::permissions))
        .route("/api/console/denies", get(console::denies))
        .route("/api/console/metrics", get(console::metrics))
        .route("/api/console/token-reset", post(admin::token_reset))
        .route("/api/console/explain", post(console::explain))
        .route("/api/console/rooms", get(console::rooms))
        .route("/api/users/{id}/context", get(user::context))
        .merge(room_routes())
        .merge(web::routes())
        .with_state(state)
}

/// Rooms: the caller's, and rooms as data (contract 11). Bodies are small here too.
fn room_routes() -> Router<SharedState> {
    Router::new()
        .route("/api/rooms", get(rooms::list).post(rooms::create))
        .route("/api/rooms/{name}", delete(rooms::delete))
        .route(
            "/api/rooms/{name}/members",
            get(rooms::members).post(rooms::add_member),
        )
        .route("/api/rooms/{name}/members/{user}", delete(rooms::remove_member))
        .route("/api/rooms/{name}/join", post(rooms::join))
        .layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT))
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
