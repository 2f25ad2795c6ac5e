//! Rooms as data (contract 11) against a real nats-server: the HTTP API with every refusal
//! code and bad input, live connections granted a room once added and losing it (the
//! lame-duck notice, then a kick) once removed, `auth.v1.rooms.*` for app services, and
//! (in [`instances`]) two instances sharing the rooms on JetStream. The store suite on
//! JetStream is in [`suite`]; the rooms-as-data benchmark at a small scale in [`bench`].

mod api;
pub(crate) mod bench;
mod guide;
mod instances;
mod nats;
mod suite;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::CalloutHandle;

/// A request to the HTTP API with a bearer token: status, `x-error-code`, JSON body.
pub(crate) async fn call(
    svc: &CalloutHandle,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", svc.http_url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let code = resp
        .headers()
        .get("x-error-code")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, code, resp.json().await.unwrap_or(Value::Null))
}

/// Log `user` in (the demo password is the name): the access token.
pub(crate) async fn token_of(svc: &CalloutHandle, user: &str) -> String {
    let body = crate::support::api::login(&svc.http_url(), user, Some("laptop")).await;
    crate::support::api::s(&body, "accessToken")
}

/// Create `room` as the owner of `token`; panics unless 201.
pub(crate) async fn create(svc: &CalloutHandle, token: &str, room: &str, join: &str) -> Value {
    let (status, code, body) = call(
        svc,
        Method::POST,
        "/api/rooms",
        token,
        Some(json!({"name": room, "join": join, "description": "made in a test"})),
    )
    .await;
    assert_eq!((status, code.as_str()), (201, ""), "{body}");
    body
}

/// Add `user` to `room` with `access`; panics unless 200.
pub(crate) async fn add(svc: &CalloutHandle, token: &str, room: &str, user: &str, access: &str) {
    let (status, code, body) = call(
        svc,
        Method::POST,
        &format!("/api/rooms/{room}/members"),
        token,
        Some(json!({"userId": user, "access": access})),
    )
    .await;
    assert_eq!((status, code.as_str()), (200, ""), "{body}");
}
