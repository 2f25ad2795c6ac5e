//! Per-user limits on a real nats-server (issue 30): beyond a connection cap the oldest
//! connection goes and the newest stays, with one instance and with two (an audit event
//! says why, and the closed client's reconnect is refused while the cap is full); a
//! connection over its subscription cap is closed; the opt-in connect rate refuses a
//! looping client but not the reconnects a permission edit caused.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::audit::event_where;
use crate::enforcement::{
    ROOMS_WITHOUT_BOB_IN_ALL1, Seen, Watched, receives, registered, replace_file, watched,
};
use crate::support::{CalloutHandle, DEADLINE, EnvOptions, TestEnv, wait_until};
use nats_callout::config::ConnectRate;
use nats_callout::tokens::MintRequest;

/// An access token of `user` in login session `session`.
fn token_in(env: &TestEnv, user: &str, session: &str) -> String {
    let req = MintRequest {
        user,
        session,
        device: Some("test"),
        ttl: Duration::from_secs(300),
        session_expires_at: None,
        asserted: None,
        client_id: None,
    };
    env.tokens.mint(&req, nats_callout::clock::now_secs()).unwrap().0
}

/// bob in a group with these limits (a group's limits apply to members that set none).
fn cap_bob(env: &TestEnv, limits: &str) {
    let file = format!("[groups.capped]\nmembers = [\"bob\"]\nlimits = {{ {limits} }}\n");
    std::fs::write(env.config.permissions.dir.join("limits.toml"), file).unwrap();
}

/// The audit trail, watched as the demo's `callout` user.
async fn audit(env: &TestEnv) -> async_nats::Subscriber {
    let watcher = env.connect_auth_user().await;
    let events = watcher.subscribe("nats-callout.audit.>").await.unwrap();
    watcher.flush().await.unwrap();
    events
}

/// Every event on `subject` within `d`.
async fn events_within(events: &mut async_nats::Subscriber, subject: &str, d: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + d;
    while let Ok(Some(m)) = tokio::time::timeout_at(end, events.next()).await {
        if m.subject.as_str() == subject {
            out.push(serde_json::from_slice(&m.payload).unwrap());
        }
    }
    out
}

fn is_leader(h: &CalloutHandle) -> bool {
    h.enforcement.as_ref().is_some_and(|e| e.is_leader())
}

/// bob capped at 2: three connections of three sessions, each known before the next; the
/// first goes (a kick audited as `too-many-connections`, once), its reconnect is refused,
/// the other two stay and work. `instances` see the decisions (one enforces).
async fn the_oldest_goes(env: &TestEnv, instances: &[&CalloutHandle]) {
    let mut events = audit(env).await;
    let mut conns: Vec<Watched> = Vec::new();
    for (i, session) in ["s1", "s2", "s3"].into_iter().enumerate() {
        conns.push(watched(env, &token_in(env, "bob", session), "all1", false).await);
        for h in instances {
            registered(h, "bob", (i + 1).min(2)).await;
        }
    }
    let oldest = conns[0].client.server_info().client_id;
    conns[0]
        .wait_for("the oldest closed", |s| matches!(s, Seen::Disconnected))
        .await;
    let kick = event_where(&mut events, "nats-callout.audit.kick", |_| true).await;
    assert_eq!(
        (
            kick["reason"].as_str(),
            kick["user"].as_str(),
            kick["cid"].as_u64()
        ),
        (Some("too-many-connections"), Some("bob"), Some(oldest)),
        "{kick}"
    );
    let refused = event_where(&mut events, "nats-callout.audit.denied", |e| e["user"] == "bob").await;
    assert_eq!(
        (refused["reason"].as_str(), refused["session"].as_str()),
        (Some("too-many-connections"), Some("s1")),
        "the closed session's reconnect is refused while the cap is full: {refused}"
    );
    let more_kicks = events_within(
        &mut events,
        "nats-callout.audit.kick",
        Duration::from_millis(1500),
    )
    .await;
    assert!(more_kicks.is_empty(), "one kick, by one enforcer: {more_kicks:?}");
    for (i, c) in conns[1..].iter().enumerate() {
        assert!(
            !c.saw(|s| matches!(s, Seen::Disconnected)),
            "connection {} stays",
            i + 2
        );
    }
    receives(&conns[2].client, "all1", "bob").await;
    receives(&conns[1].client, "all1", "bob").await;
}

#[tokio::test]
async fn beyond_the_cap_the_oldest_connection_goes_and_an_audit_event_says_why() {
    let env = TestEnv::start(EnvOptions::default()).await;
    cap_bob(&env, "connections = 2");
    let svc = env.start_callout().await;
    the_oldest_goes(&env, &[&svc]).await;
}

#[tokio::test]
async fn two_instances_count_every_connection_and_close_the_oldest_once() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    cap_bob(&env, "connections = 2");
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    wait_until("one instance enforces", || is_leader(&a) != is_leader(&b)).await;
    the_oldest_goes(&env, &[&a, &b]).await;
}

#[tokio::test]
async fn a_connection_over_its_subscription_cap_is_closed() {
    let mut env = TestEnv::start(EnvOptions::default()).await;
    cap_bob(&env, "subscriptions = 5");
    env.config.limits.subscriptions_interval = Duration::from_secs(1);
    let _svc = env.start_callout().await;
    let mut events = audit(&env).await;
    let calm = watched(&env, &token_in(&env, "bob", "calm"), "all1", false).await;
    let _one = calm.client.subscribe("chat.all1.>").await.unwrap();
    let mut busy = watched(&env, &token_in(&env, "bob", "busy"), "all1", false).await;
    let mut subs = Vec::new();
    for _ in 0..8 {
        subs.push(busy.client.subscribe("chat.all1.>").await.unwrap());
    }
    busy.client.flush().await.unwrap();
    let cid = busy.client.server_info().client_id;
    busy.wait_for("closed for its subscriptions", |s| {
        matches!(s, Seen::Disconnected)
    })
    .await;
    let kick = event_where(&mut events, "nats-callout.audit.kick", |_| true).await;
    assert_eq!(
        (kick["reason"].as_str(), kick["cid"].as_u64()),
        (Some("too-many-subscriptions"), Some(cid)),
        "{kick}"
    );
    assert!(
        !calm.saw(|s| matches!(s, Seen::Disconnected)),
        "the other connection stays"
    );
    receives(&calm.client, "all1", "bob").await;
}

/// The connect rate the tests use: `connects` in 30 s, a short settle.
fn rate(connects: u32) -> ConnectRate {
    ConnectRate {
        connects,
        window: Duration::from_secs(30),
        cooldown: Duration::from_secs(5),
        settle: Duration::from_millis(500),
    }
}

/// The server is seen (its first moments are not counted), then they are over.
async fn server_settled(env: &TestEnv, svc: &CalloutHandle) {
    let _alice = env.connect(Some(&env.token("alice")), "all1").await.unwrap();
    registered(svc, "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn a_client_connecting_in_a_loop_is_refused_for_the_cool_down() {
    let mut env = TestEnv::start(EnvOptions::default()).await;
    env.config.limits.connect_rate = Some(rate(3));
    let svc = env.start_callout().await;
    server_settled(&env, &svc).await;
    let mut events = audit(&env).await;
    let token = token_in(&env, "bob", "loop");
    let mut allowed = 0;
    let mut refused = false;
    for _ in 0..30 {
        match env.connect(Some(&token), "all1").await {
            Ok(c) => {
                allowed += 1;
                registered(&svc, "bob", 1).await;
                drop(c);
            }
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "never refused after {allowed} connects");
    assert!(allowed > 3, "{allowed} connects allowed");
    // The cool-down is audited when it starts (before any refusal), then each refusal.
    let limit = event_where(&mut events, "nats-callout.audit.limit", |_| true).await;
    assert_eq!(
        (limit["user"].as_str(), limit["reason"].as_str()),
        (Some("bob"), Some("too-many-connects"))
    );
    let deny = event_where(&mut events, "nats-callout.audit.denied", |e| e["user"] == "bob").await;
    assert_eq!(deny["reason"], "too-many-connects", "{deny}");
    env.connect(Some(&env.token("alice")), "all1")
        .await
        .expect("another user is not refused");
}

#[tokio::test]
async fn a_kick_storm_after_a_permission_edit_is_not_counted() {
    let mut env = TestEnv::start(EnvOptions::default()).await;
    env.config.limits.connect_rate = Some(rate(5));
    env.config.enforcement.grace = Duration::from_secs(1);
    let svc = env.start_callout().await;
    server_settled(&env, &svc).await;
    let mut events = audit(&env).await;
    // Four connections counted, then all four told to reconnect (and kicked if they don't).
    let mut conns = Vec::new();
    for i in 0..4 {
        conns.push(watched(&env, &token_in(&env, "bob", &format!("s{i}")), "all1", i % 2 == 0).await);
    }
    registered(&svc, "bob", 4).await;
    for _ in 0..4 {
        event_where(&mut events, "nats-callout.audit.allowed", |e| e["user"] == "bob").await;
    }
    replace_file(
        &env.config.permissions.dir,
        "rooms.toml",
        ROOMS_WITHOUT_BOB_IN_ALL1,
    );
    // Four reconnects within the window, beyond nothing: none refused.
    let mut reconnected = 0;
    while reconnected < 4 {
        let m = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("bob's connections reconnect")
            .unwrap();
        let e: Value = serde_json::from_slice(&m.payload).unwrap();
        if e["user"] != "bob" {
            continue;
        }
        match m.subject.as_str() {
            "nats-callout.audit.allowed" => reconnected += 1,
            "nats-callout.audit.denied" => panic!("a reconnect the service caused was refused: {e}"),
            _ => {}
        }
    }
    // The rate still counts bob's own connects: the fifth is within it, a few more are not.
    let token = token_in(&env, "bob", "own");
    let mut allowed = 0;
    while let Ok(c) = env.connect(Some(&token), "all2").await {
        allowed += 1;
        assert!(
            allowed <= 4,
            "{allowed} own connects after the storm, never refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(c);
    }
    assert!(
        allowed >= 1,
        "the storm was counted: bob's own connect refused at once"
    );
    drop(conns);
}

/// The looping-client phase of `make bench` (`bench run --only-looping`, BENCHMARKS.md) at a
/// small scale, so that it cannot rot: normal clients are served on all three systems, and
/// the looping client is refused only where `connect_rate` is on.
#[tokio::test(flavor = "multi_thread")]
async fn the_looping_client_benchmark_refuses_the_looper_only_with_the_rate() {
    let (results, log) = crate::rooms::bench::run_bench(&[
        "--only-looping",
        "--looping-connects",
        "3",
        "--rounds",
        "1",
        "--phase-secs",
        "1",
    ])
    .await;
    let l = &results["looping"];
    let normal = l["normal"].as_array().unwrap();
    let systems: Vec<&str> = normal.iter().map(|s| s["system"].as_str().unwrap()).collect();
    assert_eq!(systems, ["no-loop", "loop-rate-off", "loop-rate-on"], "{l}");
    for s in normal {
        assert!(s["ok"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["refused"], 0, "normal clients are never refused: {s}");
    }
    let refused = |system: &str| {
        let looper = l["looper"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["system"] == system);
        looper.and_then(|x| x["refused_per_second"].as_f64()).unwrap()
    };
    assert_eq!(refused("loop-rate-off"), 0.0, "{l}");
    assert!(refused("loop-rate-on") > 0.0, "{l}\n{log}");
}

/// A cap set by an edit of the permission files applies to the connections already there:
/// the oldest beyond it go, the newest stays.
#[tokio::test]
async fn a_cap_set_by_an_edit_closes_the_oldest_live_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut conns = Vec::new();
    for (i, session) in ["s1", "s2", "s3"].into_iter().enumerate() {
        conns.push(watched(&env, &token_in(&env, "bob", session), "all1", false).await);
        registered(&svc, "bob", i + 1).await;
    }
    let capped = "[groups.capped]\nmembers = [\"bob\"]\nlimits = { connections = 1 }\n";
    replace_file(&env.config.permissions.dir, "limits.toml", capped);
    for c in &mut conns[..2] {
        c.wait_for("an older one closed", |s| matches!(s, Seen::Disconnected))
            .await;
    }
    assert!(
        !conns[2].saw(|s| matches!(s, Seen::Disconnected)),
        "the newest stays"
    );
    receives(&conns[2].client, "all1", "bob").await;
}
