//! Notices on `nats-callout.notice.<user>` against a real nats-server: a grant that grows (a
//! member added, a file edit) is told to the user's live connections, a notice grants
//! nothing, a grant taken away is told beside the lame-duck notice and the kick, nobody hears
//! or writes another user's notices, and with two instances each change is told once.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Seen, registered, watched};
use crate::rooms::{add, call, create, token_of};
use crate::support::{DEADLINE, EnvOptions, TestEnv, wait_until};

/// `user`'s notices as a client hears them.
struct Notices(async_nats::Subscriber);

impl Notices {
    async fn of(client: &async_nats::Client, user: &str) -> Notices {
        let sub = client
            .subscribe(format!("nats-callout.notice.{user}"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        Notices(sub)
    }

    /// The next notice, within the deadline.
    async fn next(&mut self) -> Value {
        let m = tokio::time::timeout(DEADLINE, self.0.next())
            .await
            .expect("a notice within the deadline")
            .expect("the subscription is open");
        serde_json::from_slice(&m.payload).unwrap()
    }
}

fn notice(user: &str, room: &str, previous: &str, access: &str, source: &str) -> Value {
    json!({"type": "grants-changed", "user": user, "room": room, "access": access,
           "previous": previous, "source": source})
}

/// bob, connected with all1, is told when alice adds him to a room; the notice gives him
/// nothing (the room stays refused on that connection) until he reconnects asking for it.
/// Taken back, he is told, then gets the lame-duck notice and the kick.
#[tokio::test]
async fn a_member_added_is_told_and_must_reconnect_to_get_the_room() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (alice, bob_token) = (token_of(&svc, "alice").await, token_of(&svc, "bob").await);
    let bob = watched(&env, &bob_token, "all1;proj", false).await;
    let mut told = Notices::of(&bob.client, "bob").await;
    registered(&svc, "bob", 1).await;
    create(&svc, &alice, "proj", "invite").await;
    add(&svc, &alice, "proj", "bob", "read").await;
    assert_eq!(told.next().await, notice("bob", "proj", "none", "read", "rooms"));
    // Told, not granted: this connection was decided without the room.
    let mut bob = bob;
    bob.client.subscribe("chat.proj.>").await.unwrap();
    bob.client.flush().await.unwrap();
    bob.wait_for("the refused subscription", |s| {
        matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Subscription to \"chat.proj.>\""))
    })
    .await;
    // A new connection asking for it gets it.
    let mut again = watched(&env, &bob_token, "all1;proj", false).await;
    let mut told_again = Notices::of(&again.client, "bob").await;
    registered(&svc, "bob", 2).await;
    let mut probe = again.client.subscribe("chat.proj.>").await.unwrap();
    again.client.flush().await.unwrap();
    let alice_conn = watched(&env, &alice, "proj", false).await;
    alice_conn
        .client
        .publish("chat.proj.alice", "hello".into())
        .await
        .unwrap();
    alice_conn.client.flush().await.unwrap();
    let heard = tokio::time::timeout(DEADLINE, probe.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(heard.payload.as_ref(), b"hello");
    // Upgraded: told on both connections.
    add(&svc, &alice, "proj", "bob", "readwrite").await;
    let up = notice("bob", "proj", "read", "readwrite", "rooms");
    assert_eq!(told.next().await, up);
    assert_eq!(told_again.next().await, up);
    // Taken back: told, then the lame-duck notice and the kick on the connection that had it.
    let (status, _, _) = call(&svc, Method::DELETE, "/api/rooms/proj/members/bob", &alice, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        told_again.next().await,
        notice("bob", "proj", "readwrite", "none", "rooms")
    );
    again
        .wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    again
        .wait_for("the kick", |s| matches!(s, Seen::Disconnected))
        .await;
}

/// A permission file edit that gives bob a room (and write where he had read) is told; one
/// that changes nothing of his tells nothing (the next notice is the one after it).
#[tokio::test]
async fn a_file_edit_that_grows_a_grant_is_told() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let bob = watched(&env, &env.token("bob"), "all1", false).await;
    let mut told = Notices::of(&bob.client, "bob").await;
    registered(&svc, "bob", 1).await;
    let dir = env.config.permissions.dir.clone();
    super::replace_file(&dir, "alice-only.toml", "[rooms.quiet]\nmembers = [\"alice\"]\n");
    wait_until("the first edit is loaded", || {
        svc.callout.snapshot().claims_room("quiet")
    })
    .await;
    super::replace_file(
        &dir,
        "extra.toml",
        "[rooms.extra]\nmembers = [\"bob\"]\naccess = \"read\"\n",
    );
    assert_eq!(
        told.next().await,
        notice("bob", "extra", "none", "read", "permissions")
    );
    super::replace_file(&dir, "extra.toml", "[rooms.extra]\nmembers = [\"bob\"]\n");
    assert_eq!(
        told.next().await,
        notice("bob", "extra", "read", "readwrite", "permissions")
    );
}

/// A user may subscribe to their own notices only, and publish to none: the server refuses
/// the rest, and alice's notice never reaches bob.
#[tokio::test]
async fn nobody_hears_or_writes_another_users_notices() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let alice = token_of(&svc, "alice").await;
    let mut bob = watched(&env, &env.token("bob"), "all1", false).await;
    for subject in [
        "nats-callout.notice.alice",
        "nats-callout.notice.*",
        "nats-callout.notice.>",
        "nats-callout.>",
        ">",
    ] {
        bob.client.subscribe(subject.to_string()).await.unwrap();
        bob.client.flush().await.unwrap();
        let want = format!("Permissions Violation for Subscription to \"{subject}\"");
        bob.wait_for(&want, |s| matches!(s, Seen::Error(e) if e.contains(&want)))
            .await;
    }
    for subject in ["nats-callout.notice.bob", "nats-callout.notice.alice"] {
        bob.client.publish(subject, "{}".into()).await.unwrap();
        bob.client.flush().await.unwrap();
        let want = format!("Permissions Violation for Publish to \"{subject}\"");
        bob.wait_for(&want, |s| matches!(s, Seen::Error(e) if e.contains(&want)))
            .await;
    }
    // alice's notice goes to alice; bob hears only his own, which comes after it.
    let mut own = Notices::of(&bob.client, "bob").await;
    let alice_conn = watched(&env, &alice, "all1", false).await;
    let mut alices = Notices::of(&alice_conn.client, "alice").await;
    registered(&svc, "alice", 1).await;
    registered(&svc, "bob", 1).await;
    create(&svc, &alice, "mine", "invite").await;
    create(&svc, &alice, "ours", "invite").await;
    add(&svc, &alice, "mine", "admin", "read").await;
    add(&svc, &alice, "ours", "bob", "read").await;
    assert_eq!(own.next().await, notice("bob", "ours", "none", "read", "rooms"));
    // alice made both rooms: her own notices are hers alone (created: readwrite).
    assert_eq!(alices.next().await["user"], "alice");
}

/// Two instances on JetStream: a member added on A is told once on a connection B decided
/// (B enforcing); with B gone, A enforces and tells the next change itself.
#[tokio::test]
async fn with_two_instances_a_change_is_told_once() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| {
            c.store.backend = nats_callout::config::StoreBackend::Jetstream;
            c.enforcement.lease_ttl = Duration::from_secs(2);
        },
        jetstream: true,
        ..Default::default()
    })
    .await;
    // B alone decides bob's connection and takes the lease.
    let b = env.start_callout().await;
    let bob = watched(&env, &token_of(&b, "bob").await, "all1", false).await;
    let mut told = Notices::of(&bob.client, "bob").await;
    registered(&b, "bob", 1).await;
    let a = env.start_callout().await;
    let alice = token_of(&a, "alice").await;
    create(&a, &alice, "first", "invite").await;
    create(&a, &alice, "second", "invite").await;
    add(&a, &alice, "first", "bob", "read").await;
    assert_eq!(told.next().await, notice("bob", "first", "none", "read", "rooms"));
    // The next change's notice comes next: no second copy of the first came between.
    add(&a, &alice, "second", "bob", "write").await;
    assert_eq!(
        told.next().await,
        notice("bob", "second", "none", "write", "rooms")
    );
    // B goes; A enforces and tells.
    b.stop().await;
    let ea = a.enforcement.clone().expect("live enforcement on");
    wait_until("A enforces", || ea.is_leader()).await;
    add(&a, &alice, "first", "bob", "readwrite").await;
    // Taking over, A repeats what it kept of the last moments (B may have died before
    // telling them): the earlier notices again, then the new one.
    let earlier = [
        notice("bob", "first", "none", "read", "rooms"),
        notice("bob", "second", "none", "write", "rooms"),
    ];
    let new = notice("bob", "first", "read", "readwrite", "rooms");
    loop {
        let n = told.next().await;
        if n == new {
            break;
        }
        assert!(earlier.contains(&n), "not a notice of these changes: {n}");
    }
}
