//! Unauthenticated input is bounded before it is stored, counted or logged. Before the fix
//! the login limiter kept every raw user name (and key) it was sent, and pruned only past
//! 100,000 entries: 210 logins with 1.9 MB user names from six addresses took the service
//! from 156 MB to 640 MB resident. Now the auth endpoints read at most
//! `nats_callout::http::AUTH_BODY_LIMIT` bytes, names are validated before they are
//! counted, and a minute's windows go when the minute rolls.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::http::Api;
use crate::support::{EnvOptions, TestEnv, free_port};

/// The service's resident memory, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// The target of issue 20: 60 logins with 1.9 MB user names from two addresses grow the
/// service by less than 40 MB (before: about 115 MB, kept).
#[tokio::test]
async fn huge_user_names_from_two_addresses_do_not_grow_the_service() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let port = free_port();
    let cfg = env.write_config(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
    );
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/auth/login");
    let start = std::time::Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/api/config"))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < crate::support::DEADLINE,
            "the service never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = rss(serve.id());
    let mut refused = 0;
    for i in 0..60 {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 2) as u8));
        let client = reqwest::Client::builder().local_address(from).build().unwrap();
        let name = format!("{i}{}", "x".repeat(1_900_000));
        let sent = client
            .post(&url)
            .json(&json!({"username": name, "password": "x"}))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        // The service answers 413 before reading the body, and may close the connection
        // while the client still writes: either way the login is refused.
        match sent {
            Ok(r) => assert_eq!(r.status(), 413, "login {i}"),
            Err(e) => assert!(!e.is_timeout(), "login {i}: {e}"),
        }
        refused += 1;
    }
    assert_eq!(refused, 60);
    let grown = rss(serve.id()).saturating_sub(before);
    crate::support::sigterm(&mut serve);
    assert!(grown < 40 << 20, "the service grew by {} MB", grown >> 20);
}

/// Names that cannot be users are refused before the limiter counts them: the limiter
/// holds no key for them, however many arrive.
#[tokio::test]
async fn invalid_names_never_reach_the_limiter() {
    let api = Api::new();
    api.remember("x");
    for i in 0..100 {
        let name = format!("{i}-{}", "y".repeat(4000));
        api.post("/api/auth/login", json!({"username": name, "password": "x"}), &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
        api.post(
            "/api/auth/login",
            json!({"username": format!("bob {i}"), "password": "x"}),
            &[],
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    assert_eq!(api.state.limiter.keys(), 0, "no key stored for invalid names");
    // A body over the limit is refused unread, with its own code.
    let big = json!({"username": "bob", "password": "p".repeat(nats_callout::http::AUTH_BODY_LIMIT)});
    api.post("/api/auth/login", big, &[])
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");
    // Valid names are counted, each under its own key, and forgotten the next minute.
    for user in ["bob", "alice", "nobody"] {
        api.post("/api/auth/login", json!({"username": user, "password": "x"}), &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    assert_eq!(api.state.limiter.keys(), 3);
    api.advance(60);
    api.login("bob", "bob").await;
    assert_eq!(api.state.limiter.keys(), 1, "last minute's windows are gone");
}
