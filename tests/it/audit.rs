//! The audit trail (contract 14) on a real nats-server: every decision is an event on
//! `nats-callout.audit.<result>` in the service's account, checked field by field (an allow,
//! a deny for a bad token, a deny for a revoked session naming its user); revocations, kicks,
//! token resets and room changes say who did what to whom; `[audit] stream` keeps them, and a
//! stream of that name with other settings is refused by name.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::enforcement::{Seen, watched};
use crate::rooms::{call, create, token_of};
use crate::support::api::{assert_nats_denied, login, s};
use crate::support::{DEADLINE, EnvOptions, TestEnv};

/// The next event on `subject`, skipping events of other kinds (decisions of other
/// connections, the service's own).
async fn next(events: &mut async_nats::Subscriber, subject: &str) -> Value {
    event_where(events, subject, |_| true).await
}

/// The next event on `subject` that `pred` accepts, skipping others.
pub(crate) async fn event_where(
    events: &mut async_nats::Subscriber,
    subject: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let m = tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap_or_else(|_| panic!("no matching event on {subject}"))
            .unwrap();
        if m.subject.as_str() == subject {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn every_decision_and_change_of_access_is_an_audit_event() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    // In the service's account, as the service's user (the demo's `callout` may watch it).
    let watcher = env.connect_auth_user().await;
    let mut events = watcher.subscribe("nats-callout.audit.>").await.unwrap();
    watcher.flush().await.unwrap();
    let base = svc.http_url();

    let bob = login(&base, "bob", Some("laptop")).await;
    let token = s(&bob, "accessToken");
    let session = env
        .tokens
        .verify(&token, nats_callout::clock::now_secs())
        .unwrap()
        .sid;
    let mut conn = watched(&env, &token, "all1;alice1", false).await;
    let e = next(&mut events, "nats-callout.audit.allowed").await;
    assert_eq!(
        (
            &e["event"],
            &e["result"],
            &e["reason"],
            &e["user"],
            &e["session"],
            &e["device"]
        ),
        (
            &json!("decision"),
            &json!("allowed"),
            &json!("granted"),
            &json!("bob"),
            &json!(session),
            &json!("laptop")
        ),
        "{e}"
    );
    assert_eq!(e["application"], Value::Null);
    assert_eq!(
        e["rooms"],
        json!({
            "asked": ["all1", "alice1"],
            "granted": [{"room": "all1", "access": "readwrite"}],
            "refused": [{"room": "alice1", "reason": "no-grant"}],
        })
    );
    assert!(e["tookUs"].as_u64().unwrap() > 0, "{e}");
    assert!((e["at"].as_i64().unwrap() - nats_callout::clock::now_secs()).abs() < 60);
    assert_eq!(e["server"], "test", "the test server's server_name");
    assert_eq!(
        (&e["client"]["kind"], &e["client"]["type"]),
        (&json!("Client"), &json!("nats"))
    );
    assert_eq!(e["client"]["host"], "127.0.0.1");
    assert!(e["client"]["id"].as_u64().unwrap() > 0);
    assert!(!e.to_string().contains(&token), "no token in an event");

    // A bad token: denied, and nobody to name.
    assert_nats_denied(&env, "not-a-token", "a bad token").await;
    let e = next(&mut events, "nats-callout.audit.denied").await;
    assert_eq!(
        (&e["reason"], &e["user"], &e["session"]),
        (&json!("token-malformed"), &Value::Null, &Value::Null),
        "{e}"
    );
    assert_eq!(e["rooms"]["asked"], json!(["all1"]));
    assert_eq!(e["rooms"]["granted"], json!([]));

    // An admin revokes bob's session: the revocation says who did what, the kick whom.
    let admin = token_of(&svc, "admin").await;
    let (status, _, body) = call(
        &svc,
        Method::POST,
        "/api/auth/revoke",
        &admin,
        Some(json!({"sessionId": session})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let e = next(&mut events, "nats-callout.audit.revocation").await;
    assert_eq!(
        (&e["event"], &e["by"], &e["target"], &e["sessions"]),
        (
            &json!("revocation"),
            &json!("admin"),
            &json!({"session": session}),
            &json!(1)
        ),
        "{e}"
    );
    let e = next(&mut events, "nats-callout.audit.kick").await;
    assert_eq!((&e["by"], &e["user"]), (&json!("service"), &json!("bob")), "{e}");
    conn.wait_for("the kick", |s| matches!(s, Seen::Disconnected))
        .await;

    // The revoked session's token: denied, naming its user and session.
    assert_nats_denied(&env, &token, "a revoked session").await;
    let e = next(&mut events, "nats-callout.audit.denied").await;
    assert_eq!(
        (&e["reason"], &e["user"], &e["session"]),
        (&json!("access-token-revoked"), &json!("bob"), &json!(session)),
        "{e}"
    );

    // Rooms in data and a token reset: who did what to whom.
    let alice = token_of(&svc, "alice").await;
    create(&svc, &alice, "audited", "open").await;
    let e = next(&mut events, "nats-callout.audit.room").await;
    assert_eq!(
        (&e["by"], &e["change"], &e["room"], &e["join"]),
        (
            &json!("alice"),
            &json!("created"),
            &json!("audited"),
            &json!("open")
        ),
        "{e}"
    );
    let (status, _, body) = call(
        &svc,
        Method::POST,
        "/api/console/token-reset",
        &admin,
        Some(json!({"users": ["alice"], "reason": "audit test"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let e = next(&mut events, "nats-callout.audit.token-reset").await;
    assert_eq!(
        (&e["by"], &e["request"]["users"]),
        (&json!("admin"), &json!(["alice"])),
        "{e}"
    );
    svc.stop().await;
}

/// `[audit] stream`: the events are kept in a JetStream stream with the configured limits;
/// a stream of that name with other settings is refused by name, never silently reused.
#[tokio::test]
async fn the_audit_stream_keeps_events_and_a_stream_with_other_settings_is_refused() {
    let env = TestEnv::start(EnvOptions {
        jetstream: true,
        ..Default::default()
    })
    .await;
    let mut config = env.config.clone();
    config.audit.stream = "AUDIT".into();
    config.audit.max_age = Duration::from_secs(3600);
    let svc = env.start_callout_with(config.clone()).await;
    let js = nats_callout::kv::context(env.connect_auth_user().await);
    let mut stream = js.get_stream("AUDIT").await.unwrap();
    let info = stream.info().await.unwrap().clone();
    assert_eq!(info.config.subjects, ["nats-callout.audit.>"]);
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(info.config.max_bytes, 1 << 30);
    let bob = login(&svc.http_url(), "bob", None).await;
    drop(env.connect(Some(&s(&bob, "accessToken")), "all1").await.unwrap());
    let deadline = std::time::Instant::now() + DEADLINE;
    let kept = loop {
        if let Ok(m) = stream
            .get_last_raw_message_by_subject("nats-callout.audit.allowed")
            .await
        {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no allowed decision kept in the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let e: Value = serde_json::from_slice(&kept.payload).unwrap();
    assert_eq!(
        (&e["result"], &e["user"]),
        (&json!("allowed"), &json!("bob")),
        "{e}"
    );
    svc.stop().await;

    // Another max_age than the stream's: the service does not start, and says why.
    config.audit.max_age = Duration::from_secs(60);
    let err = nats_callout::app::App::build(config)
        .await
        .err()
        .expect("refused");
    let err = format!("{err:#}");
    assert!(
        err.contains("audit stream AUDIT exists with max_age 1h, configured 1m"),
        "{err}"
    );
}
