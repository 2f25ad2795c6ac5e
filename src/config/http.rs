//! `[http]`: the public listener (chat page and user API) and the operations listener.

use serde::Deserialize;

use super::{ConfigError, Section, invalid};
use crate::forwarded::{AddressHeader, Cidr};

/// The HTTP API, the chat page and the operations listener.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address of the public listener (chat page and user API); empty = none.
    pub listen: String,
    /// Address of the operations listener (`/metrics`, `/healthz`, `/readyz`,
    /// `/api/admin/*`); empty = none. Keep it off the public network.
    pub admin_listen: String,
    /// Mark cookies `Secure` (set this behind TLS).
    pub secure_cookies: bool,
    /// `Domain` of the cookies, so that a websocket on another host of the same site gets
    /// `nats_token` (e.g. `example.com` for `chat.example.com` and `ws.example.com`).
    pub cookie_domain: Option<String>,
    /// Peers (addresses or CIDR ranges) whose forwarding header names the client: the
    /// per-address limits, the logs and the sessions list use that address. From any other
    /// peer the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The one header a trusted proxy names the client in: `x-forwarded-for` (default) or
    /// `forwarded`. Every line of it is read in order, and the client is the rightmost
    /// address that is not a trusted proxy; the other header is ignored.
    pub client_address_header: AddressHeader,
    /// The page's public origin (`https://chat.example.com`), for the URLs the service
    /// gives out (an identity provider's callback, the page to return to after logging out).
    /// Unset: `http://<listen>` for a loopback listener, else none.
    pub public_url: Option<String>,
    /// The websocket URL the chat page connects to, when it is not
    /// `ws(s)://<page host>:<websocket_port>` (a proxy on another host or path).
    pub websocket_url: Option<String>,
    /// Origins allowed to make cookie-authenticated requests.
    pub allowed_origins: Vec<String>,
    /// Login attempts per minute per user name.
    pub login_per_user_per_minute: u32,
    /// Login attempts per minute per client address.
    pub login_per_address_per_minute: u32,
    /// Port of nats-server's websocket listener, on the host the chat page was loaded from.
    pub websocket_port: u16,
    /// `POST /api/auth/guest` creates anonymous users with the rooms of the `guest` group.
    pub guests: bool,
    /// Guests created per minute per client address.
    pub guests_per_address_per_minute: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            secure_cookies: false,
            cookie_domain: None,
            trusted_proxies: Vec::new(),
            client_address_header: AddressHeader::XForwardedFor,
            public_url: None,
            websocket_url: None,
            allowed_origins: vec!["http://127.0.0.1:8080".into(), "http://localhost:8080".into()],
            login_per_user_per_minute: 10,
            login_per_address_per_minute: 30,
            websocket_port: 9222,
            guests: false,
            guests_per_address_per_minute: 5,
        }
    }
}

impl HttpSettings {
    /// The page's public origin: `public_url` without a trailing `/`, or `http://<listen>`
    /// when the public listener is on a loopback address (the demo), else `None`.
    pub fn public_origin(&self) -> Option<String> {
        if let Some(u) = &self.public_url {
            return Some(u.trim_end_matches('/').to_string());
        }
        let addr: std::net::SocketAddr = self.listen.parse().ok()?;
        addr.ip().is_loopback().then(|| format!("http://{addr}"))
    }
}

impl Section for HttpSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = self.trusted_proxies.iter().find(|p| Cidr::parse(p).is_none()) {
            return invalid(
                "http.trusted_proxies",
                format!("{p:?} is neither an IP address nor a CIDR range"),
            );
        }
        if let Some(d) = &self.cookie_domain
            && (d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            return invalid("http.cookie_domain", format!("{d:?} is not a domain name"));
        }
        if let Some(u) = &self.public_url
            && let Err(reason) = check_public_url(u)
        {
            return invalid("http.public_url", reason);
        }
        Ok(())
    }
}

/// `http.public_url`: an origin, `https://host[:port]` (plain `http://` for a loopback host).
fn check_public_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} is not an http(s) URL"))?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{u:?} is not an origin (scheme://host[:port], no path)"));
    }
    if u.starts_with("http://") && !super::identity::is_loopback_url(u) {
        return Err(format!(
            "{u:?}: plain http is accepted only on a loopback host; use https"
        ));
    }
    Ok(())
}
