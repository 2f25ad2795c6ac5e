//! One enforcer among instances sharing the JetStream store, by the lease: when the holder
//! dies (SIGKILL) another takes over and acts on what changed meanwhile, once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{ROOMS_WITHOUT_BOB_IN_ALL1, Seen, replace_file, watched};
use crate::support::{EnvOptions, TestEnv, wait_until};

#[tokio::test]
async fn the_lease_moves_when_the_enforcer_dies_and_nothing_is_enforced_twice() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    // A: the binary, first, so it takes the lease.
    let mut a = env.spawn_shared_service(&[("NATS_CALLOUT_ENFORCEMENT__LEASE_TTL", "2s")]);
    let js = async_nats::jetstream::new(env.connect_auth_user().await);
    let mut holder = None;
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    while holder.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the binary never took the lease"
        );
        if let Ok(kv) = js.get_key_value("callout_leases").await {
            holder = kv.get("enforcer").await.ok().flatten();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B: in process, to count what it sends.
    let mut config = env.config.clone();
    config.enforcement.lease_ttl = Duration::from_secs(2);
    config.enforcement.grace = Duration::from_secs(1);
    let b = env.start_callout_with(config).await;
    let eb = b.enforcement.clone().unwrap();
    assert!(!eb.is_leader(), "the lease is taken");

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(watched(&env, &env.token("bob"), "all1;bob1", true).await);
    }
    // With their decisions: A's records may still be on their way when B has seen the
    // connect events, and a record A has not sent when it dies is lost (B would then judge
    // that connection per user only, and a lost room is not seen that way).
    wait_until("b knows the connections and their decisions", || {
        let c = eb.connections();
        c.iter()
            .filter(|c| c.user == "bob" && c.session.is_some())
            .count()
            == 3
    })
    .await;

    // The enforcer dies; the change comes while nobody enforces.
    a.kill();
    replace_file(
        &env.config.permissions.dir,
        "rooms.toml",
        ROOMS_WITHOUT_BOB_IN_ALL1,
    );
    wait_until("b takes the lease", || eb.is_leader()).await;
    for c in &mut clients {
        c.wait_for("the notice from the new enforcer", |s| {
            matches!(s, Seen::LameDuck(_))
        })
        .await;
    }
    // Give a doubled notice or kick time to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        eb.stats.ldm_sent.load(Ordering::Relaxed),
        3,
        "one notice per connection"
    );
    assert_eq!(
        eb.stats.kicks_sent.load(Ordering::Relaxed),
        0,
        "they reconnected in time"
    );
    for c in &clients {
        let notices = c
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| matches!(s, Seen::LameDuck(_)))
            .count();
        assert_eq!(notices, 1, "{:?}", c.log.lock().unwrap());
    }
}
