//! Applications (`[applications.NAME]`) at login: when the permission files define them, a
//! `clientId` must name one, for every login kind (password, guest, key; the provider login
//! is in `oidc`); without them (the demo) it stays free-form. An application's token lists
//! only the application's rooms, also after a refresh.

use super::keylogin::{challenge, sign};
use super::*;

/// Two applications, and a guest group with two rooms (the kiosk reaches one).
pub(crate) const APPLICATIONS: &str = r#"
[applications.mobile]
rooms = ["all1", "bob*", "lobby"]
description = "The phone app"

[applications.kiosk]
rooms = ["lobby"]

[groups.guest]
members = []

[rooms.lobby]
members = ["@guest"]

[rooms.hall]
members = ["@guest"]
"#;

struct World {
    api: Api,
    bob: nkeys::KeyPair,
    _files: TempDir,
}

/// The demo files with [`APPLICATIONS`] and a key for bob, guests on.
fn world() -> World {
    let bob = nkeys::KeyPair::new_user();
    let files = permissions_with(APPLICATIONS);
    let users = files.path().join("users.toml");
    let text = std::fs::read_to_string(&users).unwrap().replacen(
        "[users.bob]\n",
        &format!("[users.bob]\nnkeys = [\"{}\"]\n", bob.public_key()),
        1,
    );
    std::fs::write(&users, text).unwrap();
    let settings = HttpSettings {
        guests: true,
        ..HttpSettings::default()
    };
    World {
        api: Api::with(settings, files.path()),
        bob,
        _files: files,
    }
}

/// The names `GET /api/rooms` lists for `access`.
async fn rooms(api: &Api, access: &str) -> Vec<String> {
    let r = api.get("/api/rooms", &[("authorization", &bearer(access))]).await;
    r.assert_ok();
    r.json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_login_kind_refuses_a_client_id_that_is_no_application() {
    let World { api, bob, .. } = world();
    let unknown = |r: Resp| r.assert_error(StatusCode::BAD_REQUEST, "unknown-application");
    unknown(
        api.try_login(json!({"username": "bob", "password": "bob", "clientId": "desktop"}))
            .await,
    );
    unknown(
        api.post("/api/auth/guest", json!({"clientId": "desktop"}), &[])
            .await,
    );
    unknown(
        api.post(
            "/api/auth/challenge",
            json!({"publicKey": bob.public_key(), "clientId": "desktop"}),
            &[],
        )
        .await,
    );
    // A challenge asked without one, answered naming an unknown application.
    let c = challenge(&api, &bob.public_key()).await;
    let answer = json!({"challenge": c, "publicKey": bob.public_key(), "signature": sign(&bob, &c), "clientId": "desktop"});
    unknown(api.post("/api/auth/authenticate", answer, &[]).await);
    // The challenge was not used up by the refusal: answered rightly, it logs bob in.
    let answer = json!({"challenge": c, "publicKey": bob.public_key(), "signature": sign(&bob, &c), "clientId": "kiosk"});
    let r = api.post("/api/auth/authenticate", answer, &[]).await;
    r.assert_ok();
    assert_eq!(r.json["clientId"], "kiosk");
    // Not a name at all: refused as before, for what it is.
    api.try_login(json!({"username": "bob", "password": "bob", "clientId": "a.b"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
    // A known application, and no application at all, log in.
    for (client_id, want) in [(json!("mobile"), json!("mobile")), (Value::Null, Value::Null)] {
        let r = api
            .login_with(json!({"username": "bob", "password": "bob", "clientId": client_id}))
            .await;
        assert_eq!(r.json["clientId"], want);
    }
    let r = api
        .post("/api/auth/guest", json!({"clientId": "kiosk"}), &[])
        .await;
    r.assert_ok();
    assert_eq!(r.json["clientId"], "kiosk");
}

#[tokio::test]
async fn an_applications_token_lists_only_the_applications_rooms_also_after_a_refresh() {
    let World { api, .. } = world();
    let mobile = api
        .login_with(json!({"username": "bob", "password": "bob", "clientId": "mobile"}))
        .await;
    assert_eq!(rooms(&api, &mobile.access()).await, ["all1", "bob1", "bob2"]);
    let me = api.me(&mobile.access()).await;
    assert_eq!(me.json["clientId"], "mobile");
    let refreshed = api.refresh(&mobile.refresh()).await;
    refreshed.assert_ok();
    assert_eq!(rooms(&api, &refreshed.access()).await, ["all1", "bob1", "bob2"]);
    // The same user without an application: every room of theirs.
    let plain = api.login("bob", "bob").await;
    assert_eq!(
        rooms(&api, &plain.access()).await,
        ["all1", "all2", "all3", "bob1", "bob2"]
    );
    // An admin under the kiosk application: its one room, not every room.
    let admin = api
        .login_with(json!({"username": "admin", "password": "admin", "clientId": "kiosk"}))
        .await;
    assert_eq!(rooms(&api, &admin.access()).await, ["lobby"]);
}

#[tokio::test]
async fn without_applications_a_client_id_is_free_form() {
    let api = Api::new();
    let r = api
        .login_with(json!({"username": "bob", "password": "bob", "clientId": "anything"}))
        .await;
    assert_eq!(r.json["clientId"], "anything");
    assert_eq!(
        rooms(&api, &r.access()).await,
        ["all1", "all2", "all3", "bob1", "bob2"]
    );
}
