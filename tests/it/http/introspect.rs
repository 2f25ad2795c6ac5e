//! `POST /api/auth/introspect` (admins): active and inactive tokens, with reasons.

use super::*;

#[tokio::test]
async fn an_admin_introspects_an_active_access_token() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let bob = api.login_device("bob", "bob", "laptop").await;
    let claims = api.state.tokens.verify_access(&bob.access(), api.now()).unwrap();
    let r = api.introspect(&admin, &bob.access()).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({
            "active": true, "tokenType": "access_token", "sub": "bob", "sid": claims.sid,
            "did": "laptop", "tid": claims.tid, "iat": T0, "exp": T0 + ACCESS_TTL,
        })
    );
}

#[tokio::test]
async fn introspect_reports_expired_and_revoked_access_tokens_as_inactive_with_a_reason() {
    let api = Api::new();
    let expiring = api.login("bob", "bob").await.access();
    let revoked = api.login("alice", "alice").await;
    api.post(
        "/api/auth/logout",
        json!({"refreshToken": revoked.refresh()}),
        &[],
    )
    .await
    .assert_ok();
    api.advance(ACCESS_TTL);
    let admin = api.login("admin", "admin").await.access();
    let r = api.introspect(&admin, &expiring).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "access_token", "reason": "access-token-expired"})
    );
    api.advance(-1); // still within alice's 5 minutes
    let r = api.introspect(&admin, &revoked.access()).await;
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "access_token", "reason": "access-token-revoked"})
    );
    let r = api.introspect(&admin, "garbage").await;
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "access_token", "reason": "token-malformed"})
    );
}

#[tokio::test]
async fn introspect_reports_a_refresh_tokens_session_and_whether_it_is_active() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let live = api.login_device("bob", "bob", "laptop").await;
    let sid = api
        .state
        .tokens
        .verify_access(&live.access(), api.now())
        .unwrap()
        .sid;
    let r = api.introspect(&admin, &live.refresh()).await;
    r.assert_ok();
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["tokenType"], "refresh_token");
    assert_eq!(r.json["sub"], "bob");
    assert_eq!(r.json["sid"], sid.as_str());
    assert_eq!(r.json["did"], "laptop");

    let ended = api.login("alice", "alice").await.refresh();
    api.post("/api/auth/logout", json!({"refreshToken": ended}), &[])
        .await
        .assert_ok();
    let r = api.introspect(&admin, &ended).await;
    assert_eq!(r.json["active"], false);
    assert_eq!(r.json["reason"], "logout");
    assert!(r.json["revokedAt"].is_i64());

    let unknown = format!("rt1_{}", "A".repeat(43));
    let r = api.introspect(&admin, &unknown).await;
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "refresh_token", "reason": "refresh-token-invalid"})
    );
}

#[tokio::test]
async fn introspect_reports_a_used_refresh_token_as_inactive() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let old = api.login("bob", "bob").await.refresh();
    api.advance(60);
    api.refresh(&old).await.assert_ok();
    let r = api.introspect(&admin, &old).await;
    r.assert_ok();
    assert_eq!(
        r.json["active"], false,
        "a used refresh token cannot be used: {}",
        r.text
    );
}

#[tokio::test]
async fn introspect_reports_an_idle_expired_refresh_token_as_inactive() {
    let api = Api::new();
    let stale = api.login("bob", "bob").await.refresh();
    api.advance(30 * DAY);
    let admin = api.login("admin", "admin").await.access();
    api.refresh(&stale)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-expired");
    let r = api.introspect(&admin, &stale).await;
    r.assert_ok();
    assert_eq!(
        r.json["active"], false,
        "a refresh token past its idle expiry cannot be used: {}",
        r.text
    );
}

#[tokio::test]
async fn only_admins_may_introspect() {
    let api = Api::new();
    let bob = api.login("bob", "bob").await;
    let r = api.introspect(&bob.access(), &bob.access()).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = api.introspect(&bob.access(), &bob.refresh()).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.post("/api/auth/introspect", json!({"token": "x"}), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
}

/// Config mode mints no NATS credentials: the endpoint says so, for any caller.
#[tokio::test]
async fn nats_credentials_are_operator_mode_only() {
    let api = Api::new();
    let bob = api.login("bob", "bob").await.access();
    let key = nkeys::KeyPair::new_user().public_key();
    let bearer = format!("Bearer {bob}");
    let r = api
        .post(
            "/api/auth/nats-credentials",
            json!({"publicKey": key, "rooms": ["all1"]}),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json["error_code"].as_str()),
        (404, Some("operator-mode-only"))
    );
}
