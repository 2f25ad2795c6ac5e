//! The chat page and `GET /api/config`.
//!
//! The page's script is bundled by `npm run build` in `web/` into `web/dist/app.js`
//! (committed, so `cargo build` needs no npm); it and the static files of `web/src/` are
//! embedded into the binary here. Every file is served with
//! `Cache-Control: no-cache` and an `ETag` (revalidated with `If-None-Match`), and with strict
//! security headers: a CSP that allows only this origin plus the websocket listener, no
//! framing, no MIME sniffing, no referrer.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::Caller;
use super::state::SharedState;
use crate::config::HttpSettings;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 5] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/src/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/dist/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/dist/app.css"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/src/style.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/src/favicon.svg"),
    },
];

/// The page's routes: the files and `GET /api/config`.
pub fn routes() -> Router<SharedState> {
    let mut router = Router::new().route("/api/config", get(config));
    for (i, asset) in ASSETS.iter().enumerate() {
        router = router.route(
            asset.path,
            get(
                move |State(state): State<SharedState>, headers: HeaderMap| async move {
                    serve(i, &state.settings, &headers)
                },
            ),
        );
    }
    router
}

fn etag(i: usize) -> &'static str {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    &ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })[i]
}

fn serve(i: usize, settings: &HttpSettings, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let tag = etag(i);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    security_headers(h, &content_security_policy(settings, headers));
    resp
}

/// The CSP: scripts, styles and images only from this origin; connections to this origin and
/// to the websocket listener on the host the page was loaded from.
pub fn content_security_policy(settings: &HttpSettings, headers: &HeaderMap) -> String {
    let websocket = match &settings.websocket_url {
        Some(url) => url.clone(),
        None => {
            let scheme = if settings.secure_cookies { "wss" } else { "ws" };
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .and_then(host_name)
                .unwrap_or("*");
            format!("{scheme}://{host}:{}", settings.websocket_port)
        }
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {websocket}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The host name of a `Host` header (without the port), if it is a plain DNS name, IPv4
/// address or bracketed IPv6 address; anything else must not reach the CSP.
pub(super) fn host_name(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let inner = name.trim_start_matches('[').trim_end_matches(']');
    let ok = !inner.is_empty()
        && inner.len() <= 253
        && if name.starts_with('[') {
            inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        } else {
            inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
    ok.then_some(name)
}

fn security_headers(h: &mut HeaderMap, csp: &str) {
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// What the page needs before anything else: where the websocket listener is, and whether
/// the `nats_token` cookie holds a valid access token (so a fresh page load never has to
/// provoke a 401 to find out); and what client kits need so that they hard-code nothing:
/// the subject templates, the inbox prefix, the room limit and the notice subject.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct PageConfig {
    websocket_port: u16,
    /// The websocket URL when it is not `ws(s)://<page host>:<websocket_port>` (a proxy).
    websocket_url: Option<String>,
    /// The logged-in user, or null.
    user: Option<String>,
    /// Expiry of the access token (unix seconds), or null.
    expires_at: Option<i64>,
    /// "Log in with …" buttons: `{name, label}`.
    providers: Vec<LoginProvider>,
    /// Subscribe subject of a readable room (`{room}`, `{user}` placeholders).
    read_subject: String,
    /// Publish subject of a writable room; its last token names the sender.
    write_subject: String,
    /// The inbox prefix a client must use (`{user}` placeholder).
    inbox_prefix: String,
    /// Most rooms one connection may ask for.
    max_rooms: usize,
    /// Where the user's notices (`grants-changed`) arrive (`{user}` placeholder).
    notice_subject: String,
    /// The `clientId` the page logs in with ([`PAGE_CLIENT_ID`]), or null when the files
    /// define applications and not this one (the page then names none).
    page_client_id: Option<&'static str>,
}

/// The application the chat page names itself as, so that the account page can tell its
/// sessions from other applications'.
pub const PAGE_CLIENT_ID: &str = "chat-page";

#[derive(Serialize, Debug)]
struct LoginProvider {
    name: String,
    label: String,
}

async fn config(State(state): State<SharedState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = caller.ok();
    let body = PageConfig {
        websocket_port: state.settings.websocket_port,
        websocket_url: state.settings.websocket_url.clone(),
        user: caller.as_ref().map(|c| c.claims.sub.clone()),
        expires_at: caller.as_ref().map(|c| c.claims.exp),
        providers: super::oidc::login_providers(&state)
            .into_iter()
            .map(|(name, label)| LoginProvider { name, label })
            .collect(),
        read_subject: state.protocol.read_subject.clone(),
        write_subject: state.protocol.write_subject.clone(),
        inbox_prefix: state.protocol.inbox_prefix.clone(),
        max_rooms: state.protocol.max_rooms,
        notice_subject: crate::wire::notice_subject("{user}"),
        page_client_id: {
            let snapshot = state.permissions.load();
            let known = !snapshot.has_applications() || snapshot.application(PAGE_CLIENT_ID).is_some();
            known.then_some(PAGE_CLIENT_ID)
        },
    };
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_reach_the_csp_only_when_plain() {
        assert_eq!(host_name("127.0.0.1:8080"), Some("127.0.0.1"));
        assert_eq!(host_name("localhost"), Some("localhost"));
        assert_eq!(host_name("chat.example.org:443"), Some("chat.example.org"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        for bad in [
            "",
            ":8080",
            "evil.org;script-src *",
            "a b",
            "[::1",
            "[zz]:1",
            "x'y",
        ] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn csp_names_the_websocket_listener() {
        let settings = HttpSettings {
            websocket_port: 9333,
            ..HttpSettings::default()
        };
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:8080"));
        let csp = content_security_policy(&settings, &h);
        assert!(csp.contains("connect-src 'self' ws://localhost:9333;"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.starts_with("default-src 'none';"));
        h.insert(header::HOST, HeaderValue::from_static("bad;host"));
        assert!(content_security_policy(&settings, &h).contains("ws://*:9333;"));
        let tls = HttpSettings {
            secure_cookies: true,
            ..settings
        };
        assert!(content_security_policy(&tls, &HeaderMap::new()).contains("wss://*:9333;"));
    }

    #[test]
    fn every_asset_is_embedded_and_tagged() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.path);
            assert!(etag(i).starts_with('"') && etag(i).len() == 26);
        }
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        for a in &ASSETS[1..] {
            assert!(index.contains(a.path), "index.html does not load {}", a.path);
        }
    }
}
