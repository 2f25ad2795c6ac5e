//! `GET /api/auth/sessions` and `POST /api/auth/revoke {clientId}`: a user's sessions by
//! application and device, the current one marked; one application ended at a time.

use super::*;

fn login_app(client: &str, device: &str) -> Value {
    json!({"username": "bob", "password": "bob", "clientId": client, "deviceId": device})
}

async fn sessions(api: &Api, token: &str, query: &str) -> Resp {
    api.get(
        &format!("/api/auth/sessions{query}"),
        &[("authorization", &bearer(token))],
    )
    .await
}

#[tokio::test]
async fn a_user_lists_their_sessions_by_application_and_device_with_the_current_one_marked() {
    let api = Api::new();
    let web = api.login_with(login_app("web", "laptop")).await;
    api.advance(10);
    let phone = api.login_with(login_app("mobile", "phone")).await;
    api.advance(10);
    api.login("alice", "alice").await;
    let r = sessions(&api, &phone.access(), "").await;
    r.assert_ok();
    let list = r.json.as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", r.json);
    // Most recently used first; the asking session is marked.
    assert_eq!(list[0]["clientId"], "mobile");
    assert_eq!(list[0]["deviceId"], "phone");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["clientId"], "web");
    assert_eq!(list[1]["current"], false);
    assert_eq!(secs_of(list[1]["createdAt"].as_str().unwrap()), T0);
    assert!(list.iter().all(|s| s["userId"] == "bob"));
    // A refresh is a use: web comes first now.
    api.advance(10);
    api.refresh(&web.refresh()).await.assert_ok();
    let r = sessions(&api, &phone.access(), "").await;
    assert_eq!(r.json[0]["clientId"], "web");
    assert_eq!(secs_of(r.json[0]["lastUsedAt"].as_str().unwrap()), T0 + 30);
    // Nothing of another user's, unless an admin asks.
    sessions(&api, &phone.access(), "?userId=alice")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let admin = api.login("admin", "admin").await.access();
    let r = sessions(&api, &admin, "?userId=bob").await;
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    assert!(r.json.as_array().unwrap().iter().all(|s| s["current"] == false));
    sessions(&api, &admin, "?userId=not%20a%20name")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
    sessions(&api, &admin, "?user=bob")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
}

#[tokio::test]
async fn revoking_an_application_ends_its_sessions_only() {
    let api = Api::new();
    let web1 = api.login_with(login_app("web", "laptop")).await;
    let web2 = api.login_with(login_app("web", "desk")).await;
    let mobile = api.login_with(login_app("mobile", "phone")).await;
    let r = api.revoke(&mobile.access(), json!({"clientId": "web"})).await;
    r.assert_ok();
    assert_eq!(r.json["revokedSessions"], 2);
    api.assert_revoked(&web1).await;
    api.assert_revoked(&web2).await;
    api.me(&mobile.access()).await.assert_ok();
    let left = sessions(&api, &mobile.access(), "").await;
    assert_eq!(left.json.as_array().unwrap().len(), 1);

    // Another user's application: admins only.
    let alice = api
        .login_with(json!({"username": "alice", "password": "alice", "clientId": "web"}))
        .await;
    api.revoke(&mobile.access(), json!({"clientId": "web", "userId": "alice"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let admin = api.login("admin", "admin").await.access();
    let r = api
        .revoke(&admin, json!({"clientId": "web", "userId": "alice"}))
        .await;
    r.assert_ok();
    assert_eq!(r.json["revokedSessions"], 1);
    api.assert_revoked(&alice).await;
    // clientId goes with userId at most.
    api.revoke(&admin, json!({"clientId": "web", "deviceId": "phone"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
}
