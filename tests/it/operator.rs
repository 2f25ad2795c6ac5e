//! Operator mode on a real nats-server 2.15.1 running decentralized JWT authentication: the
//! set-up `nats-callout keys --operator` writes (checked by the official `@nats-io/jwt`
//! too), the chat scenario, bad input, xkey on and off, a user placed in a second allowed
//! account, an account not allowed, live enforcement, the websocket cookie, and a scoped
//! signing key refused at start.

use std::path::Path;
use std::time::Duration;

use async_nats::ConnectErrorKind;
use nats_callout::operator::setup::{SetupOptions, generate};
use serde_json::{Value, json};

use crate::enforcement::{Seen, Watched, watched_with};
use crate::support::operator::{CREDENTIALS_TTL, PLACED, World, credentials};
use crate::support::{
    DEADLINE, TokenIn, after_a_reconcile, connect_to, connect_via, connect_with_jwt, talks, wait_until,
    ws_exchange,
};

async fn chat_and_placement(xkey: bool) {
    let w = World::start(xkey).await;
    // bob: his rooms in APP, not alice's.
    let mut bob = w
        .connect(Some(&w.token("bob")), "all1;bob1;alice1")
        .await
        .expect("bob connects");
    talks(&bob, "bob1", "bob").await;
    talks(&bob, "all1", "bob").await;
    let _s = bob.client.subscribe("chat.alice1.>").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;
    // The reply-to-self trick: a message bob sends himself with a reply subject in
    // alice's room does not make that subject his to publish (the user JWT has no `resp`).
    let mut own = bob.client.subscribe("chat.bob1.>").await.unwrap();
    bob.client
        .publish_with_reply("chat.bob1.bob", "chat.alice1.bob", "ask".into())
        .await
        .unwrap();
    let m = tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut own))
        .await
        .unwrap()
        .unwrap();
    bob.client
        .publish(m.reply.unwrap(), "escaped".into())
        .await
        .unwrap();
    bob.expect_error("Permissions Violation for Publish to \"chat.alice1.bob\"")
        .await;
    let app = w.connections(&w.target("APP")).await;
    let users: Vec<&str> = app["data"]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["authorized_user"].as_str())
        .collect();
    assert_eq!(users, ["bob"], "bob is placed in APP: {app}");

    // carol lives in APP2: placed there by APP2's signing key.
    let carol = w
        .connect(Some(&w.token("carol")), "all1")
        .await
        .expect("carol connects");
    talks(&carol, "all1", "carol").await;
    let app2 = w.connections(&w.target("APP2")).await;
    assert_eq!(
        app2["data"]["connections"][0]["authorized_user"], "carol",
        "{app2}"
    );
    // dave's account is not one the AUTH account allows: refused by the service.
    let err = w
        .connect(Some(&w.token("dave")), "all1")
        .await
        .err()
        .expect("dave refused");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation);

    // Bad input: denied, and the service goes on.
    for (token, what) in [
        (None, "no token"),
        (Some("x.y.z"), "garbage"),
        (Some(""), "empty"),
    ] {
        let err = w
            .connect(token, "all1")
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: allowed"));
        assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{what}");
    }
    let too_many = (0..60).map(|i| format!("r{i}")).collect::<Vec<_>>().join(";");
    assert!(w.connect(Some(&w.token("bob")), &too_many).await.is_err());
    w.connect(Some(&w.token("alice")), "alice1")
        .await
        .expect("still serving");
    // The token as the password beside the rooms (with the sentinel, as without it).
    let mut alice = connect_via(
        &w.server.url(),
        Some(&w.token("alice")),
        "alice1;bob1",
        None,
        TokenIn::Pass,
    )
    .await
    .expect("alice connects with the token as her password");
    talks(&alice, "alice1", "alice").await;
    let _s = alice.client.subscribe("chat.bob1.>").await.unwrap();
    alice
        .expect_error("Permissions Violation for Subscription to \"chat.bob1.>\"")
        .await;
    // nats-server writes its log line after it answered the client.
    wait_until("the server logs the reason", || {
        w.server.log().contains("account-not-served")
    })
    .await;
}

#[tokio::test]
async fn operator_mode_chat_placement_and_bad_input_with_xkey() {
    chat_and_placement(true).await;
}

#[tokio::test]
async fn operator_mode_chat_placement_and_bad_input_without_xkey() {
    chat_and_placement(false).await;
}

/// Live enforcement through the system account's creds, the websocket cookie, and the
/// HTTP API, in operator mode.
#[tokio::test]
async fn operator_mode_enforcement_websocket_and_http() {
    let w = World::start(true).await;
    let base = format!("http://{}", w.http);
    let login = crate::support::api::login(&base, "bob", Some("laptop")).await;
    let access = crate::support::api::s(&login, "accessToken");
    let mut bob = w.connect(Some(&access), "all1").await.expect("bob connects");
    // Notices: AUTH's account JWT exports them, APP's imports them.
    crate::support::api::told_when_added(&bob, &base, "bob", "shared").await;
    // The websocket listener takes the token from the cookie.
    let ws = format!("ws://127.0.0.1:{}", w.server.ws_port);
    let ok = ws_exchange(
        &ws,
        &w.origin,
        Some(&access),
        "all1;bob1",
        "SUB chat.bob1.> 1\r\n",
    )
    .await;
    assert!(ok.contains("PONG") && !ok.contains("-ERR"), "websocket: {ok}");
    // Revoking the user kicks the live connection (KICK through SYS).
    let admin = w.token("admin");
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/auth/revoke"))
        .bearer_auth(admin)
        .json(&json!({"userId": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_until("the revoked user's connection kicked", || !bob.connected()).await;
    let _ = bob.errors.try_recv();
    assert!(w.connect(Some(&access), "all1").await.is_err());
}

/// A device signed out right after it connected is kicked at once while CONNZ reconciles
/// run back to back (every second, over two accounts, each waiting half a second for its
/// answers): events and decisions never queue behind a reconcile.
#[tokio::test]
async fn a_device_signed_out_right_after_connecting_is_kicked_while_reconciles_run() {
    let w = World::start(true).await;
    let base = format!("http://{}", w.http);
    for i in 0..6 {
        let device = format!("device{i}");
        let login = crate::support::api::login(&base, "bob", Some(&device)).await;
        let access = crate::support::api::s(&login, "accessToken");
        let mut bob = w.connect(Some(&access), "all1").await.expect("bob connects");
        let resp = reqwest::Client::new()
            .post(format!("{base}/api/auth/revoke"))
            .bearer_auth(&access)
            .json(&json!({"deviceId": device}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        wait_until(&format!("{device} kicked"), || !bob.connected()).await;
        let _ = bob.errors.try_recv();
    }
}

/// The generated operator and account JWTs pass the official JavaScript library's checks.
#[tokio::test]
async fn the_generated_jwts_verify_with_the_official_library() {
    for xkey in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let opts = SetupOptions {
            xkey,
            tokens_dir: dir.path().join("tokens"),
            permissions_dir: dir.path().join("permissions"),
            ..SetupOptions::demo(dir.path().join("op"))
        };
        generate(&opts).unwrap();
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/operator/jwt-check.mjs"))
            .arg(dir.path().join("op"));
        if !xkey {
            cmd.arg("--no-xkey");
        }
        let out = cmd.output().await.expect("node runs");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["ok"], true);
        // Seeds and creds are private files.
        use std::os::unix::fs::PermissionsExt;
        for f in [
            "AUTH-signing.nk",
            "APP-signing.nk",
            "service.creds",
            "sys.creds",
            "xkey.xk",
        ] {
            let mode = std::fs::metadata(dir.path().join("op").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        // Existing files are not overwritten without --force.
        assert!(generate(&opts).is_err());
    }
}

/// Live enforcement's lame-duck notice in operator mode: a token reset from the admin API
/// reaches bob's connection through the system account.
#[tokio::test]
async fn operator_mode_token_reset_sends_the_lame_duck_notice() {
    let w = World::start(true).await;
    let (_bob, mut rx) = w.watch_lame_duck("bob", "all1").await;
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        // Until the enforcer has registered bob's connection, a reset affects nothing.
        let reset = json!({"users": ["bob"], "reason": "test"});
        let r = w.admin("/api/console/token-reset", Some(reset)).await;
        if r["affected"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bob never registered: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the lame-duck notice arrives")
        .unwrap();
}

/// The chat page in Chromium against the operator-mode server: login, websocket with the
/// cookie, the account page signing a device out, the console (chart, connections, a broken
/// file's problem, token reset) – the browser script of the config-mode test, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_mode_chat_page_in_chromium() {
    use crate::browser::{assert_succeeded, chromium, prerequisites, root, run};
    prerequisites();
    let w = World::start(true).await;
    let shots = root().join("target/browser-screenshots/operator");
    std::fs::create_dir_all(&shots).unwrap();
    let permissions = w._dir.path().join("permissions");
    let out = run(
        tokio::process::Command::new("node")
            .arg("tests/browser/account.mjs")
            .current_dir(root())
            .env("BASE_URL", format!("{}/", w.origin))
            .env("PERMISSIONS_DIR", &permissions)
            .env("SCREENSHOT_DIR", &shots)
            .env("CHROMIUM", chromium()),
        "tests/browser/account.mjs (operator mode)",
        Duration::from_secs(120),
    )
    .await;
    assert_succeeded(&out, "the page in operator mode failed");
}

/// Live enforcement follows every account users are placed in: carol, in APP2, gets the
/// lame-duck notice when the permission files take her room away.
#[tokio::test]
async fn operator_mode_enforcement_follows_users_in_a_second_account() {
    let w = World::start(true).await;
    let (_carol, mut rx) = w.watch_lame_duck("carol", "all1").await;
    // The console lists her once the enforcer knows the connection.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let c = w.admin("/api/console/connections", None).await;
        if c["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["user"] == "carol")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "carol never listed: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let a CONNZ reconcile pass first: it must keep connections of every account (one that
    // asked only the default account would drop carol's, and no notice would reach her).
    after_a_reconcile(w.ops()).await;
    let placed = w._dir.path().join("permissions/placed.toml");
    let tmp = w._dir.path().join("permissions/.placed.tmp");
    std::fs::write(
        &tmp,
        PLACED.replace("[users.carol.rooms]\nall1 = \"readwrite\"\n", ""),
    )
    .unwrap();
    std::fs::rename(&tmp, &placed).unwrap();
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("carol's connection gets the lame-duck notice")
        .unwrap();
}

/// The claims of a JWT, unverified (nats-server verifies; the test reads what it was given).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn operator_mode_credentials_carry_the_callouts_grant_for_the_clients_own_key() {
    let w = World::start(true).await;
    // The audit trail, as the service's own user (in AUTH) sees it.
    let service = w.service().await;
    let mut audit = service.subscribe("nats-callout.audit.credentials").await.unwrap();
    service.flush().await.unwrap();
    let key = std::sync::Arc::new(nkeys::KeyPair::new_user());
    let bob = w.token("bob");
    let (status, answer) = credentials(
        &w,
        Some(&bob),
        json!({"publicKey": key.public_key(), "rooms": ["all1", "alice1", "bob1"]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rooms"], json!(["all1", "bob1"]));
    assert_eq!(answer["refused"], json!(["alice1"]));
    let jwt = answer["jwt"].as_str().unwrap();
    let now = nats_callout::clock::now_secs();
    let exp = answer["expiresAt"].as_i64().unwrap();
    assert!(
        exp > now && exp <= now + CREDENTIALS_TTL.as_secs() as i64,
        "{exp} vs {now}"
    );
    // Signed as the callout signs: APP's signing key with issuer_account; for bob's key only.
    let c = claims(jwt);
    assert_eq!(c["sub"], key.public_key());
    assert_eq!(c["name"], "bob");
    assert_eq!(c["nats"]["issuer_account"], w.target("APP"));
    assert_ne!(c["iss"], w.target("APP"), "a signing key signs, not the account");
    assert!(c["nats"].get("bearer_token").is_none(), "not a bearer token");
    // The connection types of `callout.connection_types`, which nats-server enforces for it.
    assert_eq!(
        c["nats"]["allowed_connection_types"],
        json!(["STANDARD", "WEBSOCKET"])
    );
    let event = tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut audit))
        .await
        .expect("an audit event for the mint")
        .unwrap();
    let event: Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(
        (&event["by"], &event["nkey"], &event["rooms"], &event["refused"]),
        (
            &json!("bob"),
            &json!(key.public_key()),
            &json!(["all1", "bob1"]),
            &json!(["alice1"])
        ),
        "{event}"
    );

    // With the key's nonce signature: bob's grant, as the callout gives it, no callout asked.
    let inbox = "_INBOX.bob";
    let mut conn = connect_with_jwt(&w.server.url(), jwt, key.clone(), inbox)
        .await
        .expect("the credentials connect");
    talks(&conn, "all1", "bob").await;
    talks(&conn, "bob1", "bob").await;
    let alice = w.connect(Some(&w.token("alice")), "all1").await.unwrap();
    let mut heard = alice.client.subscribe("chat.all1.>").await.unwrap();
    alice.client.flush().await.unwrap();
    // alice (through the callout) hears bob (through his JWT): one account, one room. Said
    // until heard, as `talks` does. Under load a first message was once not delivered
    // although alice's SUB had been flushed (CONNZ: bob's in_msgs counted it, alice's out_msgs
    // stayed 0); the cause is not known, see the closing note of stop 34.
    let heard_it = tokio::time::timeout(DEADLINE, async {
        loop {
            conn.client
                .publish("chat.all1.bob", "from a JWT".into())
                .await
                .unwrap();
            if let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(200), futures::StreamExt::next(&mut heard)).await
            {
                return m;
            }
        }
    })
    .await
    .expect("alice hears bob's JWT connection");
    assert_eq!(
        (heard_it.subject.as_str(), &heard_it.payload[..]),
        ("chat.all1.bob", &b"from a JWT"[..])
    );
    let _s = conn.client.subscribe("chat.alice1.>").await.unwrap();
    conn.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;
    conn.client
        .publish("chat.all1.alice", "as alice".into())
        .await
        .unwrap();
    conn.expect_error("Permissions Violation for Publish to \"chat.all1.alice\"")
        .await;
    conn.client
        .publish("auth.v1.tokenReset", "{}".into())
        .await
        .unwrap();
    conn.expect_error("Permissions Violation for Publish to \"auth.v1.tokenReset\"")
        .await;

    // Another key cannot use the JWT: it cannot sign the nonce for bob's key.
    let thief = std::sync::Arc::new(nkeys::KeyPair::new_user());
    let stolen = connect_with_jwt(&w.server.url(), jwt, thief, inbox).await;
    assert!(stolen.is_err(), "a stolen JWT connected");
}

/// Credentials resolve a delegated room as the callout does: its delegate (an app service
/// in the service's own account) is asked within the budget, and its answer is the grant
/// the JWT carries.
#[tokio::test]
async fn operator_mode_credentials_ask_the_delegate_of_a_delegated_room() {
    use crate::delegation::{AppService, Reply, delegate};
    let w = World::start_configured(true, CREDENTIALS_TTL, |c| {
        c.access.delegate = vec![delegate("team-*", "svc.teams", 1000)];
    })
    .await;
    let service = w.service().await;
    let teams = AppService::start(service, "svc.teams", Reply::access("none")).await;
    teams.answer("bob", "team-a", "readwrite");
    let key = std::sync::Arc::new(nkeys::KeyPair::new_user());
    let body = json!({"publicKey": key.public_key(), "rooms": ["all1", "team-a", "team-b"]});
    let (status, answer) = credentials(&w, Some(&w.token("bob")), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rooms"], json!(["all1", "team-a"]), "{answer}");
    assert_eq!(answer["refused"], json!(["team-b"]), "{answer}");
    assert_eq!(teams.asked(), 2, "one ask per delegated room");
    let conn = connect_with_jwt(
        &w.server.url(),
        answer["jwt"].as_str().unwrap(),
        key,
        "_INBOX.bob",
    )
    .await
    .expect("the credentials connect");
    talks(&conn, "team-a", "bob").await;
}

#[tokio::test]
async fn operator_mode_credentials_expire_and_the_server_closes_their_connection() {
    const TTL: Duration = Duration::from_secs(5);
    let w = World::start_with(false, TTL).await;
    let key = std::sync::Arc::new(nkeys::KeyPair::new_user());
    let body = json!({"publicKey": key.public_key(), "rooms": ["all1"]});
    let (status, answer) = credentials(&w, Some(&w.token("bob")), body).await;
    assert_eq!(status, 200, "{answer}");
    let exp = answer["expiresAt"].as_i64().unwrap();
    assert!(exp <= nats_callout::clock::now_secs() + TTL.as_secs() as i64);
    let conn = connect_with_jwt(
        &w.server.url(),
        answer["jwt"].as_str().unwrap(),
        key,
        "_INBOX.bob",
    )
    .await
    .expect("the credentials connect");
    let closed = tokio::time::timeout(TTL + DEADLINE, async {
        while conn.client.connection_state() == async_nats::connection::State::Connected {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection outlived its JWT");
    assert!(
        nats_callout::clock::now_secs() >= exp,
        "closed before the JWT expired: it was not the expiry"
    );
}

#[tokio::test]
async fn operator_mode_credentials_refuse_bad_input() {
    let w = World::start(false).await;
    let key = nkeys::KeyPair::new_user().public_key();
    let bob = w.token("bob");
    let refused = |status: u16, code: &'static str| {
        move |(s, a): (u16, Value)| {
            assert_eq!((s, a["error_code"].as_str()), (status, Some(code)), "{a}");
        }
    };
    refused(401, "missing-token")(credentials(&w, None, json!({"publicKey": key, "rooms": []})).await);
    refused(401, "token-malformed")(credentials(&w, Some("nope"), json!({"publicKey": key})).await);
    for bad in [
        String::new(),
        "UABC".into(),
        nkeys::KeyPair::new_account().public_key(),
        nkeys::KeyPair::new_user().seed().unwrap(),
    ] {
        refused(400, "bad-public-key")(credentials(&w, Some(&bob), json!({"publicKey": bad})).await);
    }
    let many: Vec<String> = (0..51).map(|i| format!("r{i}")).collect();
    refused(400, "too-many-rooms")(
        credentials(&w, Some(&bob), json!({"publicKey": key, "rooms": many})).await,
    );
    refused(400, "bad-room-name")(
        credentials(&w, Some(&bob), json!({"publicKey": key, "rooms": ["a.b"]})).await,
    );
    refused(400, "bad-request")(credentials(&w, Some(&bob), json!({"publicKey": key, "extra": 1})).await);
    // A revoked session mints nothing.
    let revoked = w.admin("/api/auth/revoke", Some(json!({"userId": "bob"}))).await;
    assert!(revoked["revokedSessions"].is_number(), "{revoked}");
    tokio::time::sleep(Duration::from_millis(1100)).await; // the next second's iat is after the cutoff
    refused(401, "access-token-revoked")(credentials(&w, Some(&bob), json!({"publicKey": key})).await);
    let fresh = w.token("bob");
    let (status, answer) = credentials(&w, Some(&fresh), json!({"publicKey": key})).await;
    assert_eq!(status, 200, "a token issued after the revocation mints: {answer}");
}

/// A client on `jwt` signed with `key`: it reconnects at once when closed, and what it sees
/// (connects, lame-duck notices, closes) is watched.
async fn on_credentials(w: &World, jwt: &str, key: std::sync::Arc<nkeys::KeyPair>, inbox: &str) -> Watched {
    let opts = async_nats::ConnectOptions::with_jwt(jwt.to_string(), move |nonce| {
        let key = key.clone();
        async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .custom_inbox_prefix(inbox)
    .max_reconnects(None)
    .reconnect_delay_callback(|_| Duration::from_millis(100));
    watched_with(opts, &w.server.url(), false).await
}

/// Mint `user`'s credentials for `rooms` with `token`: the JWT and its key.
async fn minted(w: &World, token: &str, rooms: &[&str]) -> (String, std::sync::Arc<nkeys::KeyPair>) {
    let key = std::sync::Arc::new(nkeys::KeyPair::new_user());
    let body = json!({"publicKey": key.public_key(), "rooms": rooms});
    let (status, answer) = credentials(w, Some(token), body).await;
    assert_eq!(status, 200, "{answer}");
    (answer["jwt"].as_str().unwrap().to_string(), key)
}

/// Each time `c` connects it is closed again within a second of it, `times` times over.
async fn closed_at_every_connect(c: &mut Watched, times: usize, what: &str) {
    for _ in 0..times {
        let Seen::Connected(at) = c
            .wait_for(&format!("{what}: a connect"), |s| matches!(s, Seen::Connected(_)))
            .await
        else {
            unreachable!()
        };
        c.wait_for(&format!("{what}: closed"), |s| matches!(s, Seen::Disconnected))
            .await;
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "{what}: closed {:?} after its connect",
            at.elapsed()
        );
    }
}

/// The live connections the admin console lists for `user`.
async fn console_connections(w: &World, user: &str) -> Vec<Value> {
    let all = w.admin("/api/console/connections", None).await;
    let list = all["connections"].as_array().cloned().unwrap_or_default();
    list.into_iter().filter(|c| c["user"] == user).collect()
}

/// A connection made with credentials is in the registry as its user's, with the session it
/// was minted in: revoking that session closes it, and closes it again at every reconnect
/// with the same JWT, within a second of the connect; a new client with it likewise.
#[tokio::test]
async fn operator_mode_revoking_a_session_closes_its_credentials_connections_at_every_connect() {
    let w = World::start(false).await;
    let (status, login) = {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/auth/login", w.http))
            .json(&json!({"username": "bob", "password": "bob", "deviceId": "phone"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{login}");
    let access = login["accessToken"].as_str().unwrap();
    let (jwt, key) = minted(&w, access, &["all1"]).await;
    let mut bob = on_credentials(&w, &jwt, key.clone(), "_INBOX.bob").await;
    crate::enforcement::receives(&bob.client, "all1", "bob").await;
    // Known as bob's (not by its nkey), with the session and device it was minted in.
    let deadline = std::time::Instant::now() + DEADLINE;
    let known = loop {
        let conns = console_connections(&w, "bob").await;
        if let Some(c) = conns.into_iter().next() {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob's JWT connection never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(known["rooms"], json!(["all1"]), "{known}");
    assert_eq!(known["device"], "phone", "{known}");
    assert!(
        known["session"].as_str().is_some_and(|s| !s.is_empty()),
        "{known}"
    );
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/auth/revoke", w.http))
        .bearer_auth(access)
        .json(&json!({"deviceId": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    bob.wait_for("the revoked connection closed", |s| {
        matches!(s, Seen::Disconnected)
    })
    .await;
    // It comes back with the same JWT (nats-server takes it: the service cannot revoke it
    // there) and is closed each time.
    closed_at_every_connect(&mut bob, 2, "the reconnect").await;
    let mut again = on_credentials(&w, &jwt, key, "_INBOX.bob").await;
    again
        .wait_for("the new client closed", |s| matches!(s, Seen::Disconnected))
        .await;
    closed_at_every_connect(&mut again, 1, "the new client's reconnect").await;
    // No new credentials for that session.
    let body = json!({"publicKey": nkeys::KeyPair::new_user().public_key(), "rooms": ["all1"]});
    let (status, answer) = credentials(&w, Some(access), body).await;
    assert_eq!(status, 401, "{answer}");
}

/// A room taken away in the files reaches a credentials connection as a callout one (the
/// lame-duck notice, then the kick), and its JWT no longer holds at a connect.
#[tokio::test]
async fn operator_mode_a_room_taken_away_closes_credentials_connections() {
    let w = World::start(false).await;
    let (jwt, key) = minted(&w, &w.token("carol"), &["all1"]).await;
    let mut carol = on_credentials(&w, &jwt, key.clone(), "_INBOX.carol").await;
    crate::enforcement::receives(&carol.client, "all1", "carol").await;
    wait_until_listed(&w, "carol").await;
    let placed = PLACED.replace(
        "[users.carol.rooms]\nall1 = \"readwrite\"\n",
        "[users.carol.rooms]\nall2 = \"readwrite\"\n",
    );
    crate::enforcement::replace_file(&w._dir.path().join("permissions"), "placed.toml", &placed);
    carol
        .wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    carol
        .wait_for("the kick", |s| matches!(s, Seen::Disconnected))
        .await;
    closed_at_every_connect(&mut carol, 2, "the reconnect with the old grant").await;
    // New credentials carry the new grant.
    let (jwt, key) = minted(&w, &w.token("carol"), &["all1", "all2"]).await;
    assert_eq!(
        claims(&jwt)["nats_callout"]["rooms"],
        json!([["all2", "readwrite"]])
    );
    let fresh = on_credentials(&w, &jwt, key, "_INBOX.carol").await;
    crate::enforcement::receives(&fresh.client, "all2", "carol").await;
}

/// Wait until the console lists a connection of `user`.
async fn wait_until_listed(w: &World, user: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while console_connections(w, user).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{user}'s connection never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Per-user limits count credentials connections: erin (one connection at most) on her JWT,
/// then through the callout: the older, her JWT connection, is closed and stays refused at
/// every reconnect while the other holds her cap. Her subscription cap is the JWT's `subs`,
/// which nats-server enforces for it.
#[tokio::test]
async fn operator_mode_limits_count_credentials_connections() {
    let w = World::start_configured(false, CREDENTIALS_TTL, |c| {
        c.limits.join_grace = Duration::ZERO;
    })
    .await;
    let (jwt, key) = minted(&w, &w.token("erin"), &["all1"]).await;
    assert_eq!(claims(&jwt)["nats"]["subs"], 2);
    let mut on_jwt = on_credentials(&w, &jwt, key.clone(), "_INBOX.erin").await;
    let sub = |c: &async_nats::Client, n: usize| {
        let c = c.clone();
        async move { c.subscribe(format!("chat.all1.x{n}")).await.unwrap() }
    };
    let (_a, _b, _c) = (
        sub(&on_jwt.client, 1).await,
        sub(&on_jwt.client, 2).await,
        sub(&on_jwt.client, 3).await,
    );
    on_jwt
        .wait_for(
            "the server's subscription cap",
            |s| matches!(s, Seen::Error(e) if e.to_lowercase().contains("maximum subscriptions")),
        )
        .await;
    wait_until_listed(&w, "erin").await;
    let _callout = w
        .connect(Some(&w.token("erin")), "all1")
        .await
        .expect("erin connects");
    on_jwt
        .wait_for("the older connection closed", |s| matches!(s, Seen::Disconnected))
        .await;
    closed_at_every_connect(&mut on_jwt, 2, "the reconnect over the cap").await;
}

/// `tokens.credentials_ttl = "0s"` turns minting off: a clear answer, no JWT.
#[tokio::test]
async fn operator_mode_credentials_turned_off_answer_credentials_off() {
    let w = World::start_configured(false, CREDENTIALS_TTL, |c| {
        c.tokens.credentials_ttl = Some(Duration::ZERO);
    })
    .await;
    let body = json!({"publicKey": nkeys::KeyPair::new_user().public_key(), "rooms": ["all1"]});
    let (status, answer) = credentials(&w, Some(&w.token("bob")), body).await;
    assert_eq!(
        (status, &answer["error_code"]),
        (404, &json!("credentials-off")),
        "{answer}"
    );
    assert!(answer.get("jwt").is_none(), "{answer}");
}

/// The next notice on `told`, as JSON.
async fn next(told: &mut async_nats::Subscriber) -> Value {
    let m = tokio::time::timeout(DEADLINE, futures::StreamExt::next(told))
        .await
        .expect("a notice")
        .unwrap();
    serde_json::from_slice(&m.payload).unwrap()
}

/// `auth.v1.credentials`: a connected client asks over NATS (every grant may publish there
/// while minting is on) and is told on its own notice subject what the HTTP API answers,
/// never on the request's reply subject (which could be another user's room); bad requests
/// are refused to their sender, and one whose token names nobody to nobody.
#[tokio::test]
async fn operator_mode_connected_clients_get_credentials_over_nats() {
    let w = World::start(false).await;
    let token = w.token("bob");
    let conn = connect_to(&w.server.url(), Some(&token), "all1", Some("_INBOX.bob"))
        .await
        .expect("bob connects through the callout");
    let mut told = conn.client.subscribe("nats-callout.notice.bob").await.unwrap();
    conn.client.flush().await.unwrap();
    // alice listens in all1: a reply aimed at her name there must not reach her.
    let alice = w.connect(Some(&w.token("alice")), "all1").await.unwrap();
    let mut room = alice.client.subscribe("chat.all1.alice").await.unwrap();
    alice.client.flush().await.unwrap();
    let ask = |c: &async_nats::Client, body: Value| {
        let c = c.clone();
        async move {
            c.publish_with_reply("auth.v1.credentials", "chat.all1.alice", body.to_string().into())
                .await
                .unwrap();
        }
    };
    let key = std::sync::Arc::new(nkeys::KeyPair::new_user());
    let body = json!({"token": token, "publicKey": key.public_key(), "rooms": ["all1", "alice1"]});
    ask(&conn.client, body.clone()).await;
    let answer = next(&mut told).await;
    assert_eq!(
        (&answer["type"], &answer["publicKey"]),
        (&json!("credentials"), &json!(key.public_key()))
    );
    assert_eq!(
        (&answer["rooms"], &answer["refused"]),
        (&json!(["all1"]), &json!(["alice1"])),
        "{answer}"
    );
    let jwt = answer["jwt"].as_str().unwrap();
    assert_eq!(claims(jwt)["sub"], key.public_key());
    let on_jwt = connect_with_jwt(&w.server.url(), jwt, key.clone(), "_INBOX.bob")
        .await
        .expect("the credentials connect");
    talks(&on_jwt, "all1", "bob").await;
    // Renewed over the JWT connection itself.
    let mut told_too = on_jwt.client.subscribe("nats-callout.notice.bob").await.unwrap();
    on_jwt.client.flush().await.unwrap();
    ask(&on_jwt.client, body).await;
    assert!(next(&mut told_too).await["jwt"].is_string());
    let _ = next(&mut told).await; // the same notice, on bob's other connection
    let fresh = nkeys::KeyPair::new_user().public_key();
    for (body, code) in [
        (json!({"token": token, "publicKey": "UNOPE"}), "bad-public-key"),
        (
            json!({"token": token, "publicKey": fresh, "extra": 1}),
            "bad-request",
        ),
        (json!({"token": token}), "bad-request"),
        (
            json!({"token": token, "publicKey": fresh, "rooms": ["a.b"]}),
            "bad-room-name",
        ),
    ] {
        ask(&conn.client, body.clone()).await;
        let answer = next(&mut told).await;
        assert_eq!(answer["error_code"], code, "{body} -> {answer}");
        assert!(answer.get("jwt").is_none());
    }
    // Nobody to tell: no token, a bad one, too large a request. Then a good one, told.
    for body in [
        json!({"publicKey": fresh}),
        json!({"token": "nope", "publicKey": fresh}),
        json!({"token": "x".repeat(9000), "publicKey": fresh}),
    ] {
        ask(&conn.client, body).await;
    }
    ask(&conn.client, json!({"token": token, "publicKey": fresh})).await;
    let answer = next(&mut told).await;
    assert_eq!(
        answer["publicKey"], fresh,
        "only the good request was answered: {answer}"
    );
    // Nothing reached the reply subject bob named in alice's room.
    alice.client.flush().await.unwrap();
    let heard = tokio::time::timeout(Duration::from_millis(300), futures::StreamExt::next(&mut room)).await;
    assert!(heard.is_err(), "an answer reached alice's room: {heard:?}");
}

/// A connection made with credentials while no service ran is known after a start from the
/// servers' connection list alone (the JWT carries its decision): a token reset and a
/// revocation reach it.
#[tokio::test]
async fn operator_mode_a_restarted_service_enforces_credentials_connections_made_meanwhile() {
    let mut w = World::start(false).await;
    let (jwt, key) = minted(&w, &w.token("bob"), &["all1"]).await;
    if let Some(running) = w.service.take() {
        running.stop().await;
    }
    // nats-server needs no callout for it.
    let mut bob = on_credentials(&w, &jwt, key, "_INBOX.bob").await;
    crate::enforcement::receives(&bob.client, "all1", "bob").await;
    w.restart().await;
    after_a_reconcile(w.ops()).await;
    let listed = console_connections(&w, "bob").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["rooms"], json!(["all1"]), "{listed:?}");
    let r = w
        .admin("/api/console/token-reset", Some(json!({"users": ["bob"]})))
        .await;
    assert_eq!(r["affected"], 1, "{r}");
    bob.wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    let r = w.admin("/api/auth/revoke", Some(json!({"userId": "bob"}))).await;
    assert!(r["revokedSessions"].is_number(), "{r}");
    bob.wait_for("the revoked connection closed", |s| {
        matches!(s, Seen::Disconnected)
    })
    .await;
    closed_at_every_connect(&mut bob, 1, "the reconnect after the revocation").await;
}

/// A delegate's invalidation reaches a credentials connection holding the room (the
/// lame-duck notice, then the kick), and at every reconnect with that JWT the delegate's new
/// answer closes it again.
#[tokio::test]
async fn operator_mode_a_delegates_invalidation_closes_credentials_connections() {
    use crate::delegation::{AppService, Reply, delegate};
    let w = World::start_configured(false, CREDENTIALS_TTL, |c| {
        c.access.delegate = vec![delegate("team-*", "svc.teams", 1000)];
    })
    .await;
    let service = w.service().await;
    let teams = AppService::start(service.clone(), "svc.teams", Reply::access("none")).await;
    teams.answer("bob", "team-a", "readwrite");
    let (jwt, key) = minted(&w, &w.token("bob"), &["team-a"]).await;
    let mut bob = on_credentials(&w, &jwt, key, "_INBOX.bob").await;
    crate::enforcement::receives(&bob.client, "team-a", "bob").await;
    wait_until_listed(&w, "bob").await;
    teams.answer("bob", "team-a", "none");
    let reply = service
        .request(
            "auth.v1.access.invalidate",
            json!({"user": "bob", "room": "team-a"}).to_string().into(),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["reauthorized"], 1, "{reply}");
    bob.wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    bob.wait_for("the kick after the grace", |s| matches!(s, Seen::Disconnected))
        .await;
    closed_at_every_connect(&mut bob, 2, "the reconnect with the old grant").await;
}

/// A client on a JWT may still send a name in CONNECT (`user`), and nats-server then reports
/// that name as the connection's user: the service goes by the JWT instead, so bob naming
/// himself alice is bob's connection, and revoking bob closes it.
#[tokio::test]
async fn operator_mode_a_name_sent_beside_a_jwt_is_not_its_identity() {
    let w = World::start(false).await;
    let (jwt, key) = minted(&w, &w.token("bob"), &["all1"]).await;
    let opts = async_nats::ConnectOptions::with_jwt(jwt, move |nonce| {
        let key = key.clone();
        async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .user_and_password("alice".into(), String::new())
    .custom_inbox_prefix("_INBOX.bob")
    .max_reconnects(None)
    .reconnect_delay_callback(|_| Duration::from_millis(100));
    let mut spoof = watched_with(opts, &w.server.url(), false).await;
    crate::enforcement::receives(&spoof.client, "all1", "bob").await;
    let connz = w.connections(&w.target("APP")).await;
    let names: Vec<&str> = connz["data"]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["authorized_user"].as_str())
        .collect();
    assert!(
        names.contains(&"alice"),
        "nats-server reports the name sent: {names:?}"
    );
    wait_until_listed(&w, "bob").await;
    assert!(console_connections(&w, "alice").await.is_empty());
    after_a_reconcile(w.ops()).await;
    assert!(
        console_connections(&w, "alice").await.is_empty(),
        "CONNZ renamed it"
    );
    let r = w.admin("/api/auth/revoke", Some(json!({"userId": "bob"}))).await;
    assert!(r["revokedSessions"].is_number(), "{r}");
    spoof
        .wait_for("the revoked connection closed", |s| {
            matches!(s, Seen::Disconnected)
        })
        .await;
    closed_at_every_connect(&mut spoof, 1, "the reconnect under another name").await;
}

/// The credentials phase of `make bench` (BENCHMARKS.md) at a small scale, so that it cannot
/// rot: every bench user's credentials minted over HTTP, clients connecting with JWT + nonce
/// signature and through the callout on the same operator-mode server, side by side with
/// the other systems, and both storms back; the targets are stated in the results.
#[tokio::test(flavor = "multi_thread")]
async fn the_credentials_benchmark_connects_with_minted_jwts() {
    let (results, log) = crate::rooms::bench::run_bench(&[
        "--rounds",
        "1",
        "--phase-secs",
        "0.5",
        "--concurrency",
        "1,20",
        "--storm-clients",
        "50",
        "--skip-store",
        "--skip-shared",
        "--skip-rooms",
        "--skip-looping",
        "--skip-delegation",
    ])
    .await;
    let mint = &results["mint"];
    assert_eq!(
        (mint["minted"].as_u64(), mint["failed"].as_u64()),
        (Some(1000), Some(0)),
        "{mint}"
    );
    let throughput = results["throughput"].as_array().unwrap();
    for system in ["callout", "minimal", "static", "credentials", "callout-op"] {
        for c in [1, 20] {
            let s = throughput
                .iter()
                .find(|x| x["system"] == system && x["concurrency"] == c)
                .unwrap_or_else(|| panic!("no {system} c={c}:\n{log}"));
            assert!(s["ok"].as_u64().unwrap() > 0, "{s}");
            let failed = ["refused", "timeouts", "io_errors"].map(|k| s[k].as_u64().unwrap());
            assert_eq!(failed, [0, 0, 0], "{s}\n{log}");
        }
    }
    for storm in ["storm_credentials", "storm_callout_op"] {
        let s = &results[storm];
        assert_eq!(s["recovered"], 50, "{storm}: {s}\n{log}");
        assert_eq!(s["refused"], 0, "{storm}: {s}");
    }
    let targets: Vec<&str> = results["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["target"].as_str())
        .collect();
    for t in [
        "c=20 throughput credentials/callout-op",
        "credentials failed connects (all c)",
        "storm recovery credentials/callout-op",
    ] {
        assert!(targets.contains(&t), "{t} not stated: {targets:?}");
    }
}
