//! Applications against a real nats-server: a session opened for an application (password,
//! key and guest logins) connects with the user's rooms within the application's, and the
//! server itself refuses the rest; a key login's challenge binds the application and the
//! device; an unknown application is refused at login.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::api::{login, login_for, post, refresh, s};
use crate::support::{Conn, EnvOptions, TestEnv, talks};

/// Two applications and a guest group with two rooms (as in the HTTP tests).
use crate::http::applications::APPLICATIONS;

/// The demo files with the applications and bob's key, guests on, the service running.
async fn world(bob: &nkeys::KeyPair) -> (TestEnv, crate::support::CalloutHandle) {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| c.http.guests = true,
        ..Default::default()
    })
    .await;
    let dir = &env.config.permissions.dir;
    std::fs::write(dir.join("applications.toml"), APPLICATIONS).unwrap();
    let users = dir.join("users.toml");
    let text = std::fs::read_to_string(&users).unwrap().replacen(
        "[users.bob]\n",
        &format!("[users.bob]\nnkeys = [\"{}\"]\n", bob.public_key()),
        1,
    );
    std::fs::write(&users, text).unwrap();
    let svc = env.start_callout().await;
    (env, svc)
}

/// The server refuses `conn` a subscription to `room` (outside its grant).
async fn may_not_read(conn: &mut Conn, room: &str) {
    let _sub = conn.client.subscribe(format!("chat.{room}.>")).await.unwrap();
    conn.client.flush().await.unwrap();
    conn.expect_error(&format!(
        "Permissions Violation for Subscription to \"chat.{room}.>\""
    ))
    .await;
}

#[tokio::test]
async fn a_password_logins_application_scopes_its_connections_also_after_a_refresh() {
    let bob = nkeys::KeyPair::new_user();
    let (env, svc) = world(&bob).await;
    let base = svc.http_url();

    let mobile = login_for(&base, "bob", "mobile").await;
    assert_eq!(mobile["clientId"], "mobile");
    let mut conn = env
        .connect(Some(&s(&mobile, "accessToken")), "all1;bob1;all2")
        .await
        .expect("connects");
    talks(&conn, "all1", "bob").await;
    talks(&conn, "bob1", "bob").await;
    // all2 is bob's, but not the application's.
    may_not_read(&mut conn, "all2").await;

    let (st, refreshed) = refresh(&base, &s(&mobile, "refreshToken")).await;
    assert_eq!(st, 200, "{refreshed}");
    let mut again = env
        .connect(Some(&s(&refreshed, "accessToken")), "all2;bob2")
        .await
        .expect("connects");
    talks(&again, "bob2", "bob").await;
    may_not_read(&mut again, "all2").await;

    // bob without an application: every room of his.
    let plain = login(&base, "bob", None).await;
    let conn = env
        .connect(Some(&s(&plain, "accessToken")), "all2")
        .await
        .expect("connects");
    talks(&conn, "all2", "bob").await;

    // An application the files do not define: no session at all.
    let (st, body, cookies) = post(
        &format!("{base}/api/auth/login"),
        json!({"username": "bob", "password": "bob", "clientId": "desktop"}),
    )
    .await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (400, Some("unknown-application"))
    );
    assert!(cookies.is_empty(), "{cookies:?}");
}

/// A challenge asked for the mobile application on the phone: answered for another device
/// it is refused (and still usable), answered rightly its tokens connect within mobile.
#[tokio::test]
async fn a_key_login_bound_to_an_application_and_device_connects_within_the_application() {
    let bob = nkeys::KeyPair::new_user();
    let (env, svc) = world(&bob).await;
    let base = svc.http_url();
    let (st, c, _) = post(
        &format!("{base}/api/auth/challenge"),
        json!({"publicKey": bob.public_key(), "clientId": "mobile", "deviceId": "phone"}),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    let challenge = s(&c, "challenge");
    let signature = URL_SAFE_NO_PAD.encode(bob.sign(challenge.as_bytes()).unwrap());
    let answer = |device: &str| {
        json!({"challenge": challenge, "publicKey": bob.public_key(), "signature": signature,
               "clientId": "mobile", "deviceId": device})
    };
    let (st, body, _) = post(&format!("{base}/api/auth/authenticate"), answer("laptop")).await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (401, Some("challenge-binding-mismatch")),
        "{body}"
    );
    let (st, tokens, _) = post(&format!("{base}/api/auth/authenticate"), answer("phone")).await;
    assert_eq!(st, 200, "{tokens}");
    assert_eq!(tokens["clientId"], "mobile");
    let mut conn = env
        .connect(Some(&s(&tokens, "accessToken")), "bob1;all3")
        .await
        .expect("connects");
    talks(&conn, "bob1", "bob").await;
    may_not_read(&mut conn, "all3").await;
}

/// A guest of the kiosk application chats in the guest room the kiosk reaches, not in the
/// other; a guest of an unknown application is not created.
#[tokio::test]
async fn a_guest_of_an_application_gets_the_guest_rooms_within_it() {
    let bob = nkeys::KeyPair::new_user();
    let (env, svc) = world(&bob).await;
    let base = svc.http_url();
    let (st, guest, _) = post(&format!("{base}/api/auth/guest"), json!({"clientId": "kiosk"})).await;
    assert_eq!(st, 200, "{guest}");
    assert_eq!(guest["clientId"], "kiosk");
    let id = s(&guest, "userId");
    let mut conn = env
        .connect(Some(&s(&guest, "accessToken")), "lobby;hall")
        .await
        .expect("connects");
    talks(&conn, "lobby", &id).await;
    may_not_read(&mut conn, "hall").await;
    // Without an application, a guest has both.
    let (st, other, _) = post(&format!("{base}/api/auth/guest"), json!({})).await;
    assert_eq!(st, 200, "{other}");
    let conn = env
        .connect(Some(&s(&other, "accessToken")), "hall")
        .await
        .expect("connects");
    talks(&conn, "hall", &s(&other, "userId")).await;
    let (st, body, _) = post(&format!("{base}/api/auth/guest"), json!({"clientId": "desktop"})).await;
    assert_eq!(
        (st, body["error_code"].clone()),
        (400, Value::from("unknown-application"))
    );
}
