//! The token life cycle end to end: HTTP login, NATS connect with the access token,
//! refresh, reuse detection revoking the family on every instance, grace replay,
//! browser mode, revoke by device, the service role, and a crash in mid-rotation.

use std::time::Duration;

use crate::support::api::{ask, assert_nats_denied, login, refresh, s};
use crate::support::{DEADLINE, EnvOptions, TestEnv};
use serde_json::{Value, json};

/// Login, connect, refresh, reuse an old refresh token: the family is revoked and its
/// access token refused by the callout, also by a second instance that learned it
/// from the shared store's watch.
#[tokio::test]
async fn reuse_revokes_the_family_on_every_instance() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let base = a.http_url();

    let first = login(&base, "bob", Some("laptop")).await;
    env.connect(Some(&s(&first, "accessToken")), "all1;bob1")
        .await
        .expect("login token connects");
    let (st, second) = refresh(&base, &s(&first, "refreshToken")).await;
    assert_eq!(st, 200, "{second}");
    let (st, third) = refresh(&base, &s(&second, "refreshToken")).await;
    assert_eq!(st, 200, "{third}");
    env.connect(Some(&s(&third, "accessToken")), "all1")
        .await
        .expect("refreshed token connects");

    // The first token is two generations old: not forgiven by the grace window.
    let (st, err) = refresh(&base, &s(&first, "refreshToken")).await;
    assert_eq!(
        (st, err["error_code"].as_str()),
        (401, Some("refresh-token-reused"))
    );
    let (st, err) = refresh(&base, &s(&third, "refreshToken")).await;
    assert_eq!(
        (st, err["error_code"].as_str()),
        (401, Some("refresh-token-revoked"))
    );

    // Every instance refuses the family's access token: first either, then only b.
    for _ in 0..6 {
        assert_nats_denied(&env, &s(&third, "accessToken"), "revoked family, either instance").await;
    }
    a.stop().await;
    for _ in 0..3 {
        assert_nats_denied(&env, &s(&third, "accessToken"), "revoked family, second instance").await;
    }
    // Other users are untouched.
    let alice = env.token("alice");
    env.connect(Some(&alice), "all1")
        .await
        .expect("alice still connects");
    drop(b);
}

/// Two tabs refreshing at once: the immediate predecessor within the grace window gives
/// the same new pair, and nobody is logged out.
#[tokio::test]
async fn grace_window_replay_returns_the_same_pair() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let base = svc.http_url();
    let first = login(&base, "alice", None).await;
    let rt = s(&first, "refreshToken");
    let (a, b) = tokio::join!(refresh(&base, &rt), refresh(&base, &rt));
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    assert_eq!(s(&a.1, "refreshToken"), s(&b.1, "refreshToken"));
    assert_eq!(s(&a.1, "accessToken"), s(&b.1, "accessToken"));
    env.connect(Some(&s(&a.1, "accessToken")), "all1;alice1")
        .await
        .expect("the pair works");
    let (st, _) = refresh(&base, &s(&a.1, "refreshToken")).await;
    assert_eq!(st, 200, "the successor still rotates");
}

/// Browser mode: no token in the body; the cookie alone authenticates the websocket.
#[tokio::test]
async fn browser_mode_keeps_tokens_out_of_the_body() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/auth/login", svc.http_url()))
        .header("Origin", "http://127.0.0.1:8080")
        .json(&json!({"username": "bob", "password": "bob", "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let text = resp.text().await.unwrap();
    let access = cookies
        .iter()
        .find_map(|c| c.strip_prefix("nats_token="))
        .and_then(|c| c.split(';').next())
        .expect("nats_token cookie")
        .to_string();
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("nats_refresh="))
        .expect("refresh cookie");
    assert!(refresh_cookie.contains("Path=/api/auth") && refresh_cookie.contains("HttpOnly"));
    assert!(!text.contains(&access), "{text}");
    assert!(
        !text.contains("\"accessToken\"") && !text.contains("\"refreshToken\""),
        "{text}"
    );
    assert!(!text.contains("rt1_"), "{text}");

    // The websocket listener lifts the cookie into CONNECT.
    let url = format!("ws://127.0.0.1:{}", env.server.ws_port);
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "http://127.0.0.1:8080".parse().unwrap());
    req.headers_mut()
        .insert("Cookie", format!("nats_token={access}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let _info = ws.next().await;
    ws.send(Message::binary(
        &b"CONNECT {\"user\":\"all1\",\"verbose\":false,\"protocol\":1}\r\nPING\r\n"[..],
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_data();
    assert!(String::from_utf8_lossy(&reply).contains("PONG"));
}

/// Revoking one device ends only that device's session.
#[tokio::test]
async fn revoke_by_device_touches_only_that_device() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let base = svc.http_url();
    let phone = login(&base, "bob", Some("phone")).await;
    let laptop = login(&base, "bob", Some("laptop")).await;
    let admin = login(&base, "admin", None).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/auth/revoke"))
        .bearer_auth(s(&admin, "accessToken"))
        .json(&json!({"userId": "bob", "deviceId": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["revokedSessions"], 1);
    assert_nats_denied(&env, &s(&phone, "accessToken"), "revoked device").await;
    env.connect(Some(&s(&laptop, "accessToken")), "all1")
        .await
        .expect("the other device still connects");
    assert_eq!(refresh(&base, &s(&phone, "refreshToken")).await.0, 401);
    assert_eq!(refresh(&base, &s(&laptop, "refreshToken")).await.0, 200);
}

/// `nats-callout revoke --user` talks to the running service over NATS.
#[tokio::test]
async fn revoke_command_reaches_the_running_service() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let base = svc.http_url();
    let bob = login(&base, "bob", None).await;
    let cfg = env.write_config_file("");
    let cli = |args: &'static [&'static str]| {
        let cfg = cfg.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
                .args(args)
                .arg("--config")
                .arg(&cfg)
                .output()
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            (
                out.status.success(),
                body,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, body, err) = cli(&["revoke", "--user", "bob"]).await;
    assert!(ok, "{err}");
    assert_eq!(body["revokedSessions"], 1, "{body}");
    assert_nats_denied(&env, &s(&bob, "accessToken"), "revoked user").await;
    assert_eq!(refresh(&base, &s(&bob, "refreshToken")).await.0, 401);
    // A time that is not one, or in the future, is refused by the service with a reason.
    let (ok, body, _) = cli(&["revoke", "--before", "yesterday"]).await;
    assert!(!ok && body["error_code"] == "bad-request", "{body}");
    let (ok, body, _) = cli(&["revoke", "--before", "4102444800"]).await;
    assert!(!ok && body["error_code"] == "cutoff-in-future", "{body}");
    // Naming two targets is refused before anything is sent.
    let (ok, _, err) = cli(&["revoke", "--device", "x", "--session", "y"]).await;
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    // Token reset by user through the same path.
    let (ok, body, err) = cli(&["token-reset", "--user", "bob"]).await;
    assert!(ok, "{err}");
    assert!(body["affected"].is_u64(), "{body}");
}

/// Internal services (role `service`) ask `auth.v1.usercontext` through the app
/// account's import; plain users may not publish there.
#[tokio::test]
async fn user_context_endpoint_is_for_services_only() {
    let env = TestEnv::start(EnvOptions::default()).await;
    env.add_service_user("helpdesk");
    let svc = env.start_callout().await;
    let bob = login(&svc.http_url(), "bob", Some("laptop")).await;

    let service = env.endpoint_caller("helpdesk").await;
    let by_token = json!({"token": s(&bob, "accessToken")});
    let ctx = ask(&service.client, "auth.v1.usercontext", &by_token).await;
    assert_eq!(ctx["id"], "bob");
    assert_eq!(ctx["roles"], json!(["user"]));
    assert_eq!(ctx["data"]["deviceId"], "laptop");
    let bad = ask(&service.client, "auth.v1.usercontext", &json!({"token": "nope"})).await;
    assert_eq!(bad["error_code"], "token-malformed");

    let mut plain = env.connect(Some(&env.token("bob")), "all1").await.unwrap();
    plain
        .client
        .publish("auth.v1.usercontext", "{}".into())
        .await
        .unwrap();
    plain
        .expect_error("Permissions Violation for Publish to \"auth.v1.usercontext\"")
        .await;
}

/// Config mode mints no NATS credentials: no user JWT may ask for them, and a request from
/// the service's own account is answered `operator-mode-only`, to the token's user.
#[tokio::test]
async fn config_mode_answers_no_credentials_over_nats() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let _svc = env.start_callout().await;
    let mut bob = env.connect(Some(&env.token("bob")), "all1").await.unwrap();
    let mut told = bob.client.subscribe("nats-callout.notice.bob").await.unwrap();
    bob.client.flush().await.unwrap();
    bob.client
        .publish("auth.v1.credentials", "{}".into())
        .await
        .unwrap();
    bob.expect_error("Permissions Violation for Publish to \"auth.v1.credentials\"")
        .await;
    let auth = env.connect_auth_user().await;
    let key = nkeys::KeyPair::new_user().public_key();
    let body = json!({"token": env.token("bob"), "publicKey": key, "rooms": ["all1"]});
    auth.publish("auth.v1.credentials", body.to_string().into())
        .await
        .unwrap();
    let m = tokio::time::timeout(crate::support::DEADLINE, futures::StreamExt::next(&mut told))
        .await
        .expect("bob is told")
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&answer["type"], &answer["error_code"]),
        (&json!("credentials"), &json!("operator-mode-only")),
        "{answer}"
    );
}

/// Gateways and services (role `service`) look a user of the files up by id over
/// `auth.v1.usercontext {userId}`: the context without a token's parts; an unknown user is
/// `unknown-user`, a name no user can have or both a token and a user `bad-request`.
#[tokio::test]
async fn services_look_a_user_up_by_id() {
    let env = TestEnv::start(EnvOptions::default()).await;
    std::fs::write(
        env.config.permissions.dir.join("service.toml"),
        "[users.gateway]\nroles = [\"service\"]\n",
    )
    .unwrap();
    let _svc = env.start_callout().await;
    let service = env.endpoint_caller("gateway").await;
    let lookup = |body: Value| {
        let client = service.client.clone();
        async move { ask(&client, "auth.v1.usercontext", &body).await }
    };
    let ctx = lookup(json!({"userId": "alice"})).await;
    assert_eq!(
        ctx,
        json!({
            "id": "alice",
            "clientId": null,
            "roles": ["user"],
            "user": {"id": "alice", "roles": ["user"], "groups": ["everyone"], "roomCount": 5},
        })
    );
    let admin = lookup(json!({"userId": "admin"})).await;
    assert_eq!(admin["roles"], json!(["admin", "sysadmin"]));
    let cases = [
        (json!({"userId": "nobody"}), "unknown-user"),
        (json!({"userId": "a.b"}), "bad-request"),
        (json!({"userId": ""}), "bad-request"),
        (
            json!({"userId": "alice", "token": env.token("alice")}),
            "bad-request",
        ),
    ];
    for (body, code) in cases {
        let answer = lookup(body.clone()).await;
        assert_eq!(answer["error_code"], code, "{body} -> {answer}");
    }
    // Asking by token works as before.
    let by_token = lookup(json!({"token": env.token("alice")})).await;
    assert_eq!(by_token["id"], "alice");
    assert_eq!(by_token["data"]["deviceId"], "test");
}

/// A service killed with SIGKILL in the middle of rotations restarts with a consistent
/// store: the last pair the client received works, and it has exactly one successor.
#[tokio::test]
async fn sigkill_during_rotations_loses_nothing() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let port = crate::support::free_port();
    let cfg = env.write_config_file(&format!("127.0.0.1:{port}"));
    let base = format!("http://127.0.0.1:{port}");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    async fn wait_up(base: &str) {
        for _ in 0..200 {
            if reqwest::get(format!("{base}/api/config")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("service did not come up");
    }

    for round in 0..3 {
        let mut child = spawn();
        wait_up(&base).await;
        let mut rt = if round == 0 {
            s(&login(&base, "bob", None).await, "refreshToken")
        } else {
            std::fs::read_to_string(env.dir.path().join("last-rt")).unwrap()
        };
        // After a restart the last token the client holds must still rotate: either it is
        // current, or its successor was committed and the grace window replays it.
        let (st, body) = refresh(&base, &rt).await;
        assert_eq!(st, 200, "round {round}: last known token after restart: {body}");
        rt = s(&body, "refreshToken");
        // Rotate in a loop; kill -9 while requests are in flight.
        let rotations = {
            let base = base.clone();
            let mut rt = rt.clone();
            let path = env.dir.path().join("last-rt");
            tokio::spawn(async move {
                let mut n = 0;
                loop {
                    std::fs::write(&path, &rt).unwrap();
                    match reqwest::Client::new()
                        .post(format!("{base}/api/auth/refresh"))
                        .json(&json!({"refreshToken": rt}))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                            Ok(b) => {
                                rt = s(&b, "refreshToken");
                                n += 1;
                            }
                            Err(_) => return n,
                        },
                        Ok(r) => panic!("rotation refused: {}", r.text().await.unwrap_or_default()),
                        Err(_) => return n,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let n = rotations.await.unwrap();
        assert!(n > 0, "some rotations happened before the kill");
    }
    // Final check: the last token has exactly one successor (a replay gives the same one).
    let mut child = spawn();
    wait_up(&base).await;
    let rt = std::fs::read_to_string(env.dir.path().join("last-rt")).unwrap();
    let (st1, a) = refresh(&base, &rt).await;
    let (st2, b) = refresh(&base, &rt).await;
    assert_eq!((st1, st2), (200, 200), "{a} {b}");
    assert_eq!(s(&a, "refreshToken"), s(&b, "refreshToken"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A token minted longer than the access-token lifetime (`token --ttl 1h`) and then revoked
/// stays refused after the access-token lifetime has passed: the revocation entry lives as
/// long as `tokens.max_token_ttl`, in memory and in the store (what a restart loads).
#[tokio::test]
async fn a_revoked_long_token_stays_refused_past_the_access_token_lifetime() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let long = env.token_with("bob", Duration::from_secs(3600), None);
    env.connect(Some(&long), "all1")
        .await
        .expect("the long token connects");
    let now = nats_callout::clock::now_secs();
    svc.tokens
        .revoke(
            &nats_callout::tokens::revocation::RevokeTarget::User("bob".into()),
            "test",
            now,
        )
        .await
        .unwrap();
    assert_nats_denied(&env, &long, "right after the revocation").await;
    // The janitor's prune well after the 5-minute access-token lifetime...
    let later = now + env.config.tokens.access_ttl.as_secs() as i64 + 60;
    svc.tokens.revocations().prune(later);
    assert_nats_denied(&env, &long, "after the access-token lifetime").await;
    // ...and the entries a restart would load at that time still cover it.
    let stored = svc.tokens.refresh().revocations(later).await.unwrap();
    assert!(
        stored
            .iter()
            .any(|r| r.value == "bob" && r.expires_at >= now + 3600),
        "{stored:?}"
    );
}

/// A guest (`http.guests`) chats in the guest group's rooms over NATS and reaches no other.
#[tokio::test]
async fn a_guest_chats_in_the_guest_rooms_and_reaches_no_other() {
    let env = TestEnv::start(EnvOptions::default()).await;
    std::fs::write(
        env.config.permissions.dir.join("guests.toml"),
        "[groups.guest]\nmembers = []\n\n[rooms.lobby]\nmembers = [\"@guest\", \"bob\"]\n",
    )
    .unwrap();
    let mut config = env.config.clone();
    config.http.guests = true;
    let svc = env.start_callout_with(config).await;
    let (status, guest, _) =
        crate::support::api::post(&format!("{}/api/auth/guest", svc.http_url()), json!({})).await;
    assert_eq!(status, 200, "{guest}");
    let id = s(&guest, "userId");
    let mut conn = env
        .connect(Some(&s(&guest, "accessToken")), "lobby;all1;bob1")
        .await
        .expect("the guest connects");
    // It talks with bob in the lobby...
    let bob = env.connect(Some(&env.token("bob")), "lobby").await.unwrap();
    let mut from_guest = bob.client.subscribe("chat.lobby.>").await.unwrap();
    bob.client.flush().await.unwrap();
    let subject = format!("chat.lobby.{id}");
    let heard = tokio::time::timeout(DEADLINE, async {
        loop {
            conn.client
                .publish(subject.clone(), "hello".into())
                .await
                .unwrap();
            conn.client.flush().await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(
                Duration::from_millis(200),
                futures::StreamExt::next(&mut from_guest),
            )
            .await
            {
                return m.subject.to_string();
            }
        }
    })
    .await
    .expect("bob hears the guest");
    assert_eq!(heard, subject);
    // ...and nowhere else: all1 and bob1 were left out of its grant.
    let _s = conn.client.subscribe("chat.all1.>").await.unwrap();
    conn.expect_error("Permissions Violation for Subscription to \"chat.all1.>\"")
        .await;
    conn.client
        .publish(format!("chat.bob1.{id}"), "x".into())
        .await
        .unwrap();
    conn.expect_error(&format!(
        "Permissions Violation for Publish to \"chat.bob1.{id}\""
    ))
    .await;
}

/// Key login end to end: a key from the files (made by the Rust `nkeys` crate, and one by the
/// official JavaScript `@nats-io/nkeys` signing in its own client), challenge, tokens, then a
/// NATS connection with exactly the user's grant.
#[tokio::test]
async fn a_key_login_gets_tokens_that_connect_with_the_grant() {
    use base64::Engine;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The service runs in this test's runtime: node must be awaited, not waited for.
    let node = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("node")
            .arg(root.join("tests/keylogin/nkey.mjs"))
            .args(args)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("node answers within a minute")
            .expect("node runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let js = node(vec!["new".into()]).await;
    let (js_public, js_seed) = js.trim().split_once(' ').unwrap();
    let bob = nkeys::KeyPair::new_user();
    let env = TestEnv::start(EnvOptions::default()).await;
    let users = env.config.permissions.dir.join("users.toml");
    let text = std::fs::read_to_string(&users)
        .unwrap()
        .replacen(
            "[users.bob]\n",
            &format!("[users.bob]\nnkeys = [\"{}\"]\n", bob.public_key()),
            1,
        )
        .replacen(
            "[users.alice]\n",
            &format!("[users.alice]\nnkeys = [\"{js_public}\"]\n"),
            1,
        );
    std::fs::write(&users, text).unwrap();
    let svc = env.start_callout().await;
    let base = svc.http_url();

    // Rust: challenge, sign, authenticate.
    let (st, c, _) = crate::support::api::post(
        &format!("{base}/api/auth/challenge"),
        json!({"publicKey": bob.public_key()}),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    let challenge = s(&c, "challenge");
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bob.sign(challenge.as_bytes()).unwrap());
    let (st, tokens, _) = crate::support::api::post(
        &format!("{base}/api/auth/authenticate"),
        json!({"challenge": challenge, "publicKey": bob.public_key(), "signature": signature}),
    )
    .await;
    assert_eq!(st, 200, "{tokens}");
    let mut conn = env
        .connect(Some(&s(&tokens, "accessToken")), "bob1;alice1")
        .await
        .expect("bob connects with the key login's token");
    let _s = conn.client.subscribe("chat.bob1.>").await.unwrap();
    let _t = conn.client.subscribe("chat.alice1.>").await.unwrap();
    conn.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;
    let (st, refreshed) = refresh(&base, &s(&tokens, "refreshToken")).await;
    assert_eq!(st, 200, "{refreshed}");

    // JavaScript: its own client, its own signature.
    let answer: Value = serde_json::from_str(
        node(vec!["login".into(), base.clone(), js_seed.into()])
            .await
            .trim(),
    )
    .unwrap();
    assert_eq!(answer["userId"], "alice");
    env.connect(Some(&s(&answer, "accessToken")), "alice1")
        .await
        .expect("alice connects with the JavaScript client's token");
}
