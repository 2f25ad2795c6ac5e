//! `auth.v1.rooms.*` over NATS: an app service (role `service`) makes rooms for users and
//! manages them; nobody else may publish there.

use serde_json::{Value, json};

use crate::enforcement::{Seen, receives, watched};
use crate::support::{EnvOptions, TestEnv};

async fn ask(c: &async_nats::Client, op: &str, body: Value) -> Value {
    let reply = c
        .request(format!("auth.v1.rooms.{op}"), body.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("auth.v1.rooms.{op}: {e}"));
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn an_app_service_manages_rooms_for_users() {
    let env = TestEnv::start(EnvOptions::default()).await;
    env.add_service_user("helpdesk");
    let _svc = env.start_callout().await;
    let app = env.endpoint_caller("helpdesk").await;
    let c = &app.client;
    let made = ask(
        c,
        "create",
        json!({"name": "support", "owner": "alice", "join": "invite"}),
    )
    .await;
    assert_eq!(made["owner"], "alice", "{made}");
    let added = ask(
        c,
        "members.add",
        json!({"room": "support", "userId": "bob", "access": "read"}),
    )
    .await;
    assert_eq!(added["access"], "read", "{added}");
    let members = ask(c, "members.list", json!({"room": "support"})).await;
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    let bobs = ask(c, "list", json!({"userId": "bob"})).await;
    assert_eq!(bobs[0]["room"]["name"], "support", "{bobs}");
    // bob hears the room (read only: he may not speak there).
    let bob = watched(&env, &env.token("bob"), "support;all1", false).await;
    receives(&bob.client, "all1", "bob").await;
    // Every refusal has its code.
    let cases = [
        (
            "create",
            json!({"name": "support", "owner": "alice"}),
            "room-exists",
        ),
        ("create", json!({"name": "x1", "owner": "nobody"}), "unknown-user"),
        (
            "create",
            json!({"name": "a.b", "owner": "alice"}),
            "bad-room-name",
        ),
        ("create", json!({"name": "x2"}), "bad-request"),
        (
            "members.add",
            json!({"room": "nope", "userId": "bob", "access": "read"}),
            "unknown-room",
        ),
        (
            "members.add",
            json!({"room": "support", "userId": "bob"}),
            "bad-request",
        ),
        (
            "join",
            json!({"room": "support", "userId": "bob"}),
            "room-not-open",
        ),
        ("frobnicate", json!({}), "bad-request"),
        ("delete", json!("not an object"), "bad-request"),
    ];
    for (op, body, code) in cases {
        let r = ask(c, op, body.clone()).await;
        assert_eq!(r["error_code"], code, "{op} {body}: {r}");
    }
    let done = ask(c, "members.remove", json!({"room": "support", "userId": "bob"})).await;
    assert_eq!(done, json!({"done": true}));
    let done = ask(c, "delete", json!({"room": "support"})).await;
    assert_eq!(done, json!({"done": true}));
}

/// A chat user may not publish to `auth.v1.rooms.*`: the server refuses it.
#[tokio::test]
async fn a_chat_user_cannot_reach_the_room_endpoints() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let _svc = env.start_callout().await;
    let mut bob = watched(&env, &env.token("bob"), "all1", false).await;
    bob.client
        .publish(
            "auth.v1.rooms.create",
            json!({"name": "x", "owner": "bob"}).to_string().into(),
        )
        .await
        .unwrap();
    bob.client.flush().await.unwrap();
    bob.wait_for("the refused publish", |s| {
        matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Publish to \"auth.v1.rooms.create\""))
    })
    .await;
}
