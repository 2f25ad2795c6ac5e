//! The HTTP API of rooms as data, end to end on a real server.

use reqwest::Method;
use serde_json::json;

use super::{add, call, create, token_of};
use crate::enforcement::{Seen, receives, registered, watched};
use crate::support::{EnvOptions, TestEnv};

/// alice makes a room and shares it with bob: bob's next connection gets it (read and
/// write as granted), a room he was not given stays refused; alice takes it back and bob's
/// live connection is told (lame-duck notice) then closed after the grace, and is refused
/// the room when it comes back.
#[tokio::test]
async fn a_room_is_made_shared_and_taken_back_on_live_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (alice, bob) = (token_of(&svc, "alice").await, token_of(&svc, "bob").await);
    let room = create(&svc, &alice, "proj", "invite").await;
    assert_eq!(room["owner"], "alice");
    assert_eq!(room["join"], "invite");
    // Before being added bob cannot hear it.
    let mut before = watched(&env, &bob, "proj;all1", false).await;
    before.client.subscribe("chat.proj.>").await.unwrap();
    before.client.flush().await.unwrap();
    before
        .wait_for("the refused subscription", |s| {
            matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Subscription to \"chat.proj.>\""))
        })
        .await;
    add(&svc, &alice, "proj", "bob", "readwrite").await;
    // The list says so.
    let (_, _, list) = call(&svc, Method::GET, "/api/rooms", &bob, None).await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "proj")
        .unwrap_or_else(|| panic!("proj in {list}"))
        .clone();
    assert_eq!(
        (&entry["read"], &entry["write"], &entry["owner"], &entry["join"]),
        (&json!(true), &json!(true), &json!("alice"), &json!("invite"))
    );
    assert!(
        list.as_array().unwrap().iter().any(|r| r["name"] == "all1"),
        "the files' rooms too"
    );
    let mut bob_conn = watched(&env, &bob, "proj;all1", false).await;
    receives(&bob_conn.client, "proj", "bob").await;
    registered(&svc, "bob", 2).await;
    // Taken back: the live connection is told, then closed.
    let (status, _, _) = call(&svc, Method::DELETE, "/api/rooms/proj/members/bob", &alice, None).await;
    assert_eq!(status, 200);
    bob_conn
        .wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    bob_conn
        .wait_for("the kick", |s| matches!(s, Seen::Disconnected))
        .await;
    let mut again = watched(&env, &bob, "proj;all1", false).await;
    receives(&again.client, "all1", "bob").await;
    again.client.subscribe("chat.proj.>").await.unwrap();
    again.client.flush().await.unwrap();
    again
        .wait_for("proj refused again", |s| {
            matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Subscription to \"chat.proj.>\""))
        })
        .await;
}

/// Deleting a room takes it from every member at once.
#[tokio::test]
async fn a_deleted_room_is_taken_from_everyone() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (alice, bob) = (token_of(&svc, "alice").await, token_of(&svc, "bob").await);
    create(&svc, &alice, "gone", "invite").await;
    add(&svc, &alice, "gone", "bob", "read").await;
    let mut a = watched(&env, &alice, "gone", false).await;
    let mut b = watched(&env, &bob, "gone", false).await;
    registered(&svc, "alice", 1).await;
    registered(&svc, "bob", 1).await;
    let (status, code, _) = call(&svc, Method::DELETE, "/api/rooms/gone", &bob, None).await;
    assert_eq!((status, code.as_str()), (403, "not-room-owner"));
    let (status, _, _) = call(&svc, Method::DELETE, "/api/rooms/gone", &alice, None).await;
    assert_eq!(status, 200);
    for (who, c) in [("alice", &mut a), ("bob", &mut b)] {
        c.wait_for(&format!("{who}'s kick"), |s| matches!(s, Seen::Disconnected))
            .await;
    }
    let (_, _, list) = call(&svc, Method::GET, "/api/rooms", &bob, None).await;
    assert!(!list.to_string().contains("\"gone\""), "{list}");
}

/// Every refusal has its code and status; bad input is refused clearly.
#[tokio::test]
async fn every_refusal_has_its_code() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| {
            c.rooms.max_owned = 2;
            c.http.guests = true;
        },
        ..Default::default()
    })
    .await;
    std::fs::write(
        env.config.permissions.dir.join("teams.toml"),
        "[groups.guest]\nmembers = []\n[rooms.\"team-*\"]\nmembers = [\"bob\"]\n",
    )
    .unwrap();
    let svc = env.start_callout().await;
    let (alice, bob) = (token_of(&svc, "alice").await, token_of(&svc, "bob").await);
    create(&svc, &alice, "a1", "invite").await;
    create(&svc, &alice, "open1", "open").await;
    let post = |path: &'static str, body: serde_json::Value, token: String| {
        let svc = &svc;
        async move { call(svc, Method::POST, path, &token, Some(body)).await }
    };
    // (path, body, caller, status, code)
    #[rustfmt::skip]
    let cases = [
        ("/api/rooms", json!({"name": "a.b"}), "alice", 400, "bad-room-name"),
        ("/api/rooms", json!({"name": "callout"}), "alice", 400, "bad-room-name"),
        ("/api/rooms", json!({"name": ""}), "alice", 400, "bad-room-name"),
        ("/api/rooms", json!({"name": "x".repeat(65)}), "alice", 400, "bad-room-name"),
        ("/api/rooms", json!({"name": "all1"}), "alice", 409, "room-exists"),
        ("/api/rooms", json!({"name": "team-x"}), "alice", 409, "room-exists"),
        ("/api/rooms", json!({"name": "a1"}), "bob", 409, "room-exists"),
        ("/api/rooms", json!({"name": "a3"}), "alice", 409, "too-many-rooms"),
        ("/api/rooms", json!({"name": "ok", "join": "sometimes"}), "alice", 400, "bad-request"),
        ("/api/rooms", json!({"name": "ok", "admin": true}), "alice", 400, "bad-request"),
        ("/api/rooms", json!({"name": "ok", "description": "x\nINFO forged"}), "bob", 400, "bad-request"),
        ("/api/rooms", json!({"name": "ok", "description": "x".repeat(501)}), "bob", 400, "bad-request"),
        ("/api/rooms/nope/members", json!({"userId": "bob", "access": "read"}), "alice", 404, "unknown-room"),
        ("/api/rooms/a1/members", json!({"userId": "nobody", "access": "read"}), "alice", 404, "unknown-user"),
        ("/api/rooms/a1/members", json!({"userId": "bad.name", "access": "read"}), "alice", 404, "unknown-user"),
        ("/api/rooms/a1/members", json!({"userId": "bob", "access": "all"}), "alice", 400, "bad-request"),
        ("/api/rooms/a1/members", json!({"userId": "alice", "access": "read"}), "bob", 403, "not-room-owner"),
        ("/api/rooms/a1/join", json!({}), "bob", 403, "room-not-open"),
        ("/api/rooms/nope/join", json!({}), "bob", 404, "unknown-room"),
    ];
    for (path, body, who, want_status, want_code) in cases {
        let token = if who == "alice" {
            alice.clone()
        } else {
            bob.clone()
        };
        let (status, code, answer) = post(path, body.clone(), token).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{path} {body}: {answer}"
        );
        assert_eq!(answer["error_code"], want_code);
    }
    // A guest may not create rooms (rooms.creators never names guests).
    let (_, guest, _) =
        crate::support::api::post(&format!("{}/api/auth/guest", svc.http_url()), json!({})).await;
    let guest = crate::support::api::s(&guest, "accessToken");
    let (status, code, _) = post("/api/rooms", json!({"name": "g1"}), guest).await;
    assert_eq!((status, code.as_str()), (403, "not-a-room-creator"));
    // Members: for members and admins only; removing someone else is for owners.
    let (status, code, _) = call(&svc, Method::GET, "/api/rooms/a1/members", &bob, None).await;
    assert_eq!((status, code.as_str()), (403, "not-room-owner"));
    let (status, code, _) = call(&svc, Method::DELETE, "/api/rooms/a1/members/alice", &bob, None).await;
    assert_eq!((status, code.as_str()), (403, "not-room-owner"));
    let (status, code, _) = call(&svc, Method::DELETE, "/api/rooms/a1/members/bob", &alice, None).await;
    assert_eq!((status, code.as_str()), (404, "unknown-user"), "bob is no member");
    // Open rooms: listed for bob until he joins, then his.
    let (_, _, open) = call(&svc, Method::GET, "/api/rooms?open=true", &bob, None).await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["name"], "open1");
    let (status, _, joined) = post("/api/rooms/open1/join", json!({}), bob.clone()).await;
    assert_eq!(
        (status, &joined["access"]),
        (200, &json!("readwrite")),
        "{joined}"
    );
    let (_, _, open) = call(&svc, Method::GET, "/api/rooms?open=true", &bob, None).await;
    assert_eq!(open, json!([]));
    let (status, _, members) = call(&svc, Method::GET, "/api/rooms/open1/members", &bob, None).await;
    assert_eq!(status, 200);
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    // A member may leave.
    let (status, _, _) = call(&svc, Method::DELETE, "/api/rooms/open1/members/bob", &bob, None).await;
    assert_eq!(status, 200);
    // An admin manages any room.
    let admin = token_of(&svc, "admin").await;
    add(&svc, &admin, "a1", "bob", "read").await;
    let (status, _, _) = call(&svc, Method::DELETE, "/api/rooms/a1", &admin, None).await;
    assert_eq!(status, 200);
    // Without a token: 401.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/rooms", svc.http_url()))
        .json(&json!({"name": "x1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// Open rooms are listed in pages.
#[tokio::test]
async fn open_rooms_are_paged() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (alice, bob) = (token_of(&svc, "alice").await, token_of(&svc, "bob").await);
    for n in 0..5 {
        create(&svc, &alice, &format!("o{n}"), "open").await;
    }
    let page = |q: &'static str| {
        let (svc, bob) = (&svc, &bob);
        async move {
            let (_, _, v) = call(svc, Method::GET, &format!("/api/rooms?open=true&{q}"), bob, None).await;
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("limit=2").await, ["o0", "o1"]);
    assert_eq!(page("limit=2&after=o1").await, ["o2", "o3"]);
    assert_eq!(page("limit=2&after=o3").await, ["o4"]);
    let (status, _, _) = call(&svc, Method::GET, "/api/rooms?open=maybe", &bob, None).await;
    assert_eq!(status, 400);
}
