//! `GET /api/auth/me` and `GET /api/rooms` (and `/healthz`): the user context, rooms with
//! their access, expired and forged tokens; `GET /api/users/{id}/context`: admins look a
//! user up by id.

use super::*;

#[tokio::test]
async fn an_access_token_expires_after_five_minutes() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    api.advance(ACCESS_TTL - 1);
    api.me(&access).await.assert_ok();
    api.advance(1);
    let r = api.me(&access).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "access-token-expired");
    assert_eq!(r.header("x-error-code"), Some("access-token-expired"));
    api.get("/api/rooms", &[("authorization", &bearer(&access))])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-expired");
}

#[tokio::test]
async fn me_without_any_token_is_missing_token() {
    let api = Api::new();
    api.get("/api/auth/me", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    api.get("/api/rooms", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    // A cookie header without our cookie is no token either.
    api.get("/api/auth/me", &[("cookie", "other=1")])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
}

#[tokio::test]
async fn forged_or_foreign_access_tokens_are_refused_with_a_reason() {
    let api = Api::new();
    let good = api.login("bob", "bob").await.access();
    api.me("not-a-jwt")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-malformed");
    // Same claims, another key.
    let other = Api::new();
    let foreign = other.login("bob", "bob").await.access();
    api.remember(&foreign);
    api.me(&foreign)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-unknown-key");
    // A flipped signature.
    let (head, sig) = good.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{head}.{flipped}{}", &sig[1..]);
    api.remember(&tampered);
    api.me(&tampered)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-bad-signature");
    // A token from the future (the clock went back more than a minute).
    api.advance(-61);
    api.me(&good)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-not-yet-valid");
}

/// Admins look a user of the files up by id: the context without a token's parts
/// (`data`, `authorization`); an unknown user is 404 `unknown-user`, a name no user can have
/// 400; nobody else may ask.
#[tokio::test]
async fn admins_look_a_user_up_by_id() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let api = &api;
    let context = |id: &str, token: &str| {
        let auth = bearer(token);
        let path = format!("/api/users/{id}/context");
        async move { api.get(&path, &[("authorization", &auth)]).await }
    };
    let r = context("alice", &admin).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({
            "id": "alice",
            "clientId": null,
            "roles": ["user"],
            "user": {"id": "alice", "roles": ["user"], "groups": ["everyone"], "roomCount": 5},
        })
    );
    context("nobody", &admin)
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown-user");
    context("a.b", &admin)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
    context(&"x".repeat(65), &admin)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
    // Not an admin (even about oneself), or nobody at all.
    let bob = api.login("bob", "bob").await.access();
    context("bob", &bob)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.get("/api/users/bob/context", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
}

#[tokio::test]
async fn me_with_a_bearer_token_returns_the_user_context() {
    let api = Api::new();
    let login = api
        .login_with(json!({"username": "bob", "password": "bob", "deviceId": "phone", "clientId": "chat"}))
        .await;
    let claims = api
        .state
        .tokens
        .verify_access(&login.access(), api.now())
        .unwrap();
    let r = api.me(&login.access()).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({
            "id": "bob",
            "clientId": "chat",
            "roles": ["user"],
            "data": {
                "sessionId": claims.sid,
                "deviceId": "phone",
                "tokenId": claims.tid,
                "expiresAt": T0 + ACCESS_TTL,
            },
            "authorization": {"tokenType": "Bearer", "expiresAt": T0 + ACCESS_TTL, "scope": "user"},
            "user": {"id": "bob", "roles": ["user"], "groups": ["everyone"], "roomCount": 5},
        })
    );
    let admin = api.login("admin", "admin").await.access();
    let r = api.me(&admin).await;
    let mut roles: Vec<&str> = r.json["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["admin", "sysadmin"]);
    assert_eq!(r.json["clientId"], Value::Null);
    assert_eq!(r.json["data"]["deviceId"], Value::Null);
}

#[tokio::test]
async fn me_with_the_cookie_works_from_an_allowed_origin_and_not_from_a_foreign_one() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    let cookie = cookie_header(&[("theme", "dark"), ("nats_token", &access)]);
    let r = api
        .get("/api/auth/me", &[("cookie", &cookie), ("origin", ORIGIN)])
        .await;
    r.assert_ok();
    assert_eq!(r.json["id"], "bob");
    // A plain navigation (a GET without Origin) is not state-changing: allowed.
    api.get("/api/auth/me", &[("cookie", &cookie)]).await.assert_ok();
    api.get("/api/auth/me", &[("cookie", &cookie), ("origin", FOREIGN_ORIGIN)])
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.get("/api/rooms", &[("cookie", &cookie), ("origin", FOREIGN_ORIGIN)])
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

fn room_names(rooms: &Value) -> Vec<&str> {
    rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn rooms_lists_exactly_the_rooms_bob_may_join_with_their_access() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    let r = api
        .get("/api/rooms", &[("authorization", &bearer(&access))])
        .await;
    r.assert_ok();
    assert_eq!(room_names(&r.json), ["all1", "all2", "all3", "bob1", "bob2"]);
    assert!(!r.text.contains("alice1"));
    for room in r.json.as_array().unwrap() {
        assert_eq!(room["read"], true, "{room}");
        assert_eq!(room["write"], true, "{room}");
    }
    // Alice sees hers, not bob's.
    let alice = api.login("alice", "alice").await.access();
    let r = api.get("/api/rooms", &[("authorization", &bearer(&alice))]).await;
    assert_eq!(room_names(&r.json), ["alice1", "alice2", "all1", "all2", "all3"]);
    // An admin sees every room.
    let admin = api.login("admin", "admin").await.access();
    let r = api.get("/api/rooms", &[("authorization", &bearer(&admin))]).await;
    assert_eq!(
        room_names(&r.json),
        ["alice1", "alice2", "all1", "all2", "all3", "bob1", "bob2"]
    );
}

#[tokio::test]
async fn rooms_shows_read_only_and_write_only_grants_as_such() {
    let perms = permissions_with(
        "[rooms.news]\nmembers = [\"bob\"]\naccess = \"read\"\n\n\
         [rooms.inbox]\nmembers = [\"bob\"]\naccess = \"write\"\n",
    );
    let api = Api::with(HttpSettings::default(), perms.path());
    let access = api.login("bob", "bob").await.access();
    let r = api
        .get("/api/rooms", &[("authorization", &bearer(&access))])
        .await;
    r.assert_ok();
    let find = |name: &str| {
        r.json
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing in {}", r.text))
    };
    assert_eq!(
        find("news"),
        json!({"name": "news", "read": true, "write": false})
    );
    assert_eq!(
        find("inbox"),
        json!({"name": "inbox", "read": false, "write": true})
    );
    assert_eq!(find("bob1"), json!({"name": "bob1", "read": true, "write": true}));
}

#[tokio::test]
async fn a_user_removed_from_the_permission_files_gets_a_limited_context_and_nothing_else() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    // The files change: bob is gone (alice and admin stay).
    let dir = tempfile::tempdir().unwrap();
    let users = std::fs::read_to_string(repo_permissions().join("users.toml")).unwrap();
    let (_, from_alice) = users.split_once("[users.alice]").unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        format!("[users.alice]{from_alice}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rooms.toml"),
        "[rooms.all1]\nmembers = [\"alice\"]\n",
    )
    .unwrap();
    api.state.permissions.replace(load(dir.path()));

    // The context is limited: no user, no roles, and why.
    let r = api.me(&access).await;
    r.assert_ok();
    assert_eq!(r.json["user"], json!(null));
    assert_eq!(r.json["roles"], json!([]));
    assert_eq!(r.json["authorization"]["scope"], "");
    assert_eq!(
        r.json["userError"],
        "the user is no longer in the permission files"
    );
    api.get("/api/rooms", &[("authorization", &bearer(&access))])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unknown-user");
    api.revoke(&access, json!({"userId": "bob"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // And bob can no longer log in.
    api.remember("bob-was-here");
    api.try_login(json!({"username": "bob", "password": "bob"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
}

#[tokio::test]
async fn healthz_answers_ok_and_unknown_paths_are_not_found() {
    let api = Api::new();
    let r = api.admin_get("/healthz", &[]).await;
    r.assert_ok();
    assert_eq!(r.text, "ok");
    assert_eq!(api.get("/api/nothing", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/api/auth/login", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// The public listener serves the page and the user API only; metrics, health, readiness
/// and the admin API are on the operations listener, where admin calls still need an
/// admin's token.
#[tokio::test]
async fn operations_endpoints_are_only_on_the_operations_listener() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let bob = api.login("bob", "bob").await.access();
    for path in ["/metrics", "/healthz", "/readyz", "/api/admin/status"] {
        let r = api.get(path, &[("authorization", &bearer(&admin))]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "public {path}: {}", r.text);
    }
    let r = api
        .post(
            "/api/admin/token-reset",
            json!({"users": ["bob"]}),
            &[("authorization", &bearer(&admin))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "public token-reset");
    for path in ["/", "/api/config"] {
        assert_eq!(api.get(path, &[]).await.status, StatusCode::OK, "public {path}");
    }

    assert_eq!(api.admin_get("/metrics", &[]).await.status, StatusCode::OK);
    assert_eq!(api.admin_get("/readyz", &[]).await.status, StatusCode::OK);
    api.admin_get("/api/admin/status", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    api.admin_get("/api/admin/status", &[("authorization", &bearer(&bob))])
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .admin_get("/api/admin/status", &[("authorization", &bearer(&admin))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.json["readiness"]["parts"]["tokenStore"]["ok"]
            .as_bool()
            .unwrap(),
        "{}",
        r.text
    );
    assert!(
        api.admin_get("/api/auth/me", &[("authorization", &bearer(&bob))])
            .await
            .status
            == StatusCode::NOT_FOUND
    );
}

/// A session ended in the store since the token was issued (an instance that has not applied
/// the revocation yet): the context says so instead of describing the user.
#[tokio::test]
async fn a_session_revoked_since_the_token_limits_the_context() {
    let api = Api::new();
    let login = api.login("bob", "bob").await;
    let claims = api
        .state
        .tokens
        .verify_access(&login.access(), api.now())
        .unwrap();
    api.state
        .tokens
        .refresh()
        .revoke(
            nats_callout::tokens::SessionSelector::Id(&claims.sid),
            "test",
            api.now(),
        )
        .await
        .unwrap();
    let r = api.me(&login.access()).await;
    r.assert_ok();
    assert_eq!(r.json["user"], json!(null));
    assert_eq!(
        r.json["userError"],
        "the session was revoked since this token was issued"
    );
}

/// `GET /api/config` tells client kits the subjects, the inbox prefix and the room limit, so
/// that they hard-code none of them: the defaults here.
#[tokio::test]
async fn the_config_names_the_default_subjects_and_limits() {
    let api = Api::new();
    let r = api.get("/api/config", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["readSubject"], "chat.{room}.>", "{}", r.text);
    assert_eq!(r.json["writeSubject"], "chat.{room}.{user}");
    assert_eq!(r.json["inboxPrefix"], "_INBOX.{user}");
    assert_eq!(r.json["maxRooms"], 50);
    assert_eq!(r.json["noticeSubject"], "nats-callout.notice.{user}");
    assert!(r.json["user"].is_null());
}

/// ... and the running service's own `[callout]` settings when they are not the defaults.
#[tokio::test]
async fn the_config_follows_the_configured_templates() {
    let env = crate::support::TestEnv::start(crate::support::EnvOptions {
        tweak: |c| {
            c.callout.read_subject = "rooms.{room}.>".into();
            c.callout.write_subject = "rooms.{room}.msg.{user}".into();
            c.callout.inbox_prefix = "_I.{user}".into();
            c.callout.max_rooms = 7;
        },
        ..Default::default()
    })
    .await;
    let service = env.start_callout().await;
    let url = format!("http://{}/api/config", service.http_addr.unwrap());
    let config: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(config["readSubject"], "rooms.{room}.>", "{config}");
    assert_eq!(config["writeSubject"], "rooms.{room}.msg.{user}");
    assert_eq!(config["inboxPrefix"], "_I.{user}");
    assert_eq!(config["maxRooms"], 7);
    assert_eq!(config["noticeSubject"], "nats-callout.notice.{user}");
}

/// The page names itself `chat-page` when it may: always without applications in the files,
/// and with them only when `chat-page` is one (a login naming another would be refused).
#[tokio::test]
async fn the_config_names_the_pages_application_when_it_may_log_in_as_one() {
    let free = Api::new().get("/api/config", &[]).await;
    assert_eq!(free.json["pageClientId"], "chat-page", "{}", free.text);
    let others = permissions_with("[applications.mobile]\nrooms = [\"all1\"]\n");
    let scoped = Api::with(HttpSettings::default(), others.path())
        .get("/api/config", &[])
        .await;
    assert_eq!(scoped.json["pageClientId"], Value::Null, "{}", scoped.text);
    let listed = permissions_with("[applications.chat-page]\nrooms = [\"all1\"]\n");
    let page = Api::with(HttpSettings::default(), listed.path())
        .get("/api/config", &[])
        .await;
    assert_eq!(page.json["pageClientId"], "chat-page");
}
