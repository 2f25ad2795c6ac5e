//! What every handler shares ([`HttpState`]) and the one way to rate-limit a request
//! ([`HttpState::limit`]).

use std::net::IpAddr;
use std::sync::Arc;

use super::error::ApiError;
use super::ratelimit::RateLimiter;
use crate::config::{CalloutSettings, GuestRefresh, HttpSettings};
use crate::forwarded::TrustedProxies;
use crate::ops::Ops;
use crate::permissions::Permissions;
use crate::rooms::RoomService;
use crate::tokens::service::TokenService;

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
    /// Whose forwarding header names the client (`http.trusted_proxies`,
    /// `http.client_address_header`).
    pub proxies: TrustedProxies,
    /// `tokens.guest_refresh`.
    pub guest_refresh: GuestRefresh,
    /// Rooms as data.
    pub rooms: Arc<RoomService>,
    /// What client kits need of `[callout]` (served by `GET /api/config`).
    pub protocol: ClientProtocol,
    /// Operator mode: the callout that mints NATS credentials (`None`: config mode).
    pub credentials: Option<crate::callout::credentials::Minter>,
}

/// The client side of the protocol, as configured in `[callout]`: the subject templates, the
/// inbox prefix and the room limit, so that client kits hard-code none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProtocol {
    /// `callout.read_subject` (`chat.{room}.>`).
    pub read_subject: String,
    /// `callout.write_subject` (`chat.{room}.{user}`).
    pub write_subject: String,
    /// `callout.inbox_prefix` (`_INBOX.{user}`).
    pub inbox_prefix: String,
    /// `callout.max_rooms`: most rooms one connection may ask for.
    pub max_rooms: usize,
}

impl From<&CalloutSettings> for ClientProtocol {
    fn from(c: &CalloutSettings) -> Self {
        ClientProtocol {
            read_subject: c.read_subject.clone(),
            write_subject: c.write_subject.clone(),
            inbox_prefix: c.inbox_prefix.clone(),
            max_rooms: c.max_rooms,
        }
    }
}

impl Default for ClientProtocol {
    fn default() -> Self {
        ClientProtocol::from(&CalloutSettings::default())
    }
}

pub type SharedState = Arc<HttpState>;

/// What a rate limit counts: every key is bounded (a validated name, an address), so the
/// limiter's memory is too.
#[derive(Debug, Clone, Copy)]
pub enum LimitKey<'a> {
    /// Logins of any kind from one client address (IPv6: its /64).
    Address(IpAddr),
    /// Guests created from one client address (IPv6: its /64).
    Guests(IpAddr),
    /// Password attempts for one user name (validated, compared in lower case).
    User(&'a str),
}

impl LimitKey<'_> {
    fn text(&self) -> String {
        match self {
            LimitKey::Address(ip) => format!("addr:{}", crate::forwarded::limit_key(*ip)),
            LimitKey::Guests(ip) => format!("guest:{}", crate::forwarded::limit_key(*ip)),
            LimitKey::User(u) => format!("user:{}", u.to_lowercase()),
        }
    }
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
            proxies: TrustedProxies::new(&settings.trusted_proxies, settings.client_address_header),
            tokens,
            permissions,
            settings,
            limiter: RateLimiter::default(),
            clock: Arc::new(crate::clock::now_secs),
            ops,
            guest_refresh: GuestRefresh::Default,
            rooms: Arc::new(RoomService::in_memory()),
            protocol: ClientProtocol::default(),
            credentials: None,
        }
    }

    /// Mint NATS credentials with this callout (operator mode).
    #[must_use]
    pub fn with_credentials(self, credentials: Option<crate::callout::credentials::Minter>) -> Self {
        HttpState { credentials, ..self }
    }

    /// The subjects and limits of `[callout]` that `GET /api/config` tells clients.
    #[must_use]
    pub fn with_protocol(self, protocol: ClientProtocol) -> Self {
        HttpState { protocol, ..self }
    }

    /// Rooms as data from this service (the default keeps them in memory).
    #[must_use]
    pub fn with_rooms(self, rooms: Arc<RoomService>) -> Self {
        HttpState { rooms, ..self }
    }

    /// Guests' sessions as `tokens.guest_refresh` says.
    #[must_use]
    pub fn with_guest_refresh(self, guest_refresh: GuestRefresh) -> Self {
        HttpState {
            guest_refresh,
            ..self
        }
    }

    /// Another clock (unix seconds): tests move time.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        HttpState { clock, ..self }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Count one request against `key`: a 429 with `Retry-After` when over `per_minute`.
    pub fn limit(&self, key: LimitKey<'_>, per_minute: u32) -> Result<(), ApiError> {
        self.limiter
            .hit(&key.text(), per_minute, self.now())
            .map_err(ApiError::rate_limited)
    }

    /// Count a login attempt from `addr` (when the address is known) against
    /// `http.login_per_address_per_minute`.
    pub fn limit_address(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        match addr {
            Some(ip) => self.limit(LimitKey::Address(ip), self.settings.login_per_address_per_minute),
            None => Ok(()),
        }
    }

    /// The page's public origin (`http.public_url`, or for a loopback listener
    /// `http://<listen>`): never from a request header.
    pub fn public_origin(&self) -> Option<String> {
        self.settings.public_origin()
    }
}
