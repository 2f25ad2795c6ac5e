//! Two instances sharing rooms on JetStream: a member added on A is granted by B's next
//! decision; a removal made on A reaches a connection B decided.

use reqwest::Method;

use super::{add, call, create, token_of};
use crate::enforcement::{Seen, receives, registered, watched};
use crate::support::{EnvOptions, TestEnv, wait_until};

#[tokio::test]
async fn a_change_on_one_instance_holds_on_the_other() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| {
            c.store.backend = nats_callout::config::StoreBackend::Jetstream;
            // The instance started again learns of B's connection from CONNZ soon.
            c.enforcement.reconcile_interval = std::time::Duration::from_secs(1);
        },
        jetstream: true,
        ..Default::default()
    })
    .await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let alice = token_of(&a, "alice").await;
    create(&a, &alice, "shared", "invite").await;
    add(&a, &alice, "shared", "bob", "readwrite").await;
    // B learns it from the bucket.
    wait_until("B holds bob's membership", || {
        b.callout.rooms().access("bob", "shared").is_some()
    })
    .await;
    // Only B decides now: it grants the room.
    a.stop().await;
    let decided = b.stats().allowed;
    let bob = token_of(&b, "bob").await;
    let mut conn = watched(&env, &bob, "shared;all1", false).await;
    receives(&conn.client, "shared", "bob").await;
    assert!(b.stats().allowed > decided, "B decided");
    registered(&b, "bob", 1).await;
    // A again, and the removal made there reaches the connection B decided.
    let a = env.start_callout().await;
    registered(&a, "bob", 1).await;
    let (status, _, _) = call(&a, Method::DELETE, "/api/rooms/shared/members/bob", &alice, None).await;
    assert_eq!(status, 200);
    conn.wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    conn.wait_for("the kick", |s| matches!(s, Seen::Disconnected))
        .await;
}
