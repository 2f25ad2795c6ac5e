//! `/api/console/*`: the admin console's data, for admins only; the permission status with
//! each `file:line: reason`, the decision numbers, and no live connections without the
//! enforcer (the router-level service has none).

use super::*;

#[tokio::test]
async fn the_console_is_for_admins_only() {
    let api = Api::new();
    let bob = api.login("bob", "bob").await.access();
    let admin = api.login("admin", "admin").await.access();
    for path in [
        "/api/console/connections",
        "/api/console/permissions",
        "/api/console/denies",
        "/api/console/metrics",
        "/api/console/rooms",
    ] {
        api.get(path, &[("authorization", &bearer(&bob))])
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
        api.get(path, &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
        api.get(path, &[("authorization", &bearer(&admin))])
            .await
            .assert_ok();
    }
    let c = api
        .get("/api/console/connections", &[("authorization", &bearer(&admin))])
        .await;
    assert_eq!(c.json, json!({"enforcement": false, "connections": []}));
    let m = api
        .get("/api/console/metrics", &[("authorization", &bearer(&admin))])
        .await;
    assert_eq!(m.json["at"], T0);
    for k in ["allowed", "denied", "refused", "p99Ms"] {
        assert!(m.json[k].is_number(), "{k}: {}", m.json);
    }
    let p = api
        .get("/api/console/permissions", &[("authorization", &bearer(&admin))])
        .await;
    assert_eq!(p.json["users"], 3, "{}", p.json);
    assert_eq!(p.json["lastErrors"], json!([]));
}

#[tokio::test]
async fn the_console_shows_each_problem_of_a_broken_permission_file() {
    let files = permissions_with("");
    let api = Api::with(HttpSettings::default(), files.path());
    let admin = api.login("admin", "admin").await.access();
    std::fs::write(
        files.path().join("broken.toml"),
        "[rooms.all1]\nmembers = [\"nobody\"]\n",
    )
    .unwrap();
    assert!(!api.state.ops.reloader.reload_once().await);
    let p = api
        .get("/api/console/permissions", &[("authorization", &bearer(&admin))])
        .await;
    let errors = p.json["lastErrors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("broken.toml:2: room \"all1\": unknown user \"nobody\"")),
        "{}",
        p.json
    );
    std::fs::remove_file(files.path().join("broken.toml")).unwrap();
    assert!(api.state.ops.reloader.reload_once().await);
    let p = api
        .get("/api/console/permissions", &[("authorization", &bearer(&admin))])
        .await;
    assert_eq!(p.json["lastErrors"], json!([]));
}

/// Every room in data, by name and in pages, each with its members: what the console's
/// "Rooms in data" shows an admin.
#[tokio::test]
async fn the_console_lists_every_room_in_data_with_its_members_in_pages() {
    let api = Api::new();
    let alice = api.login("alice", "alice").await.access();
    let admin = api.login("admin", "admin").await.access();
    let (as_alice, as_admin) = (bearer(&alice), bearer(&admin));
    for name in ["r3", "r1", "r2"] {
        let made = api
            .post(
                "/api/rooms",
                json!({"name": name}),
                &[("authorization", &as_alice)],
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    }
    api.post(
        "/api/rooms/r2/members",
        json!({"userId": "bob", "access": "read"}),
        &[("authorization", &as_alice)],
    )
    .await
    .assert_ok();
    let all = api
        .get("/api/console/rooms", &[("authorization", &as_admin)])
        .await;
    let names: Vec<&str> = all
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r1", "r2", "r3"]);
    assert_eq!(all.json[1]["owner"], "alice");
    assert_eq!(
        all.json[1]["members"],
        json!([
            {"userId": "alice", "access": "readwrite", "owner": true},
            {"userId": "bob", "access": "read", "owner": false},
        ])
    );
    let page = api
        .get(
            "/api/console/rooms?after=r1&limit=1",
            &[("authorization", &as_admin)],
        )
        .await;
    assert_eq!(page.json.as_array().unwrap().len(), 1);
    assert_eq!(page.json[0]["name"], "r2");
    api.get("/api/console/rooms?page=2", &[("authorization", &as_admin)])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
}
