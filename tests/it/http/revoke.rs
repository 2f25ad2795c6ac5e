//! `POST /api/auth/revoke`: who may revoke what, and what it ends.

use super::*;

#[tokio::test]
async fn a_plain_user_may_not_revoke_another_user() {
    let api = Api::new();
    let bob = api.login("bob", "bob").await.access();
    let alice = api.login_device("alice", "alice", "alice-phone").await;
    api.revoke(&bob, json!({"userId": "alice"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.revoke(&bob, json!({"userId": "alice", "deviceId": "alice-phone"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // A bare device id is bob's own devices of that name: none.
    let r = api.revoke(&bob, json!({"deviceId": "alice-phone"})).await;
    assert_eq!(r.json, json!({"revokedSessions": 0}));
    let alice_sid = api
        .state
        .tokens
        .verify_access(&alice.access(), api.now())
        .unwrap()
        .sid;
    api.revoke(&bob, json!({"sessionId": alice_sid}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.revoke(&bob, json!({"before": api.now()}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // Alice is untouched.
    api.me(&alice.access()).await.assert_ok();
    api.refresh(&alice.refresh()).await.assert_ok();
}

#[tokio::test]
async fn revoke_needs_an_access_token() {
    let api = Api::new();
    api.post("/api/auth/revoke", json!({"userId": "bob"}), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    // By cookie it is state-changing: Origin is required.
    let access = api.login("bob", "bob").await.access();
    let cookie = cookie_header(&[("nats_token", &access)]);
    api.post(
        "/api/auth/revoke",
        json!({"userId": "bob"}),
        &[("cookie", &cookie)],
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .post(
            "/api/auth/revoke",
            json!({"userId": "bob"}),
            &[("cookie", &cookie), ("origin", ORIGIN)],
        )
        .await;
    r.assert_ok();
}

#[tokio::test]
async fn a_user_may_revoke_all_of_his_own_sessions() {
    let api = Api::new();
    let a = api.login_device("bob", "bob", "laptop").await;
    let b = api.login_device("bob", "bob", "phone").await;
    let alice = api.login("alice", "alice").await;
    let r = api.revoke(&a.access(), json!({"userId": "bob"})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 2}));
    for s in [&a, &b] {
        api.assert_revoked(s).await;
    }
    api.me(&alice.access()).await.assert_ok();
    // A new login works, even in the same second as the revocation (cutoffs are whole seconds).
    let again = api.login("bob", "bob").await;
    api.me(&again.access()).await.assert_ok();
    api.refresh(&again.refresh()).await.assert_ok();
    // The tokens minted before the revocation in that same second stay refused.
    api.me(&a.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn a_user_may_revoke_his_own_session_and_his_own_device() {
    let api = Api::new();
    let laptop = api.login_device("bob", "bob", "bob-laptop").await;
    let phone = api.login_device("bob", "bob", "bob-phone").await;
    let tablet = api.login_device("bob", "bob", "bob-tablet").await;
    let phone_sid = api
        .state
        .tokens
        .verify_access(&phone.access(), api.now())
        .unwrap()
        .sid;
    api.revoke(&laptop.access(), json!({"sessionId": phone_sid}))
        .await
        .assert_ok();
    api.refresh(&phone.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    // His own devices, by id alone or with his user id.
    api.revoke(&laptop.access(), json!({"deviceId": "bob-tablet"}))
        .await
        .assert_ok();
    api.refresh(&tablet.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&laptop.access()).await.assert_ok();
    api.revoke(
        &laptop.access(),
        json!({"userId": "bob", "deviceId": "bob-laptop"}),
    )
    .await
    .assert_ok();
    api.refresh(&laptop.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
}

#[tokio::test]
async fn a_user_revoking_his_own_device_does_not_touch_another_users_device_of_the_same_name() {
    // Device ids are chosen by clients, so two users can both call theirs "phone".
    let api = Api::new();
    let bob = api.login_device("bob", "bob", "phone").await;
    let alice = api.login_device("alice", "alice", "phone").await;
    api.revoke(&bob.access(), json!({"deviceId": "phone"}))
        .await
        .assert_ok();
    api.refresh(&bob.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&alice.access()).await.assert_ok();
    api.refresh(&alice.refresh()).await.assert_ok();
}

#[tokio::test]
async fn an_admin_revokes_a_user_by_user_id() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let alice1 = api.login("alice", "alice").await;
    let alice2 = api.login("alice", "alice").await;
    let bob = api.login("bob", "bob").await;
    let r = api.revoke(&admin, json!({"userId": "alice"})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 2}));
    for s in [&alice1, &alice2] {
        api.assert_revoked(s).await;
    }
    api.me(&bob.access()).await.assert_ok();
    api.me(&admin).await.assert_ok();
    // Revoking again ends nothing more.
    let r = api.revoke(&admin, json!({"userId": "alice"})).await;
    assert_eq!(r.json, json!({"revokedSessions": 0}));
}

#[tokio::test]
async fn an_admin_revokes_one_session_by_session_id() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let one = api.login("bob", "bob").await;
    let two = api.login("bob", "bob").await;
    let sid = api
        .state
        .tokens
        .verify_access(&one.access(), api.now())
        .unwrap()
        .sid;
    let r = api.revoke(&admin, json!({"sessionId": sid})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 1}));
    api.assert_revoked(&one).await;
    api.me(&two.access()).await.assert_ok();
    api.refresh(&two.refresh()).await.assert_ok();
    // An unknown session id ends nothing.
    let r = api.revoke(&admin, json!({"sessionId": "nosuchsession"})).await;
    assert_eq!(r.json, json!({"revokedSessions": 0}));
}

#[tokio::test]
async fn an_admin_revokes_one_device_and_the_users_other_device_keeps_working() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let laptop = api.login_device("bob", "bob", "bob-laptop").await;
    let phone = api.login_device("bob", "bob", "bob-phone").await;
    let r = api
        .revoke(&admin, json!({"userId": "bob", "deviceId": "bob-phone"}))
        .await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 1}));
    api.refresh(&phone.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&phone.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
    api.me(&laptop.access()).await.assert_ok();
    api.refresh(&laptop.refresh()).await.assert_ok();
}

#[tokio::test]
async fn a_sysadmin_revokes_everything_issued_before_a_time() {
    let api = Api::new();
    let old_bob = api.login("bob", "bob").await;
    let old_alice = api.login("alice", "alice").await;
    api.advance(10);
    let cutoff = api.now();
    api.advance(10);
    let new_bob = api.login("bob", "bob").await;
    let admin = api.login("admin", "admin").await.access();
    let r = api.revoke(&admin, json!({"before": cutoff})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 2}));
    for s in [&old_bob, &old_alice] {
        api.assert_revoked(s).await;
    }
    api.me(&new_bob.access()).await.assert_ok();
    api.refresh(&new_bob.refresh()).await.assert_ok();
    // An RFC 3339 time works too.
    api.advance(10);
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(api.now() as u64));
    let r = api.revoke(&admin, json!({"before": when.to_string()})).await;
    r.assert_ok();
    // A time in the future would lock everyone out until then: refused, nothing revoked.
    api.advance(1);
    let admin = api.login("admin", "admin").await.access();
    let r = api.revoke(&admin, json!({"before": api.now() + 3600})).await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(r.json["error"].as_str().unwrap().contains("future"), "{}", r.text);
    api.me(&admin).await.assert_ok();
    api.login("bob", "bob").await;
}

#[tokio::test]
async fn revoking_everything_before_a_time_is_for_sysadmins_only() {
    // The demo admin is also a sysadmin; an admin-only user is added here.
    let perms = permissions_with("[users.ops]\nroles = [\"admin\"]\n");
    let api = Api::with(HttpSettings::default(), perms.path());
    let snapshot = api.state.permissions.load();
    assert!(
        snapshot
            .user("admin")
            .unwrap()
            .has_role(nats_callout::permissions::Role::Sysadmin)
    );
    // ops has no password: mint its pair through the token service.
    let ops = api
        .state
        .tokens
        .open(
            &nats_callout::tokens::Opening::plain("ops", None, None),
            api.now(),
        )
        .await
        .unwrap();
    api.remember(&ops.access_token);
    let r = api.revoke(&ops.access_token, json!({"before": api.now()})).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(r.json["error"].as_str().unwrap().contains("sysadmin"));
    // ...while ops may revoke users, as an admin.
    let bob = api.login("bob", "bob").await;
    api.revoke(&ops.access_token, json!({"userId": "bob"}))
        .await
        .assert_ok();
    api.me(&bob.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn revoke_takes_exactly_one_target() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    for body in [
        json!({}),
        json!({"deviceId": "phone", "sessionId": "s"}),
        json!({"sessionId": "s", "before": 1}),
        json!({"userId": "bob", "deviceId": "d", "sessionId": "s", "before": 1}),
    ] {
        let r = api.revoke(&admin, body.clone()).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        assert!(
            r.json["error"].as_str().unwrap().contains("exactly one"),
            "{body}: {}",
            r.text
        );
    }
}
