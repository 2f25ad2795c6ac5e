//! The two cookies: `nats_token` (access token, `Path=/`, read by the websocket listener) and
//! `nats_refresh` (refresh token, `Path=/api/auth`). Both HttpOnly and SameSite=Strict.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

use crate::config::HttpSettings;

pub const ACCESS_COOKIE: &str = "nats_token";
pub const REFRESH_COOKIE: &str = "nats_refresh";
pub const REFRESH_PATH: &str = "/api/auth";

/// A `Set-Cookie` value. `max_age` 0 clears the cookie. `Secure` and `Domain` follow the
/// settings (`http.secure_cookies`, `http.cookie_domain`).
pub fn set_cookie(settings: &HttpSettings, name: &str, value: &str, path: &str, max_age: i64) -> String {
    let mut c = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict",
        max_age.max(0)
    );
    if let Some(d) = &settings.cookie_domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    if settings.secure_cookies {
        c.push_str("; Secure");
    }
    c
}

/// Read a cookie from the request headers.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_and_strict() {
        let secure = HttpSettings {
            secure_cookies: true,
            ..Default::default()
        };
        let c = set_cookie(&secure, ACCESS_COOKIE, "abc", "/", 300);
        assert_eq!(
            c,
            "nats_token=abc; Path=/; Max-Age=300; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = HttpSettings::default();
        assert!(!set_cookie(&plain, REFRESH_COOKIE, "x", REFRESH_PATH, 0).contains("Secure"));
        // Behind a proxy with the websocket on another host of the site.
        let site = HttpSettings {
            secure_cookies: true,
            cookie_domain: Some("example.com".into()),
            ..Default::default()
        };
        assert_eq!(
            set_cookie(&site, ACCESS_COOKIE, "t", "/", 60),
            "nats_token=t; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Domain=example.com; Secure"
        );
    }

    #[test]
    fn reads_one_cookie_among_several() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; nats_refresh=rt1_x; nats_token=tok".parse().unwrap());
        assert_eq!(get(&h, REFRESH_COOKIE), Some("rt1_x"));
        assert_eq!(get(&h, ACCESS_COOKIE), Some("tok"));
        assert_eq!(get(&h, "missing"), None);
    }
}
