//! The HTTP API and NATS as a client uses them: login, refresh, the token in a reply,
//! a connection that must be refused.

use async_nats::ConnectErrorKind;
use serde_json::{Value, json};

use super::TestEnv;

/// POST `body` as JSON: status, JSON body, `set-cookie` values.
pub async fn post(url: &str, body: Value) -> (u16, Value, Vec<String>) {
    answer(reqwest::Client::new().post(url).json(&body)).await
}

/// POST `body` as JSON with a bearer token: status, JSON body, `set-cookie` values.
pub async fn post_bearer(url: &str, token: &str, body: Value) -> (u16, Value, Vec<String>) {
    answer(reqwest::Client::new().post(url).bearer_auth(token).json(&body)).await
}

/// GET with a bearer token: status, JSON body, `set-cookie` values.
pub async fn get_bearer(url: &str, token: &str) -> (u16, Value, Vec<String>) {
    answer(reqwest::Client::new().get(url).bearer_auth(token)).await
}

async fn answer(req: reqwest::RequestBuilder) -> (u16, Value, Vec<String>) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, cookies)
}

/// Log in as `user` (the demo password is the user name); panics unless 200.
pub async fn login(base: &str, user: &str, device: Option<&str>) -> Value {
    login_with(
        base,
        json!({"username": user, "password": user, "deviceId": device}),
    )
    .await
}

/// Log in as `user` (the demo password is the user name) for application `client_id`;
/// panics unless 200.
pub async fn login_for(base: &str, user: &str, client_id: &str) -> Value {
    login_with(
        base,
        json!({"username": user, "password": user, "clientId": client_id}),
    )
    .await
}

/// Log in with `body`; panics unless 200.
pub async fn login_with(base: &str, body: Value) -> Value {
    let (status, body, _) = post(&format!("{base}/api/auth/login"), body).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// alice (of the demo files) makes the room `room` on the service at `base` and adds
/// `user` to it: `conn`, a connection of `user`, is told on `nats-callout.notice.<user>`.
/// This runs the whole way a notice goes: the service's account exports it, the users'
/// account imports it, the user's JWT lets them hear it.
pub async fn told_when_added(conn: &super::Conn, base: &str, user: &str, room: &str) {
    use futures::StreamExt;
    let mut told = conn
        .client
        .subscribe(nats_callout::wire::notice_subject(user))
        .await
        .unwrap();
    conn.client.flush().await.unwrap();
    let alice = s(&login(base, "alice", None).await, "accessToken");
    let (status, body, _) = post_bearer(&format!("{base}/api/rooms"), &alice, json!({"name": room})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = post_bearer(
        &format!("{base}/api/rooms/{room}/members"),
        &alice,
        json!({"userId": user, "access": "read"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = tokio::time::timeout(super::DEADLINE, told.next())
        .await
        .unwrap_or_else(|_| panic!("{user} was not told of {room}"))
        .unwrap();
    let notice: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&notice["type"], &notice["room"], &notice["access"]),
        (&json!("grants-changed"), &json!(room), &json!("read")),
        "{notice}"
    );
}

/// Refresh with the token in the body.
pub async fn refresh(base: &str, rt: &str) -> (u16, Value) {
    let (s, b, _) = post(&format!("{base}/api/auth/refresh"), json!({"refreshToken": rt})).await;
    (s, b)
}

/// Request `subject` with JSON `body` and read the JSON answer (up to the deadline).
pub async fn ask(client: &async_nats::Client, subject: &str, body: &Value) -> Value {
    let reply = tokio::time::timeout(
        super::DEADLINE,
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer on {subject} within the deadline"))
    .unwrap_or_else(|e| panic!("request on {subject}: {e}"));
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("the answer on {subject}: {e}"))
}

/// The string `k` of a JSON body.
pub fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_string()
}

/// The access token is refused by the callout (authorization violation).
pub async fn assert_nats_denied(env: &TestEnv, token: &str, what: &str) {
    let err = env
        .connect(Some(token), "all1")
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: allowed"));
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{what}");
}
