//! The kit on a nats-server in operator mode: it connects with NATS credentials (a user JWT
//! the service mints for the client's own key) and keeps the callout's grant, survives a kick
//! and a restart with them, renews them before they expire without losing the connection,
//! and falls back to the callout where the service mints none.

mod support;

use std::time::Duration;

use nats_callout_client::{ChatClient, Event, Options, Via};
use support::{World, heard, login, next_matching};

/// `tokens.credentials_ttl` where the test does not watch them expire.
const LONG: Duration = Duration::from_secs(120);

#[tokio::test]
async fn credentials_carry_the_callouts_grant_and_survive_a_kick_and_a_restart() {
    let mut world = World::operator(Some(LONG), |_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    assert_eq!((bob.via(), alice.via()), (Via::Credentials, Via::Credentials));
    bob.join("all1").await.unwrap();
    // nats-server authenticated a user nkey (a JWT's subject), not the callout's user "bob".
    let user = world.authorized_user(&bob.nats().unwrap()).await;
    assert!(user.starts_with('U') && user.len() == 56, "{user}");
    alice.join("all1").await.unwrap();
    heard(&alice, &bob, "all1").await;
    heard(&bob, &alice, "all1").await;
    // A room the callout would refuse is refused, the others keep working.
    let err = bob.join("alice1").await.unwrap_err();
    assert_eq!(err.code(), "refused", "{err}");
    assert_eq!(bob.rooms(), vec!["all1".to_string()]);
    bob.join("bob1").await.unwrap();
    heard(&bob, &bob, "bob1").await;
    heard(&alice, &bob, "all1").await;
    assert_eq!(bob.via(), Via::Credentials);
    // A client that opts out talks with them through the callout.
    let carol = ChatClient::connect(
        Options::password(&world.api, &world.nats, "alice", "alice").nats_credentials(false),
    )
    .await
    .unwrap();
    carol.join("all1").await.unwrap();
    assert_eq!(carol.via(), Via::Callout);
    assert_eq!(world.authorized_user(&carol.nats().unwrap()).await, "alice");
    heard(&carol, &bob, "all1").await;
    heard(&bob, &carol, "all1").await;

    let mut events = bob.events();
    world.server_request(&bob.nats().unwrap(), "KICK").await;
    next_matching(&mut events, "disconnected", |e| *e == Event::Disconnected).await;
    next_matching(&mut events, "connected", |e| *e == Event::Connected).await;
    assert_eq!(bob.via(), Via::Credentials);
    heard(&alice, &bob, "all1").await;
    world.restart_server();
    next_matching(&mut events, "disconnected", |e| *e == Event::Disconnected).await;
    next_matching(&mut events, "connected", |e| *e == Event::Connected).await;
    assert_eq!(bob.via(), Via::Credentials);
    assert_eq!(bob.rooms(), vec!["all1".to_string(), "bob1".to_string()]);
    heard(&alice, &bob, "all1").await;
    heard(&bob, &alice, "all1").await;
}

/// With a life of 3 s, the kit replaces its connection with fresh credentials before they
/// expire (make-before-break): never disconnected, still talking after several lives.
#[tokio::test]
async fn short_lived_credentials_are_renewed_before_they_expire() {
    const TTL: Duration = Duration::from_secs(3);
    let world = World::operator(Some(TTL), |_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    bob.join("all1").await.unwrap();
    alice.join("all1").await.unwrap();
    let mut events = bob.events();
    let first = bob.nats().unwrap().server_info().client_id;
    tokio::time::sleep(TTL * 3).await;
    assert_ne!(bob.nats().unwrap().server_info().client_id, first, "renewed");
    assert_eq!(bob.via(), Via::Credentials);
    heard(&alice, &bob, "all1").await;
    heard(&bob, &alice, "all1").await;
    let mut lost = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::from_millis(10), futures::StreamExt::next(&mut events)).await
    {
        lost.push(e);
    }
    assert!(
        !lost.contains(&Event::Disconnected),
        "a connection outlived its JWT: {lost:?}"
    );
}

/// `tokens.credentials_ttl = "0s"`: the endpoint says `credentials-off`, and the kit goes
/// through the callout, as in config mode.
#[tokio::test]
async fn without_credentials_the_callout_decides() {
    let world = World::operator(None, |_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    bob.join("all1").await.unwrap();
    alice.join("all1").await.unwrap();
    assert_eq!((bob.via(), alice.via()), (Via::Callout, Via::Callout));
    heard(&alice, &bob, "all1").await;
    assert_eq!(bob.join("alice1").await.unwrap_err().code(), "refused");
    bob.join("bob1").await.unwrap();
    heard(&bob, &bob, "bob1").await;
    assert_eq!(bob.via(), Via::Callout);
}

/// A member removed from a data room: the `grants-changed` notice makes the kit reconnect with
/// fresh credentials (never the JWT it holds, which still carries the room), and the room is
/// lost.
#[tokio::test]
async fn a_room_taken_is_lost_with_credentials_too() {
    let world = World::operator(Some(LONG), |_| {}).await;
    let alice = login(&world, "alice").await;
    let bob = login(&world, "bob").await;
    alice
        .create_room("credroom", None, nats_callout_client::JoinPolicy::Invite)
        .await
        .unwrap();
    alice.join("all1").await.unwrap();
    alice.join("credroom").await.unwrap();
    alice
        .invite("credroom", "bob", nats_callout_client::Access::Readwrite)
        .await
        .unwrap();
    bob.join("all1").await.unwrap();
    bob.join("credroom").await.unwrap();
    assert_eq!(bob.via(), Via::Credentials);
    heard(&alice, &bob, "credroom").await;
    // Longer than a kick's short life: only the notice says the JWT is stale.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut events = bob.events();
    alice.remove_member("credroom", "bob").await.unwrap();
    next_matching(&mut events, "room-lost", |e| {
        *e == Event::RoomLost {
            room: "credroom".into(),
        }
    })
    .await;
    assert_eq!(bob.rooms(), vec!["all1".to_string()]);
    assert_eq!(bob.via(), Via::Credentials);
    heard(&alice, &bob, "all1").await;
}
