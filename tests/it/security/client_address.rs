//! The client's address behind proxies: only `http.client_address_header`, only from a
//! trusted peer, every line of it, the rightmost address that is not a trusted proxy.
//! Before the fix `Forwarded` won whenever present (behind nginx the client writes it) and
//! only the first `X-Forwarded-For` line was read (behind HAProxy the client's own line won).

use std::net::SocketAddr;

use axum::http::StatusCode;
use nats_callout::config::HttpSettings;
use nats_callout::forwarded::AddressHeader;
use serde_json::json;

use super::with_guests;
use crate::http::{Api, bearer};

fn behind_proxy(header: AddressHeader) -> (Api, tempfile::TempDir) {
    with_guests(HttpSettings {
        login_per_address_per_minute: 3,
        guests_per_address_per_minute: 2,
        trusted_proxies: vec!["10.0.0.0/8".into()],
        client_address_header: header,
        ..HttpSettings::default()
    })
}

const PROXY: &str = "10.1.2.3:443";

fn proxy() -> SocketAddr {
    PROXY.parse().unwrap()
}

/// Behind nginx (`proxy_add_x_forwarded_for` appends the client's address) a client that
/// sends its own `Forwarded` and `X-Forwarded-For` still counts as itself: three failed
/// passwords, then 429, whatever it claims.
#[tokio::test]
async fn behind_nginx_a_client_cannot_choose_its_address() {
    let (api, _files) = behind_proxy(AddressHeader::XForwardedFor);
    api.remember("wrong");
    for i in 0..4 {
        let forged_fwd = format!("for=192.0.2.{i}");
        let forged_xff = format!("192.0.2.{i}, 198.51.100.7");
        let r = api
            .login_via(
                proxy(),
                &[("forwarded", &forged_fwd), ("x-forwarded-for", &forged_xff)],
                "bob",
                "wrong",
            )
            .await;
        if i < 3 {
            r.assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
        } else {
            r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
        }
    }
    // Another real client behind the same proxy has its own budget.
    api.login_via(proxy(), &[("x-forwarded-for", "198.51.100.8")], "bob", "wrong")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
}

/// Behind HAProxy (`option forwardfor` adds a line of its own after the client's) the
/// client's line does not win: guests are created at most twice a minute per client.
#[tokio::test]
async fn behind_haproxy_the_last_line_counts_and_guest_creation_stays_limited() {
    let (api, _files) = behind_proxy(AddressHeader::XForwardedFor);
    let mut created = 0;
    for i in 0..8 {
        let forged = format!("192.0.2.{i}");
        let r = api
            .post_via(
                proxy(),
                "/api/auth/guest",
                &[("x-forwarded-for", &forged), ("x-forwarded-for", "198.51.100.7")],
                "{}",
            )
            .await;
        match r.status {
            StatusCode::OK => created += 1,
            _ => r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
        }
    }
    assert_eq!(created, 2, "guests created from one client in a minute");
}

/// With `client_address_header = "forwarded"` only `Forwarded` is read: `X-Forwarded-For`
/// (which the client may have written) is ignored, and the sessions list records the
/// proxy-vouched address, not the one the client chose.
#[tokio::test]
async fn with_forwarded_only_forwarded_is_read_and_sessions_record_the_real_address() {
    let (api, _files) = behind_proxy(AddressHeader::Forwarded);
    let body = json!({"username": "bob", "password": "bob"}).to_string();
    let r = api
        .post_via(
            proxy(),
            "/api/auth/login",
            &[
                ("x-forwarded-for", "192.0.2.66"),
                ("forwarded", "for=192.0.2.66"),
                ("forwarded", "for=198.51.100.7;proto=https"),
            ],
            &body,
        )
        .await;
    r.assert_ok();
    let list = api
        .get("/api/auth/sessions", &[("authorization", &bearer(&r.access()))])
        .await;
    list.assert_ok();
    assert_eq!(list.json[0]["address"], "198.51.100.7", "{}", list.text);
    // Only X-Forwarded-For, not the configured header: the proxy itself is the client.
    let r = api
        .post_via(
            proxy(),
            "/api/auth/login",
            &[("x-forwarded-for", "192.0.2.66")],
            &body,
        )
        .await;
    let list = api
        .get("/api/auth/sessions", &[("authorization", &bearer(&r.access()))])
        .await;
    let addresses: Vec<&str> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["address"].as_str())
        .collect();
    assert!(addresses.contains(&"10.1.2.3"), "{addresses:?}");
    assert!(!addresses.contains(&"192.0.2.66"), "{addresses:?}");
}

/// From a peer that is not a trusted proxy no header is read at all.
#[tokio::test]
async fn an_untrusted_peer_cannot_name_another_address() {
    let (api, _files) = behind_proxy(AddressHeader::XForwardedFor);
    api.remember("wrong");
    let direct: SocketAddr = "203.0.113.5:5000".parse().unwrap();
    for i in 0..4 {
        let forged = format!("192.0.2.{i}");
        let r = api
            .login_via(direct, &[("x-forwarded-for", &forged)], "alice", "wrong")
            .await;
        let want = if i < 3 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, want, "attempt {i}: {}", r.text);
    }
}

/// IPv6 clients are counted per /64: the addresses of one host's prefix share one budget.
#[tokio::test]
async fn ipv6_clients_share_the_budget_of_their_64() {
    let (api, _files) = behind_proxy(AddressHeader::XForwardedFor);
    api.remember("wrong");
    for i in 0..4 {
        let peer: SocketAddr = format!("[2001:db8:1:2::{:x}]:5000", i + 1).parse().unwrap();
        let r = api.login_via(peer, &[], "alice", "wrong").await;
        let want = if i < 3 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, want, "attempt {i} from {peer}: {}", r.text);
    }
    let other: SocketAddr = "[2001:db8:1:3::1]:5000".parse().unwrap();
    api.login_via(other, &[], "alice", "wrong")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
}
