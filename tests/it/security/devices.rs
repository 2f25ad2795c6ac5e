//! Device ids are chosen by clients, so two users may both have a `laptop`. Over HTTP a bare
//! `{"deviceId": D}` is the caller's own devices named D, admins included; an admin names
//! the user too (`{userId, deviceId}`). Before the fix an admin's bare `{"deviceId":
//! "laptop"}` ended every user's sessions on any device of that name. The operator's CLI
//! keeps the bare form (every user's D) and gains `--user U` to scope it.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::http::Api;
use crate::support::api::{login, refresh, s};
use crate::support::{EnvOptions, TestEnv};

#[tokio::test]
async fn an_admins_bare_device_id_reaches_only_the_admins_own_devices() {
    let api = Api::new();
    let bob = api.login_device("bob", "bob", "laptop").await;
    let alice = api.login_device("alice", "alice", "laptop").await;
    // A plain user may name only himself.
    api.revoke(&alice.access(), json!({"userId": "bob", "deviceId": "laptop"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let admin = api.login_device("admin", "admin", "laptop").await;
    let r = api.revoke(&admin.access(), json!({"deviceId": "laptop"})).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({"revokedSessions": 1}),
        "only the admin's own laptop"
    );
    api.refresh(&admin.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.refresh(&bob.refresh()).await.assert_ok();
    api.me(&alice.access()).await.assert_ok();
    // Naming the user reaches that user's device, and only it.
    let admin = api.login("admin", "admin").await;
    let r = api
        .revoke(&admin.access(), json!({"userId": "bob", "deviceId": "laptop"}))
        .await;
    assert_eq!(r.json, json!({"revokedSessions": 1}), "{}", r.text);
    api.me(&alice.access()).await.assert_ok();
}

/// `nats-callout revoke --device D [--user U]` on a running service: with `--user` only that
/// user's device; bare, every user's device of that name (an operator's tool).
#[tokio::test]
async fn the_cli_scopes_a_device_to_a_user_or_reaches_every_user() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let base = svc.http_url();
    let bob = login(&base, "bob", Some("laptop")).await;
    let alice = login(&base, "alice", Some("laptop")).await;
    let cfg = env.write_config_file("");
    // Not a blocking command: the service runs on this test's runtime.
    let revoke = async |args: &[&str]| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
            .arg("revoke")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let body = revoke(&["--device", "laptop", "--user", "bob"]).await;
    assert_eq!(body["revokedSessions"], 1, "{body}");
    assert_eq!(refresh(&base, &s(&bob, "refreshToken")).await.0, 401);
    let (status, alice) = refresh(&base, &s(&alice, "refreshToken")).await;
    assert_eq!(status, 200, "alice's laptop is untouched");
    let body = revoke(&["--device", "laptop"]).await;
    assert_eq!(
        body["revokedSessions"], 1,
        "the bare form: every user's laptop {body}"
    );
    assert_eq!(refresh(&base, &s(&alice, "refreshToken")).await.0, 401);
}
