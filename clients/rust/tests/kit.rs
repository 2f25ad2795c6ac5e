//! The kit against a real nats-server and the real service: joins granted and refused, a
//! lame-duck notice, a kick and a server restart survived, an expired access token refreshed
//! on the way, rooms as data appearing and disappearing through notices, a join under a
//! connection cap of 1, and the `chat` example as a process.

mod support;

use std::time::Duration;

use futures::StreamExt;
use nats_callout_client::{Access, ChatClient, Event, JoinPolicy, Options};
use support::{DEADLINE, World, heard, login, next_matching};

#[tokio::test]
async fn a_refused_join_leaves_the_other_rooms_working() {
    let world = World::start(|_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    bob.join("all1").await.unwrap();
    alice.join("all1").await.unwrap();
    let err = bob.join("alice1").await.unwrap_err();
    assert_eq!(err.code(), "refused", "{err}");
    assert_eq!(bob.rooms(), vec!["all1".to_string()]);
    heard(&alice, &bob, "all1").await;
    heard(&bob, &alice, "all1").await;
    // Granted joins keep the earlier rooms; leaving drops one.
    bob.join("bob1").await.unwrap();
    assert_eq!(bob.rooms(), vec!["all1".to_string(), "bob1".to_string()]);
    heard(&bob, &bob, "bob1").await;
    heard(&alice, &bob, "all1").await;
    bob.leave("bob1").await.unwrap();
    assert_eq!(bob.rooms(), vec!["all1".to_string()]);
    assert_eq!(bob.send("bob1", "x").await.unwrap_err().code(), "not-joined");
    assert_eq!(bob.join("a.b").await.unwrap_err().code(), "bad-room-name");
    assert_eq!(bob.join("all>").await.unwrap_err().code(), "bad-room-name");
    // A wrong password is the service's code.
    let err = ChatClient::connect(Options::password(&world.api, &world.nats, "bob", "nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid-credentials", "{err}");
    bob.close().await;
    alice.close().await;
}

/// The room limit comes from the service; a token the application holds is enough to log
/// in (and one that is no JWT is refused before anything is sent); rooms asked for at connect
/// are checked as joins are.
#[tokio::test]
async fn limits_tokens_and_rooms_at_connect() {
    let world = World::start(|c| c.callout.max_rooms = 2).await;
    let bob = login(&world, "bob").await;
    assert_eq!(bob.server_config().max_rooms, 2);
    bob.join("all1").await.unwrap();
    bob.join("all2").await.unwrap();
    assert_eq!(bob.join("all3").await.unwrap_err().code(), "too-many-rooms");
    assert_eq!(bob.leave("all3").await.unwrap_err().code(), "not-joined");
    assert_eq!(bob.rooms(), vec!["all1".to_string(), "all2".to_string()]);

    let token = bob.access_token().await.unwrap();
    let again = ChatClient::connect(Options::token(&world.api, &world.nats, &token).rooms(["all1"]))
        .await
        .unwrap();
    assert_eq!((again.user(), again.rooms()), ("bob", vec!["all1".to_string()]));
    heard(&again, &bob, "all1").await;
    let err = ChatClient::connect(Options::token(&world.api, &world.nats, "not-a-jwt"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bad-token", "{err}");
    // Shaped like a JWT but not the service's: the service's refusal, with its code.
    let forged = format!(
        "{}.{}.c2ln",
        &token[..token.find('.').unwrap()],
        token.split('.').nth(1).unwrap()
    );
    let err = ChatClient::connect(Options::token(&world.api, &world.nats, &forged))
        .await
        .unwrap_err();
    assert!(
        matches!(err, nats_callout_client::Error::Api { status: 401, .. }),
        "{err}"
    );
    eprintln!("forged token: {}", err.code());
    let err = ChatClient::connect(
        Options::password(&world.api, &world.nats, "bob", "bob").rooms(["all1", "alice1"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "refused", "{err}");
    let err = ChatClient::connect(Options::password(&world.api, "nats://127.0.0.1:1", "bob", "bob"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "connect-failed", "{err}");
}

#[tokio::test]
async fn a_lame_duck_notice_and_a_kick_are_survived() {
    let world = World::start(|_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    bob.join("all2").await.unwrap();
    alice.join("all2").await.unwrap();
    let mut events = bob.events();

    let before = bob.nats().unwrap().server_info().client_id;
    world.server_request(&bob.nats().unwrap(), "LDM").await;
    next_matching(&mut events, "lame-duck", |e| *e == Event::LameDuck).await;
    next_matching(&mut events, "connected", |e| *e == Event::Connected).await;
    assert_ne!(
        bob.nats().unwrap().server_info().client_id,
        before,
        "a new connection"
    );
    heard(&alice, &bob, "all2").await;

    world.server_request(&bob.nats().unwrap(), "KICK").await;
    next_matching(&mut events, "disconnected", |e| *e == Event::Disconnected).await;
    next_matching(&mut events, "connected", |e| *e == Event::Connected).await;
    assert_eq!(bob.rooms(), vec!["all2".to_string()]);
    heard(&alice, &bob, "all2").await;
    heard(&bob, &alice, "all2").await;
}

#[tokio::test]
async fn a_server_restart_is_survived() {
    let mut world = World::start(|_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    bob.join("all1").await.unwrap();
    alice.join("all1").await.unwrap();
    let mut events = bob.events();
    world.restart_server();
    next_matching(&mut events, "disconnected", |e| *e == Event::Disconnected).await;
    next_matching(&mut events, "connected", |e| *e == Event::Connected).await;
    assert_eq!(bob.rooms(), vec!["all1".to_string()]);
    heard(&alice, &bob, "all1").await;
    heard(&bob, &alice, "all1").await;
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_on_the_way() {
    let world = World::start(|c| c.tokens.access_ttl = Duration::from_secs(5)).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    alice.join("all3").await.unwrap();
    let first = bob.access_token().await.unwrap();
    // Past the first token's expiry: reconnecting (a kick) and joining need a fresh one.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut events = bob.events();
    bob.join("all3").await.unwrap();
    assert_ne!(bob.access_token().await.unwrap(), first);
    world.server_request(&bob.nats().unwrap(), "KICK").await;
    next_matching(&mut events, "connected", |e| *e == Event::Connected).await;
    heard(&alice, &bob, "all3").await;
    assert!(
        bob.available_rooms(false)
            .await
            .unwrap()
            .iter()
            .any(|r| r.name == "all3")
    );
}

#[tokio::test]
async fn a_room_given_appears_and_a_room_taken_is_lost() {
    let world = World::start(|_| {}).await;
    let alice = login(&world, "alice").await;
    let bob = login(&world, "bob").await;
    bob.join("all1").await.unwrap();
    alice.join("all1").await.unwrap();
    let mut events = bob.events();
    alice
        .create_room("kitroom", Some("from the kit"), JoinPolicy::Invite)
        .await
        .unwrap();
    alice.join("kitroom").await.unwrap();
    assert_eq!(bob.join("kitroom").await.unwrap_err().code(), "refused");

    alice.invite("kitroom", "bob", Access::Readwrite).await.unwrap();
    let notice = next_matching(&mut events, "grants-changed", |e| {
        matches!(e, Event::GrantsChanged { .. })
    })
    .await;
    assert_eq!(
        notice,
        Event::GrantsChanged {
            room: "kitroom".into(),
            access: "readwrite".into(),
            previous: "none".into()
        }
    );
    assert!(
        bob.available_rooms(false)
            .await
            .unwrap()
            .iter()
            .any(|r| r.name == "kitroom")
    );
    bob.join("kitroom").await.unwrap();
    heard(&alice, &bob, "kitroom").await;
    heard(&bob, &alice, "kitroom").await;
    let members = alice.members("kitroom").await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.user_id == "bob" && m.access == Access::Readwrite),
        "{members:?}"
    );

    alice.remove_member("kitroom", "bob").await.unwrap();
    next_matching(&mut events, "room-lost", |e| {
        *e == Event::RoomLost {
            room: "kitroom".into(),
        }
    })
    .await;
    assert_eq!(bob.rooms(), vec!["all1".to_string()]);

    heard(&alice, &bob, "all1").await;

    // An open room: anyone joins it through the API, then on NATS.
    alice
        .create_room("kitopen", None, JoinPolicy::Open)
        .await
        .unwrap();
    assert!(
        bob.available_rooms(true)
            .await
            .unwrap()
            .iter()
            .any(|r| r.name == "kitopen")
    );
    bob.join_open("kitopen").await.unwrap();
    assert!(bob.rooms().contains(&"kitopen".to_string()));
    // Someone else's room cannot be deleted; the owner can.
    assert_eq!(
        bob.delete_room("kitopen").await.unwrap_err().code(),
        "not-room-owner"
    );
    alice.delete_room("kitopen").await.unwrap();
    next_matching(&mut events, "room-lost", |e| {
        *e == Event::RoomLost {
            room: "kitopen".into(),
        }
    })
    .await;
}

/// The example of contract 12, run as a process: it joins, sends, and prints what it hears.
#[tokio::test]
async fn the_chat_example_prints_what_it_hears() {
    let world = World::start(|_| {}).await;
    let alice = login(&world, "alice").await;
    alice.join("all1").await.unwrap();
    let mut from_bob = alice.messages("all1");
    let out = tokio::process::Command::new(example("chat"))
        .args([
            "--api",
            &world.api,
            "--nats",
            &world.nats,
            "--user",
            "bob",
            "--password",
            "bob",
        ])
        .args([
            "--room", "all1", "--room", "bob1", "--send", "hi there", "--listen", "1",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for room in ["all1", "bob1"] {
        assert!(
            lines.contains(&serde_json::json!({"room": room, "from": "bob", "text": "hi there"})),
            "{lines:?}"
        );
    }
    let m = next_matching(&mut from_bob, "bob's message", |m| m.from == "bob").await;
    assert_eq!(m.text, "hi there");

    // A refused room ends it with the code.
    let out = tokio::process::Command::new(example("chat"))
        .args([
            "--api",
            &world.api,
            "--nats",
            &world.nats,
            "--user",
            "bob",
            "--password",
            "bob",
        ])
        .args(["--room", "alice1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example's binary, built beside the test (cargo builds the examples with the tests).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().join("examples");
    let path = dir.join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "nats-callout-client", "--example", name])
            .status()
            .unwrap();
        assert!(status.success(), "building the {name} example");
    }
    path
}

/// A room bob may read and alice may write, beside the demo's rooms.
fn with_news(world: &World) {
    let rooms = world.dir.path().join("permissions/rooms.toml");
    let mut text = std::fs::read_to_string(&rooms).unwrap();
    text.push_str("\n[rooms.news]\nmembers = [\"bob\"]\naccess = \"read\"\n");
    text.push_str("\n[rooms.news-desk]\nmembers = [\"alice\"]\n");
    std::fs::write(&rooms, text).unwrap();
}

#[tokio::test]
async fn a_read_only_room_refuses_sends_and_says_so() {
    let world = World::start(|_| {}).await;
    with_news(&world);
    let bob = login(&world, "bob").await;
    let mut events = bob.events();
    // The reload may take a moment: join once the file's grant is in.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while bob.join("news").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "bob never got news");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // nats-server drops the publish and says so; the kit passes it on as an event (and as
    // this send's error when the permission error came in before the flush ended).
    if let Err(err) = bob.send("news", "may I?").await {
        assert_eq!(err.code(), "read-only", "{err}");
    }
    let refused = tokio::time::timeout(DEADLINE, async {
        while let Some(e) = events.next().await {
            if e == (Event::PublishRefused { room: "news".into() }) {
                return;
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "no publish-refused event");
    // Known from now on, before anything is published; the other rooms still send.
    assert_eq!(bob.send("news", "again").await.unwrap_err().code(), "read-only");
    bob.join("all1").await.unwrap();
    bob.send("all1", "all1 is writable").await.unwrap();
}

#[tokio::test]
async fn messages_are_delivered_once_while_a_join_switches_connections() {
    let world = World::start(|_| {}).await;
    let bob = login(&world, "bob").await;
    let alice = login(&world, "alice").await;
    bob.join("all1").await.unwrap();
    alice.join("all1").await.unwrap();
    heard(&alice, &bob, "all1").await;
    let mut stream = bob.messages("all1");
    // alice talks without pause while bob switches connections four times.
    let talk = async {
        let mut sent = Vec::new();
        for i in 0..200 {
            if let Ok(id) = alice.send("all1", &format!("m{i}")).await {
                sent.push(id);
            }
            tokio::task::yield_now().await;
        }
        sent
    };
    let switch = async {
        for room in ["all2", "bob1", "bob2"] {
            bob.join(room).await.unwrap();
        }
        bob.leave("bob2").await.unwrap();
    };
    let (sent, ()) = tokio::join!(talk, switch);
    let mut heard_ids = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        heard_ids.push(m.id.expect("the kit's messages carry an id"));
    }
    let unique: std::collections::HashSet<_> = heard_ids.iter().collect();
    assert_eq!(unique.len(), heard_ids.len(), "a message was delivered twice");
    // make-before-break: nothing alice sent was missed.
    for id in &sent {
        assert!(unique.contains(id), "bob missed {id}");
    }
}

/// Under a connection cap of 1 (`limits` in the permission files), a join's brief second
/// connection is tolerated (`limits.join_grace`): the kit closes the old one itself and is
/// never cut off. A second client of the same user is over the cap: the first one goes.
#[tokio::test]
async fn a_join_under_a_connection_cap_of_one_is_not_cut_off() {
    let world = World::start(|c| {
        let capped = "[groups.capped]\nmembers = [\"bob\"]\nlimits = { connections = 1 }\n";
        std::fs::write(c.permissions.dir.join("limits.toml"), capped).unwrap();
        c.limits.join_grace = Duration::from_secs(3);
    })
    .await;
    let bob = login(&world, "bob").await;
    let mut events = bob.events();
    let alice = login(&world, "alice").await;
    bob.join("all1").await.unwrap();
    bob.join("bob1").await.unwrap();
    alice.join("all1").await.unwrap();
    heard(&alice, &bob, "all1").await;
    // Past the grace: never cut off, both rooms held.
    tokio::time::sleep(Duration::from_secs(4)).await;
    heard(&bob, &bob, "bob1").await;
    heard(&alice, &bob, "all1").await;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        assert_ne!(e, Event::Disconnected, "a join under the cap was cut off");
    }
    let second = login(&world, "bob").await;
    second.join("bob2").await.unwrap();
    next_matching(&mut events, "the first client closed", |e| {
        *e == Event::Disconnected
    })
    .await;
    heard(&second, &second, "bob2").await;
}
