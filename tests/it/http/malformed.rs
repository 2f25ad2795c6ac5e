//! Malformed request bodies on every endpoint get a clear 400.

use super::*;

#[tokio::test]
async fn malformed_login_bodies_are_refused_with_bad_request_and_a_clear_message() {
    let api = Api::new();
    let cases: [(&str, &str); 7] = [
        ("this is not json", "invalid request body"),
        (r#"{"username": "bob"}"#, "missing field `password`"),
        (r#"{"password": "bob"}"#, "missing field `username`"),
        (
            r#"{"username": "bob", "password": "bob", "admin": true}"#,
            "unknown field `admin`",
        ),
        (
            r#"{"username": "bob", "password": "bob", "deviceId": "a.b"}"#,
            "deviceId",
        ),
        (
            r#"{"username": "bob", "password": "bob", "deviceId": "a>"}"#,
            "deviceId",
        ),
        (
            r#"{"username": "bob", "password": "bob", "clientId": "x y"}"#,
            "clientId",
        ),
    ];
    for (body, expected) in cases {
        let r = api.post_raw("/api/auth/login", body, &[]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        let msg = r.json["error"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "{body}: {msg:?} should mention {expected:?}"
        );
    }
    // Without a JSON content type.
    let r = api
        .request(
            Method::POST,
            "/api/auth/login",
            &[],
            Body::from(r#"{"username":"bob","password":"bob"}"#),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(
        r.json["error"].as_str().unwrap().contains("Content-Type"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn malformed_refresh_logout_revoke_and_introspect_bodies_are_bad_requests() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let auth = bearer(&admin);
    let auth = [("authorization", auth.as_str())];
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        let r = api.post_raw(path, "{not json", &[]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        assert!(r.json["error"].as_str().unwrap().contains("invalid request body"));
        let r = api.post_raw(path, r#"{"token": "x"}"#, &[]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        assert!(
            r.json["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `token`")
        );
    }
    let r = api
        .post_raw("/api/auth/revoke", r#"{"user": "bob"}"#, &auth)
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(r.json["error"].as_str().unwrap().contains("unknown field `user`"));
    let r = api
        .post_raw("/api/auth/revoke", r#"{"before": true}"#, &auth)
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(r.json["error"].as_str().unwrap().contains("before"));
    let r = api
        .post_raw("/api/auth/revoke", r#"{"before": "yesterday"}"#, &auth)
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    let r = api.post_raw("/api/auth/introspect", "{}", &auth).await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(
        r.json["error"]
            .as_str()
            .unwrap()
            .contains("missing field `token`")
    );
}
