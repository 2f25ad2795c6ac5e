//! The callout against a real nats-server: the chat scenario, bad input, xkey modes,
//! websocket cookies, queue-group sharing and applications scoping a session's rooms.

use std::time::Duration;

use crate::support::{Conn, DEADLINE, EnvOptions, TestEnv, TokenIn, ws_exchange};
use async_nats::ConnectErrorKind;
use futures::StreamExt;

mod applications;
mod clients;
pub(crate) mod escape;
mod requests;

/// Subscribe, and prove the subscription is live by receiving a message published
/// by `publisher` on `subject` (published again until the subscription is in place).
async fn assert_receives(sub_conn: &mut Conn, publisher: &async_nats::Client, filter: &str, subject: &str) {
    let mut sub = sub_conn.client.subscribe(filter.to_string()).await.unwrap();
    sub_conn.client.flush().await.unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        publisher
            .publish(subject.to_string(), "hello".into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            assert_eq!(msg.subject.as_str(), subject);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message on {subject} for {filter}: {:?} {:?}",
            sub_conn.errors.try_recv(),
            publisher.connection_state()
        );
    }
}

async fn chat_scenario(env: &TestEnv, how: TokenIn) {
    let mut bob = env
        .connect_via(Some(&env.token("bob")), "all1;bob1;alice1", how)
        .await
        .expect("bob connects");
    let mut alice = env
        .connect_via(Some(&env.token("alice")), "all1;alice1;bob1", how)
        .await
        .expect("alice connects");

    // Granted rooms work both ways, with the sender in the last token.
    let (bob_client, alice_client) = (bob.client.clone(), alice.client.clone());
    assert_receives(&mut bob, &alice_client, "chat.all1.>", "chat.all1.alice").await;
    assert_receives(&mut alice, &bob_client, "chat.all1.>", "chat.all1.bob").await;
    assert_receives(&mut bob, &bob_client, "chat.bob1.>", "chat.bob1.bob").await;
    assert_receives(&mut alice, &alice_client, "chat.alice1.>", "chat.alice1.alice").await;

    // Rooms without a grant were left out.
    let _s = bob.client.subscribe("chat.alice1.>").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;
    let _s = alice.client.subscribe("chat.bob1.>").await.unwrap();
    alice
        .expect_error("Permissions Violation for Subscription to \"chat.bob1.>\"")
        .await;

    // Bob cannot publish as alice, nor into alice's room, nor subscribe to everything.
    bob.client
        .publish("chat.all1.alice", "forged".into())
        .await
        .unwrap();
    bob.expect_error("Permissions Violation for Publish to \"chat.all1.alice\"")
        .await;
    bob.client.publish("chat.alice1.bob", "x".into()).await.unwrap();
    bob.expect_error("Permissions Violation for Publish to \"chat.alice1.bob\"")
        .await;
    let _s = bob.client.subscribe(">").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \">\"")
        .await;
    let _s = bob.client.subscribe("$SYS.>").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"$SYS.>\"")
        .await;
}

/// The original nats-chat scenario, xkey on (the default).
#[tokio::test]
async fn chat_scenario_with_xkey() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let _svc = env.start_callout().await;
    chat_scenario(&env, TokenIn::AuthToken).await;
}

/// The same scenario with async-nats sending user = rooms and password = token (no
/// `auth_token`): the form every client can send.
#[tokio::test]
async fn chat_scenario_with_the_token_as_password() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let _svc = env.start_callout().await;
    chat_scenario(&env, TokenIn::Pass).await;
}

/// The same scenario with encryption off on both sides.
#[tokio::test]
async fn chat_scenario_without_xkey() {
    let env = TestEnv::start(EnvOptions {
        xkey: false,
        ..Default::default()
    })
    .await;
    let _svc = env.start_callout().await;
    chat_scenario(&env, TokenIn::AuthToken).await;
}

async fn assert_denied(env: &TestEnv, token: Option<&str>, rooms: &str, what: &str) {
    match env.connect(token, rooms).await {
        Ok(_) => panic!("{what}: connection was allowed"),
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{what}: {e}"),
    }
    // The service goes on serving.
    env.connect(Some(&env.token("bob")), "all1")
        .await
        .unwrap_or_else(|e| panic!("after {what}: {e}"));
}

/// Every bad client input is denied and the service keeps serving.
#[tokio::test]
async fn bad_client_input_is_denied_and_service_goes_on() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let bob = env.token("bob");
    let now = nats_callout::clock::now_secs();

    let pem = std::fs::read_to_string(&env.config.tokens.signing_key_file).unwrap();
    let other_issuer = nats_callout::tokens::TokenKeys::new("someone-else", "nats")
        .with_signing_pem(&pem)
        .unwrap();
    let other_aud = nats_callout::tokens::TokenKeys::new("nats-callout", "elsewhere")
        .with_signing_pem(&pem)
        .unwrap();
    let other_key = nats_callout::tokens::TokenKeys::new("nats-callout", "nats")
        .with_signing_pem(&nats_callout::keys::generate_signing_pem())
        .unwrap();
    let mint = |k: &nats_callout::tokens::TokenKeys, user: &str, at: i64| {
        k.mint(
            &nats_callout::tokens::MintRequest {
                user,
                session: "s",
                device: None,
                ttl: Duration::from_secs(300),
                session_expires_at: None,
                asserted: None,
                client_id: None,
            },
            at,
        )
        .unwrap()
        .0
    };
    // A token with the right key but typ "JWT".
    let wrong_typ = {
        let claims = env.tokens.verify(&bob, now).unwrap();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = jsonwebtoken::decode_header(&bob).unwrap().kid;
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let tampered = {
        let (head, rest) = bob.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let claims = serde_json::json!({"iss":"nats-callout","aud":"nats","sub":"admin","sid":"s","tid":"t","iat":now,"exp":now+300});
        use base64::Engine;
        format!(
            "{head}.{}.{sig}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let long_room = "r".repeat(65);
    let many_rooms = (0..51).map(|i| format!("r{i}")).collect::<Vec<_>>().join(";");

    let cases: Vec<(Option<String>, String, &str)> = vec![
        (None, "all1".to_string(), "no token"),
        (Some("null".to_string()), "all1".to_string(), "token 'null'"),
        (
            Some("not-a-jwt".to_string()),
            "all1".to_string(),
            "token not a JWT",
        ),
        (Some(tampered.clone()), "all1".to_string(), "bad signature"),
        (Some(wrong_typ.clone()), "all1".to_string(), "wrong typ"),
        (
            Some(mint(&other_issuer, "bob", now)),
            "all1".to_string(),
            "wrong iss",
        ),
        (
            Some(mint(&other_aud, "bob", now)),
            "all1".to_string(),
            "wrong aud",
        ),
        (
            Some(mint(&env.tokens, "bob", now - 1000)),
            "all1".to_string(),
            "expired",
        ),
        (
            Some(mint(&other_key, "bob", now)),
            "all1".to_string(),
            "unknown kid",
        ),
        (
            Some(mint(&env.tokens, "mallory", now)),
            "all1".to_string(),
            "unknown user",
        ),
        (Some(bob.clone()), "all1;alice1.x".to_string(), "room with ."),
        (Some(bob.clone()), "all1;*".to_string(), "room *"),
        (Some(bob.clone()), "all1;>".to_string(), "room >"),
        (
            Some(bob.clone()),
            "all1;bo b1".to_string(),
            "room with whitespace",
        ),
        (Some(bob.clone()), long_room.clone(), "over-long room"),
        (
            Some(bob.clone()),
            "all1;callout".to_string(),
            "room equal to an auth user",
        ),
        (Some(bob.clone()), many_rooms.clone(), "too many rooms"),
    ];
    for (token, rooms, what) in cases {
        assert_denied(&env, token.as_deref(), &rooms, what).await;
    }
    // JSON null in auth_token (what the original example crashed on) over a raw connection.
    let raw = raw_connect(
        &env.server.port,
        r#"{"auth_token":null,"user":"all1","verbose":false,"pedantic":false,"protocol":1}"#,
    )
    .await;
    assert!(raw.contains("Authorization Violation"), "{raw}");
    env.connect(Some(&bob), "all1")
        .await
        .expect("still serving after a null token");
    svc.stop().await;
}

/// Send a raw CONNECT + PING over TCP and return what the server answered.
async fn raw_connect(port: &u16, connect_json: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", *port))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = s.read(&mut buf).await.unwrap(); // INFO
    s.write_all(format!("CONNECT {connect_json}\r\nPING\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(DEADLINE, async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
            if out.contains("PONG") || out.contains("-ERR") {
                break;
            }
        }
    })
    .await;
    out
}

/// A connection type not allowed by config is denied; allowed ones pass.
#[tokio::test]
async fn connection_types_are_checked_by_the_service() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| c.callout.connection_types = vec!["websocket".into()],
        ..Default::default()
    })
    .await;
    let _svc = env.start_callout().await;
    let err = env
        .connect(Some(&env.token("bob")), "all1")
        .await
        .err()
        .expect("plain TCP refused");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation);
    let ws = ws_exchange(
        &env.server.ws_url(),
        "http://127.0.0.1:8080",
        Some(&env.token("bob")),
        "all1",
        "SUB chat.all1.> 1\r\n",
    )
    .await;
    assert!(ws.contains("PONG") && !ws.contains("-ERR"), "{ws}");
}

/// A browser-style websocket client: token only in the `nats_token` cookie, rooms in `user`.
#[tokio::test]
async fn websocket_client_authenticates_with_the_token_cookie() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let _svc = env.start_callout().await;
    let bob = env.token("bob");
    let ok = ws_exchange(
        &env.server.ws_url(),
        "http://127.0.0.1:8080",
        Some(&bob),
        "all1;bob1",
        "SUB chat.all1.> 1\r\nSUB chat.bob1.> 2\r\n",
    )
    .await;
    assert!(ok.contains("PONG") && !ok.contains("-ERR"), "granted rooms: {ok}");
    let refused = ws_exchange(
        &env.server.ws_url(),
        "http://127.0.0.1:8080",
        Some(&bob),
        "all1",
        "SUB chat.alice1.> 1\r\n",
    )
    .await;
    assert!(
        refused.contains("Permissions Violation for Subscription to \"chat.alice1.>\""),
        "{refused}"
    );
    let no_cookie = ws_exchange(&env.server.ws_url(), "http://127.0.0.1:8080", None, "all1", "").await;
    assert!(no_cookie.contains("Authorization Violation"), "{no_cookie}");
}

/// Two instances in the queue group both answer; with one stopped, the other serves alone.
#[tokio::test]
async fn two_instances_share_the_queue_group() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let token = env.token("bob");
    for _ in 0..24 {
        env.connect(Some(&token), "all1").await.expect("connect");
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.allowed > 0 && sb.allowed > 0, "both answered: {sa:?} {sb:?}");
    assert_eq!(sa.allowed + sb.allowed, 24);
    a.stop().await;
    for _ in 0..4 {
        env.connect(Some(&token), "all1")
            .await
            .expect("served by the remaining instance");
    }
    assert_eq!(b.stats().allowed, sb.allowed + 4);
}
