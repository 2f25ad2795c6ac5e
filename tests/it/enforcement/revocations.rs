//! Every revocation path closes the live connections it covers (and only those); token
//! reset by user and session; losing a role reaches the live connection.

use super::*;

/// One login of a user on a device, connected to NATS and registered.
struct Login {
    access: String,
    refresh: String,
    session: String,
    conn: Watched,
}

async fn post_json(url: String, bearer: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(url).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Log `user` in on `device` over HTTP and connect with the access token.
async fn login_and_connect(env: &TestEnv, svc: &CalloutHandle, user: &str, device: &str) -> Login {
    login_app_and_connect(env, svc, user, device, None).await
}

/// The same for an application (`clientId`).
async fn login_app_and_connect(
    env: &TestEnv,
    svc: &CalloutHandle,
    user: &str,
    device: &str,
    client: Option<&str>,
) -> Login {
    let (status, b) = post_json(
        format!("{}/api/auth/login", svc.http_url()),
        None,
        json!({"username": user, "password": user, "deviceId": device, "clientId": client}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let access = b["accessToken"].as_str().unwrap().to_string();
    let claims = env
        .tokens
        .verify(&access, nats_callout::clock::now_secs())
        .unwrap();
    let before = svc.enforcement.as_ref().unwrap().connections_of(user).len();
    let conn = watched(env, &access, "all1", false).await;
    registered(svc, user, before + 1).await;
    Login {
        refresh: b["refreshToken"].as_str().unwrap().to_string(),
        session: claims.sid,
        access,
        conn,
    }
}

/// The connection is closed by the server and its token no longer connects.
async fn assert_closed(env: &TestEnv, l: &mut Login, what: &str) {
    l.conn
        .wait_for(&format!("{what}: the connection closed"), |s| {
            matches!(s, Seen::Disconnected)
        })
        .await;
    let err = env.connect(Some(&l.access), "all1").await.err();
    assert!(err.is_some(), "{what}: the revoked token still connects");
}

/// The connection stays up and works.
async fn assert_untouched(l: &Login, user: &str, what: &str) {
    receives(&l.conn.client, "all1", user).await;
    assert!(
        !l.conn
            .saw(|s| matches!(s, Seen::Disconnected | Seen::LameDuck(_))),
        "{what}: a bystander was disturbed"
    );
}

async fn revoke(svc: &CalloutHandle, bearer: &str, body: serde_json::Value) {
    let (status, b) = post_json(format!("{}/api/auth/revoke", svc.http_url()), Some(bearer), body).await;
    assert_eq!(status, 200, "{b}");
}

/// A user revoking his own device closes that device's live connection (the enforcer once
/// looked the stored `user/device` value up as a bare device id and missed it).
#[tokio::test]
async fn a_user_revoking_his_own_device_closes_its_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let alice_phone = login_and_connect(&env, &svc, "alice", "phone").await;
    revoke(&svc, &phone.access.clone(), json!({"deviceId": "phone"})).await;
    assert_closed(&env, &mut phone, "own device").await;
    assert_untouched(&laptop, "bob", "own device").await;
    assert_untouched(
        &alice_phone,
        "alice",
        "own device: another user's device of the same name",
    )
    .await;
}

/// Admin revocations by device, session and user close exactly what they name.
#[tokio::test]
async fn admin_revocations_by_device_session_and_user_close_their_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let admin = env.token("admin");
    let mut tablet = login_and_connect(&env, &svc, "bob", "tablet").await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let alice = login_and_connect(&env, &svc, "alice", "desk").await;

    revoke(&svc, &admin, json!({"userId": "bob", "deviceId": "tablet"})).await;
    assert_closed(&env, &mut tablet, "admin device").await;
    assert_untouched(&phone, "bob", "admin device").await;

    revoke(&svc, &admin, json!({"sessionId": phone.session.clone()})).await;
    assert_closed(&env, &mut phone, "admin session").await;
    assert_untouched(&laptop, "bob", "admin session").await;

    let mut laptop = laptop;
    revoke(&svc, &admin, json!({"userId": "bob"})).await;
    assert_closed(&env, &mut laptop, "admin user").await;
    assert_untouched(&alice, "alice", "admin user").await;
}

/// A user ending one application's sessions closes its live connections, and only those.
#[tokio::test]
async fn revoking_an_application_closes_its_live_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut web_laptop = login_app_and_connect(&env, &svc, "bob", "laptop", Some("web")).await;
    let mut web_phone = login_app_and_connect(&env, &svc, "bob", "phone", Some("web")).await;
    let cli = login_app_and_connect(&env, &svc, "bob", "desk", Some("cli")).await;
    let alice_web = login_app_and_connect(&env, &svc, "alice", "laptop", Some("web")).await;
    revoke(&svc, &cli.access.clone(), json!({"clientId": "web"})).await;
    assert_closed(&env, &mut web_laptop, "application").await;
    assert_closed(&env, &mut web_phone, "application").await;
    assert_untouched(&cli, "bob", "application: another application").await;
    assert_untouched(&alice_web, "alice", "application: another user's").await;
}

/// "Everything before T" (sysadmins) closes every connection whose token is older.
#[tokio::test]
async fn revoke_before_closes_every_older_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut bob = login_and_connect(&env, &svc, "bob", "phone").await;
    let mut alice = login_and_connect(&env, &svc, "alice", "desk").await;
    let now = nats_callout::clock::now_secs();
    revoke(&svc, &env.token("admin"), json!({"before": now})).await;
    assert_closed(&env, &mut bob, "before").await;
    assert_closed(&env, &mut alice, "before").await;
}

/// Logging out closes the live connection of that session only.
#[tokio::test]
async fn logout_closes_the_sessions_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let (status, b) = post_json(
        format!("{}/api/auth/logout", svc.http_url()),
        None,
        json!({"refreshToken": phone.refresh.clone()}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_closed(&env, &mut phone, "logout").await;
    assert_untouched(&laptop, "bob", "logout").await;
}

/// A refresh token used twice revokes its session: the connection made with the session's
/// access token closes too.
#[tokio::test]
async fn refresh_token_reuse_closes_the_sessions_connection() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| c.tokens.refresh_grace = Duration::ZERO,
        ..Default::default()
    })
    .await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let url = format!("{}/api/auth/refresh", svc.http_url());
    let (status, b) = post_json(url.clone(), None, json!({"refreshToken": phone.refresh.clone()})).await;
    assert_eq!(status, 200, "{b}");
    // Within the grace second a replay still returns the same pair; after it, a reuse.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, b) = post_json(url.clone(), None, json!({"refreshToken": phone.refresh.clone()})).await;
        if status == 401 {
            assert_eq!(b["error_code"], "refresh-token-reused", "{b}");
            break;
        }
        assert!(Instant::now() < deadline, "never detected as reuse: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_closed(&env, &mut phone, "reuse").await;
    assert_untouched(&laptop, "bob", "reuse").await;
}

/// Token reset by user and by login session, over HTTP: the named connections decide
/// again (a notice), the others are left alone.
#[tokio::test]
async fn token_reset_by_user_and_by_session() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let mut alice = login_and_connect(&env, &svc, "alice", "desk").await;
    let url = format!("{}/api/admin/token-reset", svc.admin_url());
    let admin = env.token("admin");
    let (status, b) = post_json(
        url.clone(),
        Some(&admin),
        json!({"sessions": [phone.session.clone()]}),
    )
    .await;
    assert_eq!((status, b["affected"].as_u64()), (200, Some(1)), "{b}");
    phone
        .conn
        .wait_for("a notice for the session", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    assert_untouched(&laptop, "bob", "reset by session").await;
    let (status, b) = post_json(
        url.clone(),
        Some(&admin),
        json!({"users": ["alice"], "reason": "rights changed"}),
    )
    .await;
    assert_eq!((status, b["affected"].as_u64()), (200, Some(1)), "{b}");
    alice
        .conn
        .wait_for("a notice for alice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    // Bad requests are refused with a reason.
    for body in [
        json!({}),
        json!({"tids": []}),
        json!({"users": "bob"}),
        json!({"bogus": 1}),
    ] {
        let (status, b) = post_json(url.clone(), Some(&admin), body.clone()).await;
        assert_eq!(status, 400, "{body} -> {b}");
    }
    // Over NATS too (the sysadmin role may publish auth.v1.tokenReset).
    let nats = crate::support::connect_to(&env.server.url(), Some(&admin), "", Some("_INBOX.admin"))
        .await
        .unwrap();
    let reply = nats
        .client
        .request("auth.v1.tokenReset", json!({"users": ["bob"]}).to_string().into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(body["affected"].as_u64().unwrap() >= 1, "{body}");
    let reply = nats
        .client
        .request("auth.v1.tokenReset", "{}".into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["error_code"], "bad-request", "{body}");
}

/// A connection holding a role-derived right (token reset for a sysadmin) is re-authorized
/// when the files take that role away, as a lost room is.
#[tokio::test]
async fn losing_a_role_reaches_the_live_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut admin = watched(&env, &env.token("admin"), "all1", false).await;
    let bob = watched(&env, &env.token("bob"), "all1", false).await;
    registered(&svc, "admin", 1).await;
    registered(&svc, "bob", 1).await;
    let users = env.config.permissions.dir.join("users.toml");
    let text = std::fs::read_to_string(&users).unwrap();
    // admin keeps every room (role admin) but loses sysadmin, and with it token reset.
    let edited = text.replace(r#"roles = ["admin", "sysadmin"]"#, r#"roles = ["admin"]"#);
    assert_ne!(text, edited);
    replace_file(&env.config.permissions.dir, "users.toml", &edited);
    admin
        .wait_for("a notice after losing the role", |s| {
            matches!(s, Seen::LameDuck(_))
        })
        .await;
    receives(&bob.client, "all1", "bob").await;
    assert!(!bob.saw(|s| matches!(s, Seen::LameDuck(_) | Seen::Disconnected)));
}

/// Config mode: a user the files place in another account listed in
/// `callout.user_accounts` lands there, and live enforcement follows her like anyone else,
/// also after CONNZ reconciles (which once listed the default account only and dropped
/// her); a user naming an account not listed is denied.
#[tokio::test]
async fn config_mode_follows_users_placed_in_another_account() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| {
            c.callout.user_accounts = vec!["APP2".into()];
            c.enforcement.reconcile_interval = Duration::from_secs(1);
        },
        ..Default::default()
    })
    .await;
    std::fs::write(
        env.config.permissions.dir.join("placed.toml"),
        "[users.carol]\naccount = \"APP2\"\n[users.carol.rooms]\nall1 = \"readwrite\"\n\n\
         [users.dave]\naccount = \"APP3\"\n[users.dave.rooms]\nall1 = \"readwrite\"\n",
    )
    .unwrap();
    let svc = env.start_callout().await;
    let token = env.token("carol");
    let mut carol = watched(&env, &token, "all1", false).await;
    registered(&svc, "carol", 1).await;
    // In APP2: bob, in APP, does not hear her in the same room.
    let bob = env
        .connect(Some(&env.token("bob")), "all1")
        .await
        .expect("bob connects");
    let mut heard = bob.client.subscribe("chat.all1.>").await.unwrap();
    bob.client.flush().await.unwrap();
    carol
        .client
        .publish("chat.all1.carol", "hi".into())
        .await
        .unwrap();
    carol.client.flush().await.unwrap();
    bob.client.publish("chat.all1.bob", "hi".into()).await.unwrap();
    let first = tokio::time::timeout(DEADLINE, heard.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.subject.as_str(),
        "chat.all1.bob",
        "carol is not in bob's account"
    );
    crate::support::after_a_reconcile(&svc.ops).await;
    revoke(&svc, &env.token("admin"), json!({"userId": "carol"})).await;
    carol
        .wait_for("carol's connection closed", |s| matches!(s, Seen::Disconnected))
        .await;
    assert!(env.connect(Some(&token), "all1").await.is_err(), "revoked");
    // APP3 is not in callout.user_accounts.
    let err = env.connect(Some(&env.token("dave")), "all1").await.err();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(async_nats::ConnectErrorKind::AuthorizationViolation)
    );
    // nats-server writes its log line after it answered the client.
    wait_until("the server logs the reason", || {
        env.server.log().contains("account-not-served")
    })
    .await;
}
