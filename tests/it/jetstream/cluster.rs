//! A three-node nats-server cluster with R3 buckets: instances on different nodes share
//! sessions and revocations; losing a node and an instance during steady connects loses
//! only what the dead instance held; JetStream without quorum leaves the callout deciding
//! and refuses logins and refreshes with a clear error until it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nats_callout::clock::now_secs;
use nats_callout::config::{Config, StoreBackend};
use nats_callout::tokens::revocation::RevokeTarget;

use crate::support::api::{assert_nats_denied, login, post, refresh, s};
use crate::support::proxy::Proxy;
use crate::support::{CalloutHandle, EnvOptions, TestEnv, connect_to, wait_until};

fn r3() -> EnvOptions {
    EnvOptions {
        tweak: |c| {
            c.store.backend = StoreBackend::Jetstream;
            c.store.replicas = 3;
        },
        ..EnvOptions::shared()
    }
}

/// An instance connected to `url`.
async fn instance_on(env: &TestEnv, url: String) -> CalloutHandle {
    let mut config: Config = env.config.clone();
    config.nats.url = url;
    env.start_callout_with(config).await
}

#[tokio::test]
async fn instances_on_different_nodes_share_sessions_and_revocations() {
    let env = TestEnv::cluster(r3()).await;
    let a = instance_on(&env, env.server.url()).await;
    let b = instance_on(&env, env.others[0].url()).await;

    // Login on A, refresh on B, reuse detected on A.
    let first = login(&a.http_url(), "bob", Some("laptop")).await;
    let (status, second) = refresh(&b.http_url(), &s(&first, "refreshToken")).await;
    assert_eq!(status, 200, "{second}");
    let (status, _) = refresh(&b.http_url(), &s(&second, "refreshToken")).await;
    assert_eq!(status, 200);
    let (status, err) = refresh(&a.http_url(), &s(&first, "refreshToken")).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (401, Some("refresh-token-reused"))
    );

    // One token refreshed on A and B at the same moment: one successor, both get it.
    let alice = login(&a.http_url(), "alice", None).await;
    let rt = s(&alice, "refreshToken");
    let (ua, ub) = (a.http_url(), b.http_url());
    let (ra, rb) = tokio::join!(refresh(&ua, &rt), refresh(&ub, &rt));
    assert_eq!((ra.0, rb.0), (200, 200), "{} {}", ra.1, rb.1);
    assert_eq!(
        s(&ra.1, "refreshToken"),
        s(&rb.1, "refreshToken"),
        "exactly one successor"
    );

    // Revoke on B: refused on A at once, and by C started after on the third node.
    let carol = login(&a.http_url(), "alice", Some("tablet")).await;
    let access = s(&carol, "accessToken");
    env.connect(Some(&access), "all1")
        .await
        .expect("connects before the revoke");
    b.tokens
        .revoke(&RevokeTarget::Device("tablet".into()), "lost", now_secs())
        .await
        .unwrap();
    wait_until("A applies it", || !a.tokens.revocations().load().is_empty()).await;
    assert_nats_denied(&env, &access, "decided by A or B").await;
    a.stop().await;
    b.stop().await;
    let c = instance_on(&env, env.others[1].url()).await;
    assert!(
        !c.tokens.revocations().load().is_empty(),
        "loaded before it was ready"
    );
    assert_nats_denied(&env, &access, "decided by C").await;
    let (status, _) = refresh(&c.http_url(), &s(&ra.1, "refreshToken")).await;
    assert_eq!(status, 200, "C continues a session A and B made");
}

/// Steady connects through the first node while the second node and the instance on it
/// die (SIGKILL both): every connect is decided except those the dead instance held,
/// which fail within the callout timeout (2 s here) of its death.
#[tokio::test]
async fn a_node_and_an_instance_lost_during_steady_connects() {
    let mut env = TestEnv::cluster(r3()).await;
    let a = instance_on(&env, env.server.url()).await;
    let second = env.others[0].url();
    let mut b = env.spawn_shared_service(&[
        ("NATS_CALLOUT_NATS__URL", second.as_str()),
        ("NATS_CALLOUT_STORE__REPLICAS", "3"),
    ]);
    b.ready().await;
    let token = env.token("bob");
    // B answers too (its share of the queue group).
    let before = a.stats().allowed;
    for _ in 0..20 {
        connect_to(&env.server.url(), Some(&token), "all1", None)
            .await
            .unwrap();
    }
    assert!(a.stats().allowed - before < 20, "B takes a share of the requests");

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (url, token, stop) = (env.server.url(), token.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match connect_to(&url, Some(&token), "all1", None).await {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push((Instant::now(), e.to_string())),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    env.others[0].stop();
    b.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for w in workers {
        let (o, f) = w.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 20, "connects went on ({ok})");
    let window = Duration::from_secs(2) + Duration::from_millis(1500);
    for (at, e) in &failed {
        assert!(*at >= killed, "a failure before anything died: {e}");
        assert!(
            at.duration_since(killed) < window,
            "a failure {:?} after the kill: {e}",
            at.duration_since(killed)
        );
    }
    assert!(a.stats().allowed > before, "A decided the rest");
}

/// Two of three nodes down: no JetStream quorum. The callout keeps deciding from what it
/// has, logins and refreshes are refused with 503 `store-unavailable`, readiness says so;
/// with the nodes back everything works again and no session was lost.
#[tokio::test]
async fn jetstream_without_quorum_keeps_deciding_and_refuses_token_changes() {
    let mut env = TestEnv::cluster(r3()).await;
    let a = instance_on(&env, env.server.url()).await;
    let bob = login(&a.http_url(), "bob", None).await;
    let revoked = login(&a.http_url(), "alice", Some("old")).await;
    a.tokens
        .revoke(&RevokeTarget::Device("old".into()), "lost", now_secs())
        .await
        .unwrap();

    env.others[0].stop();
    env.others[1].stop();
    let base = a.http_url();
    let (status, body, _) = post(
        &format!("{base}/api/auth/login"),
        serde_json::json!({"username": "bob", "password": "bob"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (503, Some("store-unavailable")),
        "{body}"
    );
    let (status, body) = refresh(&base, &s(&bob, "refreshToken")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (503, Some("store-unavailable")),
        "{body}"
    );
    // The stream leader answers reads until it notices it lost its quorum.
    let deadline = Instant::now() + crate::support::DEADLINE;
    loop {
        let (ready, why) = a.ops.readiness().await;
        if !ready {
            assert_eq!(why["parts"]["tokenStore"]["ok"], false, "{why}");
            break;
        }
        assert!(Instant::now() < deadline, "still ready without quorum: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", a.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nats_callout_part_ready{part=\"tokenStore\"} 0"),
        "{metrics}"
    );
    // Still deciding: valid tokens in, revoked ones out.
    env.connect(Some(&s(&bob, "accessToken")), "all1")
        .await
        .expect("a valid token is decided without JetStream");
    assert_nats_denied(&env, &s(&revoked, "accessToken"), "a revoked token stays revoked").await;

    env.others[0].start_again();
    env.others[1].start_again();
    // Each bucket elects its stream leader again: ready once every one takes writes.
    let deadline = Instant::now() + crate::support::DEADLINE * 3;
    loop {
        let (ready, why) = a.ops.readiness().await;
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A stream may still change leaders once more: a 503 in between is retried (a refresh
    // is safe to repeat, the grace window returns the same successor).
    let mut retry = 0;
    loop {
        let (status, body) = refresh(&base, &s(&bob, "refreshToken")).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "the session made before the outage goes on: {body}");
        retry += 1;
        assert!(retry < 20, "refresh never came back: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut retry = 0;
    loop {
        let (status, body, _) = post(
            &format!("{base}/api/auth/login"),
            serde_json::json!({"username": "alice", "password": "alice"}),
        )
        .await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        retry += 1;
        assert!(retry < 8, "login never came back: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (ready, why) = a.ops.readiness().await;
    assert!(ready, "{why}");
}

/// An instance cut off from NATS while another revokes applies the revocation when it
/// is back, and refuses the token from then on.
/// (The test cluster does not advertise its nodes to clients, so the proxy is the only
/// address A knows: cutting it cuts A off the whole cluster.)
#[tokio::test]
async fn a_revocation_made_while_an_instance_was_cut_off_is_applied_on_return() {
    let env = TestEnv::cluster(r3()).await;
    // A reaches the first node through a proxy that can cut it off; B is on the second.
    let proxy = Proxy::start(env.server.port).await;
    let a = instance_on(&env, proxy.url()).await;
    let b = instance_on(&env, env.others[0].url()).await;
    let token = env.token("bob");

    proxy.cut();
    let cut_off = || a.ops.health.get("nats").is_some_and(|c| !c.ok);
    wait_until("a notices it is cut off", cut_off).await;
    b.tokens
        .revoke(&RevokeTarget::User("bob".into()), "admin", now_secs())
        .await
        .unwrap();
    assert!(a.tokens.revocations().load().is_empty(), "a cannot know yet");

    proxy.restore();
    wait_until("a applies the revocation on return", || {
        !a.tokens.revocations().load().is_empty()
    })
    .await;
    b.stop().await;
    assert_nats_denied(&env, &token, "decided by the instance that was cut off").await;
}
