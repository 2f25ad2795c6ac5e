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
