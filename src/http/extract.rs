//! What a handler takes from a request, decided once here: the client's address
//! ([`ClientAddr`]), the authenticated caller ([`Caller`], [`Admin`], [`TokenResetter`]),
//! and the JSON body ([`Body`], [`OptionalBody`]).
//!
//! Bodies are JSON only: `Content-Type: application/json`, or an empty body without a
//! content type where the endpoint takes none. A cross-site form can send neither (its
//! types are `text/plain`, urlencoded and multipart), so no form can log a browser in or
//! out. Their size is bounded by the router ([`super::AUTH_BODY_LIMIT`] on `/api/auth`).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;

use super::cookies;
use super::error::ApiError;
use super::state::{HttpState, SharedState};
use crate::permissions::{Privileges, Role};
use crate::tokens::AccessClaims;

/// The client's address: the peer, or behind a trusted proxy the address its forwarding
/// header names (`None` when the server was started without connect info).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<SharedState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let lines = state
            .proxies
            .header()
            .into_iter()
            .flat_map(|name| parts.headers.get_all(name))
            .filter_map(|v| v.to_str().ok());
        Ok(ClientAddr(peer.map(|p| state.proxies.client(p, lines))))
    }
}

/// Requests that may change state or set cookies must not come from a foreign page: an
/// `Origin` that is sent must be allowed (`http.allowed_origins`), and when `required`
/// (a cookie stands for the caller) it must be sent.
pub fn check_origin(state: &HttpState, headers: &HeaderMap, required: bool) -> Result<(), ApiError> {
    match headers.get(ORIGIN).map(|o| o.to_str()) {
        Some(Ok(o)) if state.settings.allowed_origins.iter().any(|a| a == o) => Ok(()),
        Some(_) => Err(ApiError::forbidden("origin not allowed")),
        None if required => Err(ApiError::forbidden("cookie requests must send Origin")),
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

    /// Whether the caller is an admin (role `admin` or `sysadmin`) in the files now.
    pub fn is_admin(&self, state: &HttpState) -> bool {
        self.claims
            .user(&state.permissions.load())
            .is_some_and(|u| u.is_admin())
    }

    /// Authenticate by bearer token or cookie (see [`Caller`]).
    fn from_headers(
        state: &HttpState,
        headers: &HeaderMap,
        state_changing: bool,
    ) -> Result<Caller, ApiError> {
        let token = access_token(state, headers, state_changing)?;
        let claims = state
            .tokens
            .verify_access(token, state.now())
            .map_err(|e| ApiError::unauthorized(e.code(), e.to_string()))?;
        Ok(Caller { claims })
    }
}

/// The caller's access token as sent, not yet verified: `Authorization: Bearer` or, failing
/// that, the `nats_token` cookie (checked against `Origin`).
pub fn access_token<'h>(
    state: &HttpState,
    headers: &'h HeaderMap,
    state_changing: bool,
) -> Result<&'h str, ApiError> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim());
    match bearer {
        Some(t) => Ok(t),
        None => {
            let t = cookies::get(headers, cookies::ACCESS_COOKIE)
                .ok_or_else(|| ApiError::unauthorized("missing-token", "no access token"))?;
            check_origin(state, headers, state_changing)?;
            Ok(t)
        }
    }
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let state_changing = !matches!(parts.method, Method::GET | Method::HEAD);
        Caller::from_headers(state, &parts.headers, state_changing)
    }
}

/// A caller whose user is an admin (role `admin` or `sysadmin`) in the permission files now.
pub struct Admin(pub Caller);

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.is_admin(state) {
            return Err(ApiError::forbidden("your roles do not allow this"));
        }
        Ok(Admin(caller))
    }
}

/// A caller whose roles may reset tokens (`enforcement.token_reset_roles`, the same rule
/// as publishing `auth.v1.tokenReset`).
pub struct TokenResetter(pub Caller);

impl FromRequestParts<SharedState> for TokenResetter {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Some(enforcement) = state.ops.enforcement.as_ref() else {
            return Err(ApiError::unavailable(
                "unavailable",
                "live enforcement is off (no nats.system_user)",
            ));
        };
        let may = caller
            .claims
            .user(&state.permissions.load())
            .is_some_and(|u| Privileges::of(&u, enforcement.token_reset_roles()).token_reset);
        if !may {
            return Err(ApiError::forbidden("your roles may not reset tokens"));
        }
        Ok(TokenResetter(caller))
    }
}

/// A required JSON body.
pub struct Body<T>(pub T);

/// A JSON body that may be left out: empty, with no content type or a JSON one.
pub struct OptionalBody<T>(pub Option<T>);

/// The body's bytes, if it is JSON or (when `empty_ok`) empty without a content type.
async fn json_bytes(req: Request, state: &SharedState, empty_ok: bool) -> Result<Option<Bytes>, ApiError> {
    let json = req.headers().get(CONTENT_TYPE).map(|v| v.to_str().map(is_json));
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "the request body is too large",
            )
        } else {
            ApiError::bad_request(format!("invalid request body: {}", e.body_text()))
        }
    })?;
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    match json {
        Some(Ok(true)) if empty && empty_ok => Ok(None),
        Some(Ok(true)) => Ok(Some(bytes)),
        None if empty && empty_ok => Ok(None),
        None if empty => Err(ApiError::bad_request("a JSON body is required")),
        _ => Err(ApiError::bad_request(
            "invalid request body: the body must be JSON (Content-Type: application/json)",
        )),
    }
}

/// `application/json`, with parameters (`; charset=utf-8`) or as a `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

impl<T: DeserializeOwned> FromRequest<SharedState> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        match json_bytes(req, state, false).await? {
            Some(bytes) => parse(&bytes).map(Body),
            None => Err(ApiError::bad_request("a JSON body is required")),
        }
    }
}

impl<T: DeserializeOwned> FromRequest<SharedState> for OptionalBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        match json_bytes(req, state, true).await? {
            Some(bytes) => parse(&bytes).map(|t| OptionalBody(Some(t))),
            None => Ok(OptionalBody(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "json",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}
